package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// Defaults of the flags.
const (
	defaultAddr     = "127.0.0.1:5099"
	defaultRequests = 100000
	defaultTimeout  = 10 * time.Second
	defaultMaxReply = 1 << 30

	// Upper bounds that keep a typing mistake from exhausting the machine.
	maxConns    = 100000
	maxPipeline = 65536
)

// config is what the flags ask for, checked.
type config struct {
	addr        string
	allowRemote bool
	conns       int
	pipeline    int
	requests    int64         // measured requests, 0 when only duration bounds the run
	duration    time.Duration // measured duration, 0 when only requests bound the run
	rate        float64       // requests per second over all connections, 0 = unlimited
	warmup      time.Duration
	timeout     time.Duration
	notifyRatio float64
	expectEC    repe.ErrorCode
	anyEC       bool
	maxReply    uint64
	serverPID   int
	format      string
	progress    bool
	progressSet bool
	cpuProfile  string

	// What to send: either one request built from query and body, or the
	// frames of a replay directory.
	query      string
	body       []byte
	bodyFormat repe.BodyFormat
	replayDir  string
}

// parseFlags reads the command line. getenv supplies REPE_ADDR, the default
// address; stdin is read for -body-file -.
func parseFlags(args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("repe-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: repe-bench [flags]\n\n"+
			"Load a REPE server with pipelined requests and report requests/s, latency\n"+
			"percentiles and errors. Every reply is checked: its id must match a request\n"+
			"and its ec must be -expect-ec.\n\nFlags:\n")
		fs.PrintDefaults()
	}

	addr := defaultAddr
	if env := getenv("REPE_ADDR"); env != "" {
		addr = env
	}
	var (
		bodyInline, bodyFile, bodyFormat, expectEC string
	)
	fs.StringVar(&cfg.addr, "addr", addr, "server address host:port (default from REPE_ADDR when set)")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow an address that is not loopback")
	fs.IntVar(&cfg.conns, "c", 1, "connections")
	fs.IntVar(&cfg.pipeline, "P", 1, "requests in flight per connection (pipelining)")
	fs.Int64Var(&cfg.requests, "n", 0, "requests to measure, notifies included (default 100000 unless -z is set)")
	fs.DurationVar(&cfg.duration, "z", 0, "measure for this long (with -n: whichever ends first)")
	fs.Float64Var(&cfg.rate, "q", 0, "rate limit in requests/s over all connections (0: unlimited)")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "send requests for this long before measuring")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "longest wait for a reply; a connection whose oldest request waits longer fails")
	fs.StringVar(&cfg.query, "query", "", "query (JSON pointer), e.g. /calculator/get_value")
	fs.StringVar(&bodyInline, "body", "", "request body, inline")
	fs.StringVar(&bodyFile, "body-file", "", "read the request body from `FILE` (- for stdin)")
	fs.StringVar(&bodyFormat, "body-format", "json", "body format: json, beve, raw, utf8 or a number (set only when there is a body)")
	fs.Float64Var(&cfg.notifyRatio, "notify-ratio", 0, "fraction of requests sent as notify (no reply expected)")
	fs.StringVar(&cfg.replayDir, "replay", "", "send the *.req.repe frames of `DIR` round-robin, with ids rewritten")
	fs.StringVar(&expectEC, "expect-ec", "0", "ec every reply must carry: a number, a Glaze name, or any")
	fs.Uint64Var(&cfg.maxReply, "max-reply", defaultMaxReply, "largest reply frame accepted, in bytes")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "report this process's CPU time per request, from /proc/PID/stat")
	fs.StringVar(&cfg.format, "format", "text", "summary format: text or json")
	fs.BoolVar(&cfg.progress, "progress", false, "show progress once per second (default: when stdout is a terminal)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the tool itself to `FILE`, to check it is not the bottleneck")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.progressSet = set["progress"]

	switch {
	case cfg.conns < 1 || cfg.conns > maxConns:
		return nil, fmt.Errorf("-c %d: want 1 to %d", cfg.conns, maxConns)
	case cfg.pipeline < 1 || cfg.pipeline > maxPipeline:
		return nil, fmt.Errorf("-P %d: want 1 to %d", cfg.pipeline, maxPipeline)
	case cfg.requests < 0:
		return nil, fmt.Errorf("-n %d: want a positive count", cfg.requests)
	case cfg.duration < 0 || cfg.warmup < 0:
		return nil, errors.New("-z and -warmup must not be negative")
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("-timeout %v: want a positive duration", cfg.timeout)
	case cfg.rate < 0:
		return nil, fmt.Errorf("-q %v: want a positive rate or 0", cfg.rate)
	case !(cfg.notifyRatio >= 0 && cfg.notifyRatio <= 1):
		return nil, fmt.Errorf("-notify-ratio %v: want 0 to 1", cfg.notifyRatio)
	case cfg.maxReply < repe.HeaderSize:
		return nil, fmt.Errorf("-max-reply %d: want at least %d", cfg.maxReply, repe.HeaderSize)
	case cfg.serverPID < 0:
		return nil, fmt.Errorf("-server-pid %d: want a process id", cfg.serverPID)
	case cfg.format != "text" && cfg.format != "json":
		return nil, fmt.Errorf("-format %q: want text or json", cfg.format)
	}
	if cfg.requests == 0 && cfg.duration == 0 {
		cfg.requests = defaultRequests
	}

	var err error
	if cfg.expectEC, cfg.anyEC, err = parseEC(expectEC); err != nil {
		return nil, err
	}
	if cfg.bodyFormat, err = parseBodyFormat(bodyFormat); err != nil {
		return nil, err
	}
	if cfg.replayDir != "" {
		if set["query"] || set["body"] || set["body-file"] || set["body-format"] {
			return nil, errors.New("-replay sends recorded frames: it excludes -query, -body, -body-file and -body-format")
		}
		return cfg, nil
	}
	if cfg.query == "" {
		return nil, errors.New("-query is required (or -replay DIR)")
	}
	if set["body"] && set["body-file"] {
		return nil, errors.New("-body and -body-file exclude each other")
	}
	cfg.body = []byte(bodyInline)
	if bodyFile != "" {
		if cfg.body, err = readBody(bodyFile, stdin); err != nil {
			return nil, err
		}
	}
	if len(cfg.body) == 0 && !set["body-format"] {
		// Glaze's client labels a request without a body as raw.
		cfg.bodyFormat = repe.BodyRaw
	}
	return cfg, nil
}

