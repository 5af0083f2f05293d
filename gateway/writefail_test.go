package gateway_test

import (
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestLargeReplyToAResetClient: a worker's large reply is written on its
// own, and when that write fails because the client reset the connection,
// the event loop closes the connection within the write, which frees the
// job. Serving must stop there, not read the freed job (which panicked),
// and the loop goes on serving its other connections.
//
// To have the write fail, the reset must reach the socket after the loop
// last polled it and before it writes the reply: one event loop, busy with
// another connection's long inline call while the job finishes and its
// client resets.
func TestLargeReplyToAResetClient(t *testing.T) {
	var logs logBuffer
	srv, _ := gatewaytest.Serve(t, gateway.Config{
		EventLoops:   1,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
		InlineBudget: time.Hour, // /slow's calls run on the event loop
		// A deadline keeps /gw's calls off the loop.
		Policies: map[string]gateway.Policy{"/gw": {Deadline: time.Minute}},
	}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))

	// Fast calls first: /slow must prove fast to be called inline, and
	// /gw's short average puts reset's two requests in one job. Then busy's
	// second request blocks the loop for a second, in the wake-up that
	// answers its first, on a worker, so that reset's wake-up waits behind
	// it.
	busy := gatewaytest.Dial(t, srv.Addr())
	for id := uint64(100); id < 200; id++ {
		busy.Send(gatewaytest.Request(id, "/slow/ping", ""))
		busy.Next()
		busy.Send(gatewaytest.Request(id, "/gw/ping", ""))
		busy.Next()
	}
	busy.Send(slices.Concat(gatewaytest.Request(1, "/gw/nap", "50"), gatewaytest.Request(2, "/slow/nap", "1000")))
	// Meanwhile reset's job finishes with a reply far over the size written
	// apart, and its client resets the connection before the loop is free.
	reset := gatewaytest.Dial(t, srv.Addr())
	reset.Send(slices.Concat(gatewaytest.Request(1, "/gw/nap", "100"), gatewaytest.Request(2, "/gw/fill", "1000000")))
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, reset.Conn.(*net.TCPConn).SetLinger(0))
	require.NoError(t, reset.Close())

	for id := uint64(1); id <= 2; id++ {
		m := busy.Next()
		require.Equal(t, id, m.ID())
		require.Equal(t, repe.OK, m.EC())
	}
	busy.Send(gatewaytest.Request(3, "/gw/ping", ""))
	assert.Equal(t, repe.OK, busy.Next().EC())
	require.Eventually(t, func() bool { return srv.Stats().Open == 1 }, gatewaytest.Timeout, 10*time.Millisecond)
	// The panic closed a connection the write had closed already, so only
	// the log tells of it.
	assert.NotContains(t, logs.String(), "panic")
}
