package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/repe-gw/repe-gw/repe"
)

// maxBody limits a body read from a file or stdin, so that a wrong path
// (a device, a huge log) fails instead of filling memory. It is above the
// 64 MiB frames Glaze's server accepts (REPE.md §4.1).
const maxBody = 256 << 20

// template is one request frame, encoded once. Connections copy it and patch
// the id and notify byte in place, so sending costs no encoding.
type template struct {
	frame  []byte
	notify byte // the frame's own notify byte
}

// buildTemplates returns the frames to send: the one request the flags
// describe, or the valid frames of the replay directory. Frames of the
// directory that are not valid requests are reported on warn and skipped.
func buildTemplates(cfg *config, warn io.Writer) ([]template, error) {
	if cfg.replayDir == "" {
		h := repe.Header{QueryFormat: repe.QueryJSONPointer}
		if len(cfg.body) > 0 {
			h.BodyFormat = cfg.bodyFormat
		}
		return []template{{frame: repe.AppendMessage(nil, h, cfg.query, cfg.body)}}, nil
	}
	return loadReplay(cfg.replayDir, warn)
}

// loadReplay reads the *.req.repe files of dir in name order. A file must
// hold exactly one frame that Glaze's validator accepts; anything else is
// reported and skipped, so that a directory of recorded edge cases can be
// replayed as it is.
func loadReplay(dir string, warn io.Writer) ([]template, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.req.repe"))
	if err != nil {
		return nil, fmt.Errorf("--replay %s: %w", dir, err)
	}
	sort.Strings(paths)
	var out []template
	for _, p := range paths {
		b, err := readLimited(p, nil)
		if err != nil {
			return nil, fmt.Errorf("--replay: %w", err)
		}
		m, err := repe.Parse(b)
		switch {
		case err != nil:
			fmt.Fprintf(warn, "repe-bench: skipping %s: %v\n", filepath.Base(p), err)
			continue
		case len(m) != len(b):
			fmt.Fprintf(warn, "repe-bench: skipping %s: %d bytes after the frame\n", filepath.Base(p), len(b)-len(m))
			continue
		}
		out = append(out, template{frame: b, notify: m.NotifyByte()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--replay %s: no valid *.req.repe frame", dir)
	}
	return out, nil
}

// readBody reads -body-file: a path, or - for stdin.
func readBody(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return readLimited("stdin", stdin)
	}
	return readLimited(path, nil)
}

// readLimited reads r, or the file at name when r is nil, refusing more than
// maxBody bytes.
func readLimited(name string, r io.Reader) ([]byte, error) {
	if r == nil {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("read %s: more than %d MiB", name, maxBody>>20)
	}
	return b, nil
}
