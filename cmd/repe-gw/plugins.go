package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/repe-gw/repe-gw/pluginhost"
)

// pluginFile is a file to load.
type pluginFile struct {
	path  string
	named bool // by --plugin: a file that is no plugin at all is fatal
}

// pluginFiles returns the files to load: those found under dir (--plugins),
// then files (--plugin), each file once however many names reach it, at
// the place of its first name. Comparing files rather than names keeps a
// file that --plugins finds and --plugin names, through another path or a
// link, from being loaded twice and refused as a clash with itself. A
// --plugin that names no file, or a directory, is an error.
func pluginFiles(dir string, files []string) ([]pluginFile, error) {
	var found []string
	if dir != "" {
		var err error
		if found, err = pluginhost.Find(dir); err != nil {
			return nil, err
		}
	}
	var list []pluginFile
	var ids []os.FileInfo // of list, nil where unknown
	add := func(path string, named bool) {
		fi, err := os.Stat(path)
		if err == nil {
			for i, other := range ids {
				if other != nil && os.SameFile(fi, other) {
					list[i].named = list[i].named || named
					return
				}
			}
		}
		list = append(list, pluginFile{path: path, named: named})
		ids = append(ids, fi)
	}
	for _, path := range found {
		add(path, false) // a file that cannot be read is refused when it loads
	}
	for _, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			if pe, ok := errors.AsType[*fs.PathError](err); ok {
				err = pe.Err // the path is in the message already
			}
			return nil, fmt.Errorf("--plugin %s: %w", path, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("--plugin %s is a directory: to load the plugins in it, use --plugins %s", path, path)
		}
		add(path, true)
	}
	return list, nil
}
