package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

const hookPluginSrc = "testdata/hookplugin.c"

// TestHookABILayout checks the Go mirrors of repe_gateway.h against the
// sizes and offsets the header asserts.
func TestHookABILayout(t *testing.T) {
	assert.EqualValues(t, 48, unsafe.Sizeof(cConnInfo{}))
	assert.EqualValues(t, 80, unsafe.Sizeof(cRequestInfo{}))
	assert.EqualValues(t, 64, unsafe.Offsetof(cRequestInfo{}.plugin))
	assert.EqualValues(t, 56, unsafe.Offsetof(cRequestInfo{}.bodyFormat))
	assert.EqualValues(t, 58, unsafe.Offsetof(cRequestInfo{}.notify))
	assert.EqualValues(t, 64, unsafe.Sizeof(cResponseInfo{}))
	assert.EqualValues(t, 40, unsafe.Offsetof(cResponseInfo{}.ec))
	assert.EqualValues(t, 72, unsafe.Sizeof(cHooks{}))
	assert.EqualValues(t, 64, unsafe.Sizeof(cContext{}))
	assert.EqualValues(t, 24, unsafe.Offsetof(hookFrame[cRequestInfo]{}.info))
	assert.EqualValues(t, 8, unsafe.Offsetof(logSink{}.dropped))
}

// logBuffer collects a logger's records as JSON lines.
type logBuffer struct{ bytes.Buffer }

func (b *logBuffer) records(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		out = append(out, m)
	}
	return out
}

// hookHost returns a Host whose plugins log into logs and keep their data
// under a directory of t's.
func hookHost(t *testing.T, logs *logBuffer) *Host {
	t.Helper()
	h, errs := Config{
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}.Load(nil)
	require.Empty(t, errs)
	return h
}

