package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// startAdminGateway runs bin with args plus a free loopback address for
// REPE and one for --admin, and waits until both listen. It returns the
// process and the admin address.
func startAdminGateway(t *testing.T, bin string, args ...string) (*process, string) {
	t.Helper()
	admin := freeAddr(t)
	g := startGateway(t, bin, append(args, "--admin", admin)...)
	g.waitLog(t, `msg="admin listening" addr=`+admin)
	return g, admin
}

// adminGet asks the admin listener at addr for path, with the bearer
// token when it is not empty, and returns the status and the body.
func adminGet(t *testing.T, addr, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := http.Client{Timeout: gatewaytest.Timeout}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestAdmin(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	dir := pluginDir(t, gt)
	started := time.Now()
	g, admin := startAdminGateway(t, bin, "--plugins", dir)

	code, body := adminGet(t, admin, "/healthz", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)

	calc := filepath.Join(dir, "calculator.so")
	sum, err := fileSHA256(calc)
	require.NoError(t, err)
	code, body = adminGet(t, admin, "/metrics", "")
	require.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `(?m)^repe_gw_plugin_info\{name="calculator",root="/calculator",sha256="`+sum+`",version="[^"]*"\} 1$`, body)
	assert.Regexp(t, `(?m)^repe_gw_plugin_info\{name="gate",root="/gate",sha256="[0-9a-f]{64}",version="1.0.0"\} 1$`, body)
	assert.Regexp(t, `(?m)^repe_gw_connections_closed_total\{reason="read_timeout"\} 0$`, body)
	assert.Regexp(t, `(?m)^process_cpu_seconds_total `, body)
	assert.Regexp(t, `(?m)^go_goroutines `, body)

	// A call held in the gate plugin shows as in flight.
	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/gate/wait", ""))
	gt.waitEvent(t, "gate wait 1")
	_, body = adminGet(t, admin, "/metrics", "")
	assert.Regexp(t, `(?m)^repe_gw_calls_in_flight\{plugin="gate"\} 1$`, body)
	gt.open(t, "go")
	assert.Equal(t, repe.OK, c.Next().EC())

	code, body = adminGet(t, admin, "/plugins", "")
	require.Equal(t, http.StatusOK, code)
	var plugins []struct {
		Name, Version, Root, File, SHA256, Mode, State string
		Loaded                                         time.Time
	}
	require.NoError(t, json.Unmarshal([]byte(body), &plugins))
	require.Len(t, plugins, 2, body)
	p := plugins[0]
	assert.Equal(t, "calculator", p.Name)
	assert.Equal(t, "/calculator", p.Root)
	assert.Equal(t, calc, p.File)
	assert.Equal(t, sum, p.SHA256)
	assert.Equal(t, "inprocess", p.Mode)
	assert.Equal(t, "serving", p.State)
	assert.True(t, p.Loaded.After(started) && p.Loaded.Before(time.Now()), "loaded at %v", p.Loaded)
	assert.True(t, plugins[1].Loaded.After(p.Loaded), "loaded after the calculator")
	assert.Equal(t, "gate", plugins[1].Name)

	code, _ = adminGet(t, admin, "/debug/pprof/", "")
	assert.Equal(t, http.StatusNotFound, code, "only with --admin-pprof")
	code, body = adminGet(t, admin, "/", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "<title>repe-gw status</title>")
}

// TestAdminReadyOnSignal checks the order of a graceful stop: on SIGTERM
// /readyz answers 503 while the connections are still open and a call
// still runs, and only then does the drain answer that call and close its
// connection.
func TestAdminReadyOnSignal(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	g, admin := startAdminGateway(t, bin, "--plugins", pluginDir(t, gt))
	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/gate/wait", ""))
	gt.waitEvent(t, "gate wait 1")

	g.signal(t, syscall.SIGTERM, `msg="shutting down" signal=terminated`)
	require.Eventually(t, func() bool {
		code, _ := adminGet(t, admin, "/readyz", "")
		return code == http.StatusServiceUnavailable
	}, gatewaytest.Timeout, time.Millisecond)
	code, body := adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "shutting down\n", body)
	code, _ = adminGet(t, admin, "/healthz", "")
	assert.Equal(t, http.StatusOK, code, "alive while it drains")

	// The connection is still open, its call in the plugin: the drain has
	// not closed it. Only once the call returns is it answered and closed.
	assert.Equal(t, "gate init\ngate wait 1\n", gt.events(t))
	gt.open(t, "go")
	reply := c.Next()
	assert.Equal(t, uint64(1), reply.ID())
	assert.Equal(t, `"released"`, string(reply.Body()))
	c.ExpectClosed()
	assert.Equal(t, exitOK, g.waitExit(t), g.log())
}

