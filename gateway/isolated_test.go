//go:build linux

package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/isolate"
	"github.com/repe-gw/repe-gw/repe"
)

// envWorker makes this test binary an isolated plugin's worker process, as
// repe-gw's own binary is.
const envWorker = "GATEWAY_TEST_ISOLATE_WORKER"

func init() {
	if os.Getenv(envWorker) == "1" {
		// Crashing plugins would leave a core file each.
		_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
		os.Exit(isolate.ServeWorker(os.Args[2:]))
	}
}

// startIsolated runs the crash test plugin in a worker process of this
// binary, until the test ends.
func startIsolated(t testing.TB) *isolate.Plugin { return startIsolatedEnv(t) }

// startIsolatedEnv is startIsolated with env added to the worker's
// environment.
func startIsolatedEnv(t testing.TB, env ...string) *isolate.Plugin {
	crash := plugintest.Build(t, plugintest.RepoPath("isolate/testdata/crashplugin.c"))
	p, err := isolate.Start(t.Context(), isolate.Config{
		File:       crash,
		WorkerArgs: []string{"isolate-worker"},
		Env:        append([]string{envWorker + "=1", "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"}, env...),
		Logger:     slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
		defer cancel()
		assert.NoError(t, p.Close(ctx))
	})
	return p
}

// TestIsolatedPluginFailures: a plugin in a worker process that segfaults,
// aborts, exits or hangs past its deadline costs its caller one documented
// error; clients of another plugin see none, and the plugin serves again
// once its worker has restarted.
func TestIsolatedPluginFailures(t *testing.T) {
	iso := startIsolated(t)
	srv, _ := gatewaytest.Serve(t, gateway.Config{
		Isolated: []gateway.IsolatedPlugin{iso},
		Policies: map[string]gateway.Policy{"/crash": {Deadline: 300 * time.Millisecond}},
	}, gatewaytest.Calculator(t))
	c := gatewaytest.Dial(t, srv.Addr())
	other := gatewaytest.Dial(t, srv.Addr())

	id := uint64(0)
	next := func() uint64 { id++; return id }
	for _, tc := range []struct {
		path string
		ec   repe.ErrorCode
		says string
	}{
		{"/crash/segv", repe.ConnectionFailure, "signal SIGSEGV"},
		{"/crash/abort", repe.ConnectionFailure, "signal SIGABRT"},
		{"/crash/exit", repe.ConnectionFailure, "exited with status 3"},
		{"/crash/hang", repe.Timeout, "did not answer within"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			// The failing request, and one behind it on the same
			// connection, which the worker never began: ec 8.
			failing, behind := next(), next()
			start := time.Now()
			c.Send(append(gatewaytest.Request(failing, tc.path, ""), gatewaytest.Request(behind, "/crash/ping", "")...))
			m := c.Next()
			require.Equal(t, failing, m.ID())
			assert.Equal(t, tc.ec, m.EC(), "%s", m.Body())
			assert.Contains(t, string(m.Body()), tc.says)
			m = c.Next()
			require.Equal(t, behind, m.ID())
			assert.Contains(t, []repe.ErrorCode{repe.OK, repe.SendError}, m.EC(), "%s", m.Body())

			// The calculator, in this process, is untouched.
			other.Send(gatewaytest.Request(next(), "/calculator/value", ""))
			assert.Equal(t, repe.OK, other.Next().EC())

			// The plugin serves again once its worker is back.
			require.Eventually(t, func() bool {
				c.Send(gatewaytest.Request(next(), "/crash/ping", ""))
				return c.Next().EC() == repe.OK
			}, gatewaytest.Timeout, 10*time.Millisecond)
			t.Logf("%s: served again %v after the request", tc.path, time.Since(start))
		})
	}
	assert.Equal(t, isolate.StateServing, iso.State())
	assert.GreaterOrEqual(t, iso.Stats().Restarts, uint64(4))
}

