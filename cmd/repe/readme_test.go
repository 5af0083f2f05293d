package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
)

// TestReadmeCallingIt runs the console session of README.md's "Calling it"
// section, line by line in a shell, against a gateway serving the
// calculator as make run does, and checks that each command prints exactly
// what the README shows (standard output and error together). bin/repe is
// this package's main, built into the test binary.
func TestReadmeCallingIt(t *testing.T) {
	section := readmetest.Section(t, "## Calling it")
	steps := readmetest.Transcript(section)
	require.GreaterOrEqual(t, len(steps), 5, "README.md shows no session")

	makefile, err := os.ReadFile(plugintest.RepoPath("Makefile"))
	require.NoError(t, err)
	require.Contains(t, section, "`make build` puts `repe` in `bin/`")
	require.Contains(t, string(makefile), "build -o bin/ ./cmd/...", "make build no longer puts repe in bin/")

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	dir := filepath.Dir(filepath.Dir(repeBinary(t)))
	for _, s := range steps {
		cmd := exec.Command("sh", "-c", s.Command)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "REPE_ADDR="+srv.Addr().String())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", s.Command, out)
		assert.Equal(t, s.Output, string(out), s.Command)
	}
}
