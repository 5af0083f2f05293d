//go:build linux

package isolate

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestNoOrphans kills a gateway with SIGKILL, which runs no code of its own,
// and checks that its worker dies too: one idle between calls, one inside
// a call that never returns.
func TestNoOrphans(t *testing.T) {
	for _, query := range []string{"", "/crash/hang"} {
		name := "idle"
		if query != "" {
			name = "busy"
		}
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envRole+"=parent", "ISOLATE_TEST_PLUGIN="+crashSO, "ISOLATE_TEST_QUERY="+query)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			require.NoError(t, err, line)
			require.True(t, alive(pid))
			if query != "" {
				time.Sleep(200 * time.Millisecond) // let the call reach the plugin
			}

			killed := time.Now()
			require.NoError(t, cmd.Process.Kill())
			cmd.Wait()
			require.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, time.Millisecond,
				"the worker outlived its gateway")
			t.Logf("the worker was gone %v after its gateway", time.Since(killed).Round(time.Microsecond))
		})
	}
}

// alive reports whether process pid runs: it exists and is no zombie
// waiting for a reaper.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// orphanParent is the gateway TestNoOrphans kills: it starts the plugin
// named by ISOLATE_TEST_PLUGIN, prints its worker's pid, calls
// ISOLATE_TEST_QUERY if set, and waits to be killed.
func orphanParent() int {
	cfg := testConfig(os.Getenv("ISOLATE_TEST_PLUGIN"), newRecorder())
	p, err := Start(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(p.Stats().PID)
	if q := os.Getenv("ISOLATE_TEST_QUERY"); q != "" {
		go p.Call(nil, request(1, q, ""), time.Time{})
	}
	for {
		unix.Pause()
	}
}