// TestIsolatedPipe: the event loops carry an isolated plugin's calls, from
// many pipelining connections and a blocking caller at once, each getting
// its own replies in order. A worker that crashes under that load costs
// only the request it was running: the other connections' requests it had
// not begun wait for the next worker and are answered. Closing the plugin
// while the loops run lets go of the pipe and runs the plugin's shutdown
// once.
func TestIsolatedPipe(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events")
	iso := startIsolatedEnv(t, "CRASHPLUGIN_EVENTS="+events)
	srv, _ := gatewaytest.Serve(t, gateway.Config{Isolated: []gateway.IsolatedPlugin{iso}})
	require.Eventually(t, func() bool { return iso.Stats().Pipe }, gatewaytest.Timeout, time.Millisecond)

	const conns, rounds, depth = 8, 20, 16
	load := func(t *testing.T, crash bool) {
		var wg sync.WaitGroup
		var once sync.Once
		halfway := make(chan struct{})
		for i := range conns {
			wg.Go(func() {
				c := gatewaytest.Dial(t, srv.Addr())
				for r := range rounds {
					if r == rounds/2 {
						once.Do(func() { close(halfway) })
					}
					var batch []byte
					for k := range depth {
						id := uint64(r*depth + k)
						batch = append(batch, gatewaytest.Request(id, "/crash/echo", fmt.Sprintf(`"%d-%d"`, i, id))...)
					}
					c.Send(batch)
					for k := range depth {
						id := uint64(r*depth + k)
						m := c.Next()
						if !assert.Equal(t, id, m.ID()) || !assert.Equal(t, repe.OK, m.EC(), "%s", m.Body()) {
							return
						}
						assert.Equal(t, fmt.Sprintf(`"%d-%d"`, i, id), string(m.Body()))
					}
				}
			})
		}
		wg.Go(func() {
			// A blocking caller, as a stream connection's worker is.
			for k := range rounds * depth {
				out, err := iso.Call(nil, gatewaytest.Request(uint64(k), "/crash/echo", `"blocking"`), time.Time{})
				if !assert.NoError(t, err) {
					return
				}
				m := repe.Message(out)
				if !assert.Equal(t, repe.OK, m.EC(), "%s", m.Body()) {
					return
				}
				assert.Equal(t, `"blocking"`, string(m.Body()))
			}
		})
		if crash {
			c := gatewaytest.Dial(t, srv.Addr())
			<-halfway
			c.Send(gatewaytest.Request(1, "/crash/segv", ""))
			m := c.Next()
			assert.Equal(t, repe.ConnectionFailure, m.EC(), "%s", m.Body())
		}
		wg.Wait()
	}
	t.Run("steady", func(t *testing.T) { load(t, false) })
	t.Run("crash", func(t *testing.T) {
		load(t, true)
		assert.Equal(t, uint64(1), iso.Stats().Crashes)
		require.Eventually(t, func() bool { return iso.Stats().Pipe }, gatewaytest.Timeout, time.Millisecond)
	})

	ctx, cancel := context.WithTimeout(t.Context(), gatewaytest.Timeout)
	defer cancel()
	require.NoError(t, iso.Close(ctx))
	assert.False(t, iso.Stats().Pipe)
	b, err := os.ReadFile(events)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(b), "init "), "%s", b)
	assert.Equal(t, 1, strings.Count(string(b), "shutdown "), "%s", b)
}

// BenchmarkIsolatedPath is BenchmarkRequestPath for an isolated plugin,
// whose calls go through the event loop's pipe: allocs/op counts this
// process, the gateway and the client, not the worker.
func BenchmarkIsolatedPath(b *testing.B) {
	for _, tc := range []struct{ conns, depth int }{{1, 1}, {4, 32}} {
		b.Run(fmt.Sprintf("c%d-P%d", tc.conns, tc.depth), func(b *testing.B) {
			iso := startIsolated(b)
			srv, _ := gatewaytest.Serve(b, gateway.Config{Isolated: []gateway.IsolatedPlugin{iso}})
			require.Eventually(b, func() bool { return iso.Stats().Pipe }, gatewaytest.Timeout, time.Millisecond)
			benchPipelined(b, srv.Addr(), tc.conns, tc.depth, "/crash/ping")
		})
	}
}
