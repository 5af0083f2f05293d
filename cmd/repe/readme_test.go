package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// readmeSection returns the section of README.md under heading, up to the
// next heading of its level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(plugintest.RepoPath("README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	require.True(t, ok, "README.md has no %q", heading)
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}

// transcriptStep is one "$ command" line of a console block and the output
// shown under it.
type transcriptStep struct {
	command string
	output  string
}

// transcript reads the console blocks of a README section.
func transcript(section string) []transcriptStep {
	var steps []transcriptStep
	in := false
	for line := range strings.SplitSeq(section, "\n") {
		switch {
		case line == "```console":
			in = true
		case line == "```":
			in = false
		case in && strings.HasPrefix(line, "$ "):
			steps = append(steps, transcriptStep{command: strings.TrimPrefix(line, "$ ")})
		case in && len(steps) > 0:
			steps[len(steps)-1].output += line + "\n"
		}
	}
	return steps
}

// TestReadmeCallingIt runs the console session of README.md's "Calling it"
// section, line by line in a shell, against a gateway serving the
// calculator as make run does, and checks that each command prints exactly
// what the README shows (standard output and error together). bin/repe is
// this package's main, built into the test binary.
func TestReadmeCallingIt(t *testing.T) {
	section := readmeSection(t, "## Calling it")
	steps := transcript(section)
	require.GreaterOrEqual(t, len(steps), 5, "README.md shows no session")

	makefile, err := os.ReadFile(plugintest.RepoPath("Makefile"))
	require.NoError(t, err)
	require.Contains(t, section, "`make build` puts `repe` in `bin/`")
	require.Contains(t, string(makefile), "build -o bin/ ./cmd/...", "make build no longer puts repe in bin/")

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	dir := filepath.Dir(filepath.Dir(repeBinary(t)))
	for _, s := range steps {
		cmd := exec.Command("sh", "-c", s.command)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "REPE_ADDR="+srv.Addr().String())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", s.command, out)
		assert.Equal(t, s.output, string(out), s.command)
	}
}
