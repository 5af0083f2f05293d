package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestMain fails the tests if a listener outlives its Shutdown. gnet's
// package-wide goroutine pool is not a server's to stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

// serve starts a real gateway on the test plugin at /t, whose calls get a
// deadline of 20ms so that /t/sleep (200 ms) times out, and whose circuit
// opens after two timeouts, and an admin listener on it with cfg. It
// returns the admin listener and the gateway.
func serve(t *testing.T, cfg Config) (*Server, *gateway.Server) {
	t.Helper()
	gw, _ := gatewaytest.Serve(t, gateway.Config{
		Policies: map[string]gateway.Policy{"/t": {
			Deadline:        20 * time.Millisecond,
			CircuitFailures: 2,
			CircuitCooldown: time.Hour, // open for the rest of the test
		}},
	}, gatewaytest.TestPlugin(t, "/t"))
	cfg.Gateway = gw
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
		defer cancel()
		assert.NoError(t, s.Shutdown(ctx))
	})
	return s, gw
}

// get asks the admin listener for path, with the bearer token when it is
// not empty, and returns the status and body.
func get(t *testing.T, s *Server, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+s.Addr().String()+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// scrape reads /metrics as Prometheus would.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, s, "/metrics", "")
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return families
}

// value returns the value of the series of family whose labels include
// labels, failing the test if there is none.
func value(t *testing.T, families map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	t.Helper()
	f, ok := families[family]
	require.True(t, ok, "no metric %s", family)
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series of %s with %v", family, labels)
	return 0
}

func TestMetrics(t *testing.T) {
	s, gw := serve(t, Config{Plugins: []Plugin{{Name: "t", Version: "1.2.3", Root: "/t", SHA256: "ab12"}}})

	before := scrape(t, s)
	assert.Equal(t, 1.0, value(t, before, "repe_gw_plugin_info", map[string]string{"name": "t", "version": "1.2.3", "root": "/t", "sha256": "ab12"}))
	assert.Equal(t, 0.0, value(t, before, "repe_gw_call_timeouts_total", map[string]string{"plugin": "t"}))
	for _, reason := range []string{"client", "bad_frame", "slow_consumer", "flood", "read_timeout", "idle_timeout",
		"shutdown", "failed_call", "panic", "max_conns", "max_conns_per_ip"} {
		assert.Equal(t, 0.0, value(t, before, "repe_gw_connections_closed_total", map[string]string{"reason": reason}), reason)
	}
	assert.Equal(t, 1.0, value(t, before, "repe_gw_ready", nil))
	for _, std := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "go_memstats_heap_alloc_bytes"} {
		assert.Contains(t, before, std, "the standard process and Go collectors")
	}

	// A known mix: three notifies the plugin answers anyway, two calls
	// past their deadline, which open the circuit, and one call refused
	// because it is open.
	c := gatewaytest.Dial(t, gw.Addr())
	var sent int
	send := func(b []byte) {
		c.Send(b)
		sent += len(b)
	}
	for range 3 {
		send(gatewaytest.Notify("/t/notify", ""))
	}
	send(gatewaytest.Notify("/nowhere", ""))
	send(gatewaytest.Request(1, "/t/ping", "")) // answered after the notifies ran
	assert.Equal(t, repe.OK, c.Next().EC())
	send(gatewaytest.Request(2, "/nowhere", ""))
	assert.Equal(t, repe.MethodNotFound, c.Next().EC())
	for id := range uint64(2) {
		send(gatewaytest.Request(10+id, "/t/sleep", ""))
		assert.Equal(t, repe.Timeout, c.Next().EC())
	}
	send(gatewaytest.Request(20, "/t/ping", ""))
	assert.Equal(t, repe.SendError, c.Next().EC())

	// A call is counted when it returns: let the two past their deadline
	// return, late.
	require.Eventually(t, func() bool { return gw.PluginStats()[0].Late == 2 }, gatewaytest.Timeout, time.Millisecond)
	after := scrape(t, s)
	t1 := map[string]string{"plugin": "t"}
	for ec, n := range map[string]float64{"0": 1, "7": 2, "8": 1} {
		assert.Equal(t, n, value(t, after, "repe_gw_requests_total", map[string]string{"plugin": "t", "ec": ec}), "ec %s", ec)
	}
	assert.Equal(t, 1.0, value(t, after, "repe_gw_requests_total", map[string]string{"plugin": "", "ec": "6"}), "no plugin chosen")
	assert.Equal(t, 3.0, value(t, after, "repe_gw_notifies_total", t1))
	assert.Equal(t, 1.0, value(t, after, "repe_gw_notifies_total", map[string]string{"plugin": ""}))
	calls := value(t, after, "repe_gw_calls_total", map[string]string{"plugin": "t", "where": "inline"}) +
		value(t, after, "repe_gw_calls_total", map[string]string{"plugin": "t", "where": "worker"})
	ps := gw.PluginStats()[0]
	assert.Equal(t, float64(ps.InlineCalls+ps.WorkerCalls), calls)
	assert.GreaterOrEqual(t, calls, 4.0, "three notifies and a ping at least; the refused ping never reached the plugin")
	assert.Equal(t, calls, value(t, after, "repe_gw_request_duration_seconds", t1), "every call timed")
	assert.Equal(t, 1.0, value(t, after, "repe_gw_connections_open", nil))
	assert.Equal(t, 1.0, value(t, after, "repe_gw_connections_accepted_total", nil))
	assert.Equal(t, float64(sent), value(t, after, "repe_gw_received_bytes_total", nil))
	assert.Equal(t, 3.0, value(t, after, "repe_gw_dropped_notify_replies_total", t1))
	assert.Equal(t, 2.0, value(t, after, "repe_gw_call_timeouts_total", t1))
	assert.Equal(t, 1.0, value(t, after, "repe_gw_circuit_open", t1))
	assert.Equal(t, 1.0, value(t, after, "repe_gw_circuit_opened_total", t1))
	assert.Equal(t, 1.0, value(t, after, "repe_gw_calls_refused_total", t1))
	assert.Equal(t, 0.0, value(t, after, "repe_gw_calls_stuck", t1))
	assert.Equal(t, 2.0, value(t, after, "repe_gw_late_replies_total", t1))
}

