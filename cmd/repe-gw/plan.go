package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// entry is one plugin entry in effect: a plugin file or a directory of
// plugins, from the file, from --plugins or REPE_GW_PLUGINS (which replace
// the file's), or from --plugin.
type entry struct {
	*config.Plugin
	// policy is the entry's policy with every default applied.
	policy config.Effective
	// index is the entry's place in the file's plugins list.
	index int
	// flag names the flag or variable the entry comes from ("--plugin"),
	// and is "" for an entry of the file.
	flag string
	// named is true for --plugin: a file asked for by name, so one that
	// is no plugin at all stops the gateway.
	named bool
}

// fileEntries returns the entries of f's plugins, which come from flag, or
// from the file when flag is "".
func fileEntries(f *config.File, flag string) []*entry {
	var entries []*entry
	for i := range f.Plugins {
		p := &f.Plugins[i]
		entries = append(entries, &entry{Plugin: p, policy: f.Effective(p), index: i, flag: flag})
	}
	return entries
}

// namedEntries returns the entries of --plugin FILE: the file's defaults
// apply to them.
func namedEntries(f *config.File, files []string) []*entry {
	var entries []*entry
	for _, path := range files {
		p := &config.Plugin{Path: path, Enabled: true}
		entries = append(entries, &entry{Plugin: p, policy: f.Effective(p), flag: "--plugin", named: true})
	}
	return entries
}

// at names the entry, or its key, at the start of a message: the place
// and key in the file ("repe-gw.yaml:7:5: plugins[1].path"), or the flag
// and path ("--plugins /opt/plugins").
func (e *entry) at(key string) string {
	if e.flag != "" {
		return e.flag + " " + e.Path
	}
	s := fmt.Sprintf("%s: plugins[%d]", e.Pos, e.index)
	if key != "" {
		s += "." + key
	}
	return s
}

// pluginFile is a file to load.
type pluginFile struct {
	path string
	// top is the directory of the entry path was found through: the
	// directory itself, or the directory that holds a file entry. Trust's
	// checks stop there.
	top  string
	info os.FileInfo // nil when the file cannot be read: it is refused when it loads
	// entry is the most specific entry that reaches the file, whose policy
	// it takes: a file entry rather than a directory entry, and of two
	// directories the one the file is nearest to. depth is the number of
	// folders between that entry's path and the file, -1 for a file entry.
	entry *entry
	depth int
	// requiredBy is the first required entry that reaches the file, if
	// any: the gateway must not start without it.
	requiredBy *entry
	named      bool // some --plugin names it
}

// plan checks the entries and finds the files they reach, each file once
// however many entries reach it, at the place where the first one does.
// Comparing files rather than names keeps a file that two entries reach,
// through other paths or a link, from being loaded twice and refused as a
// clash with itself. A disabled entry loads nothing, and keeps the files it
// governs from loading through other entries. It returns every problem, as
// validate lists them; the gateway loads nothing when there is one.
//
// A problem is an enabled entry whose path cannot be read, a --plugin that
// is a directory, a pin on a directory, a required directory with no
// plugin in it, and an isolated plugin, which this build cannot run.
func plan(entries []*entry) ([]*pluginFile, []error) {
	var files []*pluginFile
	var errs []error
	reach := func(path string, info os.FileInfo, e *entry, depth int) {
		var pf *pluginFile
		for _, other := range files {
			if info != nil && other.info != nil && os.SameFile(info, other.info) {
				pf = other
				break
			}
		}
		if pf == nil {
			top := e.Path
			if depth < 0 {
				top = filepath.Dir(e.Path)
			}
			pf = &pluginFile{path: path, top: top, info: info, entry: e, depth: depth}
			files = append(files, pf)
		} else if depth < pf.depth || depth == pf.depth && e.Enabled && !pf.entry.Enabled {
			pf.entry, pf.depth = e, depth
		}
		if e.Enabled && e.Required && pf.requiredBy == nil {
			pf.requiredBy = e
		}
		pf.named = pf.named || e.named
	}
	for _, e := range entries {
		info, err := os.Stat(e.Path)
		if !e.Enabled {
			// Checked by the config package only: a disabled entry may
			// name what is not there yet.
			if err == nil && info.IsDir() {
				found, _ := pluginhost.Find(e.Path)
				for _, path := range found {
					reach(path, stat(path), e, depth(e.Path, path))
				}
			} else if err == nil {
				reach(e.Path, info, e, -1)
			}
			continue
		}
		if bad := checkEntry(e, info, err); len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		if !info.IsDir() {
			reach(e.Path, info, e, -1)
			continue
		}
		found, err := pluginhost.Find(e.Path)
		if err != nil {
			errs = append(errs, e.pathError(err))
			continue
		}
		if len(found) == 0 && e.Required {
			errs = append(errs, fmt.Errorf("%s: no plugin (*.so) below %s, and the entry is required", e.at("path"), e.Path))
		}
		for _, path := range found {
			reach(path, stat(path), e, depth(e.Path, path))
		}
	}
	var load []*pluginFile
	for _, pf := range files {
		if pf.entry.Enabled {
			load = append(load, pf)
		}
	}
	return load, errs
}

// checkEntry returns the problems of an enabled entry whose path os.Stat
// describes with info and err.
func checkEntry(e *entry, info os.FileInfo, err error) []error {
	var errs []error
	switch {
	case err != nil:
		errs = append(errs, e.pathError(err))
	case e.named && info.IsDir():
		errs = append(errs, fmt.Errorf("--plugin %s is a directory: to load the plugins in it, use --plugins %s", e.Path, e.Path))
	case e.SHA256 != "" && info.IsDir():
		errs = append(errs, fmt.Errorf("%s: %s is a directory: a pin names one file; give each file an entry of its own", e.at("sha256"), e.Path))
	}
	switch {
	case e.policy.Mode != config.ModeIsolated || isolationAvailable:
	case e.Mode != nil:
		errs = append(errs, fmt.Errorf("%s: isolated mode is not available in this build: use mode: inprocess", e.at("mode")))
	default:
		errs = append(errs, fmt.Errorf("%s: mode isolated, from defaults.mode, is not available in this build: use mode: inprocess", e.at("")))
	}
	return errs
}

// pathError is the error of an entry whose path cannot be read.
func (e *entry) pathError(err error) error {
	if e.flag != "" {
		return fmt.Errorf("%s: %w", e.at(""), unwrapPath(err))
	}
	return fmt.Errorf("%s: %s: %w", e.at("path"), e.Path, unwrapPath(err))
}

// stat returns what os.Stat tells of path, or nil.
func stat(path string) os.FileInfo {
	info, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return info
}

// depth counts the folders between dir and path, a file found below it.
func depth(dir, path string) int {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return 0
	}
	return strings.Count(rel, string(filepath.Separator))
}

// unwrapPath drops the operation and path of a *fs.PathError, which the
// message names already.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
