package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// Defaults of the Config fields.
const (
	DefaultAddr             = "127.0.0.1:5099"
	DefaultMaxConns         = 10000
	DefaultReadTimeout      = 30 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultKeepAlive        = time.Minute
	DefaultMaxPendingOutput = 4 << 20
	DefaultMaxPendingInput  = 4 << 20
	DefaultInlineBudget     = 50 * time.Microsecond
)

// MaxMessageSizeLimit is the largest MaxMessageSize accepted: a frame must
// fit in memory, and limits derived from it must not overflow.
const MaxMessageSizeLimit = 1 << 40

// MaxPluginConcurrency is the largest PluginConcurrency accepted.
const MaxPluginConcurrency = 1 << 16

// DefaultIsolatedConcurrency is how many calls may wait for an isolated
// plugin at once when its policy does not say: they share exchanges with
// its worker (package isolate), so it is higher than for in-process ones.
const DefaultIsolatedConcurrency = 64

// Config configures a Server. The zero value is valid: every field has a
// documented default.
type Config struct {
	// Addr is the TCP address to listen on. Default DefaultAddr (loopback:
	// exposing plugins beyond the machine is a decision to make on purpose).
	Addr string

	// MaxMessageSize limits the length field of a request. A longer frame is
	// answered with an error and the connection is closed before its body is
	// read. Default repe.DefaultMaxMessageSize (64 MiB, as Glaze).
	MaxMessageSize uint64

	// MaxConns limits concurrent client connections; further ones are closed
	// as soon as they are accepted. Default DefaultMaxConns.
	MaxConns int

	// MaxConnsPerIP limits concurrent connections from one IP address;
	// further ones are closed as soon as they are accepted, and logged
	// (rate-limited). Default 0: no limit.
	MaxConnsPerIP int

	// MaxPendingOutput bounds the replies a connection has not read yet.
	// While more than this is buffered for it, none of its further requests
	// are served; serving resumes as the client reads. Default
	// DefaultMaxPendingOutput.
	MaxPendingOutput int

	// MaxPendingInput bounds what a connection may send beyond the frame at
	// the head of its queue while its requests cannot be served: while a
	// call runs on a worker, or while its replies are unread. A connection
	// that sends more behind a running call gets that call's reply, an ec 9
	// error for the first request dropped, and is closed; one that sends
	// more while it reads nothing is closed as a slow consumer. Default
	// DefaultMaxPendingInput.
	MaxPendingInput int

	// WriteTimeout closes, as a slow consumer, a connection whose unread
	// replies are over MaxPendingOutput and have not shrunk for this long.
	// Default DefaultWriteTimeout; negative disables it.
	WriteTimeout time.Duration

	// IdleTimeout closes a connection that has had no request in flight
	// and nothing buffered for this long. Default 0: never, because RPC
	// clients keep pooled connections open for long.
	IdleTimeout time.Duration

	// KeepAlive is the idle time before TCP keep-alive probes start, so that
	// peers that vanished without closing are found. Default
	// DefaultKeepAlive; negative disables it.
	KeepAlive time.Duration

	// ReadTimeout closes a connection that has sent part of a frame and then
	// nothing for this long. Idle connections between frames are never
	// closed: Glaze clients keep pooled connections open. Default
	// DefaultReadTimeout; negative disables it.
	ReadTimeout time.Duration

	// PluginConcurrency limits the calls into one plugin that run at once,
	// wherever they run: on event loops and on workers alike. Default
	// GOMAXPROCS; at most MaxPluginConcurrency.
	PluginConcurrency int

	// Deadline is the default of every plugin's Policy.Deadline: how long
	// a call may take before its caller gets ec 7. Default 0: none.
	Deadline time.Duration

	// Policies holds the policy of each plugin that has one, by the
	// plugin's root; the others take every default (see Policy).
	Policies map[string]Policy

	// Isolated holds plugins that run in worker processes of their own
	// (package isolate), served beside the plugins given to New. Their
	// calls never run on an event loop.
	Isolated []IsolatedPlugin

	// Version is the gateway's version, answered at /_gw/version.
	Version string
	// Hashes holds the sha256 of each plugin's file, by root, answered at
	// /_gw/plugins; a plugin without one shows none.
	Hashes map[string]string

	// InlineBudget is how long a plugin call may take, on average, and still
	// run on the event loop that read the request. Plugins whose calls take
	// longer run on worker goroutines, so that they never stall other
	// connections. Default DefaultInlineBudget; negative moves every call off
	// the event loop.
	InlineBudget time.Duration

	// EventLoops is the number of gnet event loops. Default GOMAXPROCS.
	EventLoops int

	// ReusePort sets SO_REUSEPORT on the listener, so that a second
	// process can listen on the same address: the new version of the
	// gateway starts before the old one drains, and once the old one's
	// listener closes (Shutdown) the new one gets every new connection.
	// Default false: a second listener on the address is an error.
	ReusePort bool

	// Hooks are the hook plugins' tables (pluginhost.Host.Hooks), called
	// in this order for every connection and request (hooks.go); Swap
	// replaces them (Routes.Hooks). The server does not own them: destroy
	// them (pluginhost.Host.Close) after Shutdown returns, when no hook
	// call can follow, or one a Swap dropped once Retired.Wait returns. Default: none, and
	// the request path pays one nil check.
	Hooks []*pluginhost.Hooks

	// Logger receives the server's logs. Default: none.
	Logger *slog.Logger

	// AccessLog logs one line per request to Logger, at info level:
	// remote, id, query, plugin, ec, bytes in and out, and how long the
	// call took. AccessLogSample is the fraction of successful requests
	// logged: 0 is the default, every one; a negative value logs none of
	// them. Errors are always logged.
	AccessLog       bool
	AccessLogSample float64
	// SlowCall logs plugin calls that take longer than it, rate-limited,
	// naming the plugin and the query. 0 is off. With both off, calls are
	// neither timed one by one nor logged.
	SlowCall time.Duration

	// testHook, when set by this package's tests, runs for every framed
	// request on the event loop, and for every call on a worker. It lets
	// them prove that a panic while serving closes only that connection.
	testHook func(query []byte, onWorker bool)
}

