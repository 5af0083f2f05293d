package client

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// Config configures a Client. The zero value, and a nil *Config, give the
// defaults documented on each field.
type Config struct {
	// Conns is the number of TCP connections in the pool. Dial opens the
	// first; the others are opened by the calls that first pick them.
	// Default 4.
	Conns int

	// MaxMessageSize limits the length of every frame, sent or received.
	// A larger request is refused before it is sent; a larger reply closes
	// the connection as soon as its header arrives, before its body is read
	// or allocated. Default repe.DefaultMaxMessageSize (64 MiB, Glaze's
	// server limit).
	MaxMessageSize uint64

	// DialTimeout bounds each connection attempt, in addition to the
	// context of the call that makes it. Default 10s.
	DialTimeout time.Duration

	// TLS, when set, makes every connection a TLS connection configured by
	// it (TLSFiles builds one from PEM files). A ServerName left empty is
	// taken from the address, as crypto/tls does. Default: plain TCP.
	TLS *tls.Config

	// Dial, when set, opens each connection instead of a TCP dial (and
	// instead of TLS: a Dial that wants it does it itself). It lets REPE
	// travel over another stream, a WebSocket say. The context carries
	// DialTimeout. Default: TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// ResendUnanswered says that the server keeps the rule of the README's
	// "How connections end", as repe-gw does: when it ends a connection
	// cleanly (EOF between replies), the requests it left unanswered did
	// not run. A call whose connection so ends is then sent again on a new
	// one, Idempotent or not. Leave it false for a server that does not
	// promise this: one that closes after running a request, or whose
	// crash ends its connections with a FIN, would run such a call twice.
	// Default false.
	ResendUnanswered bool

	// Logger receives debug records about connections that fail and
	// replies that match no call. Default: discard.
	Logger *slog.Logger
}

// Defaults for the zero Config.
const (
	DefaultConns       = 4
	DefaultDialTimeout = 10 * time.Second
)

// withDefaults returns a copy of cfg with every unset field at its default.
func (cfg *Config) withDefaults() Config {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = repe.DefaultMaxMessageSize
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports settings no client can work with.
func (cfg *Config) validate() error {
	switch {
	case cfg.Conns < 0:
		return errors.New("client: Conns is negative: " + strconv.Itoa(cfg.Conns))
	case cfg.MaxMessageSize < repe.HeaderSize:
		return errors.New("client: MaxMessageSize is smaller than a REPE header: " +
			strconv.FormatUint(cfg.MaxMessageSize, 10))
	case cfg.DialTimeout < 0:
		return errors.New("client: DialTimeout is negative: " + cfg.DialTimeout.String())
	}
	return nil
}
