package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/client"
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
	// tls configures TLS connections; nil for plain TCP.
	tls       *tls.Config
	reconnect bool
	version   bool

	// What to send: either one request built from query and body, or the
	// frames of a replay directory.
	query      string
	body       []byte
	bodyFormat repe.BodyFormat
	replayDir  string
}

// usage is the help text of -h. It is written by hand rather than by
// flag.PrintDefaults, so that it groups the flags by purpose, spells them
// the way the documentation does and names what each value is.
const usage = `Usage: repe-bench --query PATH [flags]
       repe-bench --replay DIR [flags]

Loads a REPE server with pipelined requests and reports requests/s, latency
percentiles, errors and CPU time per request. Every reply is checked: its id
must match a request in flight and its ec must be --expect-ec.

What to send:
  --query PATH          the requests' query (JSON pointer), such as
                        /calculator/get_value
  --body JSON           the request body, inline
  --body-file FILE      the request body, read from FILE (- for standard input)
  --body-format FORMAT  json, beve, raw, utf8 or a number (default json;
                        raw when there is no body)
  --notify-ratio RATIO  send this fraction of requests, 0 to 1, as notifies
                        (default 0)
  --replay DIR          send the *.req.repe frames of DIR in turn, ids
                        rewritten, instead of --query and --body

How much:
  -c N                  connections (default 1)
  -P N                  requests in flight on each connection (default 1)
  -n N                  requests to measure, notifies included (default
                        100000, or no limit when -z is given)
  -z DURATION           measure for DURATION, e.g. 5s (with -n: whichever
                        ends first)
  -q RATE               send at most RATE requests/s over all connections
                        (default: no limit)
  --warmup DURATION     send for DURATION before measuring (default 0s)

Checks:
  --expect-ec EC        the ec every reply must carry: a number, a Glaze name
                        such as method_not_found, or any (default 0)
  --timeout DURATION    fail a connection whose oldest request waits longer
                        (default 10s)
  --reconnect           when the server closes a connection, go on over a
                        new one, as README's "How connections end" says a
                        client should: after a clean end (EOF between
                        replies) send again the requests left unanswered,
                        which did not run; after a reset or error count
                        them as failed (default: the connection's share of
                        the run ends with it)
  --max-reply BYTES     the largest reply accepted (default 1073741824: 1 GiB)

Server and output:
  --addr HOST:PORT      the server (default $REPE_ADDR, else 127.0.0.1:5099)
  --allow-remote        allow an address that is not loopback
  --tls                 connect with TLS (1.2 or later); implied by the four
                        below. The handshakes happen before the measurement
  --cacert FILE         trust the CA certificates in FILE (PEM)
  --cert FILE           present this client certificate (PEM), for mutual TLS
  --key FILE            the client certificate's private key (PEM)
  --server-name NAME    the name the server's certificate must carry
                        (default: the host of --addr)
  --server-pid PID      also report the CPU time per request of process PID,
                        the server, from /proc/PID/stat
  --format FORMAT       the summary as text or json (default text)
  --progress            print progress once a second (default: when standard
                        output is a terminal)
  --cpuprofile FILE     write a CPU profile of repe-bench itself to FILE, to
                        check that it is not the bottleneck
  --version             print the version and exit
  -h, --help            print this help and exit

Exit status: 0 when every request succeeded, 1 when any failed or the run
could not start, 2 for bad usage.
`

