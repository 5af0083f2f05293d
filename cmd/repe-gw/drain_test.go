package main

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// TestDrainRefusesNewConnections is the old gateway's side of an upgrade,
// alone on its port: on SIGTERM it serves new connections through
// --shutdown-delay, then closes its listener as the drain begins, so a new
// dial is refused, while the connections it had accepted get the replies
// to what they had sent and then a clean end.
func TestDrainRefusesNewConnections(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	g, _ := startAdminGateway(t, bin, "--plugins", pluginDir(t, gt), "--reuse-port", "--shutdown-delay", "300ms")
	busy := g.dial(t)
	busy.Send(gatewaytest.Request(1, "/gate/wait", ""))
	gt.waitEvent(t, "gate wait 1")
	idle := g.dial(t)
	idle.Send(gatewaytest.Request(2, "/calculator/value", ""))
	assert.Equal(t, "0", string(idle.Next().Body()))

	signalled := time.Now()
	g.signal(t, syscall.SIGTERM, `msg="not ready: serving on until the shutdown delay ends"`)
	var last error
	require.Eventually(t, func() bool {
		nc, err := net.Dial("tcp", g.addr)
		if err == nil {
			nc.Close() // the delay has not ended yet
		}
		last = err
		return errors.Is(err, syscall.ECONNREFUSED)
	}, gatewaytest.Timeout, time.Millisecond, "a new connection is refused once the drain begins; last dial: %v", last)
	assert.GreaterOrEqual(t, time.Since(signalled), 300*time.Millisecond, "refused only once the shutdown delay had ended")

	// The call accepted before is still held in the plugin; once it
	// returns, it is answered, and both connections end cleanly.
	assert.Equal(t, "gate init\ngate wait 1\n", gt.events(t))
	gt.open(t, "go")
	reply := busy.Next()
	assert.Equal(t, uint64(1), reply.ID())
	assert.Equal(t, `"released"`, string(reply.Body()))
	for _, c := range []*gatewaytest.Conn{busy, idle} {
		_, err := c.NextWithin(gatewaytest.Timeout)
		assert.ErrorIs(t, err, io.EOF, "a clean end")
	}
	assert.Equal(t, exitOK, g.waitExit(t), g.log())
}
