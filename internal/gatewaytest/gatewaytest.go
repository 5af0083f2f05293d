// Package gatewaytest runs real gateways for tests and talks to them over raw
// TCP, byte by byte when a test needs it, so that tests see exactly what a
// REPE peer sees.
package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// Timeout bounds every wait of this package, so a broken gateway fails a
// test instead of hanging it.
const Timeout = 10 * time.Second

// Calculator builds the example calculator plugin and returns its path.
func Calculator(tb testing.TB) string {
	tb.Helper()
	return plugintest.Build(tb, plugintest.RepoPath("plugins/calculator/calculator.c"))
}

// TestPlugin builds the gateway's test plugin (gateway/testdata/gwtest.c)
// serving root, named after it: root+"/ping" answers an empty body at once,
// root+"/echo" returns any body with the request's body format,
// root+"/sleep" takes 200 ms, root+"/notify" answers even a notify, and any
// other path is ec 6. Extra cflags follow (such as -DGW_LOG="file").
func TestPlugin(tb testing.TB, root string, cflags ...string) string {
	tb.Helper()
	flags := append([]string{
		fmt.Sprintf("-DGW_NAME=%q", strings.TrimPrefix(root, "/")),
		fmt.Sprintf("-DGW_ROOT=%q", root),
	}, cflags...)
	return plugintest.Build(tb, plugintest.RepoPath("gateway/testdata/gwtest.c"), flags...)
}

// Serve loads the plugins at paths and serves them on 127.0.0.1 with cfg
// (Addr defaults to a free port). At cleanup the server shuts down, then the
// plugins, and the test fails if either does not finish in time.
func Serve(tb testing.TB, cfg gateway.Config, paths ...string) (*gateway.Server, *pluginhost.Host) {
	tb.Helper()
	srv, host, stop := newServer(tb, cfg, paths)
	tb.Cleanup(stop)
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	return srv, host
}

// ServeStream is Serve through the gateway's stream transport, on a
// net.Listener of its own rather than gnet's, and returns the address that
// listener has.
func ServeStream(tb testing.TB, cfg gateway.Config, paths ...string) (*gateway.Server, net.Addr) {
	tb.Helper()
	srv, _, stop := newServer(tb, cfg, paths)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		stop()
		// Shutdown closed the listener: Serve must have returned nil.
		select {
		case err := <-served:
			if err != nil {
				tb.Errorf("gatewaytest: Serve: %v", err)
			}
		case <-time.After(Timeout):
			tb.Errorf("gatewaytest: Serve did not return after Shutdown")
		}
	})
	return srv, ln.Addr()
}

// newServer loads the plugins at paths and makes a server of them with cfg.
// stop shuts the server down, then the plugins, and fails the test if either
// does not finish in time.
func newServer(tb testing.TB, cfg gateway.Config, paths []string) (srv *gateway.Server, host *pluginhost.Host, stop func()) {
	tb.Helper()
	host, errs := pluginhost.Load(paths)
	if len(errs) > 0 {
		tb.Fatalf("gatewaytest: loading plugins: %v", errors.Join(errs...))
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := gateway.New(cfg, host.Plugins())
	if err != nil {
		tb.Fatal(err)
	}
	return srv, host, func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("gatewaytest: gateway shutdown: %v", err)
		}
		if err := host.Close(ctx); err != nil {
			tb.Errorf("gatewaytest: plugin shutdown: %v", err)
		}
	}
}

// Request encodes a request as Glaze's clients do: a JSON-pointer query and,
// when there is a body, body_format JSON.
func Request(id uint64, query, body string) []byte {
	h := repe.Header{ID: id, QueryFormat: repe.QueryJSONPointer}
	if body != "" {
		h.BodyFormat = repe.BodyJSON
	}
	return repe.AppendMessage(nil, h, query, []byte(body))
}

// Notify encodes a request with the notify flag set.
func Notify(query, body string) []byte {
	h := repe.Header{Notify: true, QueryFormat: repe.QueryJSONPointer}
	if body != "" {
		h.BodyFormat = repe.BodyJSON
	}
	return repe.AppendMessage(nil, h, query, []byte(body))
}

// Conn is a client connection that fails its test on any unexpected I/O
// outcome.
type Conn struct {
	tb testing.TB
	net.Conn
	buf []byte // bytes read past the last frame returned
}

// Dial connects to addr; the connection closes at cleanup.
func Dial(tb testing.TB, addr net.Addr) *Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), Timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &Conn{tb: tb, Conn: c}
}

// Send writes b in one write.
func (c *Conn) Send(b []byte) {
	c.tb.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(Timeout)); err != nil {
		c.tb.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		c.tb.Fatalf("gatewaytest: write: %v", err)
	}
}

// Next reads the next whole frame, failing the test on EOF or timeout.
func (c *Conn) Next() repe.Message {
	c.tb.Helper()
	m, err := c.NextWithin(Timeout)
	if err != nil {
		c.tb.Fatalf("gatewaytest: reading a reply: %v", err)
	}
	return m
}

// NextWithin reads the next whole frame, waiting at most d. The frame is
// the caller's to keep.
func (c *Conn) NextWithin(d time.Duration) (repe.Message, error) {
	deadline := time.Now().Add(d)
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		n, err := repe.Split(c.buf, 0)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			m := repe.Message(append([]byte(nil), c.buf[:n]...))
			c.buf = c.buf[n:]
			return m, nil
		}
		var chunk [64 << 10]byte
		k, err := c.Read(chunk[:])
		c.buf = append(c.buf, chunk[:k]...)
		if err != nil {
			if errors.Is(err, io.EOF) && len(c.buf) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// ExpectClosed fails the test unless the server closes the connection,
// without sending anything more, within Timeout.
func (c *Conn) ExpectClosed() {
	c.tb.Helper()
	m, err := c.NextWithin(Timeout)
	switch {
	case err == nil:
		c.tb.Fatalf("gatewaytest: expected the connection to close, got a frame: id=%d ec=%d body=%q", m.ID(), m.EC(), m.Body())
	case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err):
		c.tb.Fatalf("gatewaytest: expected the connection to close: %v", err)
	case len(c.buf) > 0:
		c.tb.Fatalf("gatewaytest: %d stray bytes before the close", len(c.buf))
	}
}

// ExpectSilence fails the test if anything arrives within d or the
// connection closes.
func (c *Conn) ExpectSilence(d time.Duration) {
	c.tb.Helper()
	m, err := c.NextWithin(d)
	var ne net.Error
	switch {
	case err == nil:
		c.tb.Fatalf("gatewaytest: expected silence, got a frame: id=%d ec=%d body=%q", m.ID(), m.EC(), m.Body())
	case !errors.As(err, &ne) || !ne.Timeout():
		c.tb.Fatalf("gatewaytest: expected silence: %v", err)
	case len(c.buf) > 0:
		c.tb.Fatalf("gatewaytest: expected silence, got %d bytes", len(c.buf))
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}
