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
	// Before the first plugin loads: an init may take as long as it likes,
	// and a signal must not wait for it.
	stop := watchSignals(log, sigs, opts)

	files, err := pluginFiles(opts.dir, opts.files)
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		return exitFailure
	}
	host := &pluginhost.Host{}
	stopped, err := load(log, host, files, stop)
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		closeHost(log, host, opts)
		return exitFailure
	}
	if stopped {
		if !closeHost(log, host, opts) {
			return exitFailure
		}
		log.Info("stopped")
		return exitOK
	}
	plugins := host.Plugins()
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
	case <-stop:
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

// watchSignals returns a channel that is closed by the first signal, at
// whatever stage the gateway is: loading plugins, serving or shutting
// down. The second signal ends the process at once, as the README promises,
// without waiting for a plugin's init or shutdown, or for calls in flight.
func watchSignals(log *slog.Logger, sigs <-chan os.Signal, opts *options) <-chan struct{} {
	stop := make(chan struct{})
	go func() {
		sig := <-sigs
		log.Info("shutting down", "signal", sig.String(), "timeout", opts.shutdownTimeout)
		close(stop)
		sig = <-sigs
		log.Error("second signal: exiting now", "signal", sig.String())
		os.Exit(exitFailure)
	}()
	return stop
}

// load adds the plugin files to host in order, logging each plugin loaded
// and each file refused. It returns stopped when a signal came first, in
// which case the files after the one loading then are not loaded. A file
// named by --plugin that is not a plugin this gateway can load at all is an
// error, which stops loading: it was asked for by name.
func load(log *slog.Logger, host *pluginhost.Host, files []pluginFile, stop <-chan struct{}) (stopped bool, err error) {
	for i, f := range files {
		select {
		case <-stop:
			log.Info("startup stopped: plugins not loaded", "count", len(files)-i)
			return true, nil
		default:
		}
		p, err := host.Add(f.path)
		if err == nil {
			log.Info("plugin loaded", "plugin", p.Name(), "version", p.Version(), "root", p.Root(), "file", p.File())
			continue
		}
		if le, ok := errors.AsType[*pluginhost.LoadError](err); ok {
			if f.named && notAPlugin(err) {
				return false, fmt.Errorf("--plugin %s: %w", f.path, le.Err)
			}
			log.Error("plugin refused", "file", le.File, "reason", le.Err)
		} else {
			log.Error("plugin refused", "file", f.path, "reason", err)
		}
	}
	select {
	case <-stop:
		return true, nil
	default:
		return false, nil
	}
}

// notAPlugin reports whether a refusal says the file is nothing this
// gateway can load (not a shared object, no REPE plugin ABI, another
// version of it), rather than a plugin that failed: its info, its init, or
// a root another plugin serves.
func notAPlugin(err error) bool {
	return errors.Is(err, pluginhost.ErrOpen) || errors.Is(err, pluginhost.ErrMissingSymbol) ||
		errors.Is(err, pluginhost.ErrInterfaceVersion)
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
