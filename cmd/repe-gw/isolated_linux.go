//go:build linux

package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/isolate"
)

// workerCommand is the first argument that makes repe-gw an isolated
// plugin's worker process: the gateway runs its own binary again with it.
const workerCommand = "worker"

// serveWorker is repe-gw worker: it serves one plugin for the gateway that
// started this process, and returns the exit code.
func serveWorker(args []string) int { return isolate.ServeWorker(args) }

// isolatedPlugin is a plugin loaded in a worker process.
type isolatedPlugin = isolate.Plugin

// startIsolated loads the plugin file path in a worker process of its own,
// with the restart and memory settings of its policy.
func startIsolated(ctx context.Context, log *slog.Logger, path string, pol config.Effective) (*isolatedPlugin, error) {
	return isolate.Start(ctx, isolate.Config{
		File:          path,
		WorkerArgs:    []string{workerCommand},
		MemoryLimit:   pol.MemoryLimit,
		BackoffMin:    pol.BackoffMin,
		BackoffMax:    pol.BackoffMax,
		MaxFailures:   pol.MaxFailures,
		FailureWindow: pol.FailureWindow,
		Logger:        log,
	})
}

// closeIsolated stops the worker processes, each once the batch it runs has
// been answered.
func closeIsolated(log *slog.Logger, plugins []*isolatedPlugin, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ok := true
	for _, p := range plugins {
		if err := p.Close(ctx); err != nil {
			log.Error("isolated plugin shutdown", "plugin", p.Name(), "error", err)
			ok = false
		}
	}
	return ok
}

// asGateway returns the isolated plugins as the gateway serves them.
func asGateway(plugins []*isolatedPlugin) []gateway.IsolatedPlugin {
	out := make([]gateway.IsolatedPlugin, len(plugins))
	for i, p := range plugins {
		out[i] = p
	}
	return out
}

// isolationAvailable is true where package isolate runs.
const isolationAvailable = true
