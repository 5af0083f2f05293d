package bridge

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// serveBridge serves the calculator through a Bridge on a loopback HTTP
// server, and returns its ws:// URL of /repe.
func serveBridge(t *testing.T, cfg gateway.Config) (*gateway.Server, string) {
	t.Helper()
	srv, _ := gatewaytest.Serve(t, cfg, gatewaytest.Calculator(t))
	hs := httptest.NewServer(New(srv, Config{MaxMessageSize: cfg.MaxMessageSize}))
	// Registered after Serve's cleanup, so run before it: the HTTP server
	// stops first, then the gateway drains.
	t.Cleanup(hs.Close)
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/repe"
}

func wsClient(t *testing.T, url string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	c, err := client.Dial(ctx, "", &client.Config{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return DialWebSocket(ctx, url, 0)
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestWebSocketClient: the Go client, over WebSocket, calls the
// calculator through the core, and concurrent calls on its pool each get
// their own reply.
func TestWebSocketClient(t *testing.T) {
	_, url := serveBridge(t, gateway.Config{})
	c := wsClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()

	r, err := c.Call(ctx, "/calculator/set_value", []byte("41.5"))
	require.NoError(t, err)
	assert.Equal(t, "null", string(r.Body))
	r, err = c.Call(ctx, "/calculator/increment", nil)
	require.NoError(t, err)
	assert.Equal(t, "42.5", string(r.Body))
	_, err = c.Call(ctx, "/nope", nil)
	assert.ErrorIs(t, err, repe.MethodNotFound)
	assert.ErrorContains(t, err, "No plugin registered for path")

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				r, err := c.Call(ctx, "/calculator/value", nil)
				if assert.NoError(t, err) {
					assert.Equal(t, "42.5", string(r.Body))
				}
			}
		})
	}
	wg.Wait()
}

// TestWebSocketMessages: requests sent in one message, as a pipelining
// peer may, are answered one frame per binary message; a text message
// closes the connection.
func TestWebSocketMessages(t *testing.T) {
	_, url := serveBridge(t, gateway.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()

	batch := append(gatewaytest.Request(1, "/calculator/set_value", "2"), gatewaytest.Request(2, "/calculator/increment", "")...)
	batch = append(batch, gatewaytest.Request(3, "/nope", "")...)
	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, batch))
	for _, want := range []struct {
		id   uint64
		ec   repe.ErrorCode
		body string
	}{{1, 0, "null"}, {2, 0, "3"}, {3, repe.MethodNotFound, "No plugin registered for path"}} {
		typ, b, err := ws.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageBinary, typ)
		m := repe.Message(b)
		require.Equal(t, uint64(len(b)), m.Length(), "one whole frame per message")
		assert.Equal(t, want.id, m.ID())
		assert.Equal(t, want.ec, m.EC())
		assert.Equal(t, want.body, string(m.Body()))
	}

	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("hello")))
	_, _, err = ws.Read(ctx)
	assert.Error(t, err, "a text message is no REPE")
}

// TestWebSocketLimits: the core's limits hold on a WebSocket, as on TCP:
// a frame over MaxMessageSize is refused with ec 2, then closed.
func TestWebSocketLimits(t *testing.T) {
	_, url := serveBridge(t, gateway.Config{MaxMessageSize: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()

	big := gatewaytest.Request(7, "/calculator/set_value", strings.Repeat("1", 2000))
	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, big[:100]))
	_, b, err := ws.Read(ctx)
	require.NoError(t, err)
	m := repe.Message(b)
	assert.Equal(t, repe.InvalidHeader, m.EC())
	assert.Contains(t, string(m.Body()), "REPE message exceeds maximum allowed size")
	_, _, err = ws.Read(ctx)
	assert.Error(t, err, "closed after the error")
}
