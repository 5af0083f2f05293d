package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/bridge"
	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// TestHTTPLimits: the HTTP listener cuts off a client that stalls or
// trickles its body (--http-read-timeout), refuses a body over the REPE
// maximum before reading more of it, refuses headers over
// --http-max-header-size, and closes keep-alive connections idle for
// --http-idle-timeout; a WebSocket, once upgraded, outlives the read
// timeout.
func TestHTTPLimits(t *testing.T) {
	httpAddr := freeAddr(t)
	const readTimeout = 300 * time.Millisecond
	g := startGateway(t, buildGateway(t), "--plugin", gatewaytest.Calculator(t), "--http-addr", httpAddr,
		"--http-read-timeout", readTimeout.String(), "--http-idle-timeout", "400ms",
		"--http-max-header-size", "4KiB", "--max-message-size", "64KiB")
	g.waitLog(t, `msg="listening for HTTP" addr=`+httpAddr)

	// send writes head and then body, a chunk each pause, and returns the
	// response and whether the connection closed after it.
	send := func(head string, body []string, pause time.Duration) (*http.Response, bool) {
		t.Helper()
		nc, err := net.Dial("tcp", httpAddr)
		require.NoError(t, err)
		defer nc.Close()
		require.NoError(t, nc.SetDeadline(time.Now().Add(gatewaytest.Timeout)))
		_, err = io.WriteString(nc, head)
		require.NoError(t, err)
		go func() {
			for _, b := range body {
				if _, err := io.WriteString(nc, b); err != nil {
					return
				}
				time.Sleep(pause)
			}
		}()
		rd := bufio.NewReader(nc)
		resp, err := http.ReadResponse(rd, nil)
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		// Closed: an end, or a reset when the server closed with part of
		// the request unread.
		_, err = rd.ReadByte()
		return resp, err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	post := func(length string) string {
		return "POST /calculator/set_value HTTP/1.1\r\nHost: gw\r\nContent-Length: " + length + "\r\n\r\n"
	}

	start := time.Now()
	resp, closed := send(post("100"), []string{"1"}, 0)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "a stalled body")
	assert.True(t, closed)
	assert.GreaterOrEqual(t, time.Since(start), readTimeout)

	trickle := make([]string, 200)
	for i := range trickle {
		trickle[i] = " "
	}
	resp, closed = send(post("200"), trickle, 20*time.Millisecond)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "a body trickled a byte at a time")
	assert.True(t, closed)

	// Over the REPE maximum: refused once the maximum is read, not read on.
	resp, closed = send(post("100000000"), []string{strings.Repeat("1", 128<<10)}, time.Hour)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.True(t, closed)

	// net/http answers 431 and hangs up with the headers' rest unread, so
	// the client may see a reset before the answer: either way, no 200.
	req, err := http.NewRequest("GET", "http://"+httpAddr+"/calculator/value", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 8<<10))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	}

	// A keep-alive connection, idle after its request, is closed.
	resp, closed = send("GET /calculator/value HTTP/1.1\r\nHost: gw\r\n\r\n", nil, 0)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, closed, "closed once idle for --http-idle-timeout")

	// A WebSocket is the core's once upgraded: the HTTP deadlines are gone.
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	c, err := client.Dial(ctx, "", &client.Config{Conns: 1, Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return bridge.DialWebSocket(ctx, "ws://"+httpAddr+"/repe", 0)
	}})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Call(ctx, "/calculator/value", nil)
	require.NoError(t, err)
	time.Sleep(2 * readTimeout)
	_, err = c.Call(ctx, "/calculator/value", nil)
	assert.NoError(t, err, "the WebSocket outlives the HTTP read timeout")
}
