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
}

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
func (h *Host) Add(path string) (*Plugin, error) {
	p, err := h.cfg.open(path)
	if err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(h.plugins, func(q *Plugin) bool { return q.root == p.root }); i >= 0 {
		return nil, &LoadError{File: p.file, Err: fmt.Errorf("%w: %q is served by %s",
			ErrDuplicateRoot, p.root, h.plugins[i].file)}
	}
	if err := p.initialize(); err != nil {
		return nil, err
	}
	h.plugins = append(h.plugins, p)
	return p, nil
}

// Plugins returns the loaded plugins in load order.
func (h *Host) Plugins() []*Plugin { return slices.Clone(h.plugins) }

// Close shuts every plugin down: new calls are refused at once for all of
// them, then each is shut down (in reverse load order) after its calls in
// flight have returned, waiting at most until ctx is done. A plugin still
// busy then is not shut down, and the returned error says so (it wraps
// ErrBusy). Close may be called more than once; repe_plugin_shutdown still
// runs once per plugin.
func (h *Host) Close(ctx context.Context) error {
	for _, p := range h.plugins {
		p.beginClose()
	}
	var errs []error
	for _, p := range slices.Backward(h.plugins) {
		if err := p.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
