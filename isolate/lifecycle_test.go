//go:build linux

package isolate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// events reads the lines crashplugin's init and shutdown appended to path.
func events(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(strings.ReplaceAll(string(b), " ", ":"))
}

// TestLifecycle: init runs once per worker start, shutdown once on Close,
// and never for a worker that crashed.
func TestLifecycle(t *testing.T) {
	log := filepath.Join(t.TempDir(), "events")
	logs := newRecorder()
	cfg := testConfig(crashSO, logs)
	cfg.Env = append(cfg.Env, "CRASHPLUGIN_EVENTS="+log)
	p, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	first := p.Stats().PID
	assert.Equal(t, []string{"init:" + itoa(first)}, events(t, log))

	_, err = p.Call(nil, request(1, "/crash/segv", ""), time.Time{})
	require.NoError(t, err)
	out, err := p.Call(nil, request(2, "/crash/ping", ""), deadline(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, repe.OK, frames(t, out)[0].EC())
	second := p.Stats().PID

	require.NoError(t, p.Close(context.Background()))
	assert.Equal(t, []string{"init:" + itoa(first), "init:" + itoa(second), "shutdown:" + itoa(second)}, events(t, log))
	assert.Equal(t, StateClosed, p.State())
	assert.Zero(t, p.Stats().PID)
	assert.NoError(t, p.Close(context.Background()), "a second Close")
	assert.Len(t, events(t, log), 3, "a second Close shuts nothing down again")
	assert.Empty(t, logs.find("plugin worker did not stop cleanly"))

	out, err = p.Call(nil, append(request(3, "/crash/ping", ""), notify(4, "/crash/ping")...), time.Time{})
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.SendError, got[0].EC())
	assert.Equal(t, `send_error: plugin "crashplugin" is shut down; the request was not sent`, string(got[0].Body()))
}

// TestCloseHungCall: Close with a call that never returns kills the worker
// when its context ends; the call gets connection_failure, and the plugin's
// shutdown does not run.
func TestCloseHungCall(t *testing.T) {
	log := filepath.Join(t.TempDir(), "events")
	cfg := testConfig(crashSO, newRecorder())
	cfg.Env = append(cfg.Env, "CRASHPLUGIN_EVENTS="+log)
	p, err := Start(context.Background(), cfg)
	require.NoError(t, err)

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := p.Call(nil, request(1, "/crash/hang", ""), time.Time{})
		done <- result{out, err}
	}()
	time.Sleep(100 * time.Millisecond) // let the call reach the plugin
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = p.Close(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	r := <-done
	require.NoError(t, r.err)
	got := frames(t, r.out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.ConnectionFailure, got[0].EC())
	assert.Contains(t, string(got[0].Body()), "was killed because the plugin is shutting down")
	assert.Len(t, events(t, log), 1, "init only")
}

// TestStartRefused: a plugin that does not load is refused as
// pluginhost.Open refuses it, and a worker that dies or hangs before its
// handshake is ErrWorker, saying how.
func TestStartRefused(t *testing.T) {
	dir := t.TempDir()
	notPlugin := filepath.Join(dir, "text.so")
	require.NoError(t, os.WriteFile(notPlugin, []byte("not a shared object"), 0o644))
	cases := []struct {
		name string
		file string
		edit func(*Config)
		is   error
		text string
	}{
		{name: "not a shared object", file: notPlugin, is: pluginhost.ErrOpen},
		{name: "missing", file: filepath.Join(dir, "missing.so"), is: pluginhost.ErrOpen},
		{name: "init fails", file: plugintest.Build(t, "testdata/crashplugin.c", "-DCP_INIT_RESULT=1"),
			is: pluginhost.ErrInit, text: "repe_plugin_init returned 1"},
		{name: "init faults", file: plugintest.Build(t, "testdata/crashplugin.c", "-DCP_INIT_SEGV"),
			is: ErrWorker, text: "the worker died (signal SIGSEGV) while loading the plugin"},
		{name: "init hangs", file: plugintest.Build(t, "testdata/crashplugin.c", "-DCP_INIT_HANG"),
			edit: func(c *Config) { c.StartTimeout = 200 * time.Millisecond },
			is:   ErrWorker, text: "did not load the plugin within 200ms"},
		{name: "no worker", file: crashSO, edit: func(c *Config) { c.Exe = "/bin/true" },
			is: ErrWorker, text: "the worker died (exited with status 0) while loading the plugin"},
		{name: "no program", file: crashSO, edit: func(c *Config) { c.Exe = filepath.Join(dir, "nothing") },
			is: ErrWorker, text: "cannot start"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(c.file, newRecorder())
			if c.edit != nil {
				c.edit(&cfg)
			}
			p, err := Start(context.Background(), cfg)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, c.is)
			le, ok := errors.AsType[*pluginhost.LoadError](err)
			if assert.True(t, ok, "a *pluginhost.LoadError") {
				abs, _ := filepath.Abs(c.file)
				assert.Equal(t, abs, le.File)
			}
			assert.Contains(t, err.Error(), c.text)
		})
	}
}

// TestStartCanceled: Start gives up when its context ends, and leaves no
// worker behind.
func TestStartCanceled(t *testing.T) {
	cfg := testConfig(plugintest.Build(t, "testdata/crashplugin.c", "-DCP_INIT_HANG"), newRecorder())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	p, err := Start(ctx, cfg)
	assert.Nil(t, p)
	assert.ErrorIs(t, err, ErrWorker)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestWorkerByHand: the worker mode, run without the gateway's socket, says
// so and exits 2.
func TestWorkerByHand(t *testing.T) {
	cmd := exec.Command(os.Args[0], workerArg, "--plugin", crashSO)
	cmd.Env = append(os.Environ(), envRole+"=worker")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), "started by the gateway")
}

func TestConfig(t *testing.T) {
	_, err := Start(context.Background(), Config{})
	assert.ErrorContains(t, err, "Config.File is empty")
	_, err = Start(context.Background(), Config{File: crashSO, BackoffMin: time.Second, BackoffMax: time.Millisecond})
	assert.ErrorContains(t, err, "BackoffMax")

	cfg, err := Config{File: "x.so"}.withDefaults()
	require.NoError(t, err)
	assert.True(t, filepath.IsAbs(cfg.File))
	assert.Equal(t, "/proc/self/exe", cfg.Exe)
	assert.Equal(t, 100*time.Millisecond, cfg.BackoffMin)
	assert.Equal(t, 30*time.Second, cfg.BackoffMax)
	assert.Equal(t, 5, cfg.MaxFailures)
	assert.Equal(t, time.Minute, cfg.FailureWindow)

	p := &Plugin{cfg: cfg}
	var got []time.Duration
	for n := 1; n <= 12; n++ {
		got = append(got, p.backoff(n))
	}
	assert.Equal(t, []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 30 * time.Second, 30 * time.Second, 30 * time.Second,
	}, got)

	assert.Equal(t, []string{"C=3", "B=2", "A=9"}, mergeEnv([]string{"A=1", "B=1", "C=3"}, []string{"B=2", "A=8", "A=9"}))
}

func itoa(n int) string { return strconv.Itoa(n) }
