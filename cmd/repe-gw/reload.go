package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// reloader changes the gateway's plugins while it serves: it re-reads the
// configuration, rescans the plugin directories, loads every file added or
// changed, and only when all of them load swaps the routes (gateway.Swap).
// A plugin it stops serving is shut down once its last call has returned;
// an in-process one stays mapped, since dlclose is never safe under Go, so
// each reload that replaces one maps one more image for good.
type reloader struct {
	log     *slog.Logger
	srv     *gateway.Server
	timeout time.Duration // how long a retired plugin may take to drain
	// read returns the configuration and the plugin entries in effect,
	// read afresh.
	read func() (*config.File, []*entry, error)
	// copies holds the private copy of every file loaded, at start-up
	// and since.
	copies *copies

	mu      sync.Mutex // one reload at a time
	serving []served
	hosts   []*pluginhost.Host // every host made, each closed at exit
	mapped  int                // in-process plugin images mapped
	retired sync.WaitGroup     // drains in progress
	// isolated holds every worker process not yet closed: those serving
	// and those still draining.
	isolatedMu sync.Mutex
	isolated   []*isolatedPlugin
}

// served is a plugin being served, and the file it came from.
type served struct {
	loaded
	path string
}

// newReloader returns the reloader of srv, which serves plugins, loaded
// from files into host, through copies, at start-up.
func newReloader(log *slog.Logger, srv *gateway.Server, host *pluginhost.Host, files []*pluginFile, plugins []loaded,
	copies *copies, timeout time.Duration, read func() (*config.File, []*entry, error)) *reloader {
	r := &reloader{log: log, srv: srv, timeout: timeout, read: read, copies: copies, hosts: []*pluginhost.Host{host}}
	for _, l := range plugins {
		// load keeps the files' order, skipping those refused.
		i := slices.IndexFunc(files, func(f *pluginFile) bool { return sameFile(f.path, l.file) })
		if i < 0 {
			continue
		}
		r.serving = append(r.serving, served{loaded: l, path: files[i].path})
		if l.isolated != nil {
			r.isolated = append(r.isolated, l.isolated)
		} else {
			r.mapped++
		}
	}
	return r
}

// sameFile reports whether a and b name one file.
func sameFile(a, b string) bool {
	ia, err1 := os.Stat(a)
	ib, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(ia, ib)
}

// reloadReport says what a reload did, one entry per plugin file; it is
// logged a line per plugin and answered as JSON.
type reloadReport struct {
	OK      bool           `json:"ok"`
	Error   string         `json:"error,omitempty"`
	Plugins []pluginChange `json:"plugins"`
	// Mapped is how many in-process plugin images are mapped now: those
	// served and every one a reload retired, which is never unmapped.
	Mapped int `json:"mapped"`
}

// What a reload did to a plugin file.
const (
	changeAdded     = "added"
	changeReplaced  = "replaced"
	changeRemoved   = "removed"
	changeUnchanged = "unchanged"
	changeFailed    = "failed"
)