// parseEC reads -expect-ec: "any", a number, or one of Glaze's names.
func parseEC(s string) (ec repe.ErrorCode, anyEC bool, err error) {
	if s == "any" {
		return 0, true, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return repe.ErrorCode(n), false, nil
	}
	// Glaze's names run up to code 72 (REPE.md §1.2).
	for c := repe.ErrorCode(0); c < 128; c++ {
		if c.Name() == s {
			return c, false, nil
		}
	}
	return 0, false, fmt.Errorf("-expect-ec %q: want a number, a Glaze error name or any", s)
}

// parseBodyFormat reads -body-format: a name or a number.
func parseBodyFormat(s string) (repe.BodyFormat, error) {
	for _, f := range []repe.BodyFormat{repe.BodyRaw, repe.BodyBEVE, repe.BodyJSON, repe.BodyUTF8} {
		if strings.EqualFold(s, f.String()) {
			return f, nil
		}
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return repe.BodyFormat(n), nil
	}
	return 0, fmt.Errorf("-body-format %q: want json, beve, raw, utf8 or a number", s)
}

// checkLoopback refuses an address that does not resolve to loopback only:
// a load tool pointed at someone else's server by mistake is an attack.
func checkLoopback(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("-addr %q: name the host, e.g. 127.0.0.1", addr)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("-addr %q is not loopback (%v): pass -allow-remote to load it anyway", addr, ip.IP)
		}
	}
	return nil
}
