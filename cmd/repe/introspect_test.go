package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// TestPluginsAndStats runs repe plugins and repe stats against a running
// gateway, as tables and as JSON.
func TestPluginsAndStats(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{Hashes: map[string]string{"/calculator": "0123456789abcdef0123"}},
		gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/x"))
	t.Setenv("REPE_ADDR", srv.Addr().String())

	r := runCLI(t, "", "plugins")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, ""+
		"NAME        VERSION  ROOT         MODE       STATE    SHA256\n"+
		"calculator  1.0.0    /calculator  inprocess  serving  0123456789ab\n"+
		"x           1.0.0    /x           inprocess  serving  \n", r.stdout)

	require.Equal(t, 0, runCLI(t, "", "set", "/calculator/value", "2").code)
	require.Equal(t, 2, runCLI(t, "", "get", "/calculator/nope").code)
	// The server counts a close when it reads it, which may be after the
	// command has exited.
	require.Eventually(t, func() bool { return srv.Stats().Open == 0 }, gatewaytest.Timeout, time.Millisecond)
	r = runCLI(t, "", "stats")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "PLUGIN      ROOT         REPLIES  ERRORS  NOTIFIES")
	assert.Regexp(t, `(?m)^calculator  /calculator  2        1       0 `, r.stdout)
	// Each command is a connection of its own; the one asking is open.
	assert.Regexp(t, `(?m)^tcp        1     4         3        1       0 `, r.stdout)
	assert.Regexp(t, `(?m)^tls        0     0         0        0       0 `, r.stdout)

	r = runCLI(t, "", "--json", "stats")
	require.Equal(t, 0, r.code, r.stderr)
	var stats struct {
		Plugins []struct {
			Name    string
			Replies map[string]uint64
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &stats))
	assert.Equal(t, map[string]uint64{"0": 1, "6": 1}, stats.Plugins[0].Replies)

	r = runCLI(t, "", "plugins", "extra")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "repe: plugins takes no argument but its flags (see repe -h)\n", r.stderr)
}
