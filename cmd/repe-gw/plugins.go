package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/pluginhost"
)

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