type pluginChange struct {
	File   string `json:"file"`
	Change string `json:"change"`
	Plugin string `json:"plugin,omitempty"`
	Root   string `json:"root,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// reload applies the configuration and plugin files as they are now, all
// or nothing, and logs and returns what it did. why says what asked for it.
func (r *reloader) reload(why string) reloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Info("reloading plugins", "trigger", why)
	rep, next, fresh, err := r.prepare()
	if err == nil {
		err = r.swap(next)
	}
	if err != nil {
		r.discard(fresh, "reload: plugin of a failed reload shut down")
		r.srv.ReloadFailed()
		rep.OK, rep.Error, rep.Mapped = false, err.Error(), r.mapped
		for _, c := range rep.Plugins {
			if c.Change == changeFailed {
				r.log.Error("reload: plugin failed", "file", c.File, "reason", c.Reason)
			}
		}
		r.log.Error("reload failed; nothing changed", "error", err, "mapped", r.mapped)
		return rep
	}
	for _, s := range r.serving {
		if !slices.ContainsFunc(next, func(n served) bool { return n.path == s.path }) {
			rep.Plugins = append(rep.Plugins, changeOf(s, changeRemoved))
		}
	}
	r.serving = next
	rep.OK, rep.Mapped = true, r.mapped
	for _, c := range rep.Plugins {
		r.log.Info("reload: plugin "+c.Change, "file", c.File, "plugin", c.Plugin, "root", c.Root, "sha256", c.SHA256)
	}
	r.log.Info("reload done", "plugins", len(next), "mapped", r.mapped)
	return rep
}

func changeOf(s served, change string) pluginChange {
	if s.plugin == nil && s.isolated == nil {
		return pluginChange{File: s.path, Change: change, Plugin: s.hooks.Name(), SHA256: s.sha256}
	}
	p := s.identity()
	return pluginChange{File: s.path, Change: change, Plugin: p.Name(), Root: p.Root(), SHA256: s.sha256}
}

// same reports whether s and o are one load of a plugin.
func (s served) same(o served) bool {
	return s.plugin == o.plugin && s.isolated == o.isolated && s.hooks == o.hooks
}

// prepare reads the configuration, plans the files and loads those added
// or changed. It returns the plugins to serve and those it loaded, which
// are to be discarded if the reload fails; err says why it fails.
func (r *reloader) prepare() (rep reloadReport, next, fresh []served, err error) {
	f, entries, err := r.read()
	if err != nil {
		return rep, nil, nil, err
	}
	files, errs := plan(entries)
	if len(errs) > 0 {
		return rep, nil, nil, errors.Join(errs...)
	}
	trust := newTrust(f, entries)
	host := pluginhost.Config{Logger: r.log, DataDir: f.DataDir()}.NewHost()
	var failed int
	for _, pf := range files {
		s, change, err := r.prepareFile(trust, host, pf)
		switch {
		case err != nil:
			failed++
			rep.Plugins = append(rep.Plugins, pluginChange{File: pf.path, Change: changeFailed, Reason: err.Error()})
			continue
		case change != changeUnchanged:
			fresh = append(fresh, s)
		}
		rep.Plugins = append(rep.Plugins, changeOf(s, change))
		next = append(next, s)
	}
	r.hosts = append(r.hosts, host)
	if failed > 0 {
		return rep, next, fresh, fmt.Errorf("%d of %d plugin files failed to load", failed, len(files))
	}
	return rep, next, fresh, nil
}

// prepareFile keeps the plugin serving pf when its file and the way it
// runs are unchanged, or loads the file afresh from a private copy.
func (r *reloader) prepareFile(trust pluginTrust, host *pluginhost.Host, pf *pluginFile) (served, string, error) {
	if err := trust.check(r.log, pf); err != nil {
		return served{}, "", err
	}
	sum, err := fileSHA256(pf.path)
	if err != nil {
		return served{}, "", err
	}
	i := slices.IndexFunc(r.serving, func(s served) bool { return s.path == pf.path })
	change := changeAdded
	if i >= 0 {
		cur := r.serving[i]
		isolated := pf.entry.policy.Mode == config.ModeIsolated && cur.hooks == nil
		// A hook plugin's instance has its config for good: a new config
		// takes a new instance.
		if cur.sha256 == sum && (cur.isolated != nil) == isolated && (!isolated || cur.policy == pf.entry.policy) &&
			(cur.hooks == nil || cur.config == string(pf.entry.Config)) {
			if err := checkPin(pf.entry.SHA256, sum); err != nil {
				return served{}, "", err
			}
			// An in-process plugin's new policy is the gateway's to apply.
			cur.policy, cur.required = pf.entry.policy, pf.requiredBy != nil
			return cur, changeUnchanged, nil
		}
		change = changeReplaced
	}
	cp, sum, err := r.copies.takeStable(pf.path)
	if err != nil {
		return served{}, "", err
	}
	if err := checkPin(pf.entry.SHA256, sum); err != nil {
		return served{}, "", err
	}
	l := loaded{file: absPath(pf.path), policy: pf.entry.policy, required: pf.requiredBy != nil, sha256: sum}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	err = loadCopy(ctx, r.log, host, cp, pf, &l)
	cancel()
	if le, ok := errors.AsType[*pluginhost.LoadError](err); ok {
		err = le.Err
	}
	if err != nil {
		return served{}, "", err
	}
	if l.isolated == nil {
		r.mapped++
	} else {
		r.isolatedMu.Lock()
		r.isolated = append(r.isolated, l.isolated)
		r.isolatedMu.Unlock()
	}
	return served{loaded: l, path: pf.path}, change, nil
}

// swap makes the gateway serve next, then shuts down, in the background,
// each plugin it no longer serves once its calls have drained.
func (r *reloader) swap(next []served) error {
	var rt gateway.Routes
	var isolated []*isolatedPlugin
	all := make([]loaded, len(next))
	for i, s := range next {
		all[i] = s.loaded
		switch {
		case s.isolated != nil:
			isolated = append(isolated, s.isolated)
		case s.plugin != nil:
			rt.Plugins = append(rt.Plugins, s.plugin)
		}
	}
	rt.Isolated = asGateway(isolated)
	roots := serving(all)
	rt.Policies = policies(roots)
	rt.Hashes = make(map[string]string, len(roots))
	for _, l := range roots {
		rt.Hashes[l.identity().Root()] = l.sha256
	}
	for _, l := range all {
		if l.hooks != nil {
			rt.Hooks = append(rt.Hooks, l.hooks)
		}
	}
	retired, err := r.srv.Swap(rt)
	if err != nil {
		return err
	}
	var gone []served
	for _, s := range r.serving {
		if !slices.ContainsFunc(next, s.same) {
			gone = append(gone, s)
		}
	}
	r.retired.Add(1)
	go func() {
		defer r.retired.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		defer cancel()
		if err := retired.Wait(ctx); err != nil {
			// Shutting a busy plugin down would wait for it anyway; exit
			// tries again.
			r.log.Error("reload: retired plugins did not drain; not shut down yet", "error", err)
			return
		}
		r.discard(gone, "reload: old plugin shut down")
	}()
	return nil
}

// discard shuts down plugins no longer served, or never served, and logs
// msg for each: an in-process one once its calls have returned (it stays
// mapped), an isolated one by closing its worker process, which drains and
// exits.
func (r *reloader) discard(plugins []served, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	for _, s := range plugins {
		if s.isolated == nil {
			if s.plugin != nil {
				if err := s.plugin.Shutdown(ctx); err != nil {
					r.log.Error("reload: plugin shutdown", "plugin", s.plugin.Name(), "error", err)
					continue
				}
			}
			if s.hooks != nil {
				// Its last hook call has returned: no connection holds it.
				s.hooks.Destroy()
			}
			r.log.Info(msg, "plugin", changeOf(s, "").Plugin, "file", s.path)
			continue
		}
		closeIsolated(r.log, []*isolatedPlugin{s.isolated}, r.timeout)
		r.isolatedMu.Lock()
		r.isolated = slices.DeleteFunc(r.isolated, func(p *isolatedPlugin) bool { return p == s.isolated })
		r.isolatedMu.Unlock()
		r.log.Info(msg, "plugin", s.isolated.Name(), "file", s.path, "mode", config.ModeIsolated)
	}
}

// beginShutdown tells every plugin loaded, at start-up or by a reload,
// that shutdown has begun (pluginhost.Host.BeginShutdown).
func (r *reloader) beginShutdown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hosts {
		h.BeginShutdown()
	}
}

// close shuts every plugin down at exit, once the server has stopped, and
// removes the private copies, which the images mapped no longer need. It
// reports whether every plugin was shut down.
func (r *reloader) close(timeout time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retired.Wait()
	r.isolatedMu.Lock()
	isolated := slices.Clone(r.isolated)
	r.isolatedMu.Unlock()
	ok := closeIsolated(r.log, isolated, timeout)
	for _, h := range slices.Backward(r.hosts) {
		ok = closeHost(r.log, h, timeout) && ok
	}
	r.copies.remove()
	return ok
}