func TestHookPluginOnly(t *testing.T) {
	so := plugintest.Build(t, hookPluginSrc)
	var logs logBuffer
	h := hookHost(t, &logs)

	// Add keeps its contract: a file without repe_plugin_call is refused.
	_, err := h.Add(so)
	require.ErrorIs(t, err, ErrMissingSymbol)

	p, hk, err := h.AddFile(so, []byte(`{"rate":5}`))
	require.NoError(t, err)
	assert.Nil(t, p, "a hook plugin only is no REPE plugin")
	require.NotNil(t, hk)
	assert.Equal(t, "hookplugin", hk.Name(), "named after its file")
	assert.Empty(t, h.Plugins())
	assert.Equal(t, []*Hooks{hk}, h.Hooks())

	// The context: its own directory, made 0700, its config, its logger.
	dir := filepath.Join(h.cfg.DataDir, "hookplugin")
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	hello, err := os.ReadFile(filepath.Join(dir, "hello"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(hello))
	assert.Equal(t, `{"rate":5}`, cStringAt(t, so, "hp_config"))

	assert.True(t, hk.Connect(1, "127.0.0.1:5000", ""))
	assert.False(t, hk.Connect(2, "10.0.0.1:5000", ""), "on_connect rejects 10.*")
	reason, rejected := hk.Request(1, repe.Message(request(7, "/calc/add", "1")), "calc")
	assert.False(t, rejected)
	assert.Empty(t, reason)
	reason, rejected = hk.Request(1, repe.Message(request(8, "/deny/this", "")), "")
	assert.True(t, rejected)
	assert.Equal(t, "denied: /deny/this", reason)
	hk.Response(1, repe.Message(request(8, "/deny/this", "")), uint32(repe.InvalidQuery), 0, 70)
	hk.Close(1, "127.0.0.1:5000", "")
	assert.EqualValues(t, 2, counter(t, so, "hp_connects"))
	assert.EqualValues(t, 2, counter(t, so, "hp_requests"))
	assert.EqualValues(t, 1, counter(t, so, "hp_responses"))
	assert.EqualValues(t, repe.InvalidQuery, counter(t, so, "hp_last_ec"))
	assert.EqualValues(t, 1, counter(t, so, "hp_closes"))

	// on_shutdown and destroy once each, however often the host closes;
	// shutting_down is 1 by then.
	h.BeginShutdown()
	require.NoError(t, h.Close(context.Background()))
	require.NoError(t, h.Close(context.Background()))
	assert.EqualValues(t, 1, counter(t, so, "hp_shutdowns"))
	assert.EqualValues(t, 1, counter(t, so, "hp_destroys"))
	assert.EqualValues(t, 1, counter(t, so, "hp_destroy_flag"))

	// Everything logged until destroy returned is in the log, with the
	// plugin's name; the long message is cut and says so.
	recs := logs.records(t)
	require.Len(t, recs, 4)
	assert.Equal(t, "init hookplugin", recs[0]["msg"])
	assert.Equal(t, "INFO", recs[0]["level"])
	assert.Equal(t, "hookplugin", recs[0]["plugin"])
	assert.Equal(t, "WARN", recs[1]["level"])
	assert.Len(t, recs[1]["msg"], maxLogMessage)
	assert.Equal(t, true, recs[1]["truncated"])
	assert.Equal(t, "from a thread", recs[2]["msg"])
	assert.Equal(t, "DEBUG", recs[2]["level"])
	assert.Equal(t, "destroyed", recs[3]["msg"])
}

func TestHookPluginWithREPE(t *testing.T) {
	so := plugintest.Build(t, hookPluginSrc, "-DHP_REPE")
	var logs logBuffer
	h := hookHost(t, &logs)
	p, hk, err := h.AddFile(so, nil)
	require.NoError(t, err, "repe_plugin_init would refuse it: init_ex must run instead")
	require.NotNil(t, p)
	require.NotNil(t, hk)
	assert.Equal(t, "hookplugin", hk.Name(), "named after its info")
	assert.Equal(t, "/hp", p.Root())
	assert.EqualValues(t, 1, counter(t, so, "hp_init_ex"))
	assert.Equal(t, "{}", cStringAt(t, so, "hp_config"))

	require.NoError(t, h.Close(context.Background()))
	assert.EqualValues(t, 1, counter(t, so, "hp_repe_shutdowns"))
	assert.EqualValues(t, 1, counter(t, so, "hp_shutdowns"))
	assert.EqualValues(t, 1, counter(t, so, "hp_destroys"))
	assert.Len(t, logs.records(t), 4)
}

// TestHookLogFlood: a plugin that logs faster than the host reads is never
// blocked; what cannot be sent is counted, and the count is told with a
// later message, so that messages logged and messages dropped add up.
func TestHookLogFlood(t *testing.T) {
	so := plugintest.Build(t, hookPluginSrc, "-DHP_FLOOD")
	var logs logBuffer
	h := hookHost(t, &logs)
	_, _, err := h.AddFile(so, nil)
	require.NoError(t, err)
	require.NoError(t, h.Close(context.Background()))
	// destroy's own message may be dropped too, when the reader is still
	// behind; its drop is then told with a flood message read after it.
	sent, floods, dropped := 5001, 0, 0.0
	for _, r := range logs.records(t) {
		switch r["msg"] {
		case "flood":
			floods++
		case "destroyed":
			sent--
		}
		if d, ok := r["dropped"].(float64); ok {
			dropped += d
		}
	}
	assert.Positive(t, dropped, "the socket should not hold 5000 messages")
	assert.Equal(t, sent, floods+int(dropped))
}

// TestAddIgnoresHooks: Add keeps its contract for a file that is a REPE
// and a hook plugin: the REPE part loads, the hooks do not.
func TestAddIgnoresHooks(t *testing.T) {
	so := plugintest.Build(t, hookPluginSrc, "-DHP_REPE")
	var logs logBuffer
	h := hookHost(t, &logs)
	p, err := h.Add(so)
	require.NoError(t, err)
	assert.Equal(t, "/hp", p.Root())
	assert.Empty(t, h.Hooks())
	require.NoError(t, h.Close(context.Background()))
	assert.EqualValues(t, 1, counter(t, so, "hp_repe_shutdowns"))
	assert.Zero(t, counter(t, so, "hp_destroys"))
}

func TestHookPluginInitFails(t *testing.T) {
	for _, flag := range []string{"-DHP_INIT_FAIL", "-DHP_INIT_FAIL -DHP_REPE"} {
		t.Run(flag, func(t *testing.T) {
			so := plugintest.Build(t, hookPluginSrc, strings.Fields(flag)...)
			var logs logBuffer
			h := hookHost(t, &logs)
			_, _, err := h.AddFile(so, nil)
			require.ErrorIs(t, err, ErrInit)
			assert.Empty(t, h.Hooks())
			assert.Empty(t, h.Plugins())
			if strings.Contains(flag, "HP_REPE") {
				assert.EqualValues(t, 1, counter(t, so, "hp_repe_shutdowns"), "the REPE part is undone")
			}
		})
	}
}

func TestHookRejectWithoutMessage(t *testing.T) {
	so := plugintest.Build(t, hookPluginSrc, "-DHP_NO_ERRMSG")
	var logs logBuffer
	h := hookHost(t, &logs)
	_, hk, err := h.AddFile(so, nil)
	require.NoError(t, err)
	reason, rejected := hk.Request(1, repe.Message(request(1, "/deny", "")), "")
	assert.True(t, rejected)
	assert.Equal(t, "request rejected by "+strconv.Quote(hk.Name()), reason)
	require.NoError(t, h.Close(context.Background()))
}

// TestHookAllocs: a hook call costs the request path no allocation.
func TestHookAllocs(t *testing.T) {
	so := plugintest.Build(t, hookPluginSrc)
	var logs logBuffer
	h := hookHost(t, &logs)
	_, hk, err := h.AddFile(so, nil)
	require.NoError(t, err)
	req := repe.Message(request(1, "/calc/add", "[1,2]"))
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = hk.Request(1, req, "calc")
		hk.Response(1, req, 0, 100, 60)
	})
	assert.Zero(t, allocs)
	require.NoError(t, h.Close(context.Background()))
}

