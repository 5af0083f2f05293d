package main

import (
	"context"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/bridge"
	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// TestWebSocket runs the gateway with --http-addr and calls the calculator
// with the Go client over a WebSocket; on SIGTERM the connection is
// drained and the gateway exits 0.
func TestWebSocket(t *testing.T) {
	httpAddr := freeAddr(t)
	g := startGateway(t, buildGateway(t), "--plugin", gatewaytest.Calculator(t), "--http-addr", httpAddr)
	g.waitLog(t, `msg="listening for HTTP" addr=`+httpAddr)

	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	c, err := client.Dial(ctx, "", &client.Config{Conns: 1, Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return bridge.DialWebSocket(ctx, "ws://"+httpAddr+"/repe", 0)
	}})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Call(ctx, "/calculator/set_value", []byte("9"))
	require.NoError(t, err)
	r, err := c.Call(ctx, "/calculator/increment", nil)
	require.NoError(t, err)
	assert.Equal(t, "10", string(r.Body))

	g.signal(t, syscall.SIGTERM, `msg="shutting down"`)
	assert.Equal(t, exitOK, g.waitExit(t), g.log())
	_, err = c.Call(ctx, "/calculator/value", nil)
	assert.Error(t, err, "the WebSocket closed with the gateway")
}

// TestHTTPReservedRoot: a plugin at /jsonrpc could not be reached over
// HTTP, so with --http-addr the gateway does not start, and says why.
func TestHTTPReservedRoot(t *testing.T) {
	g := start(t, buildGateway(t), "--plugin", gatewaytest.TestPlugin(t, "/jsonrpc"), "--http-addr", freeAddr(t))
	assert.Equal(t, exitFailure, g.waitExit(t))
	assert.Contains(t, g.log(), "--http-addr: plugin jsonrpc at /jsonrpc is refused: /repe and /jsonrpc belong to the HTTP listener")
}

// TestHTTPMaxConns: the HTTP listener holds at most --max-conns
// connections; a client beyond waits until one closes.
func TestHTTPMaxConns(t *testing.T) {
	httpAddr := freeAddr(t)
	g := startGateway(t, buildGateway(t), "--plugin", gatewaytest.Calculator(t), "--http-addr", httpAddr, "--max-conns", "1")
	g.waitLog(t, `msg="listening for HTTP" addr=`+httpAddr)

	first, err := net.Dial("tcp", httpAddr)
	require.NoError(t, err)
	get := func(timeout time.Duration) error {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + httpAddr + "/calculator/value")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	assert.Error(t, get(300*time.Millisecond), "waits while the first connection is open")
	require.NoError(t, first.Close())
	assert.NoError(t, get(gatewaytest.Timeout))
}
