package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// A reload loads a file only once its content has held still: two
// digests settle apart must agree, and it gives up after settleTries.
const (
	settle      = 200 * time.Millisecond
	settleTries = 10
)

// copies makes the private copy that every plugin file is loaded from, at
// start-up and on each reload: a path of its own for every load, so that
// dlopen, which hands back the image it already has for a path or an
// inode, loads this content and no other, and so that a file overwritten
// in place never changes an image the gateway has mapped. The copies live
// in one directory made when the first is taken and removed at exit; the
// images mapped no longer need them then, and an isolated plugin's worker
// process, which opens its copy again when it restarts, has exited.
type copies struct {
	dir   string
	loads int // copies taken so far, to name their directories
}

// take copies the file at path and returns the copy and its SHA-256: the
// digest of exactly the bytes that will be loaded.
func (c *copies) take(path string) (string, string, error) {
	cp, err := c.next(path)
	if err != nil {
		return "", "", err
	}
	sum, err := copyFile(cp, path)
	if err != nil {
		return "", "", err
	}
	return cp, sum, nil
}

// takeStable is take once the file's content holds still across settle,
// so that a reload does not load a file still being written.
func (c *copies) takeStable(path string) (string, string, error) {
	cp, err := c.next(path)
	if err != nil {
		return "", "", err
	}
	for range settleTries {
		sum, err := copyFile(cp, path)
		if err != nil {
			return "", "", err
		}
		time.Sleep(settle)
		again, err := fileSHA256(path)
		if err != nil {
			return "", "", err
		}
		if again == sum {
			return cp, sum, nil
		}
	}
	return "", "", fmt.Errorf("its content kept changing for %v: is it still being written?", settleTries*settle)
}

// next returns a path of its own for the copy of the file at path, under
// its base name, which names a plugin that has no repe_plugin_info.
func (c *copies) next(path string) (string, error) {
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "repe-gw-plugins-")
		if err != nil {
			return "", fmt.Errorf("a directory for the private copies of plugin files (set TMPDIR to a writable one): %w", err)
		}
		c.dir = dir
	}
	c.loads++
	dir := filepath.Join(c.dir, strconv.Itoa(c.loads))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(path)), nil
}

// remove removes every copy, at exit.
func (c *copies) remove() {
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// copyFile copies src to dst, readable by its owner only, and returns the
// SHA-256 of what it copied.
func copyFile(dst, src string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o500)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
