package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// errHelp reports that -h was asked for and the usage printed.
var errHelp = flag.ErrHelp

const defaultShutdownTimeout = 15 * time.Second

// Bounds of the flags' values, checked before anything starts.
const (
	// maxMessageSize is the largest --max-message-size. The gateway holds a
	// frame whole in memory, per connection, so a limit in the terabytes
	// would promise what no machine has; 4 GiB is 64 times Glaze's default.
	maxMessageSize = 4 << 30
	// maxPending is the largest --max-pending-output and -input: what one
	// connection may make the gateway hold.
	maxPending = 1 << 30
	// maxCount bounds --max-conns and --max-conns-per-ip.
	maxCount = math.MaxInt32
	// maxInlineBudget is the largest --inline-budget. A plugin inside it
	// holds the event loop, and every connection on it, for that long per
	// call; beyond a second that is no longer what running inline is for.
	maxInlineBudget = time.Second
)

const usageHead = `Usage: repe-gw --plugins DIR [--plugin FILE]... [flags]

Serves REPE plugins over TCP.

Flags:
`

// options are the parsed command line.
type options struct {
	dir               string
	files             []string
	addr              string
	maxMessageSize    uint64
	maxConns          int
	maxConnsPerIP     int
	maxPendingOutput  uint64
	maxPendingInput   uint64
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	keepAlive         time.Duration
	deadline          time.Duration
	shutdownTimeout   time.Duration
	pluginConcurrency int
	inlineBudget      time.Duration
	logLevel          slog.Level
	logFormat         string
	version           bool
}

