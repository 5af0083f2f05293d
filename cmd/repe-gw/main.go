// Command repe-gw serves REPE plugins (shared libraries built against
// Glaze's plugin ABI) over TCP.
//
//	repe-gw [--config FILE] [--plugins DIR] [--plugin FILE]... [--addr 127.0.0.1:5099]
//	repe-gw validate --config FILE
//	repe-gw check [--calls FILE] [--json] [--threads N] PLUGIN.so
//
// Settings come from flags, then the environment (REPE_GW_ADDR, ...), then
// the configuration file, then the defaults; package config reads all
// three. Run repe-gw -h for every flag.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/repe-gw/repe-gw/admin"
	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/version"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // startup failed, or shutdown did not finish in time; validate found a problem
	exitUsage   = 2 // bad flags or environment variables
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, sigs))
}

// run is the whole program; main only wires it to the process. It returns
// the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	if len(args) > 0 && args[0] == "validate" {
		return validate(args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == checkCommand {
		return check(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == checkWorkerCommand {
		// repe-gw check runs its own binary again for the checks that
		// isolate's worker cannot make.
		return serveCheckWorker(args[1:])
	}
	if len(args) > 0 && args[0] == workerCommand {
		// The gateway runs its own binary again as an isolated plugin's
		// worker process.
		return serveWorker(args[1:])
	}
	cl, err := parseFlags(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v (see repe-gw -h)\n", err)
		return exitUsage
	}
	if cl.version {
		fmt.Fprintln(stdout, "repe-gw", version.String())
		return exitOK
	}
	env, err := config.FromEnv(getenv)
	if err != nil {
		printError(stderr, "repe-gw: ", err)
		return exitUsage
	}
	f, err := loadConfig(cl.flags.Config, env.Config)
	if err != nil {
		printError(stderr, "repe-gw: ", err)
		return exitFailure
	}
	f.Apply(env)
	f.Apply(cl.flags)
	shutdownTimeout := f.ShutdownTimeout()
	adminCfg, err := adminConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		return exitFailure
	}
	log := newLogger(stderr, f.LogLevel(), f.LogFormat())
	warnRoot(log)
	if f.Path != "" {
		log.Info("configuration read", "file", f.Path)
	}
	// Before the first plugin loads: an init may take as long as it likes,
	// and a signal must not wait for it.
	stop, hups := watchSignals(log, sigs, shutdownTimeout)
	// Subscribed now, so that a SIGHUP while plugins load reloads once
	// they serve.
	reloads := hups.subscribe()

	var from string // where the plugins in effect come from, when not the file
	switch {
	case cl.flags.Plugins != nil:
		from = "--plugins"
	case env.Plugins != nil:
		from = "REPE_GW_PLUGINS"
	}
	entries := append(fileEntries(f, from), namedEntries(f, cl.named)...)
	// A reload reads the file again; the environment and flags still
	// override it.
	reread := func() (*config.File, []*entry, error) {
		f, err := loadConfig(cl.flags.Config, env.Config)
		if err != nil {
			return nil, nil, err
		}
		f.Apply(env)
		f.Apply(cl.flags)
		return f, append(fileEntries(f, from), namedEntries(f, cl.named)...), nil
	}
	for _, e := range entries {
		if !e.Enabled {
			log.Info("plugin entry disabled", "entry", e.at(""), "path", e.Path)
		}
	}
	files, errs := plan(entries)
	if len(errs) > 0 {
		printError(stderr, "repe-gw: ", errors.Join(errs...))
		return exitFailure
	}
	host := pluginhost.Config{Logger: log, DataDir: f.DataDir()}.NewHost()
	copies := new(copies)
	loaded, stopped, err := load(log, host, files, newTrust(f, entries), copies, stop)
	isolated := isolatedOf(loaded)
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		closeIsolated(log, isolated, shutdownTimeout)
		closeHost(log, host, shutdownTimeout)
		copies.remove()
		return exitFailure
	}
	if stopped {
		ok := closeIsolated(log, isolated, shutdownTimeout) && closeHost(log, host, shutdownTimeout)
		copies.remove()
		if !ok {
			return exitFailure
		}
		log.Info("stopped")
		return exitOK
	}
	plugins := host.Plugins()
	roots := serving(loaded)
	if len(plugins)+len(isolated) == 0 {
		log.Warn("no plugin loaded: every request will be answered method_not_found")
	}

	cfg := f.Gateway(log)
	cfg.Hooks = host.Hooks()
	cfg.Policies = policies(roots)
	cfg.Isolated = asGateway(isolated)
	cfg.Version = version.String()
	cfg.Hashes = make(map[string]string, len(roots))
	for _, l := range roots {
		cfg.Hashes[l.identity().Root()] = l.sha256
	}
	srv, err := gateway.New(cfg, plugins)
	if err == nil {
		err = srv.Start()
	}
	if err == nil {
		err = startListeners(log, f, srv, stop, hups)
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		closeIsolated(log, isolated, shutdownTimeout)
		closeHost(log, host, shutdownTimeout)
		copies.remove()
		return exitFailure
	}

	rl := newReloader(log, srv, host, files, loaded, copies, shutdownTimeout, reread)
	code := exitOK
	// reload tells the admin listener, once it has started, of the
	// plugins a reload left serving.
	var adm *admin.Server
	admStarted := make(chan struct{})
	reload := func(why string) reloadReport {
		rep := rl.reload(why)
		<-admStarted
		if rep.OK {
			reloaded(adm, rl)
		}
		return rep
	}
	if adminCfg != nil {
		adminCfg.Reload = func() (any, bool) {
			rep := reload("POST /reload")
			return rep, rep.OK
		}
	}
	adm, err = startAdmin(log, adminCfg, srv, roots)
	close(admStarted)
	go func() {
		for range reloads {
			reload("SIGHUP")
		}
	}()
	if cl.watch {
		err := rl.watch(f.Path, stop, func(why string) { reload(why) })
		if err != nil {
			log.Error("--watch: plugins and configuration not watched", "error", err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw: %v\n", err)
		code = exitFailure
	} else {
		notify(log, daemon.SdNotifyReady)
		select {
		case <-stop:
			notify(log, daemon.SdNotifyStopping)
			rl.beginShutdown()
			drain(log, adm, f.ShutdownDelay())
		case <-srv.Done():
			log.Error("server stopped", "error", srv.Err())
			code = exitFailure
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "error", err)
		code = exitFailure
	}
	if !rl.close(shutdownTimeout) {
		code = exitFailure
	}
	stopAdmin(log, adm, shutdownTimeout)
	if code == exitOK {
		log.Info("stopped")
	}
	return code
}

// loadConfig loads the configuration file that --config names, or else
// REPE_GW_CONFIG; with neither, the configuration is every default. A file
// that group or others can write is refused.
func loadConfig(flag, env string) (*config.File, error) {
	name, path := "--config", flag
	if path == "" {
		name, path = "REPE_GW_CONFIG", env
	}
	if path == "" {
		return new(config.File), nil
	}
	if err := checkConfigFile(path); err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, path, unwrapPath(err))
	}
	f, err := config.Load(path)
	if _, ok := errors.AsType[config.Errors](err); err != nil && !ok {
		return nil, fmt.Errorf("%s %s: %w", name, path, unwrapPath(err))
	}
	return f, err
}

