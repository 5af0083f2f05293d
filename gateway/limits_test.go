package gateway_test

import (
	"bytes"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestPluginConcurrencyOfOneIsNeverExceeded: with PluginConcurrency 1, a
// plugin that counts the calls inside it at once never sees two, whatever
// path the calls take: inline on several event loops, on workers, and large
// frames read straight into a worker's job.
func TestPluginConcurrencyOfOneIsNeverExceeded(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{PluginConcurrency: 1, EventLoops: 4}, gatewaytest.TestPlugin(t, "/gw"))
	large := repe.AppendMessage(nil, repe.Header{BodyFormat: repe.BodyRaw}, "/gw/count", bytes.Repeat([]byte{'x'}, 100<<10))
	var wg sync.WaitGroup
	for conn := range 12 {
		wg.Go(func() {
			c := gatewaytest.Dial(t, srv.Addr())
			for round := range 20 {
				// Runs of small calls become inline once the plugin has
				// proven fast; every third connection mixes in large frames.
				var batch []byte
				for range 32 {
					batch = append(batch, gatewaytest.Request(0, "/gw/count", "")...)
				}
				if conn%3 == 0 && round%4 == 0 {
					batch = append(batch, large...)
				}
				c.Send(batch)
				for range countFrames(batch) {
					if m := c.Next(); m.EC() != repe.OK {
						t.Errorf("ec %d: %s", m.EC(), m.Body())
						return
					}
				}
			}
		})
	}
	wg.Wait()
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(gatewaytest.Request(1, "/gw/inside", ""))
	assertReply(t, c.Next(), 1, repe.OK, "1")
}

// TestIdleTimeout closes connections with nothing in flight for the idle
// timeout, and never one whose request is still running.
func TestIdleTimeout(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{IdleTimeout: 100 * time.Millisecond}, gatewaytest.TestPlugin(t, "/slow"))
	idle := gatewaytest.Dial(t, srv.Addr())
	busy := gatewaytest.Dial(t, srv.Addr())
	busy.Send(gatewaytest.Request(1, "/slow/sleep", ""))
	busy.Send(gatewaytest.Request(2, "/slow/sleep", "")) // 400 ms in flight in all
	idle.ExpectClosed()
	assertReply(t, busy.Next(), 1, repe.OK, "")
	assertReply(t, busy.Next(), 2, repe.OK, "")
	busy.ExpectClosed() // idle at last
	assert.GreaterOrEqual(t, srv.Stats().IdleTimeouts, uint64(2))
}

// TestMaxConnsPerIP refuses connections from one address beyond the limit,
// and accepts one again once another has closed.
func TestMaxConnsPerIP(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxConnsPerIP: 2}, gatewaytest.TestPlugin(t, "/gw"))
	a := gatewaytest.Dial(t, srv.Addr())
	b := gatewaytest.Dial(t, srv.Addr())
	for _, c := range []*gatewaytest.Conn{a, b} {
		c.Send(gatewaytest.Request(1, "/gw/ping", ""))
		assertReply(t, c.Next(), 1, repe.OK, "")
	}
	gatewaytest.Dial(t, srv.Addr()).ExpectClosed()
	assert.Equal(t, uint64(1), srv.Stats().PerIPRefused)

	require.NoError(t, a.Close())
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		if _, err := c.Write(gatewaytest.Request(7, "/gw/ping", "")); err != nil {
			return false
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		reply := make([]byte, repe.HeaderSize)
		_, err = io.ReadFull(c, reply)
		return err == nil && repe.Message(reply).ID() == 7
	}, gatewaytest.Timeout, 20*time.Millisecond)
}

// TestConfigLimitsAreValidated: limits that cannot work, or whose arithmetic
// would overflow, are refused by New with a one-line reason.
func TestConfigLimitsAreValidated(t *testing.T) {
	for name, cfg := range map[string]gateway.Config{
		"message size over the limit": {MaxMessageSize: math.MaxInt64},
		"message size below a header": {MaxMessageSize: 10},
		"pending output":              {MaxPendingOutput: -1},
		"pending input":               {MaxPendingInput: math.MaxInt},
		"concurrency":                 {PluginConcurrency: math.MaxInt32 + 1},
		"per-IP limit":                {MaxConnsPerIP: -1},
		"idle timeout":                {IdleTimeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := gateway.New(cfg, nil)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

// TestLargeMessageSizeLimit: the largest MaxMessageSize accepted still
// serves small requests (a limit derived from it once wrapped around and
// refused every request).
func TestLargeMessageSizeLimit(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxMessageSize: gateway.MaxMessageSizeLimit}, gatewaytest.TestPlugin(t, "/slow"))
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(gatewaytest.Request(1, "/slow/sleep", ""))
	c.Send(gatewaytest.Request(2, "/slow/ping", ""))
	assertReply(t, c.Next(), 1, repe.OK, "")
	assertReply(t, c.Next(), 2, repe.OK, "")
}

// countFrames returns how many frames b holds.
func countFrames(b []byte) int {
	n := 0
	for len(b) > 0 {
		k, _ := repe.Split(b, 0)
		b = b[k:]
		n++
	}
	return n
}
