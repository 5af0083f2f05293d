package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
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

// loaded is a plugin that loaded, in this process or in a worker process of
// its own, and what its entry says of it. A hook plugin has hooks, and a
// plugin too when it is a REPE plugin as well: one with neither plugin nor
// isolated serves no root.
type loaded struct {
	plugin   *pluginhost.Plugin
	isolated *isolatedPlugin
	hooks    *pluginhost.Hooks
	// config is the entry's config as JSON, which a hook plugin's instance
	// was initialised with.
	config string
	// file is the plugin file, as found; the plugin itself is loaded from
	// a private copy of it (copies).
	file   string
	policy config.Effective
	// sha256 is the digest of the file loaded, as sha256sum writes it.
	sha256 string
	// at is when it finished loading, for the admin listener.
	at time.Time
	// required is true when the gateway must not run without the plugin:
	// start-up fails when it is refused, and the readiness of a later
	// admin listener is to turn false when it fails.
	required bool
}

// load adds the files to host in order, each from a private copy taken
// into copies, logging each plugin loaded and each file refused. Before a
// file is copied, it must pass trust's checks, and the copy must match its
// pin. It returns stopped when a signal came first, in which
// case the files after the one loading then are not loaded. Two refusals
// stop loading, with an error: a required plugin, and a file named by
// --plugin that is no plugin this gateway can load at all, since it was
// asked for by name.
func load(log *slog.Logger, host *pluginhost.Host, files []*pluginFile, trust pluginTrust, copies *copies, stop <-chan struct{}) (plugins []loaded, stopped bool, err error) {
	// A worker process's start is bounded by its own timeout; a signal
	// cancels it too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for i, f := range files {
		select {
		case <-stop:
			log.Info("startup stopped: plugins not loaded", "count", len(files)-i)
			return plugins, true, nil
		default:
		}
		l := loaded{file: absPath(f.path), policy: f.entry.policy, required: f.requiredBy != nil}
		var cp string
		err := trust.check(log, f)
		if err == nil {
			cp, l.sha256, err = copies.take(f.path)
		}
		if err == nil {
			err = checkPin(f.entry.SHA256, l.sha256)
		}
		if err == nil {
			err = loadCopy(ctx, log, host, cp, f, &l)
		}
		if err == nil {
			if l.plugin == nil && l.isolated == nil {
				log.Info("hook plugin loaded", "plugin", l.hooks.Name(), "file", l.file, "sha256", l.sha256)
			} else {
				log.Info("plugin loaded", l.attrs()...)
			}
			plugins = append(plugins, l)
			continue
		}
		file, reason := f.path, err
		if le, ok := errors.AsType[*pluginhost.LoadError](err); ok {
			file, reason = l.file, le.Err
		}
		switch {
		case f.named && notAPlugin(err):
			return plugins, false, fmt.Errorf("--plugin %s: %w", f.path, reason)
		case f.requiredBy != nil:
			return plugins, false, fmt.Errorf("%s: required plugin %s refused: %w", f.requiredBy.at(""), file, reason)
		}
		log.Error("plugin refused", "file", file, "reason", reason)
	}
	select {
	case <-stop:
		return plugins, true, nil
	default:
		return plugins, false, nil
	}
}

// loadCopy loads cp, the private copy of f's file, into l: into host, with
// its hooks if it has any, or into a worker process of its own when its
// policy isolates it.
func loadCopy(ctx context.Context, log *slog.Logger, host *pluginhost.Host, cp string, f *pluginFile, l *loaded) error {
	// A file that is not a shared object is left for the loader to
	// refuse, with its reason.
	hooks, _, _ := pluginhost.HookExports(cp)
	var err error
	switch {
	case hooks:
		// The hooks are called on the gateway's own threads.
		if f.entry.policy.Mode == config.ModeIsolated {
			log.Info("hook plugin loaded in-process: isolation does not apply to hook plugins", "file", f.path)
		}
		// f.entry.Config, the entry's config mapping as JSON, reaches the
		// plugins that take a context (plugins/include/repe_gateway.h).
		l.plugin, l.hooks, err = host.AddFile(cp, f.entry.Config)
		l.config = string(f.entry.Config)
	case f.entry.policy.Mode == config.ModeIsolated:
		l.isolated, err = startIsolated(ctx, log, cp, f.entry.policy)
	default:
		l.plugin, err = host.Add(cp)
	}
	if err == nil {
		l.at = time.Now()
	}
	return err
}

