package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
)

// TestReadmeOperating runs the examples of README.md's "Operating it": each
// sh block starts a gateway, in a folder laid out as `make build plugins`
// lays out the repository, and the console block after it must print
// exactly what the README shows. The admin address of the README becomes a
// free loopback port.
func TestReadmeOperating(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the examples use curl")
	}
	section := readmetest.Section(t, "## Operating it")
	bin := buildGateway(t)
	blocks := strings.Split(section, "```sh\n")[1:]
	require.Len(t, blocks, 2)
	for _, block := range blocks {
		script, rest, ok := strings.Cut(block, "```\n")
		require.True(t, ok)
		steps := readmetest.Transcript(rest)
		require.NotEmpty(t, steps, "no console block after:\n%s", script)

		dir := t.TempDir()
		_, err := plugintest.BuildTo(mkdir(t, filepath.Join(dir, "plugins", "calculator")), plugintest.RepoPath("plugins/calculator/calculator.c"))
		require.NoError(t, err)
		admin := freeAddr(t)
		lines := strings.Split(strings.TrimSpace(script), "\n")
		for _, line := range lines[:len(lines)-1] {
			out, err := shell(dir, line)
			require.NoError(t, err, "%s\n%s", line, out)
		}
		args := strings.Fields(strings.ReplaceAll(lines[len(lines)-1], "127.0.0.1:9099", admin))
		require.Equal(t, "bin/repe-gw", args[0])
		for i, a := range args {
			if _, err := os.Stat(filepath.Join(dir, a)); err == nil {
				args[i] = filepath.Join(dir, a)
			}
		}
		g := start(t, bin, args[1:]...)
		g.waitLog(t, `msg="admin listening" addr=`+admin)

		for _, s := range steps {
			out, err := shell(dir, strings.ReplaceAll(s.Command, "127.0.0.1:9099", admin))
			require.NoError(t, err, "%s\n%s", s.Command, out)
			assert.Equal(t, s.Output, out, s.Command)
		}
	}
}

// shell runs command with sh in dir, and returns its standard output, or
// its standard error with the error.
func shell(dir, command string) (string, error) {
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.String(), err
	}
	return string(out), nil
}
