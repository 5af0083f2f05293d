package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// TestIntrospection: the gateway answers about itself at its reserved root,
// in JSON, to any REPE client.
func TestIntrospection(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{Version: "v1.2.3", Hashes: map[string]string{"/gw": "abc123"}},
		gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	ask := func(id uint64, query string, v any) {
		t.Helper()
		c.Send(gatewaytest.Request(id, query, ""))
		m := c.Next()
		require.Equal(t, repe.OK, m.EC(), "%s: %s", query, m.Body())
		require.Equal(t, repe.BodyJSON, m.BodyFormat())
		require.NoError(t, json.Unmarshal(m.Body(), v), "%s: %s", query, m.Body())
	}
	c.Send(gatewaytest.Request(1, "/gw/ping", ""))
	c.Next()

	var plugins []map[string]string
	ask(2, "/_gw/plugins", &plugins)
	assert.Equal(t, []map[string]string{{"name": "gw", "version": "1.0.0", "root": "/gw", "mode": "inprocess", "state": "serving", "sha256": "abc123"}}, plugins)

	var version, health map[string]string
	ask(3, "/_gw/version", &version)
	assert.Equal(t, "v1.2.3", version["version"])
	ask(4, "/_gw/health", &health)
	assert.Equal(t, "serving", health["status"])

	var stats struct {
		Connections struct{ Accepted, Open uint64 }
		Plugins     []struct {
			Name    string
			Replies map[string]uint64
		}
	}
	ask(5, "/_gw/stats", &stats)
	assert.Equal(t, uint64(1), stats.Connections.Accepted)
	require.Len(t, stats.Plugins, 1)
	assert.Equal(t, map[string]uint64{"0": 1}, stats.Plugins[0].Replies)

	c.Send(gatewaytest.Request(6, "/_gw/nope", ""))
	assertReply(t, c.Next(), 6, repe.MethodNotFound, "invalid_query: /_gw/nope")
}

// TestReservedRootIsRefused: a plugin may not claim the gateway's root or a
// root below it.
func TestReservedRootIsRefused(t *testing.T) {
	for _, root := range []string{"/_gw", "/_gw/mine"} {
		host, errs := pluginhost.Load([]string{gatewaytest.TestPlugin(t, root)})
		require.Empty(t, errs)
		_, err := gateway.New(gateway.Config{}, host.Plugins())
		require.Error(t, err, root)
		assert.Contains(t, err.Error(), "which the gateway reserves for itself")
	}
}