// absPath returns path made absolute, as the plugin's File would name it
// were it loaded from there, or path itself when the working directory is
// gone.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// checkPin reports whether got, the SHA-256 of a plugin file, matches
// want, the pin of its entry, if it has one.
func checkPin(want, got string) error {
	// The file is read twice, for its digest and by the loader: a pin
	// guards against a wrong or damaged file, not against one replaced in
	// between by someone who may write there, which the trust checks are
	// for.
	if want != "" && got != want {
		return fmt.Errorf("its SHA-256 is %s, but its entry pins %s", got, want)
	}
	return nil
}

// fileSHA256 returns the SHA-256 digest of the file at path, in lower-case
// hexadecimal, as sha256sum writes it and as config keeps pins.
func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// notAPlugin reports whether a refusal says the file is nothing this
// gateway can load (not a shared object, no REPE plugin ABI, another
// version of it), rather than a plugin that failed: its info, its init, or
// a root another plugin serves.
func notAPlugin(err error) bool {
	return errors.Is(err, pluginhost.ErrOpen) || errors.Is(err, pluginhost.ErrMissingSymbol) ||
		errors.Is(err, pluginhost.ErrInterfaceVersion)
}

// attrs are what the log says of a plugin loaded: who it is, and what its
// policy sets.
func (l loaded) attrs() []any {
	p := l.identity()
	attrs := []any{"plugin", p.Name(), "version", p.Version(), "root", p.Root(), "file", l.file, "sha256", l.sha256}
	if l.isolated != nil {
		attrs = append(attrs, "mode", config.ModeIsolated)
		if l.policy.MemoryLimit > 0 {
			attrs = append(attrs, "memory_limit", config.FormatSize(l.policy.MemoryLimit))
		}
	}
	if l.policy.Deadline > 0 {
		attrs = append(attrs, "deadline", l.policy.Deadline)
	}
	if l.policy.Concurrency > 0 {
		attrs = append(attrs, "concurrency", l.policy.Concurrency)
	}
	if l.policy.Queue > 0 {
		attrs = append(attrs, "queue", l.policy.Queue)
	}
	if l.required {
		attrs = append(attrs, "required", true)
	}
	return attrs
}

// policies returns the gateway's policy of each plugin loaded, by root.
// Every plugin has one, so that a deadline of 0 in it means none rather
// than gateway.Config.Deadline.
func policies(plugins []loaded) map[string]gateway.Policy {
	m := make(map[string]gateway.Policy, len(plugins))
	for _, l := range plugins {
		// The file's restart keys say how an isolated plugin is brought
		// back after it fails; they are not the circuit breaker's, which
		// opens on timeouts for a while, so the circuit keeps the
		// gateway's defaults.
		m[l.identity().Root()] = gateway.Policy{
			Concurrency: l.policy.Concurrency,
			Queue:       l.policy.Queue,
			Deadline:    l.policy.Deadline,
		}
	}
	return m
}

// identity returns the loaded plugin, whichever way it runs.
func (l loaded) identity() interface {
	Name() string
	Version() string
	Root() string
	File() string
} {
	if l.isolated != nil {
		return l.isolated
	}
	return l.plugin
}

// serving returns the plugins of all that serve a root: all but the
// hook plugins that are no REPE plugin.
func serving(all []loaded) []loaded {
	var out []loaded
	for _, l := range all {
		if l.plugin != nil || l.isolated != nil {
			out = append(out, l)
		}
	}
	return out
}

// isolatedOf returns the plugins of loaded that run in worker processes.
func isolatedOf(loaded []loaded) []*isolatedPlugin {
	var out []*isolatedPlugin
	for _, l := range loaded {
		if l.isolated != nil {
			out = append(out, l.isolated)
		}
	}
	return out
}
