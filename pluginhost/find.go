package pluginhost

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Find returns every *.so file under dir, recursively, sorted, so that a
// directory loads in the same order every time. Directories whose names
// start with "." are skipped (version control, editor state). Only dir
// itself failing to read is an error; an unreadable subdirectory is passed
// over.
func Find(dir string) ([]string, error) {
	if _, err := os.ReadDir(dir); err != nil {
		return nil, err
	}
	var found []string
	// The walk's own errors are all below dir, which the contract passes over.
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir():
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
		case strings.HasSuffix(d.Name(), ".so"):
			found = append(found, path)
		}
		return nil
	})
	slices.Sort(found)
	return found, nil
}
