package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// callLine is a call in README.md's quick start: the command, then the
// reply it prints as a comment.
var callLine = regexp.MustCompile(`^(go run \./cmd/repe [^#]+?)\s+# (.+)$`)

// TestReadmeQuickStart runs what README.md tells a newcomer to run: make run,
// then the calls shown after it, each of which must print what the README
// says it prints. It keeps the README honest.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the project with make")
	}
	root := plugintest.RepoPath("")
	readme, err := os.ReadFile(plugintest.RepoPath("README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "make run     # builds the example plugins and the gateway; serves on 127.0.0.1:5099")
	require.Contains(t, string(readme), "make test    # the whole suite")

	var calls [][]string
	sc := bufio.NewScanner(strings.NewReader(string(readme)))
	for sc.Scan() {
		if m := callLine.FindStringSubmatch(sc.Text()); m != nil {
			calls = append(calls, m[1:])
		}
	}
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
		cmd := exec.Command("sh", "-c", c[0])
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "REPE_ADDR="+addr)
		got, err := cmd.Output()
		require.NoError(t, err, c[0])
		assert.Equal(t, squeeze(c[1]), squeeze(string(got)), c[0])
	}
}

// squeeze drops white space, so that a pretty-printed reply compares equal
// to its one-line form in the README.
func squeeze(s string) string {
	return strings.Join(strings.Fields(s), "")
}

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

// flagRow is a row of the README's flag table: `--name PLACEHOLDER`, and
// the default as the README writes it.
var flagRow = regexp.MustCompile("^\\| `--([a-z-]+)( [^`]+)?` \\|([^|]*)\\|")

// TestReadmeFlags checks the flag table of README.md's "Running it" against
// repe-gw -h: the same flags, with the same placeholders and defaults.
func TestReadmeFlags(t *testing.T) {
	section := readmeSection(t, "## Running it")
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
