package gateway_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// okReplies returns how many replies with ec 0 st counts for root.
func okReplies(stats []gateway.PluginStats, root string) uint64 {
	for _, st := range stats {
		if st.Root != root {
			continue
		}
		for _, r := range st.Replies {
			if r.EC == 0 {
				return r.Count
			}
		}
	}
	return 0
}

// TestReloadSwap: a swap keeps the lanes of plugins it keeps as they were,
// counts and all; a new policy makes a new lane; a plugin dropped gets
// ec 6 at once; a clash changes nothing; every reload is counted.
func TestReloadSwap(t *testing.T) {
	srv, host := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/a"), gatewaytest.TestPlugin(t, "/b"))
	a, b := host.Plugins()[0], host.Plugins()[1]
	c := gatewaytest.Dial(t, srv.Addr())
	call := func(query string) repe.Message {
		t.Helper()
		c.Send(gatewaytest.Request(1, query, ""))
		return c.Next()
	}
	for range 5 {
		require.Equal(t, repe.OK, call("/a/ping").EC())
		require.Equal(t, repe.OK, call("/b/ping").EC())
	}

	_, err := srv.Swap(gateway.Routes{Plugins: []*pluginhost.Plugin{a, b}})
	require.NoError(t, err)
	assert.Equal(t, uint64(5), okReplies(srv.PluginStats(), "/a"), "a kept lane keeps its counts")
	assert.Equal(t, uint64(5), okReplies(srv.PluginStats(), "/b"))

	retired, err := srv.Swap(gateway.Routes{Plugins: []*pluginhost.Plugin{a, b},
		Policies: map[string]gateway.Policy{"/b": {Deadline: time.Second}}})
	require.NoError(t, err)
	require.NoError(t, retired.Wait(context.Background()))
	assert.Equal(t, uint64(5), okReplies(srv.PluginStats(), "/a"))
	assert.Zero(t, okReplies(srv.PluginStats(), "/b"), "a new policy is a new lane")
	require.Equal(t, repe.OK, call("/b/ping").EC())

	retired, err = srv.Swap(gateway.Routes{Plugins: []*pluginhost.Plugin{a}})
	require.NoError(t, err)
	require.NoError(t, retired.Wait(context.Background()))
	assert.Equal(t, repe.MethodNotFound, call("/b/ping").EC())
	assert.Len(t, srv.PluginStats(), 1)

	_, err = srv.Swap(gateway.Routes{Plugins: []*pluginhost.Plugin{a, a}})
	require.ErrorContains(t, err, "both claim root /a")
	require.Equal(t, repe.OK, call("/a/ping").EC())

	st := srv.Reloads()
	assert.Equal(t, uint64(3), st.OK)
	assert.Equal(t, uint64(1), st.Failed)
	assert.True(t, st.LastFailed)
	assert.False(t, st.Last.IsZero())
	assert.Equal(t, []gateway.ECCount{{EC: uint32(repe.MethodNotFound), Count: 1}}, srv.Stats().Replies)
}

// TestReloadSwapUnderLoad swaps new lanes in for the same plugins again
// and again while pipelined requests run on the event loops and on
// workers: every request is answered ec 0, in order, and every retired
// lane drains. Run it with -race.
func TestReloadSwapUnderLoad(t *testing.T) {
	srv, host := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/a"), gatewaytest.TestPlugin(t, "/b"))
	plugins := host.Plugins()
	const conns, depth = 4, 16
	var stop atomic.Bool
	var wg sync.WaitGroup
	var answered atomic.Int64
	for i := range conns {
		c := gatewaytest.Dial(t, srv.Addr())
		wg.Go(func() {
			query := []string{"/a/ping", "/b/ping"}[i%2]
			for id := uint64(0); !stop.Load(); {
				var batch []byte
				for k := range depth {
					batch = append(batch, gatewaytest.Request(id+uint64(k), query, "")...)
				}
				c.Send(batch)
				for range depth {
					m := c.Next()
					if !assert.Equal(t, id, m.ID()) || !assert.Equal(t, repe.OK, m.EC(), "%s", m.Body()) {
						return
					}
					id++
					answered.Add(1)
				}
			}
		})
	}
	for i := range 100 {
		// b alternates between a deadline (calls on workers) and none
		// (calls that may run inline), so each swap retires its lane.
		var pol map[string]gateway.Policy
		if i%2 == 0 {
			pol = map[string]gateway.Policy{"/b": {Deadline: time.Minute}}
		}
		retired, err := srv.Swap(gateway.Routes{Plugins: plugins, Policies: pol})
		require.NoError(t, err)
		require.NoError(t, retired.Wait(context.Background()))
		base := answered.Load()
		require.Eventually(t, func() bool { return answered.Load() > base || t.Failed() }, gatewaytest.Timeout, time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
}