func TestProbes(t *testing.T) {
	t.Run("ready, then draining", func(t *testing.T) {
		s, _ := serve(t, Config{Plugins: []Plugin{{Name: "t", Root: "/t"}}})
		code, body := get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "ready\n", body)
		s.Drain()
		code, body = get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, "shutting down\n", body)
		code, _ = get(t, s, "/healthz", "")
		assert.Equal(t, http.StatusOK, code, "alive while it drains")
		assert.Equal(t, 0.0, value(t, scrape(t, s), "repe_gw_ready", nil))
	})

	t.Run("no plugin", func(t *testing.T) {
		s, _ := serve(t, Config{})
		code, body := get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, "no plugin loaded\n", body)

		// A reload that brings a plugin in makes it ready.
		s.SetPlugins([]Plugin{{Name: "t", Root: "/t", Version: "2.0"}})
		code, _ = get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, 1.0, value(t, scrape(t, s), "repe_gw_plugin_info", map[string]string{"name": "t", "version": "2.0"}))

		s, _ = serve(t, Config{ReadyWithoutPlugins: true})
		code, _ = get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusOK, code)
	})

	t.Run("required plugin failed", func(t *testing.T) {
		state, failed := "serving", false
		p := Plugin{Name: "t", Root: "/t", Required: true, State: func() (string, bool) { return state, failed }}
		s, _ := serve(t, Config{Plugins: []Plugin{p}})
		code, _ := get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusOK, code)
		state, failed = "failed", true
		code, body := get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, "required plugin t failed\n", body)

		// The same failure of a plugin that is not required leaves the
		// gateway ready: the others serve.
		p.Required = false
		s, _ = serve(t, Config{Plugins: []Plugin{p}})
		code, _ = get(t, s, "/readyz", "")
		assert.Equal(t, http.StatusOK, code)
	})
}