// IsolatedPlugin is a plugin served from another process, as package
// isolate serves one: Call answers reqs, whole request frames of one
// connection in order, appending one reply per request that is not a
// notify to dst, within deadline (zero: none); it fails only when reqs are
// not whole frames.
type IsolatedPlugin interface {
	Name() string
	Version() string
	Root() string
	File() string
	Call(dst, reqs []byte, deadline time.Time) ([]byte, error)
}

// withDefaults returns c with every unset field given its default.
func (c Config) withDefaults() Config {
	if c.AccessLogSample == 0 {
		c.AccessLogSample = 1
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = repe.DefaultMaxMessageSize
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxPendingOutput == 0 {
		c.MaxPendingOutput = DefaultMaxPendingOutput
	}
	if c.MaxPendingInput == 0 {
		c.MaxPendingInput = DefaultMaxPendingInput
	}
	if c.PluginConcurrency == 0 {
		c.PluginConcurrency = runtime.GOMAXPROCS(0)
	}
	if c.InlineBudget == 0 {
		c.InlineBudget = DefaultInlineBudget
	}
	if c.EventLoops == 0 {
		c.EventLoops = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports the first field of c that cannot work.
func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("gateway: address %q: %w", c.Addr, err)
	}
	if c.MaxMessageSize < repe.HeaderSize {
		return fmt.Errorf("gateway: maximum message size %d is below the %d-byte header", c.MaxMessageSize, repe.HeaderSize)
	}
	if c.MaxMessageSize > MaxMessageSizeLimit {
		return fmt.Errorf("gateway: maximum message size %d is over the limit of %d (1 TiB)", c.MaxMessageSize, uint64(MaxMessageSizeLimit))
	}
	if c.MaxConns < 0 {
		return errors.New("gateway: maximum connections must not be negative")
	}
	if c.MaxConnsPerIP < 0 {
		return errors.New("gateway: maximum connections per IP must not be negative")
	}
	if c.MaxPendingOutput < 0 || c.MaxPendingOutput > MaxMessageSizeLimit {
		return fmt.Errorf("gateway: maximum pending output %d is not between 1 and %d", c.MaxPendingOutput, MaxMessageSizeLimit)
	}
	if c.MaxPendingInput < 0 || c.MaxPendingInput > MaxMessageSizeLimit {
		return fmt.Errorf("gateway: maximum pending input %d is not between 1 and %d", c.MaxPendingInput, MaxMessageSizeLimit)
	}
	if c.Deadline < 0 {
		return errors.New("gateway: deadline must not be negative")
	}
	if c.AccessLogSample > 1 {
		return fmt.Errorf("gateway: access log sample %v is over 1", c.AccessLogSample)
	}
	if c.SlowCall < 0 {
		return errors.New("gateway: slow-call threshold must not be negative")
	}
	if c.IdleTimeout < 0 {
		return errors.New("gateway: idle timeout must not be negative")
	}
	if c.PluginConcurrency < 0 || c.PluginConcurrency > MaxPluginConcurrency {
		return fmt.Errorf("gateway: plugin concurrency %d is not between 1 and %d", c.PluginConcurrency, MaxPluginConcurrency)
	}
	if c.EventLoops < 0 {
		return errors.New("gateway: event loops must not be negative")
	}
	return nil
}
