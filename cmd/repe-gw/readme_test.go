package main

import (
	"bufio"
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