func TestToken(t *testing.T) {
	s, _ := serve(t, Config{Token: "s3cret", Plugins: []Plugin{{Name: "t", Root: "/t"}}})
	for _, path := range []string{"/metrics", "/plugins", "/", "/status.json"} {
		code, _ := get(t, s, path, "")
		assert.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = get(t, s, path, "wrong")
		assert.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = get(t, s, path, "s3cret")
		assert.Equal(t, http.StatusOK, code, path)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		code, _ := get(t, s, path, "")
		assert.Equal(t, http.StatusOK, code, "%s needs no token", path)
	}

	// A browser sends the token as a password.
	req, err := http.NewRequest("GET", "http://"+s.Addr().String()+"/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("anyone", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(text), mode))
		require.NoError(t, os.Chmod(path, mode)) // whatever the umask
		return path
	}
	token, err := ReadToken(write("ok", "  s3cret\n", 0o600))
	require.NoError(t, err)
	assert.Equal(t, "s3cret", token, "whitespace around it trimmed")
	token, err = ReadToken(write("owner-read-only", "s3cret", 0o400))
	require.NoError(t, err)
	assert.Equal(t, "s3cret", token)

	for _, tt := range []struct {
		name, text string
		mode       os.FileMode
		err        string
	}{
		{"group-readable", "s3cret", 0o640, "has mode 0640: others than its owner may read it; chmod 600 it"},
		{"world-readable", "s3cret", 0o604, "has mode 0604"},
		{"group-writable", "s3cret", 0o620, "has mode 0620"},
		{"empty", " \n\t", 0o600, "holds no token"},
		{"huge", strings.Repeat("x", maxTokenFile+1), 0o600, "larger than 4096 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadToken(write(tt.name, tt.text, tt.mode))
			assert.ErrorContains(t, err, tt.err)
		})
	}
	_, err = ReadToken(filepath.Join(dir, "none"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoopbackOnly(t *testing.T) {
	gw, _ := gatewaytest.Serve(t, gateway.Config{})
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0"} {
		s, err := New(Config{Addr: addr, Gateway: gw})
		require.NoError(t, err)
		assert.ErrorIs(t, s.Start(), ErrNotLoopback, addr)
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		s, err := New(Config{Addr: addr, Gateway: gw})
		require.NoError(t, err)
		require.NoError(t, s.Start(), addr)
		require.NoError(t, s.Shutdown(context.Background()))
	}
}

func TestPlugins(t *testing.T) {
	loaded := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s, gw := serve(t, Config{Plugins: []Plugin{{
		Name: "t", Version: "1.0", Root: "/t", File: "/plugins/t.so", SHA256: "ab12",
		Mode: "inprocess", Loaded: loaded, Required: true,
	}}})
	c := gatewaytest.Dial(t, gw.Addr())
	c.Send(gatewaytest.Request(1, "/t/ping", ""))
	assert.Equal(t, repe.OK, c.Next().EC())
	c.Send(gatewaytest.Request(2, "/t/sleep", ""))
	assert.Equal(t, repe.Timeout, c.Next().EC())
	require.Eventually(t, func() bool { return gw.PluginStats()[0].Late == 1 }, gatewaytest.Timeout, time.Millisecond)
	ps := gw.PluginStats()[0]

	code, body := get(t, s, "/plugins", "")
	require.Equal(t, http.StatusOK, code)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Len(t, got, 1)
	p := got[0]
	assert.Equal(t, "t", p["name"])
	assert.Equal(t, "1.0", p["version"])
	assert.Equal(t, "/t", p["root"])
	assert.Equal(t, "/plugins/t.so", p["file"])
	assert.Equal(t, "ab12", p["sha256"])
	assert.Equal(t, "2026-11-30T12:00:00Z", p["loaded"])
	assert.Equal(t, "inprocess", p["mode"])
	assert.Equal(t, "serving", p["state"])
	assert.Equal(t, true, p["required"])
	assert.Equal(t, 1.0, p["timeouts"])
	assert.Equal(t, 2.0, p["requests"])
	assert.Equal(t, 1.0, p["errors"], "the timeout")
	assert.Equal(t, float64(ps.InlineCalls+ps.WorkerCalls), p["calls"])
	assert.GreaterOrEqual(t, p["calls"], 1.0, "the ping")
}

func TestPprof(t *testing.T) {
	s, _ := serve(t, Config{})
	code, _ := get(t, s, "/debug/pprof/", "")
	assert.Equal(t, http.StatusNotFound, code, "off by default")

	s, _ = serve(t, Config{Pprof: true})
	code, body := get(t, s, "/debug/pprof/", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine")
	code, _ = get(t, s, "/debug/pprof/goroutine?debug=1", "")
	assert.Equal(t, http.StatusOK, code)
}