// TestAdminShutdownDelay checks that during --shutdown-delay the gateway is
// not ready but still accepts and serves new connections.
func TestAdminShutdownDelay(t *testing.T) {
	bin := buildGateway(t)
	g, admin := startAdminGateway(t, bin, "--plugin", gatewaytest.Calculator(t), "--shutdown-delay", "1h")
	g.signal(t, syscall.SIGTERM, `msg="not ready: serving on until the shutdown delay ends" delay=1h0m0s`)
	code, _ := adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)

	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/calculator/value", ""))
	assert.Equal(t, "0", string(c.Next().Body()), "a new connection is still served")

	g.signal(t, syscall.SIGTERM, `msg="second signal: exiting now"`)
	assert.Equal(t, exitFailure, g.waitExit(t))
}

func TestAdminReadiness(t *testing.T) {
	bin := buildGateway(t)
	_, admin := startAdminGateway(t, bin, "--plugins", t.TempDir())
	code, body := adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "no plugin loaded\n", body)

	_, admin = startAdminGateway(t, bin, "--plugins", t.TempDir(), "--admin-ready-without-plugins", "--admin-pprof")
	code, _ = adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusOK, code)
	code, body = adminGet(t, admin, "/debug/pprof/", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine")
}

func TestAdminToken(t *testing.T) {
	bin := buildGateway(t)
	token := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(token, []byte("  s3cret\n"), 0o600))
	_, admin := startAdminGateway(t, bin, "--plugin", gatewaytest.Calculator(t), "--admin-token-file", token)

	for _, path := range []string{"/metrics", "/plugins", "/"} {
		code, _ := adminGet(t, admin, path, "")
		assert.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = adminGet(t, admin, path, "s3cre")
		assert.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = adminGet(t, admin, path, "s3cret")
		assert.Equal(t, http.StatusOK, code, path)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		code, _ := adminGet(t, admin, path, "")
		assert.Equal(t, http.StatusOK, code, "%s needs no token", path)
	}
}