// parseFlags reads the command line. getenv supplies REPE_ADDR, the default
// address; stdin is read for --body-file -. It prints nothing: -h returns
// flag.ErrHelp, for the caller to print usage, and any other mistake an
// error for the caller to report in one line.
func parseFlags(args []string, getenv func(string) string, stdin io.Reader) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("repe-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	addr := defaultAddr
	if env := getenv("REPE_ADDR"); env != "" {
		addr = env
	}
	var (
		bodyInline, bodyFile, bodyFormat, expectEC string
		useTLS                                     bool
		tlsFiles                                   client.TLSFiles
	)
	// The texts below are for completeness only: usage is what -h prints.
	fs.StringVar(&cfg.addr, "addr", addr, "the server")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow an address that is not loopback")
	fs.BoolVar(&useTLS, "tls", false, "connect with TLS")
	fs.StringVar(&tlsFiles.CACert, "cacert", "", "TLS: CA certificates")
	fs.StringVar(&tlsFiles.Cert, "cert", "", "TLS: client certificate")
	fs.StringVar(&tlsFiles.Key, "key", "", "TLS: client key")
	fs.StringVar(&tlsFiles.ServerName, "server-name", "", "TLS: server name")
	fs.IntVar(&cfg.conns, "c", 1, "connections")
	fs.IntVar(&cfg.pipeline, "P", 1, "requests in flight on each connection")
	fs.Int64Var(&cfg.requests, "n", 0, "requests to measure")
	fs.DurationVar(&cfg.duration, "z", 0, "measure for this long")
	fs.Float64Var(&cfg.rate, "q", 0, "requests/s over all connections")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "send for this long before measuring")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "longest wait for a reply")
	fs.BoolVar(&cfg.reconnect, "reconnect", false, "go on over a new connection when one closes")
	fs.StringVar(&cfg.query, "query", "", "query (JSON pointer)")
	fs.StringVar(&bodyInline, "body", "", "request body, inline")
	fs.StringVar(&bodyFile, "body-file", "", "request body file")
	fs.StringVar(&bodyFormat, "body-format", "json", "body format")
	fs.Float64Var(&cfg.notifyRatio, "notify-ratio", 0, "fraction of requests sent as notifies")
	fs.StringVar(&cfg.replayDir, "replay", "", "directory of frames to replay")
	fs.StringVar(&expectEC, "expect-ec", "0", "ec every reply must carry")
	fs.Uint64Var(&cfg.maxReply, "max-reply", defaultMaxReply, "largest reply accepted")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "the server's process id")
	fs.StringVar(&cfg.format, "format", "text", "summary format")
	fs.BoolVar(&cfg.progress, "progress", false, "print progress")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "CPU profile file")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.progressSet = set["progress"]
	if cfg.version {
		return cfg, nil
	}

	switch {
	case cfg.conns < 1 || cfg.conns > maxConns:
		return nil, fmt.Errorf("-c %d: want 1 to %d", cfg.conns, maxConns)
	case cfg.pipeline < 1 || cfg.pipeline > maxPipeline:
		return nil, fmt.Errorf("-P %d: want 1 to %d", cfg.pipeline, maxPipeline)
	case cfg.requests < 0:
		return nil, fmt.Errorf("-n %d: want a positive count", cfg.requests)
	case cfg.duration < 0 || cfg.warmup < 0:
		return nil, errors.New("-z and --warmup must not be negative")
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("--timeout %v: want a positive duration", cfg.timeout)
	case cfg.rate < 0:
		return nil, fmt.Errorf("-q %v: want a positive rate or 0", cfg.rate)
	case !(cfg.notifyRatio >= 0 && cfg.notifyRatio <= 1):
		return nil, fmt.Errorf("--notify-ratio %v: want 0 to 1", cfg.notifyRatio)
	case cfg.maxReply < repe.HeaderSize:
		return nil, fmt.Errorf("--max-reply %d: want at least %d", cfg.maxReply, repe.HeaderSize)
	case cfg.serverPID < 0:
		return nil, fmt.Errorf("--server-pid %d: want a process id", cfg.serverPID)
	case cfg.format != "text" && cfg.format != "json":
		return nil, fmt.Errorf("--format %q: want text or json", cfg.format)
	}
	if cfg.requests == 0 && cfg.duration == 0 {
		cfg.requests = defaultRequests
	}

	var err error
	if useTLS || tlsFiles != (client.TLSFiles{}) {
		if cfg.tls, err = client.TLSConfig(tlsFiles); err != nil {
			return nil, err
		}
	}
	if cfg.expectEC, cfg.anyEC, err = parseEC(expectEC); err != nil {
		return nil, err
	}
	if cfg.bodyFormat, err = parseBodyFormat(bodyFormat); err != nil {
		return nil, err
	}
	if cfg.replayDir != "" {
		if set["query"] || set["body"] || set["body-file"] || set["body-format"] {
			return nil, errors.New("--replay sends recorded frames: it excludes --query, --body, --body-file and --body-format")
		}
		return cfg, nil
	}
	if cfg.query == "" {
		return nil, errors.New("--query PATH is required (or --replay DIR); see repe-bench -h")
	}
	if set["body"] && set["body-file"] {
		return nil, errors.New("--body and --body-file exclude each other")
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

// parseEC reads --expect-ec: "any", a number, or one of Glaze's names.
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
	return 0, false, fmt.Errorf("--expect-ec %q: want a number, a Glaze error name or any", s)
}

// parseBodyFormat reads --body-format: a name or a number.
func parseBodyFormat(s string) (repe.BodyFormat, error) {
	for _, f := range []repe.BodyFormat{repe.BodyRaw, repe.BodyBEVE, repe.BodyJSON, repe.BodyUTF8} {
		if strings.EqualFold(s, f.String()) {
			return f, nil
		}
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return repe.BodyFormat(n), nil
	}
	return 0, fmt.Errorf("--body-format %q: want json, beve, raw, utf8 or a number", s)
}

// checkLoopback refuses an address that does not resolve to loopback only:
// a load tool pointed at someone else's server by mistake is an attack.
func checkLoopback(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("--addr %q: name the host, e.g. 127.0.0.1", addr)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("--addr %q is not loopback (%v): pass --allow-remote to load it anyway", addr, ip.IP)
		}
	}
	return nil
}
