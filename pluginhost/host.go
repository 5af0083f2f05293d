package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Host is a set of loaded plugins, each serving its own root path. The zero
// value is an empty Host whose Add uses the zero Config.
type Host struct {
	cfg     Config
	plugins []*Plugin
	// hooks are the hook plugins' tables, in load order; contexts are the
	// contexts of every plugin that has one.
	hooks    []*Hooks
	contexts []*hostContext
}

// NewHost returns an empty Host whose Add and AddFile use c.
func (c Config) NewHost() *Host { return &Host{cfg: c} }

// Load opens the plugins at paths, in order, with the zero Config. See
// Config.Load.
func Load(paths []string) (*Host, []error) { return Config{}.Load(paths) }

// Load opens the plugins at paths, in order. Each refused file yields one
// *LoadError naming the file and the reason, and the others still load. A
// plugin claiming a root path that an earlier one already serves is refused
// (ErrDuplicateRoot, naming both files) before its init runs. The Host is
// never nil, even when nothing loaded.
func (c Config) Load(paths []string) (*Host, []error) {
	h := &Host{cfg: c}
	var errs []error
	for _, path := range paths {
		if _, err := h.Add(path); err != nil {
			errs = append(errs, err)
		}
	}
	return h, errs
}

// Add loads one more plugin into h, as Load does with each of its paths,
// and returns it. A refusal is a *LoadError, and a plugin claiming a root
// path that a plugin of h already serves is refused (ErrDuplicateRoot)
// before its init runs. Add lets a caller decide between two plugins
// whether to go on: stop on a signal rather than run every remaining init,
// or give up when a file it was asked for by name is refused. Add must not
// run concurrently with h's other methods.
//
// Add loads REPE plugins as before hooks existed: a file's hooks are not
// loaded, and a hook plugin without REPE symbols is refused
// (ErrMissingSymbol). AddFile loads hooks.
func (h *Host) Add(path string) (*Plugin, error) {
	p, _, err := h.add(path, nil, false)
	return p, err
}

// AddFile is Add for a file that may be a hook plugin, a REPE plugin, or
// both: it returns the REPE part (nil for a hook plugin only) and the hooks
// (nil for a plain REPE plugin). config is the plugin's configuration as
// JSON, for its context ("{}" when empty).
func (h *Host) AddFile(path string, config []byte) (*Plugin, *Hooks, error) {
	return h.add(path, config, true)
}

func (h *Host) add(path string, config []byte, hooks bool) (*Plugin, *Hooks, error) {
	p, err := h.cfg.open(path)
	if err != nil {
		return nil, nil, err
	}
	if !hooks {
		if p.callFn == 0 {
			return nil, nil, &LoadError{File: p.file, Err: fmt.Errorf("%w %s", ErrMissingSymbol, symCall)}
		}
		p.hooksFn = 0
	}
	if i := slices.IndexFunc(h.plugins, func(q *Plugin) bool { return q.root == p.root }); p.callFn != 0 && i >= 0 {
		return nil, nil, &LoadError{File: p.file, Err: fmt.Errorf("%w: %q is served by %s",
			ErrDuplicateRoot, p.root, h.plugins[i].file)}
	}
	if err := p.initialize(config); err != nil {
		return nil, nil, err
	}
	if p.ctx != nil {
		h.contexts = append(h.contexts, p.ctx)
	}
	if p.hooks != nil {
		h.hooks = append(h.hooks, p.hooks)
	}
	if p.callFn == 0 {
		return nil, p.hooks, nil
	}
	h.plugins = append(h.plugins, p)
	return p, p.hooks, nil
}

// Plugins returns the loaded REPE plugins in load order.
func (h *Host) Plugins() []*Plugin { return slices.Clone(h.plugins) }

// Hooks returns the loaded hook plugins in load order, the order in which
// the gateway is to call them.
func (h *Host) Hooks() []*Hooks { return slices.Clone(h.hooks) }

// BeginShutdown tells every plugin with a context that shutdown has begun:
// each one's shutting_down becomes 1, and each hook plugin's on_shutdown
// runs, once. Close calls it too; calling it first, as a signal arrives,
// lets plugins wind down while the gateway finishes its requests.
func (h *Host) BeginShutdown() {
	for _, c := range h.contexts {
		c.shuttingDown().Store(1)
	}
	for _, hk := range h.hooks {
		hk.Shutdown()
	}
}

// Close shuts every plugin down: BeginShutdown, then new calls are refused
// at once for all of them, then each is shut down (in reverse load order)
// after its calls in flight have returned, waiting at most until ctx is
// done. A plugin still busy then is not shut down, and the returned error
// says so (it wraps ErrBusy). Once every plugin is shut down, each hook
// plugin's destroy runs, in reverse load order: the caller must have made
// its last hook call, which the gateway's Shutdown returning nil ensures.
// While a plugin is busy the hooks are not destroyed either, since the
// calls in flight may still call them. Close may be called more than once;
// repe_plugin_shutdown and destroy still run once per plugin.
func (h *Host) Close(ctx context.Context) error {
	h.BeginShutdown()
	for _, p := range h.plugins {
		p.beginClose()
	}
	var errs []error
	for _, p := range slices.Backward(h.plugins) {
		if err := p.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, hk := range slices.Backward(h.hooks) {
		hk.Destroy()
	}
	return nil
}