// TestAdminRefusals: settings that would expose the admin listener stop
// the gateway before any plugin loads, with one line.
func TestAdminRefusals(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	readable := filepath.Join(dir, "readable")
	require.NoError(t, os.WriteFile(readable, []byte("s3cret"), 0o600))
	require.NoError(t, os.Chmod(readable, 0o644))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	busy := freeAddr(t)
	calc := gatewaytest.Calculator(t)

	tests := []struct {
		name string
		args []string
		line string
	}{
		{"every interface", []string{"--admin", ":0"},
			`^repe-gw: --admin :0 is not a loopback address: set --admin-token-file, or --admin-insecure to show the gateway to anyone who reaches it$`},
		{"another machine's address", []string{"--admin", "192.0.2.1:9099"}, `^repe-gw: --admin 192.0.2.1:9099 is not a loopback address`},
		{"token others can read", []string{"--admin", "127.0.0.1:0", "--admin-token-file", readable},
			`^repe-gw: --admin-token-file ` + regexp.QuoteMeta(readable) + `: admin: token file \S+ has mode 0644: others than its owner may read it; chmod 600 it$`},
		{"empty token", []string{"--admin", "127.0.0.1:0", "--admin-token-file", empty}, `holds no token$`},
		{"missing token", []string{"--admin", "127.0.0.1:0", "--admin-token-file", filepath.Join(dir, "none")},
			`^repe-gw: --admin-token-file \S+: no such file or directory$`},
		{"bad address", []string{"--admin", "9099"}, `^repe-gw: --admin 9099: not an address HOST:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append(tt.args, "--plugin", calc, "--addr", busy)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, stderr.String())
			assert.NotEqual(t, exitOK, ee.ExitCode())
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			require.Len(t, lines, 1, "one line and nothing loaded:\n%s", stderr.String())
			assert.Regexp(t, tt.line, lines[0])
		})
	}

	t.Run("admin port in use", func(t *testing.T) {
		gt := newGate(t)
		l := listen(t)
		g := start(t, bin, "--plugin", gt.build(t, t.TempDir(), "gate", "/gate", false), "--admin", l)
		assert.Equal(t, exitFailure, g.waitExit(t))
		assert.Regexp(t, `(?m)^repe-gw: --admin `+regexp.QuoteMeta(l)+`: admin: listen tcp \S+: bind: address already in use$`, g.log())
		assert.Equal(t, "gate init\ngate shutdown\n", gt.events(t), "the gateway that had started stops cleanly")
	})
}

// listen holds a loopback port for the test, and returns its address.
func listen(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// TestAdminCountsEveryRequest sends a real gateway a known mix of requests
// (good ones, paths no plugin owns, notifies, frames whose length is wrong
// and one whose magic is, which closes the connection), then scrapes
// /metrics and finds exactly those counts.
func TestAdminCountsEveryRequest(t *testing.T) {
	bin := buildGateway(t)
	g, admin := startAdminGateway(t, bin, "--plugin", gatewaytest.Calculator(t))

	const good, unknown, notifies, badLengths = 50, 7, 5, 3
	var script []byte
	for i := range good {
		script = append(script, gatewaytest.Request(uint64(i), "/calculator/value", "")...)
	}
	for i := range unknown {
		script = append(script, gatewaytest.Request(uint64(i), "/nowhere", "")...)
	}
	for range notifies {
		script = append(script, gatewaytest.Notify("/calculator/increment", "")...)
	}
	for i := range badLengths {
		// A length field that disagrees with the query and body lengths:
		// answered, and the connection reads on.
		b := append(gatewaytest.Request(uint64(i), "/calculator/value", ""), 0)
		b[0]++
		script = append(script, b...)
	}
	badMagic := gatewaytest.Request(99, "/calculator/value", "")
	badMagic[8] = 0 // answered, then the connection is closed
	script = append(script, badMagic...)

	c := g.dial(t)
	c.Send(script)
	received := 0
	for range good + unknown + badLengths + 1 {
		received += len(c.Next())
	}
	c.ExpectClosed()

	var m map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		m = scrapeMetrics(t, admin)
		return metricValue(t, m, "repe_gw_connections_open", nil) == 0
	}, gatewaytest.Timeout, time.Millisecond, "the closed connection is counted")
	calc := map[string]string{"plugin": "calculator"}
	assert.Equal(t, float64(good), metricValue(t, m, "repe_gw_requests_total", map[string]string{"plugin": "calculator", "ec": "0"}))
	assert.Equal(t, float64(unknown), metricValue(t, m, "repe_gw_requests_total", map[string]string{"plugin": "", "ec": "6"}))
	var own float64
	for _, s := range m["repe_gw_requests_total"].Metric {
		for _, l := range s.Label {
			if l.GetName() == "plugin" && l.GetValue() == "" {
				own += s.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, float64(unknown+badLengths+1), own, "the gateway's own replies, with no plugin chosen")
	assert.Equal(t, float64(notifies), metricValue(t, m, "repe_gw_notifies_total", calc))
	assert.Equal(t, float64(good+notifies), metricValue(t, m, "repe_gw_request_duration_seconds", calc), "every call timed once")
	assert.Equal(t, 1.0, metricValue(t, m, "repe_gw_connections_accepted_total", nil))
	assert.Equal(t, 1.0, metricValue(t, m, "repe_gw_connections_closed_total", map[string]string{"reason": "bad_frame"}))
	assert.Equal(t, float64(len(script)), metricValue(t, m, "repe_gw_received_bytes_total", nil))
	assert.Equal(t, float64(received), metricValue(t, m, "repe_gw_sent_bytes_total", nil))
}

// scrapeMetrics reads the admin listener's /metrics as Prometheus would.
func scrapeMetrics(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := adminGet(t, admin, "/metrics", "")
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	m, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return m
}

// metricValue returns the value of the series of family whose labels
// include labels; for a histogram, its count.
func metricValue(t *testing.T, m map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	t.Helper()
	f, ok := m[family]
	require.True(t, ok, "no metric %s", family)
	for _, s := range f.Metric {
		match := true
		for _, l := range s.Label {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue()
		case s.Gauge != nil:
			return s.Gauge.GetValue()
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series of %s with %v", family, labels)
	return 0
}

// TestAdminReload adds a plugin and reloads: /plugins and
// repe_gw_plugin_info show it, with the digest of the file loaded.
func TestAdminReload(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	_, err := plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	g, admin := startAdminGateway(t, bin, "--plugins", dir)
	names := func() []string {
		_, body := adminGet(t, admin, "/plugins", "")
		var plugins []struct{ Name, SHA256 string }
		require.NoError(t, json.Unmarshal([]byte(body), &plugins))
		var out []string
		for _, p := range plugins {
			out = append(out, p.Name+" "+p.SHA256)
		}
		return out
	}
	calc, err := fileSHA256(filepath.Join(dir, "calculator.so"))
	require.NoError(t, err)
	assert.Equal(t, []string{"calculator " + calc}, names())

	gt := newGate(t)
	gate := gt.build(t, dir, "gate", "/gate", false)
	sum, err := fileSHA256(gate)
	require.NoError(t, err)
	g.reload(t, 1)
	require.Eventually(t, func() bool { return len(names()) == 2 }, gatewaytest.Timeout, time.Millisecond)
	assert.ElementsMatch(t, []string{"calculator " + calc, "gate " + sum}, names())
	_, body := adminGet(t, admin, "/metrics", "")
	assert.Regexp(t, `(?m)^repe_gw_plugin_info\{name="gate",root="/gate",sha256="`+sum+`",version="1.0.0"\} 1$`, body)
}
