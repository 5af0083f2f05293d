package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/repe-gw/repe-gw/admin"
	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
)

// adminConfig checks the admin settings of f before any plugin loads, so
// that a bad token file or an exposed address fails at once: it reads the
// token, and refuses an address that is not loopback without a token or
// --admin-insecure. It returns nil when --admin is not given.
func adminConfig(f *config.File) (*admin.Config, error) {
	a := &f.Admin
	if a.Addr == nil {
		return nil, nil
	}
	cfg := &admin.Config{
		Addr:                *a.Addr,
		Insecure:            a.Insecure != nil && *a.Insecure,
		Pprof:               a.Pprof != nil && *a.Pprof,
		ReadyWithoutPlugins: a.ReadyWithoutPlugins != nil && *a.ReadyWithoutPlugins,
	}
	if a.TokenFile != nil {
		token, err := admin.ReadToken(*a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file %s: %w", *a.TokenFile, unwrapPath(err))
		}
		cfg.Token = token
	}
	if cfg.Token == "" && !cfg.Insecure {
		if err := admin.CheckLoopback(cfg.Addr); errors.Is(err, admin.ErrNotLoopback) {
			return nil, fmt.Errorf("--admin %s is not a loopback address: set --admin-token-file, or --admin-insecure to show the gateway to anyone who reaches it", cfg.Addr)
		} else if err != nil {
			return nil, fmt.Errorf("--admin %s: %w", cfg.Addr, err)
		}
	}
	return cfg, nil
}

// startAdmin starts the admin listener of cfg on srv and its plugins; it
// returns nil when cfg is nil.
func startAdmin(log *slog.Logger, cfg *admin.Config, srv *gateway.Server, plugins []loaded) (*admin.Server, error) {
	if cfg == nil {
		return nil, nil
	}
	cfg.Gateway = srv
	cfg.Logger = log.With("listener", "admin")
	cfg.Plugins = adminPlugins(plugins)
	adm, err := admin.New(*cfg)
	if err == nil {
		err = adm.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %w", cfg.Addr, err)
	}
	log.Info("admin listening", "addr", adm.Addr().String())
	return adm, nil
}

// adminPlugins describes plugins for the admin listener.
func adminPlugins(plugins []loaded) []admin.Plugin {
	out := make([]admin.Plugin, 0, len(plugins))
	for _, l := range plugins {
		p := l.identity()
		ap := admin.Plugin{
			Name: p.Name(), Version: p.Version(), Root: p.Root(), File: l.file, SHA256: l.sha256,
			Mode: string(config.ModeInProcess), Loaded: l.at, Required: l.required,
		}
		if l.isolated != nil {
			ap.Mode = string(config.ModeIsolated)
			ap.State = isolatedState(l.isolated)
			ap.Restarts = isolatedRestarts(l.isolated)
		}
		out = append(out, ap)
	}
	return out
}

// reloaded tells the admin listener, if there is one, of the plugins a
// reload left serving.
func reloaded(adm *admin.Server, rl *reloader) {
	if adm == nil {
		return
	}
	rl.mu.Lock()
	plugins := make([]loaded, len(rl.serving))
	for i, s := range rl.serving {
		plugins[i] = s.loaded
	}
	rl.mu.Unlock()
	adm.SetPlugins(adminPlugins(serving(plugins)))
}

// drain turns readiness off, then waits delay (--shutdown-delay) before
// the caller stops accepting connections, so that load balancers see
// /readyz fail and stop sending while the gateway still serves.
func drain(log *slog.Logger, adm *admin.Server, delay time.Duration) {
	if adm != nil {
		adm.Drain()
	}
	if delay > 0 {
		log.Info("not ready: serving on until the shutdown delay ends", "delay", delay)
		time.Sleep(delay)
	}
}

// stopAdmin stops the admin listener, if there is one: last, so that
// /healthz answers while the gateway drains.
func stopAdmin(log *slog.Logger, adm *admin.Server, timeout time.Duration) {
	if adm == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := adm.Shutdown(ctx); err != nil {
		log.Error("admin listener shutdown", "error", err)
	}
}
