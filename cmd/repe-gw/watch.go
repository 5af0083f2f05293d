package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchQuiet is how long the watched files must stay untouched before a
// reload: copying a plugin into place, or saving a file, is many events.
const watchQuiet = 500 * time.Millisecond

// watch calls reload, with --watch, whenever the configuration file or a
// plugin file or folder below the plugin entries changes, once changes
// have stopped for watchQuiet, until stop is closed. The folders watched
// follow the configuration after each reload.
func (r *reloader) watch(configFile string, stop <-chan struct{}, reload func(why string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	watched := make(map[string]bool)
	follow := func() {
		dirs := r.watchDirs()
		if configFile != "" {
			dirs = append(dirs, filepath.Dir(configFile))
		}
		for _, d := range dirs {
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				r.log.Warn("--watch: cannot watch a folder", "dir", d, "error", err)
				continue
			}
			watched[d] = true
		}
	}
	follow()
	r.log.Info("--watch: watching the plugins and the configuration", "folders", len(watched))
	go func() {
		defer w.Close()
		quiet := time.NewTimer(watchQuiet)
		quiet.Stop()
		for {
			select {
			case ev := <-w.Events:
				if relevant(ev, configFile) {
					quiet.Reset(watchQuiet)
				}
			case err := <-w.Errors:
				r.log.Warn("--watch", "error", err)
			case <-quiet.C:
				reload("watch")
				follow()
			case <-stop:
				return
			}
		}
	}()
	return nil
}

// relevant reports whether ev may change what a reload would load: the
// configuration file, a plugin file, or a folder that may hold some.
// Hidden files, where installers write before they rename, are not.
func relevant(ev fsnotify.Event, configFile string) bool {
	if ev.Op == fsnotify.Chmod || strings.HasPrefix(filepath.Base(ev.Name), ".") {
		return false
	}
	if configFile != "" && filepath.Base(ev.Name) == filepath.Base(configFile) {
		return true
	}
	if strings.HasSuffix(ev.Name, ".so") || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		return true
	}
	info, err := os.Stat(ev.Name)
	return err == nil && info.IsDir()
}

// watchDirs returns the folders to watch for the plugin entries in
// effect: each directory entry and the folders below it that a scan
// visits, and the folder of each file entry.
func (r *reloader) watchDirs() []string {
	_, entries, err := r.read()
	if err != nil {
		return nil
	}
	var dirs []string
	for _, e := range entries {
		info, err := os.Stat(e.Path)
		if err != nil {
			continue
		}
		if !info.IsDir() {
			dirs = append(dirs, filepath.Dir(e.Path))
			continue
		}
		_ = filepath.WalkDir(e.Path, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil || !d.IsDir():
				return nil
			case path != e.Path && strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			}
			dirs = append(dirs, path)
			return nil
		})
	}
	return dirs
}
