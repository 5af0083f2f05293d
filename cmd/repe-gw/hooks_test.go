package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestHookPluginsFromConfig runs repe-gw with two hook plugins from its
// configuration file: each gets its config: mapping and a data directory,
// logs under its name, and runs in the file's order; at shutdown the audit
// holds every request.
func TestHookPluginsFromConfig(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	for _, src := range []string{"plugins/calculator/calculator.c", "plugins/hooks/ratelimit/ratelimit.c", "plugins/hooks/audit/audit.c"} {
		_, err := plugintest.BuildTo(dir, plugintest.RepoPath(src))
		require.NoError(t, err)
	}
	conf := filepath.Join(dir, "repe-gw.yaml")
	require.NoError(t, os.WriteFile(conf, []byte(`plugins:
  - path: ratelimit.so
    mode: isolated
    config: {rate: 1.0e-9, burst: 2}
  - path: audit.so
    config: {file: requests.jsonl}
  - path: calculator.so
`), 0o644))
	state := t.TempDir()
	addr := freeAddr(t)
	g := spawn(t, bin, []string{"STATE_DIRECTORY=", "XDG_STATE_HOME=" + state}, addr, "--config", conf, "--addr", addr)
	g.waitLog(t, "msg=listening")

	log := g.log()
	assert.Contains(t, log, "hook plugin loaded in-process: isolation does not apply to hook plugins")
	assert.Regexp(t, `msg="hook plugin loaded" plugin=ratelimit `, log)
	assert.Regexp(t, `msg="auditing to \S+/repe-gw/audit/requests.jsonl" plugin=audit`, log)

	c := g.dial(t)
	for id := range uint64(3) {
		c.Send(gatewaytest.Request(id, "/calculator/get_value", ""))
		m := c.Next()
		if id < 2 {
			assert.Equal(t, repe.OK, m.EC())
		} else {
			assert.Equal(t, repe.InvalidQuery, m.EC())
			assert.Equal(t, "rate limit exceeded", string(m.Body()))
		}
	}
	g.signal(t, syscall.SIGTERM, `msg="shutting down"`)
	assert.Equal(t, exitOK, g.waitExit(t), g.log())

	audit, err := os.ReadFile(filepath.Join(state, "repe-gw", "audit", "requests.jsonl"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(audit)), "\n")
	require.Len(t, lines, 3, string(audit))
	for id, line := range lines {
		assert.Contains(t, line, fmt.Sprintf(`"id":%d,`, id))
	}
	assert.Contains(t, lines[2], `"ec":3,`, "the rate limiter runs first, the audit sees its rejection")
}

// TestDataDirFlag: --data-dir puts each plugin's data directory under it,
// over the environment's defaults.
func TestDataDirFlag(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	for _, src := range []string{"plugins/calculator/calculator.c", "plugins/hooks/audit/audit.c"} {
		_, err := plugintest.BuildTo(dir, plugintest.RepoPath(src))
		require.NoError(t, err)
	}
	conf := filepath.Join(dir, "repe-gw.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("plugins:\n  - path: audit.so\n    config: {file: requests.jsonl}\n  - path: calculator.so\n"), 0o644))
	data, elsewhere := t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	g := spawn(t, bin, []string{"STATE_DIRECTORY=" + elsewhere, "XDG_STATE_HOME=" + elsewhere}, addr,
		"--config", conf, "--addr", addr, "--data-dir", data)
	g.waitLog(t, "msg=listening")
	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/calculator/get_value", ""))
	assert.Equal(t, repe.OK, c.Next().EC())
	g.signal(t, syscall.SIGTERM, `msg="shutting down"`)
	assert.Equal(t, exitOK, g.waitExit(t), g.log())

	audit, err := os.ReadFile(filepath.Join(data, "audit", "requests.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(audit), "\n"), string(audit))
	info, err := os.Stat(filepath.Join(data, "audit"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	entries, err := os.ReadDir(elsewhere)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing under the environment's default")
}
