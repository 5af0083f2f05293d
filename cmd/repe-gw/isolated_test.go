//go:build linux

package main

import (
	"fmt"
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

// TestIsolatedMode runs the real binary with a plugin in a worker process
// (mode: isolated in the file) beside the calculator in-process: the
// plugin's segfault costs its caller ec 9, the calculator answers, and the
// plugin serves again; a SIGTERM then stops the gateway and its worker.
func TestIsolatedMode(t *testing.T) {
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
  - path: %s
`, crash, calc), 0o644))

	g := startGateway(t, bin, "--config", conf)
	g.waitLog(t, "mode=isolated")
	c, other := g.dial(t), g.dial(t)
	c.Send(gatewaytest.Request(1, "/crash/segv", ""))
	m := c.Next()
	assert.Equal(t, repe.ConnectionFailure, m.EC(), "%s", m.Body())
	assert.Contains(t, string(m.Body()), "SIGSEGV")
	other.Send(gatewaytest.Request(2, "/calculator/value", ""))
	assert.Equal(t, repe.OK, other.Next().EC())
	id := uint64(10)
	require.Eventually(t, func() bool {
		id++
		c.Send(gatewaytest.Request(id, "/crash/ping", ""))
		return c.Next().EC() == repe.OK
	}, gatewaytest.Timeout, 10*time.Millisecond)

	g.signal(t, 15, "shutting down")
	assert.Equal(t, exitOK, g.waitExit(t), "%s", g.log())
}
