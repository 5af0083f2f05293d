package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
	"github.com/repe-gw/repe-gw/internal/tlstest"
)

// TestReadmeTransports runs the examples of README.md's "TLS, HTTP and
// WebSocket": each sh block starts a gateway in a folder laid out as `make
// build plugins` lays out the repository, with the certificates the TLS
// example names in tls/, and the console block after it (repe, curl) must
// print exactly what the README shows, standard error included. The README's addresses become free
// loopback ports.
func TestReadmeTransports(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the examples use curl")
	}
	section := readmetest.Section(t, "## TLS, HTTP and WebSocket")
	bin := buildGateway(t)
	repeBin := filepath.Join(t.TempDir(), "repe")
	out, err := exec.Command("go", "build", "-o", repeBin, "../repe").CombinedOutput()
	require.NoError(t, err, "%s", out)

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
		require.NoError(t, os.Symlink(repeBin, filepath.Join(mkdir(t, filepath.Join(dir, "bin")), "repe")))
		certs := mkdir(t, filepath.Join(dir, "tls"))
		tlstest.NewCA(t, certs, "ca").Server(t, certs, "server")
		tlstest.NewCA(t, certs, "clients-ca").Client(t, certs, "alice")

		addrs := strings.NewReplacer("127.0.0.1:5443", freeAddr(t), "127.0.0.1:8080", freeAddr(t))
		args := strings.Fields(addrs.Replace(strings.TrimSpace(script)))
		require.Equal(t, "bin/repe-gw", args[0])
		for i, a := range args {
			if _, err := os.Stat(filepath.Join(dir, a)); err == nil {
				args[i] = filepath.Join(dir, a)
			}
		}
		g := start(t, bin, args[1:]...)
		g.waitLog(t, "msg=\"listening for ")

		for _, s := range steps {
			// Standard error too, as a terminal shows it.
			cmd := exec.Command("sh", "-c", addrs.Replace(s.Command))
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s\n%s", s.Command, out)
			assert.Equal(t, addrs.Replace(s.Output), string(out), s.Command)
		}
	}
}
