//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestAdminRequiredPluginFails runs a required plugin in a worker process
// that gives up after one failure: once it crashes, the admin listener
// shows it failed and readiness turns off, while the gateway still serves
// its other plugins.
func TestAdminRequiredPluginFails(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	crash, err := plugintest.BuildTo(dir, plugintest.RepoPath("isolate/testdata/crashplugin.c"))
	require.NoError(t, err)
	calc, err := plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	conf := filepath.Join(dir, "repe-gw.yaml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `plugins:
  - path: %s
    mode: isolated
    required: true
    restart:
      max_failures: 1
  - path: %s
`, crash, calc), 0o600))

	g, admin := startAdminGateway(t, bin, "--config", conf)
	code, _ := adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusOK, code)

	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/crash/segv", ""))
	assert.Equal(t, repe.ConnectionFailure, c.Next().EC())
	require.Eventually(t, func() bool {
		code, _ := adminGet(t, admin, "/readyz", "")
		return code == http.StatusServiceUnavailable
	}, gatewaytest.Timeout, time.Millisecond)
	_, body := adminGet(t, admin, "/readyz", "")
	assert.Equal(t, "required plugin crashplugin failed\n", body)

	_, body = adminGet(t, admin, "/plugins", "")
	var plugins []struct{ Name, Mode, State string }
	require.NoError(t, json.Unmarshal([]byte(body), &plugins))
	assert.Contains(t, plugins, struct{ Name, Mode, State string }{"crashplugin", "isolated", "failed"})
	assert.Contains(t, plugins, struct{ Name, Mode, State string }{"calculator", "inprocess", "serving"})

	c.Send(gatewaytest.Request(2, "/calculator/value", ""))
	assert.Equal(t, repe.OK, c.Next().EC(), "the other plugins serve on")
}
