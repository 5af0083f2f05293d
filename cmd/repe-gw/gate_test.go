package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// gate is the directory through which tests drive the gate plugin
// (testdata/gate.c): the plugin records its events there, and waits in its
// init or in a call until the test creates a file there. Tests order
// events by what happened, never by how long they waited.
type gate string

func newGate(t *testing.T) gate { return gate(t.TempDir()) }

// build compiles a gate plugin named name, serving root, into dir. With
// holdInit its init waits for open("init-go").
func (g gate) build(t *testing.T, dir, name, root string, holdInit bool) string {
	t.Helper()
	flags := []string{
		fmt.Sprintf("-DGATE_DIR=%q", string(g)),
		fmt.Sprintf("-DGATE_NAME=%q", name),
		fmt.Sprintf("-DGATE_ROOT=%q", root),
	}
	if holdInit {
		flags = append(flags, "-DGATE_HOLD_INIT")
	}
	so, err := plugintest.BuildTo(dir, plugintest.RepoPath("cmd/repe-gw/testdata/gate.c"), flags...)
	require.NoError(t, err)
	return so
}

// open lets the plugin go on past the wait for file: "init-go" or "go".
func (g gate) open(t *testing.T, file string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(string(g), file), nil, 0o644))
}

// events returns the events recorded so far, one per line.
func (g gate) events(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(g), "events"))
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

// waitEvent waits until the plugin has recorded line.
func (g gate) waitEvent(t *testing.T, line string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return strings.Contains(g.events(t), line+"\n")
	}, gatewaytest.Timeout, time.Millisecond, "no %q among the plugin's events:\n%s", line, g.events(t))
}
