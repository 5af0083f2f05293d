//go:build !linux

package main

import (
	"context"
	"errors"
)

const checkWorkerCommand = "check-worker"

// runChecks needs package isolate, which runs on Linux only.
func runChecks(context.Context, checkOptions, []checkCall) ([]finding, error) {
	return nil, errors.New("check runs on Linux only: it runs the plugin in worker processes, as isolated mode does")
}

func serveCheckWorker([]string) int { return exitUsage }
