// Command repe-gw serves REPE plugins (shared libraries built against
// Glaze's plugin ABI) over TCP.
//
//	repe-gw --plugins DIR [--plugin FILE]... [--addr 127.0.0.1:5099]
//
// Run repe-gw -h for every flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/version"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // startup failed, or shutdown did not finish in time
	exitUsage   = 2 // bad flags
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs))
}

// run is the whole program; main only wires it to the process. It returns
// the exit code.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	opts, err := parseFlags(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v (see repe-gw -h)\n", err)
		return exitUsage
	}
	if opts.version {
		fmt.Fprintln(stdout, "repe-gw", version.String())
		return exitOK
	}
	log := newLogger(stderr, opts.logLevel, opts.logFormat)

	paths := opts.files
	if opts.dir != "" {
		found, err := pluginhost.Find(opts.dir)
		if err != nil {
			fmt.Fprintf(stderr, "repe-gw: %v\n", err)
			return exitFailure
		}
		paths = append(found, paths...)
	}
	host, refused := pluginhost.Load(paths)
	for _, err := range refused {
		var le *pluginhost.LoadError
		if errors.As(err, &le) {
			log.Error("plugin refused", "file", le.File, "reason", le.Err)
		} else {
			log.Error("plugin refused", "reason", err)
		}
	}
	plugins := host.Plugins()
	for _, p := range plugins {
		log.Info("plugin loaded", "plugin", p.Name(), "version", p.Version(), "root", p.Root(), "file", p.File())
	}
	if len(plugins) == 0 {
		log.Warn("no plugin loaded: every request will be answered method_not_found", "dir", opts.dir)
	}

	srv, err := gateway.New(opts.gateway(log), plugins)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		closeHost(log, host, opts)
		return exitFailure
	}

	code := exitOK
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String(), "timeout", opts.shutdownTimeout)
		go func() {
			sig := <-sigs
			log.Error("second signal: exiting now", "signal", sig.String())
			os.Exit(exitFailure)
		}()
	case <-srv.Done():
		log.Error("server stopped", "error", srv.Err())
		code = exitFailure
	}

	ctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "error", err)
		code = exitFailure
	}
	if !closeHost(log, host, opts) {
		code = exitFailure
	}
	if code == exitOK {
		log.Info("stopped")
	}
	return code
}

// closeHost shuts every plugin down once its calls have returned, and
// reports whether all of them were.
func closeHost(log *slog.Logger, host *pluginhost.Host, opts *options) bool {
	ctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if err := host.Close(ctx); err != nil {
		log.Error("plugin shutdown", "error", err)
		return false
	}
	return true
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