// validate is repe-gw validate: it checks a configuration file, and
// returns the exit code.
func validate(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	path, err := parseValidateFlags(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	path = cmp.Or(path, getenv("REPE_GW_CONFIG"))
	if err == nil && path == "" {
		err = errors.New("no file to check: want --config FILE")
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw validate: %v (see repe-gw validate -h)\n", err)
		return exitUsage
	}
	f, err := config.Load(path)
	if err != nil {
		if _, ok := errors.AsType[config.Errors](err); !ok {
			// As config.Position writes a place without a line.
			err = fmt.Errorf("%s: %w", path, unwrapPath(err))
		}
		printError(stderr, "", err)
		return exitFailure
	}
	if _, errs := plan(fileEntries(f, "")); len(errs) > 0 {
		printError(stderr, "", errors.Join(errs...))
		return exitFailure
	}
	return exitOK
}

// printError writes err one line at a time, each after prefix: errors of
// a configuration (config.Errors, errors.Join) hold one problem per line.
func printError(w io.Writer, prefix string, err error) {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintf(w, "%s%s\n", prefix, line)
	}
}

// watchSignals returns a channel that is closed by the first signal to
// stop, at whatever stage the gateway is: loading plugins, serving or
// shutting down. The second signal to stop ends the process at once, as
// the README promises, without waiting for a plugin's init or shutdown,
// or for calls in flight. SIGHUP goes to the subscribers of hups instead.
func watchSignals(log *slog.Logger, sigs <-chan os.Signal, shutdownTimeout time.Duration) (stop <-chan struct{}, hups *hangups) {
	stopped := make(chan struct{})
	hups = new(hangups)
	next := func() os.Signal {
		for sig := range sigs {
			if sig != syscall.SIGHUP {
				return sig
			}
			hups.notify()
		}
		select {} // no more signals: nothing stops the gateway
	}
	go func() {
		sig := next()
		log.Info("shutting down", "signal", sig.String(), "timeout", shutdownTimeout)
		close(stopped)
		sig = next()
		log.Error("second signal: exiting now", "signal", sig.String())
		os.Exit(exitFailure)
	}()
	return stopped, hups
}

// closeHost shuts every plugin down once its calls have returned, and
// reports whether all of them were.
func closeHost(log *slog.Logger, host *pluginhost.Host, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
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
