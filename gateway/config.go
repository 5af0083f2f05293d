package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// Defaults of the Config fields.
const (
	DefaultAddr         = "127.0.0.1:5099"
	DefaultMaxConns     = 10000
	DefaultReadTimeout  = 30 * time.Second
	DefaultInlineBudget = 50 * time.Microsecond
)

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

	// ReadTimeout closes a connection that has sent part of a frame and then
	// nothing for this long. Idle connections between frames are never
	// closed: Glaze clients keep pooled connections open. Default
	// DefaultReadTimeout; negative disables it.
	ReadTimeout time.Duration

	// PluginConcurrency limits the calls into one plugin that run at once.
	// Default GOMAXPROCS. A limit below the number of event loops makes every
	// call to that plugin leave the event loop, so the limit always holds.
	PluginConcurrency int

	// InlineBudget is how long a plugin call may take, on average, and still
	// run on the event loop that read the request. Plugins whose calls take
	// longer run on worker goroutines, so that they never stall other
	// connections. Default DefaultInlineBudget; negative moves every call off
	// the event loop.
	InlineBudget time.Duration

	// EventLoops is the number of gnet event loops. Default GOMAXPROCS.
	EventLoops int

	// Logger receives the server's logs. Default: none.
	Logger *slog.Logger

	// testHook, when set by this package's tests, runs for every request on
	// the event loop. It lets them prove that a panic while serving closes
	// only that connection.
	testHook func(query []byte)
}

// withDefaults returns c with every unset field given its default.
func (c Config) withDefaults() Config {
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
	if c.MaxConns < 0 {
		return errors.New("gateway: maximum connections must not be negative")
	}
	if c.PluginConcurrency < 0 {
		return errors.New("gateway: plugin concurrency must not be negative")
	}
	if c.EventLoops < 0 {
		return errors.New("gateway: event loops must not be negative")
	}
	return nil
}
