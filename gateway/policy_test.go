package gateway_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// nap asks the test plugin to sleep for ms milliseconds.
func nap(id uint64, root string, ms int) []byte {
	return gatewaytest.Request(id, root+"/nap", strconv.Itoa(ms))
}

// TestDeadline: a call that passes its deadline is answered ec 7 soon after
// it, the next request on the connection is answered in order, and the
// stuck call is counted until the plugin returns.
func TestDeadline(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{Deadline: 100 * time.Millisecond}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	start := time.Now()
	c.Send(append(nap(1, "/gw", 2000), gatewaytest.Request(2, "/gw/ping", "")...))
	m := c.Next()
	took := time.Since(start)
	require.Equal(t, uint64(1), m.ID())
	require.Equal(t, repe.Timeout, m.EC())
	assert.Contains(t, string(m.Body()), "plugin gw did not answer within its deadline of 100ms")
	t.Logf("ec 7 arrived %v after the request, %v after the deadline", took, took-100*time.Millisecond)
	assert.Less(t, took, 2*time.Second, "the ec 7 waited for the call")
	assertReply(t, c.Next(), 2, repe.OK, "")

	st := srv.PluginStats()[0]
	assert.Equal(t, uint64(1), st.Timeouts)
	assert.Equal(t, 1, st.Stuck)
	assert.Equal(t, uint64(2), st.Duration.Count(), "the call that timed out is timed, at its deadline")
	assert.GreaterOrEqual(t, st.Duration.Sum, 100*time.Millisecond)
	require.Eventually(t, func() bool { return srv.PluginStats()[0].Late == 1 }, gatewaytest.Timeout, 10*time.Millisecond)
	assert.Zero(t, srv.PluginStats()[0].Stuck)
}

// TestQueueSheds: with one slot and a queue of three, a burst of ten
// requests behind a running call gets exactly three served and seven
// refused with ec 8.
func TestQueueSheds(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{Policies: map[string]gateway.Policy{"/gw": {Concurrency: 1, Queue: 3}}},
		gatewaytest.TestPlugin(t, "/gw"))
	first := gatewaytest.Dial(t, srv.Addr())
	first.Send(nap(1, "/gw", 500))
	require.Eventually(t, func() bool { return srv.PluginStats()[0].InFlight == 1 }, gatewaytest.Timeout, time.Millisecond)

	const burst = 10
	conns := make([]*gatewaytest.Conn, burst)
	for i := range conns {
		conns[i] = gatewaytest.Dial(t, srv.Addr())
		conns[i].Send(nap(uint64(i+2), "/gw", 1))
	}
	var mu sync.Mutex
	codes := map[repe.ErrorCode]int{}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			m := c.Next()
			mu.Lock()
			codes[m.EC()]++
			mu.Unlock()
			if m.EC() == repe.SendError {
				assert.Contains(t, string(m.Body()), "plugin gw is busy: 3 requests already wait for it")
			}
		})
	}
	wg.Wait()
	assertReply(t, first.Next(), 1, repe.OK, "")
	assert.Equal(t, map[repe.ErrorCode]int{repe.OK: 3, repe.SendError: 7}, codes)
	assert.Equal(t, uint64(7), srv.PluginStats()[0].Refused)
}

// TestCircuitBreaker: timeouts open the circuit, which refuses at once;
// after the cooldown one probe goes through and its success closes it.
func TestCircuitBreaker(t *testing.T) {
	pol := gateway.Policy{Deadline: 50 * time.Millisecond, Concurrency: 4, CircuitFailures: 2, CircuitCooldown: 300 * time.Millisecond}
	srv, _ := gatewaytest.Serve(t, gateway.Config{Policies: map[string]gateway.Policy{"/gw": pol}}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	for id := uint64(1); id <= 2; id++ {
		c.Send(nap(id, "/gw", 400))
		require.Equal(t, repe.Timeout, c.Next().EC())
	}
	c.Send(gatewaytest.Request(3, "/gw/ping", ""))
	m := c.Next()
	require.Equal(t, repe.SendError, m.EC())
	assert.Contains(t, string(m.Body()), "its circuit opened after 2 timeouts")
	assert.True(t, srv.PluginStats()[0].CircuitOpen)

	id := uint64(4)
	require.Eventually(t, func() bool {
		id++
		c.Send(gatewaytest.Request(id, "/gw/ping", ""))
		return c.Next().EC() == repe.OK
	}, gatewaytest.Timeout, 20*time.Millisecond)
	c.Send(gatewaytest.Request(100, "/gw/ping", ""))
	assertReply(t, c.Next(), 100, repe.OK, "")
	st := srv.PluginStats()[0]
	assert.False(t, st.CircuitOpen)
	assert.Equal(t, uint64(1), st.CircuitOpened)
}

// TestStuckSlotsFailFast: once every slot is stuck in a call past its
// deadline, requests are refused at once instead of queueing behind them,
// and served again once the plugin returns.
func TestStuckSlotsFailFast(t *testing.T) {
	pol := gateway.Policy{Deadline: 50 * time.Millisecond, Concurrency: 1}
	srv, _ := gatewaytest.Serve(t, gateway.Config{Policies: map[string]gateway.Policy{"/gw": pol}}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(nap(1, "/gw", 1000))
	require.Equal(t, repe.Timeout, c.Next().EC())
	c.Send(gatewaytest.Request(2, "/gw/ping", ""))
	m := c.Next()
	require.Equal(t, repe.SendError, m.EC())
	assert.Contains(t, string(m.Body()), "slots is stuck")
	require.Eventually(t, func() bool { return srv.PluginStats()[0].Stuck == 0 }, gatewaytest.Timeout, 10*time.Millisecond)
	c.Send(gatewaytest.Request(3, "/gw/ping", ""))
	assertReply(t, c.Next(), 3, repe.OK, "")
}
