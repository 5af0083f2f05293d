//go:build linux

package gateway_test

import (
	"context"
	"log/slog"
	"os"
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
func startIsolated(t *testing.T) *isolate.Plugin {
	crash := plugintest.Build(t, plugintest.RepoPath("isolate/testdata/crashplugin.c"))
	p, err := isolate.Start(t.Context(), isolate.Config{
		File:       crash,
		WorkerArgs: []string{"isolate-worker"},
		Env:        []string{envWorker + "=1", "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"},
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
