package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
)

// TestReadmeQuickStart runs what README.md tells a newcomer to run: make run,
// then the calls of the console session after it, each of which must print
// exactly what the README shows. It keeps the README honest.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the project with make")
	}
	root := plugintest.RepoPath("")
	section := readmetest.Section(t, "## Quick start")
	require.Contains(t, section, "make run     # builds the example plugins and the gateway; serves on 127.0.0.1:5099")
	require.Contains(t, section, "make test    # the whole suite")
	calls := readmetest.Transcript(section)
	require.NotEmpty(t, calls, "README.md shows no call")

	// make run, on a free port instead of 5099 so that the test cannot
	// collide with a gateway already running.
	addr := freeAddr(t)
	run := exec.Command("make", "run", "ADDR="+addr)
	run.Dir = root
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := run.StderrPipe()
	require.NoError(t, err)
	run.Stdout = run.Stderr
	require.NoError(t, run.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGTERM)
		_ = run.Wait()
	})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log(sc.Text())
			if strings.Contains(sc.Text(), "msg=listening") {
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(2 * time.Minute):
		t.Fatal("make run did not start the gateway")
	}

	for _, c := range calls {
		require.True(t, strings.HasPrefix(c.Command, "go run ./cmd/repe "), "a call, not %q", c.Command)
		cmd := exec.Command("sh", "-c", c.Command)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "REPE_ADDR="+addr)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // where go run would say what it downloads
		got, err := cmd.Output()
		require.NoError(t, err, "%s\n%s", c.Command, stderr.String())
		assert.Equal(t, c.Output, string(got), c.Command)
	}
}

// flagRow is a row of the README's flag table: `--name PLACEHOLDER`, and
// the default as the README writes it.
var flagRow = regexp.MustCompile("^\\| `--([a-z-]+)( [^`]+)?` \\|([^|]*)\\|")

// TestReadmeFlags checks the flag table of README.md's "Running it" against
// repe-gw -h: the same flags, with the same placeholders and defaults.
func TestReadmeFlags(t *testing.T) {
	section := readmetest.Section(t, "## Running it")
	var usage bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &usage)
	require.ErrorIs(t, err, errHelp)

	var documented []string
	for line := range strings.SplitSeq(section, "\n") {
		m := flagRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, placeholder, def := m[1], m[2], strings.Trim(m[3], "` ")
		documented = append(documented, name)
		entry := helpEntry(t, usage.String(), name)
		assert.True(t, strings.HasPrefix(entry, "--"+name+placeholder+" "), "-h shows %q, README.md `--%s%s`", entry, name, placeholder)
		switch def {
		case "", "none":
			assert.NotContains(t, entry, "(default", name)
		default:
			assert.Contains(t, entry, "(default "+def+")", name)
		}
	}
	var shown []string
	for line := range strings.SplitSeq(usage.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ = strings.Cut(name, " ")
			shown = append(shown, name)
		}
	}
	assert.Equal(t, shown, documented, "the flags of -h and of README.md, in order")
}

// helpEntry returns the entry of the -h text for flag name, its lines
// joined.
func helpEntry(t *testing.T, usage, name string) string {
	t.Helper()
	_, entry, ok := strings.Cut(usage, "\n  --"+name+" ")
	if !ok {
		_, entry, ok = strings.Cut(usage, "\n  --"+name+"\n")
	}
	require.True(t, ok, "-h shows no --%s", name)
	entry, _, _ = strings.Cut(entry, "\n  --")
	return "--" + name + " " + strings.Join(strings.Fields(entry), " ")
}

// codeBlocks returns the contents of the blocks of section fenced as lang.
func codeBlocks(section, lang string) []string {
	var blocks []string
	in := false
	for line := range strings.SplitSeq(section, "\n") {
		switch {
		case line == "```"+lang:
			in = true
			blocks = append(blocks, "")
		case line == "```":
			in = false
		case in:
			blocks[len(blocks)-1] += line + "\n"
		}
	}
	return blocks
}

// TestReadmeConfiguration runs the examples of README.md's "Configuration
// file": the gateway serves the example configuration, next to plugins laid
// out as `make plugins` lays them out, and validate prints what the
// transcript shows.
func TestReadmeConfiguration(t *testing.T) {
	section := readmetest.Section(t, "## Configuration file")
	bin := buildGateway(t)

	t.Run("example", func(t *testing.T) {
		yamls := codeBlocks(section, "yaml")
		require.Len(t, yamls, 1)
		dir := t.TempDir()
		_, err := plugintest.BuildTo(mkdir(t, filepath.Join(dir, "plugins", "calculator")), plugintest.RepoPath("plugins/calculator/calculator.c"))
		require.NoError(t, err)
		conf := filepath.Join(dir, "repe-gw.yaml")
		require.NoError(t, os.WriteFile(conf, []byte(yamls[0]), 0o644))

		// --addr over the file's, which may be taken.
		g := startGateway(t, bin, "--config", conf)
		assert.Equal(t, 1, strings.Count(g.log(), `msg="plugin loaded"`), g.log())
		assert.Regexp(t, `msg="plugin loaded" plugin=calculator .* concurrency=4 required=true\n`, g.log(), "its own entry's policy, with no deadline")
		c := g.dial(t)
		c.Send(gatewaytest.Request(1, "/calculator/value", ""))
		assert.Equal(t, "0", string(c.Next().Body()))
	})

	t.Run("validate", func(t *testing.T) {
		steps := readmetest.Transcript(section)
		require.Len(t, steps, 2)
		for _, s := range steps {
			require.True(t, strings.HasPrefix(s.Command, "bin/repe-gw validate "), s.Command)
			cmd := exec.Command("sh", "-c", bin+strings.TrimPrefix(s.Command, "bin/repe-gw"))
			cmd.Dir = plugintest.RepoPath("")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s\n%s", s.Command, out)
			assert.Equal(t, s.Output, string(out), s.Command)
		}
	})
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}
