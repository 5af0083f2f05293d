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

// TestAdminWorkerRestarts: each restart of an isolated plugin's worker is
// counted in /metrics; an in-process plugin has no such series.
func TestAdminWorkerRestarts(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	crash, err := plugintest.BuildTo(dir, plugintest.RepoPath("isolate/testdata/crashplugin.c"))
	require.NoError(t, err)
	conf := filepath.Join(dir, "repe-gw.yaml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `plugins:
  - path: %s
    mode: isolated
`, crash), 0o600))
	g, admin := startAdminGateway(t, bin, "--config", conf, "--plugin", gatewaytest.Calculator(t))
	restarts := func() float64 {
		return metricValue(t, scrapeMetrics(t, admin), "repe_gw_worker_restarts_total", map[string]string{"plugin": "crashplugin"})
	}
	assert.Zero(t, restarts())

	c := g.dial(t)
	for i := range 2 {
		c.Send(gatewaytest.Request(uint64(i), "/crash/segv", ""))
		assert.Equal(t, repe.ConnectionFailure, c.Next().EC())
		require.Eventually(t, func() bool { return restarts() == float64(i+1) }, gatewaytest.Timeout, time.Millisecond,
			"restart %d counted", i+1)
	}
	for _, s := range scrapeMetrics(t, admin)["repe_gw_worker_restarts_total"].Metric {
		assert.Equal(t, "crashplugin", s.Label[0].GetValue(), "only isolated plugins have the series")
	}
}
