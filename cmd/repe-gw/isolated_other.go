//go:build !linux

package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
)

const workerCommand = "worker"

func serveWorker([]string) int { return exitUsage }

// isolatedPlugin stands for isolate.Plugin, which runs on Linux only.
type isolatedPlugin struct{ gateway.IsolatedPlugin }

func startIsolated(context.Context, *slog.Logger, string, config.Effective) (*isolatedPlugin, error) {
	return nil, errors.New("isolated mode runs on Linux only")
}

func closeIsolated(*slog.Logger, []*isolatedPlugin, time.Duration) bool { return true }

func asGateway([]*isolatedPlugin) []gateway.IsolatedPlugin { return nil }

const isolationAvailable = false
