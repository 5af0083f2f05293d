package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/repe-gw/repe-gw/bridge"
	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
)

// httpReadHeaderTimeout bounds the time to send a request's headers, so
// that a client that opens a connection and says little holds it no longer
// than this, whatever --http-read-timeout says for the whole request.
const httpReadHeaderTimeout = 10 * time.Second

// httpWriteOutTimeout bounds how long the handlers of calls the core
// answered during shutdown have to write their responses.
const httpWriteOutTimeout = 5 * time.Second

// httpSettings are the HTTP listener's bounds (config.Listen): the body's
// is the REPE maximum, and its connections' --max-conns.
type httpSettings struct {
	addr                     string
	readTimeout, idleTimeout time.Duration // 0: never
	maxHeaderSize            int
}

func httpSettingsOf(f *config.File) httpSettings {
	l := f.Listen
	or := func(d *time.Duration, def time.Duration) time.Duration {
		if d == nil {
			return def
		}
		return *d
	}
	hs := httpSettings{addr: *l.HTTPAddr, readTimeout: or(l.HTTPReadTimeout, config.DefaultHTTPReadTimeout),
		idleTimeout: or(l.HTTPIdleTimeout, config.DefaultHTTPIdleTimeout), maxHeaderSize: config.DefaultHTTPMaxHeaderSize}
	if l.HTTPMaxHeaderSize != nil {
		hs.maxHeaderSize = int(*l.HTTPMaxHeaderSize)
	}
	return hs
}

// startHTTP serves the bridge on addr until srv has shut down: by then
// every WebSocket and call has been drained by the core, and new ones are
// refused (503) from the start of the shutdown. A plugin whose root the
// bridge reserves stops the start.
func startHTTP(log *slog.Logger, set httpSettings, srv *gateway.Server, cfg gateway.Config) error {
	for _, p := range srv.PluginStats() {
		if bridge.Reserved(p.Root) {
			return fmt.Errorf("--http-addr: plugin %s at %s is refused: /repe and /jsonrpc belong to the HTTP listener", p.Name, p.Root)
		}
	}
	ln, err := net.Listen("tcp", set.addr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	// net/http reads an IdleTimeout of 0 as ReadTimeout, and reads headers
	// until ReadHeaderTimeout even past ReadTimeout. A WebSocket's
	// connection loses its deadlines when it is upgraded.
	header, idle := httpReadHeaderTimeout, set.idleTimeout
	if set.readTimeout > 0 {
		header = min(header, set.readTimeout)
	}
	if idle == 0 {
		idle = math.MaxInt64
	}
	hs := &http.Server{
		Handler:           bridge.New(srv, bridge.Config{MaxMessageSize: cfg.MaxMessageSize, Logger: log}),
		MaxHeaderBytes:    set.maxHeaderSize,
		ReadTimeout:       set.readTimeout,
		ReadHeaderTimeout: header,
		IdleTimeout:       idle,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("listening for HTTP", "addr", ln.Addr().String())
	go func() {
		if err := hs.Serve(limitListener(ln, cmp.Or(cfg.MaxConns, gateway.DefaultMaxConns))); !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP listener failed", "error", err)
		}
	}()
	go func() {
		<-srv.Done()
		// The core has answered every call; let the handlers write those
		// answers before the connections close.
		ctx, cancel := context.WithTimeout(context.Background(), httpWriteOutTimeout)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hs.Close()
	}()
	return nil
}

// limitListener accepts at most n connections at once, as the REPE
// listener does (--max-conns): an idle keep-alive connection holds a
// goroutine and its buffers. Beyond n, Accept waits for one to close, and
// new clients wait in the kernel's backlog rather than being refused.
func limitListener(ln net.Listener, n int) net.Listener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, n)}
}

type limitedListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	nc, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: nc, release: func() { <-l.slots }}, nil
}

// limitedConn gives its slot back once, on its first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
