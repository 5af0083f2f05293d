package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// errHelp reports that -h was asked for and the usage printed.
var errHelp = flag.ErrHelp

const defaultShutdownTimeout = 15 * time.Second

// options are the parsed command line.
type options struct {
	dir               string
	files             []string
	addr              string
	maxMessageSize    uint64
	maxConns          int
	readTimeout       time.Duration
	shutdownTimeout   time.Duration
	pluginConcurrency int
	inlineBudget      time.Duration
	logLevel          slog.Level
	logFormat         string
	version           bool
}

// parseFlags parses args with a flag set of its own, so that nothing is
// bound to package state. Usage goes to stdout when asked for; errors are
// returned for the caller to report in one line.
func parseFlags(args []string, stdout io.Writer) (*options, error) {
	o := &options{maxMessageSize: repe.DefaultMaxMessageSize, logFormat: "text"}
	fs := flag.NewFlagSet("repe-gw", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "plugins", "", "load every `DIR`/**/*.so plugin (hidden folders skipped)")
	fs.Func("plugin", "also load the plugin `FILE` (repeatable)", func(s string) error {
		o.files = append(o.files, s)
		return nil
	})
	fs.StringVar(&o.addr, "addr", gateway.DefaultAddr, "listen on `HOST:PORT`")
	fs.Func("max-message-size", "refuse frames longer than `SIZE` (bytes, or with KiB/MiB/GiB) (default 64MiB)", func(s string) error {
		n, err := parseSize(s)
		o.maxMessageSize = n
		return err
	})
	fs.IntVar(&o.maxConns, "max-conns", gateway.DefaultMaxConns, "close connections beyond `N` at once")
	fs.DurationVar(&o.readTimeout, "read-timeout", gateway.DefaultReadTimeout, "close a connection stalled inside a frame for `DURATION` (0: never)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "on SIGINT/SIGTERM, wait at most `DURATION` for requests in flight")
	fs.IntVar(&o.pluginConcurrency, "plugin-concurrency", 0, "run at most `N` calls into one plugin at once (default GOMAXPROCS)")
	fs.DurationVar(&o.inlineBudget, "inline-budget", gateway.DefaultInlineBudget, "run a plugin's calls on the event loop while they average under `DURATION`; negative: never")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `LEVEL`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `FORMAT`: text or json")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: repe-gw --plugins DIR [--plugin FILE]... [flags]\n\nServes REPE plugins over TCP.\n\nFlags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.logFormat != "text" && o.logFormat != "json":
		return nil, fmt.Errorf("-log-format must be text or json, not %q", o.logFormat)
	case o.maxMessageSize < repe.HeaderSize:
		return nil, fmt.Errorf("-max-message-size must be at least %d bytes", repe.HeaderSize)
	case o.maxConns <= 0:
		return nil, errors.New("-max-conns must be positive")
	case o.readTimeout < 0:
		return nil, errors.New("-read-timeout must not be negative")
	case o.shutdownTimeout <= 0:
		return nil, errors.New("-shutdown-timeout must be positive")
	case o.inlineBudget == 0:
		return nil, errors.New("-inline-budget must not be 0: negative keeps every call off the event loop")
	case o.pluginConcurrency < 0:
		return nil, errors.New("-plugin-concurrency must not be negative")
	}
	return o, nil
}

// gateway returns the server configuration the options describe.
func (o *options) gateway(log *slog.Logger) gateway.Config {
	rt := o.readTimeout
	if rt == 0 {
		rt = -1 // the flag's 0 means never; Config's 0 means the default
	}
	return gateway.Config{
		Addr:              o.addr,
		MaxMessageSize:    o.maxMessageSize,
		MaxConns:          o.maxConns,
		ReadTimeout:       rt,
		PluginConcurrency: o.pluginConcurrency,
		InlineBudget:      o.inlineBudget,
		Logger:            log,
	}
}

// parseSize reads a byte count such as 1048576, 512KiB, 64MiB or 1GiB.
func parseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > (1<<63)>>shift {
		return 0, fmt.Errorf("invalid size %q: want bytes, or a number with KiB, MiB or GiB", s)
	}
	return n << shift, nil
}
