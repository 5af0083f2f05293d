package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/repe-gw/repe-gw/bridge"
	"github.com/repe-gw/repe-gw/gateway"
)

// Bounds of the HTTP listener, as an HTTP server facing clients needs:
// headers (as net/http's default), the time to send them, and how long a
// keep-alive connection may wait for its next request. A WebSocket, once
// upgraded, is the core's, with the REPE limits.
const (
	httpMaxHeaderBytes    = 1 << 20
	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	// httpWriteOutTimeout bounds how long the handlers of calls the core
	// answered during shutdown have to write their responses.
	httpWriteOutTimeout = 5 * time.Second
)

// startHTTP serves the bridge on addr until srv has shut down: by then
// every WebSocket and call has been drained by the core, and new ones are
// refused (503) from the start of the shutdown. A plugin whose root the
// bridge reserves stops the start.
func startHTTP(log *slog.Logger, addr string, srv *gateway.Server, cfg gateway.Config) error {
	for _, p := range srv.PluginStats() {
		if bridge.Reserved(p.Root) {
			return fmt.Errorf("--http-addr: plugin %s at %s is refused: /repe and /jsonrpc belong to the HTTP listener", p.Name, p.Root)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	hs := &http.Server{
		Handler:           bridge.New(srv, bridge.Config{MaxMessageSize: cfg.MaxMessageSize, Logger: log}),
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
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