// cStringAt reads the NUL-terminated char array the plugin exports as name.
func cStringAt(t *testing.T, file, name string) string {
	t.Helper()
	s, ok := cString(symbol(t, file, name))
	require.True(t, ok)
	return s
}

func TestHookExports(t *testing.T) {
	for _, tc := range []struct {
		so            string
		hooks, serves bool
	}{
		{plugintest.Build(t, hookPluginSrc), true, false},
		{plugintest.Build(t, hookPluginSrc, "-DHP_REPE"), true, true},
		{calculatorSO, false, true},
	} {
		hooks, serves, err := HookExports(tc.so)
		require.NoError(t, err)
		assert.Equal(t, tc.hooks, hooks, tc.so)
		assert.Equal(t, tc.serves, serves, tc.so)
	}
	_, _, err := HookExports("hooks_test.go")
	assert.Error(t, err, "not a shared object")
}

// BenchmarkHookRequest is what a no-op on_request costs per request: one
// call into C through the hook trampoline, with the request's info built
// in the call's frame. BenchmarkHookResponse is the same for on_response.
func BenchmarkHookRequest(b *testing.B) {
	hk := benchHooks(b)
	req := repe.Message(request(1, "/calculator/get_value", ""))
	b.ReportAllocs()
	for b.Loop() {
		hk.Request(1, req, "calculator")
	}
}

func BenchmarkHookResponse(b *testing.B) {
	hk := benchHooks(b)
	req := repe.Message(request(1, "/calculator/get_value", ""))
	b.ReportAllocs()
	for b.Loop() {
		hk.Response(1, req, 0, 50, 49)
	}
}

// benchHooks loads the gateway's no-op hook plugin, with an on_response
// added, for b.
func benchHooks(b *testing.B) *Hooks {
	so := plugintest.Build(b, plugintest.RepoPath("gateway/testdata/noophook.c"), "-DNOOP_RESPONSE")
	h := Config{DataDir: b.TempDir()}.NewHost()
	_, hk, err := h.AddFile(so, nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, h.Close(context.Background())) })
	return hk
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/repe-gw:/var/lib/other")
	assert.Equal(t, "/var/lib/repe-gw", DefaultDataDir(), "systemd's StateDirectory= first")
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("XDG_STATE_HOME", "/state")
	assert.Equal(t, "/state/repe-gw", DefaultDataDir())
	t.Setenv("XDG_STATE_HOME", "relative")
	t.Setenv("HOME", "/home/gw")
	assert.Equal(t, "/home/gw/.local/state/repe-gw", DefaultDataDir(), "XDG_STATE_HOME must be absolute")
}
