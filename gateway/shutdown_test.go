package gateway_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestShutdownDeadline: when the deadline passes with a call still running,
// Shutdown says so; the call's late end reaches no stopped event loop, and a
// second Shutdown waits for the event loops.
func TestShutdownDeadline(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/slow"))
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(gatewaytest.Request(1, "/slow/sleep", ""))
	c.Send(gatewaytest.Request(2, "/slow/sleep", ""))
	time.Sleep(20 * time.Millisecond) // the first call is running

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := srv.Shutdown(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Contains(t, err.Error(), "shutdown deadline")

	require.NoError(t, srv.Shutdown(t.Context()), "a second Shutdown waits for the event loops")
	<-srv.Done()
}

// TestShutdownWhileConnecting: connections that arrive while Shutdown
// drains are refused or drained, never missed: Shutdown returns well before
// its deadline.
func TestShutdownWhileConnecting(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	var stop atomic.Bool
	var answered atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				c, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					continue
				}
				// A connection left unserved must fail the test, not stall it.
				_ = c.SetDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(gatewaytest.Request(1, "/gw/ping", "")); err == nil {
					reply := make([]byte, repe.HeaderSize)
					if n, _ := c.Read(reply); n > 0 {
						answered.Add(1)
					}
				}
				c.Close()
			}
		})
	}
	require.Eventually(t, func() bool { return answered.Load() > 100 }, gatewaytest.Timeout, time.Millisecond)
	err := srv.Shutdown(t.Context())
	stop.Store(true)
	wg.Wait()
	require.NoError(t, err)
}

// TestTimersRace closes connections by read and idle timeouts while others
// come and go, without any plugin call: a plugin call synchronises in the
// race detector's eyes, and would hide a race between the sweeper and the
// event loops.
func TestTimersRace(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{ReadTimeout: 5 * time.Millisecond, IdleTimeout: 5 * time.Millisecond})
	half := gatewaytest.Request(1, "/nowhere", "")[:20]
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				c, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					continue
				}
				_ = c.SetDeadline(time.Now().Add(gatewaytest.Timeout))
				switch (g + i) % 3 {
				case 0: // half a frame: the read timeout closes it
					_, _ = c.Write(half)
				case 1: // a request for no plugin, then idle
					_, _ = c.Write(gatewaytest.Request(1, "/nowhere", ""))
				}
				if (g+i)%2 == 0 {
					_, _ = c.Read(make([]byte, 256)) // until answered or closed
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	assert.NotZero(t, srv.Stats().ReadTimeouts+srv.Stats().IdleTimeouts)
}