// parseFlags parses args with a flag set of its own, so that nothing is
// bound to package state. The usage goes to stdout when -h asks for it, and
// only then; any other error is returned for the caller to report in one
// line.
func parseFlags(args []string, stdout io.Writer) (*options, error) {
	o := &options{
		addr:             gateway.DefaultAddr,
		maxMessageSize:   repe.DefaultMaxMessageSize,
		maxConns:         gateway.DefaultMaxConns,
		maxPendingOutput: gateway.DefaultMaxPendingOutput,
		maxPendingInput:  gateway.DefaultMaxPendingInput,
		readTimeout:      gateway.DefaultReadTimeout,
		writeTimeout:     gateway.DefaultWriteTimeout,
		keepAlive:        gateway.DefaultKeepAlive,
		shutdownTimeout:  defaultShutdownTimeout,
		inlineBudget:     gateway.DefaultInlineBudget,
		logLevel:         slog.LevelInfo,
		logFormat:        "text",
	}
	fs := newFlagSet("repe-gw")
	fs.value("plugins", "", "load every *.so below `DIR`, recursively, skipping hidden folders", func(s string) error {
		o.dir = s
		return nil
	})
	fs.value("plugin", "", "also load `FILE`; repeatable", func(s string) error {
		o.files = append(o.files, s)
		return nil
	})
	fs.value("addr", o.addr, "listen on `HOST:PORT`", func(s string) error {
		o.addr = s
		return nil
	})
	fs.value("max-message-size", formatSize(o.maxMessageSize),
		"refuse frames longer than `SIZE`: bytes, or with KiB, MiB or GiB; at most "+formatSize(maxMessageSize), func(s string) (err error) {
			o.maxMessageSize, err = parseSize(s, repe.HeaderSize, maxMessageSize)
			return err
		})
	fs.value("max-conns", strconv.Itoa(o.maxConns), "close connections beyond `N` at once", func(s string) (err error) {
		o.maxConns, err = parseCount(s, 1, maxCount, "")
		return err
	})
	fs.value("max-conns-per-ip", "0", "close connections from one IP address beyond `N` at once; 0: no limit", func(s string) (err error) {
		o.maxConnsPerIP, err = parseCount(s, 0, maxCount, " (0: no limit)")
		return err
	})
	fs.value("max-pending-output", formatSize(o.maxPendingOutput),
		"serve none of a connection's requests while `SIZE` of its replies are unread", func(s string) (err error) {
			o.maxPendingOutput, err = parseSize(s, 1, maxPending)
			return err
		})
	fs.value("max-pending-input", formatSize(o.maxPendingInput),
		"let a connection whose requests wait send one frame and `SIZE` more", func(s string) (err error) {
			o.maxPendingInput, err = parseSize(s, 1, maxPending)
			return err
		})
	fs.value("read-timeout", o.readTimeout.String(),
		"close a connection stalled inside a frame for `D`; 0: never", func(s string) (err error) {
			o.readTimeout, err = parseDuration(s, 0, math.MaxInt64, "0 (never) or more")
			return err
		})
	fs.value("write-timeout", o.writeTimeout.String(),
		"close a connection whose unread replies stay over the bound for `D`; 0: never", func(s string) (err error) {
			o.writeTimeout, err = parseDuration(s, 0, math.MaxInt64, "0 (never) or more")
			return err
		})
	fs.value("idle-timeout", "0",
		"close a connection with no request in flight for `D`; 0: never", func(s string) (err error) {
			o.idleTimeout, err = parseDuration(s, 0, math.MaxInt64, "0 (never) or more")
			return err
		})
	fs.value("keepalive", o.keepAlive.String(),
		"send TCP keep-alive probes after `D` of silence; 0: never", func(s string) (err error) {
			o.keepAlive, err = parseDuration(s, 0, math.MaxInt64, "0 (never) or more")
			return err
		})
	fs.value("deadline", "0",
		"answer ec 7 to a plugin call still running after `D`; 0: none", func(s string) (err error) {
			o.deadline, err = parseDuration(s, 0, math.MaxInt64, "0 (none) or more")
			return err
		})
	fs.value("shutdown-timeout", o.shutdownTimeout.String(),
		"on SIGINT/SIGTERM, wait at most `D` for requests in flight", func(s string) (err error) {
			o.shutdownTimeout, err = parseDuration(s, 1, math.MaxInt64, "more than 0")
			return err
		})
	fs.value("plugin-concurrency", "GOMAXPROCS", "run at most `N` calls into one plugin at once", func(s string) (err error) {
		o.pluginConcurrency, err = parseCount(s, 0, gateway.MaxPluginConcurrency, " (0: GOMAXPROCS)")
		return err
	})
	fs.value("inline-budget", o.inlineBudget.String(),
		"run a plugin's calls on the event loop while they average under `D`; negative: never", func(s string) (err error) {
			// 0 is no budget at all: to keep every call off the event loop,
			// say so with a negative one.
			want := "more than 0 and at most " + maxInlineBudget.String() + ", or negative (never)"
			o.inlineBudget, err = parseDuration(s, math.MinInt64, maxInlineBudget, want)
			if err == nil && o.inlineBudget == 0 {
				err = errors.New("out of range: want " + want)
			}
			return err
		})
	fs.value("log-level", "info", "log at `LEVEL`: debug, info, warn or error", func(s string) error {
		if o.logLevel.UnmarshalText([]byte(s)) != nil {
			return errors.New("want debug, info, warn or error")
		}
		return nil
	})
	fs.value("log-format", o.logFormat, "log as `FORMAT`: text or json", func(s string) error {
		if s != "text" && s != "json" {
			return errors.New("want text or json")
		}
		o.logFormat = s
		return nil
	})
	fs.boolean(&o.version, "version", "print the version and exit")

	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage(stdout, usageHead)
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// gateway returns the server configuration the options describe.
func (o *options) gateway(log *slog.Logger) gateway.Config {
	return gateway.Config{
		Addr:              o.addr,
		MaxMessageSize:    o.maxMessageSize,
		MaxConns:          o.maxConns,
		MaxConnsPerIP:     o.maxConnsPerIP,
		MaxPendingOutput:  int(o.maxPendingOutput),
		MaxPendingInput:   int(o.maxPendingInput),
		ReadTimeout:       never(o.readTimeout),
		WriteTimeout:      never(o.writeTimeout),
		IdleTimeout:       o.idleTimeout,
		KeepAlive:         never(o.keepAlive),
		Deadline:          o.deadline,
		PluginConcurrency: o.pluginConcurrency,
		InlineBudget:      o.inlineBudget,
		Logger:            log,
	}
}

// never turns a flag's 0, which means never, into Config's negative: there
// 0 means the default.
func never(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// sizeUnits are the suffixes parseSize reads and formatSize writes, largest
// first.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseSize reads a byte count such as 1048576, 512KiB, 64MiB or 1GiB, and
// checks that it lies in [lo, hi].
func parseSize(s string, lo, hi uint64) (uint64, error) {
	want := fmt.Sprintf("want %s to %s", formatSize(lo), formatSize(hi))
	num, shift := s, uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && n > hi>>shift:
		return 0, errors.New("too large: " + want)
	case err != nil:
		return 0, errors.New("not a size: " + want + ", in bytes or a number with KiB, MiB or GiB")
	case n<<shift < lo:
		return 0, errors.New("too small: " + want)
	}
	return n << shift, nil
}

// formatSize writes n in the largest unit that divides it: 64MiB, 48B.
func formatSize(n uint64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// parseCount reads a whole number in [lo, hi]; note describes lo when it
// means something special.
func parseCount(s string, lo, hi int, note string) (int, error) {
	want := fmt.Sprintf("want %d%s to %d", lo, note, hi)
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("out of range: " + want)
	case err != nil:
		return 0, errors.New("not a whole number: " + want)
	case n < int64(lo) || n > int64(hi):
		return 0, errors.New("out of range: " + want)
	}
	return int(n), nil
}

// parseDuration reads a duration such as 30s or 500ms in [lo, hi]; want
// says what the range is.
func parseDuration(s string, lo, hi time.Duration, want string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, errors.New("not a duration such as 30s or 500ms: want " + want)
	case d < lo || d > hi:
		return 0, errors.New("out of range: want " + want)
	}
	return d, nil
}
