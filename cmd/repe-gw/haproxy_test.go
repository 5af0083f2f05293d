package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// haproxyConfig is HAProxy in TCP mode in front of the gateways, checking
// each one's /readyz on its admin listener five times a second; two
// failed checks take a gateway out. A connection that a gateway refuses is
// sent to another (redispatch).
const haproxyConfig = `global
	stats socket %s mode 600 level admin
defaults
	mode tcp
	timeout connect 2s
	timeout client 1m
	timeout server 1m
	retries 3
	option redispatch
frontend repe
	bind %s
	default_backend gateways
backend gateways
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server check inter 200ms fall 2 rise 2
%s`

// balanced is HAProxy running in front of gateways.
type balanced struct {
	addr  string
	stats string // HAProxy's stats socket
}

// status returns what HAProxy thinks of server name: UP, DOWN, ...
func (h *balanced) status(t *testing.T, name string) string {
	t.Helper()
	return h.stat(t, name, "status")
}

// stat returns column of server name in HAProxy's statistics.
func (h *balanced) stat(t *testing.T, name, column string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", h.stats, gatewaytest.Timeout)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("show stat\n"))
	require.NoError(t, err)
	r := csv.NewReader(bufio.NewReader(c))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	require.NoError(t, err)
	col := -1
	for _, row := range rows {
		if len(row) > 0 && strings.HasPrefix(row[0], "# ") {
			for i, f := range row {
				if strings.TrimPrefix(f, "# ") == column {
					col = i
				}
			}
			continue
		}
		if col >= 0 && len(row) > col && row[1] == name {
			return row[col]
		}
	}
	t.Fatalf("HAProxy does not know server %s", name)
	return ""
}

// untilDown returns how long HAProxy took, from since, to mark name down.
func (h *balanced) untilDown(t *testing.T, name string, since time.Time) time.Duration {
	t.Helper()
	require.Eventually(t, func() bool { return strings.HasPrefix(h.status(t, name), "DOWN") },
		gatewaytest.Timeout, time.Millisecond, "HAProxy still routes to %s", name)
	return time.Since(since)
}

// benchRun is repe-bench --reconnect running until interrupted.
type benchRun struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

func startBench(t *testing.T, bench, addr string) *benchRun {
	t.Helper()
	b := &benchRun{done: make(chan error, 1)}
	b.cmd = exec.Command(bench, "--addr", addr, "--query", "/calculator/value", "-c", "6", "-P", "4",
		"-z", "1h", "--reconnect", "--format", "json")
	b.cmd.Stdout = &b.out
	require.NoError(t, b.cmd.Start())
	go func() { b.done <- b.cmd.Wait() }()
	return b
}

// benchSummary is the part of repe-bench's JSON summary the tests read.
type benchSummary struct {
	Requests, OK, Errors, Reconnects, Resent int64
	ClientErrors                             map[string]int64 `json:"client_errors"`
}

func (s benchSummary) String() string {
	return fmt.Sprintf("%d requests, %d ok, %d failed (%d with their connection), %d connections opened again, %d requests sent again",
		s.Requests, s.OK, s.Errors, s.ClientErrors["connection"], s.Reconnects, s.Resent)
}

func (b *benchRun) stop(t *testing.T) benchSummary {
	t.Helper()
	require.NoError(t, b.cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-b.done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			require.NoError(t, err)
		}
	case <-time.After(gatewaytest.Timeout):
		t.Fatal("repe-bench did not stop when interrupted")
	}
	var s benchSummary
	require.NoError(t, json.Unmarshal(b.out.Bytes(), &s), "%s", b.out.String())
	return s
}

// TestHAProxy runs three gateways behind HAProxy, in TCP mode with HTTP
// checks of /readyz, loads them through it with repe-bench --reconnect and
// the Go client, then stops one gateway with SIGTERM and kills another
// with SIGKILL. The graceful stop loses no request of a reconnecting
// client. It reports what the clients saw and how long HAProxy took to stop
// routing to each. make cluster-test runs it.
func TestHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not found (Debian: apt-get install haproxy): the cluster test does not run")
	}
	bin := buildGateway(t)
	bench := filepath.Join(t.TempDir(), "repe-bench")
	out, err := exec.Command("go", "build", "-o", bench, "../repe-bench").CombinedOutput()
	require.NoError(t, err, "%s", out)
	calc := gatewaytest.Calculator(t)

	var gws []*process
	var servers strings.Builder
	for i := range 3 {
		addr, admin := freeAddr(t), freeAddr(t)
		// The delay outlasts two failed checks 200 ms apart.
		g := spawn(t, bin, nil, addr, "--plugin", calc, "--addr", addr, "--admin", admin, "--shutdown-delay", "1s")
		g.waitLog(t, `msg="admin listening"`)
		t.Cleanup(func() { _ = g.cmd.Process.Kill() })
		gws = append(gws, g)
		_, port, _ := net.SplitHostPort(admin)
		fmt.Fprintf(&servers, "\tserver g%d %s port %s\n", i, addr, port)
	}
	dir, err := os.MkdirTemp("", "haproxy") // a socket's path is short
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &balanced{addr: freeAddr(t), stats: filepath.Join(dir, "stats")}
	cfg := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, h.stats, h.addr, servers.String()), 0o600))
	hp := exec.Command(haproxy, "-db", "-f", cfg)
	// A file, which HAProxy writes without a goroutine of ours that could
	// race with reading it.
	hpLog, err := os.Create(filepath.Join(dir, "haproxy.log"))
	require.NoError(t, err)
	defer hpLog.Close()
	hp.Stdout, hp.Stderr = hpLog, hpLog
	require.NoError(t, hp.Start())
	t.Cleanup(func() { _ = hp.Process.Kill(); _ = hp.Wait() })
	for i := range gws {
		name := fmt.Sprintf("g%d", i)
		if !assert.Eventually(t, func() bool {
			_, err := os.Stat(h.stats)
			return err == nil && h.status(t, name) == "UP"
		}, gatewaytest.Timeout, 10*time.Millisecond) {
			log, _ := os.ReadFile(hpLog.Name())
			t.Fatalf("HAProxy never saw %s up:\n%s", name, log)
		}
	}

	// A graceful stop: SIGTERM to g1.
	c, err := client.Dial(context.Background(), h.addr, &client.Config{Conns: 6, ResendUnanswered: true})
	require.NoError(t, err)
	defer c.Close()
	reads := startLoad(c, 12, client.Idempotent())
	defer reads.end()
	calls := startLoad(c, 12)
	defer calls.end()
	b := startBench(t, bench, h.addr)
	reads.waitFor(t, 1000)
	calls.waitFor(t, 1000)
	sent := time.Now()
	gws[1].signal(t, syscall.SIGTERM, "shutting down")
	down1 := h.untilDown(t, "g1", sent)
	require.Equal(t, 0, gws[1].waitExit(t))
	reads.waitFor(t, 1000)
	calls.waitFor(t, 1000)
	graceful := b.stop(t)
	reads.end()
	calls.end()
	c.Close() // so that the sessions HAProxy counts below are repe-bench's
	t.Logf("SIGTERM to g1: HAProxy stopped routing to it after %v", down1)
	t.Logf("SIGTERM to g1: repe-bench --reconnect -c 6 -P 4: %v", graceful)
	for _, l := range []struct {
		name string
		*callLoad
	}{{"Idempotent calls", reads}, {"other calls", calls}} {
		l.logf(t, "SIGTERM to g1: Go client", l.name)
		assert.Zero(t, l.failed.Load(), "%s through a graceful stop", l.name)
	}
	assert.Zero(t, graceful.Errors, "repe-bench --reconnect through a graceful stop")

	// A crash: SIGKILL to g2, while a new repe-bench loads g0 and g2.
	require.Eventually(t, func() bool { return h.stat(t, "g0", "scur")+h.stat(t, "g2", "scur") == "00" },
		gatewaytest.Timeout, time.Millisecond, "HAProxy still counts the Go client's sessions")
	b = startBench(t, bench, h.addr)
	require.Eventually(t, func() bool { return h.stat(t, "g2", "scur") != "0" }, gatewaytest.Timeout, time.Millisecond,
		"repe-bench has no connection through g2")
	onKilled := h.stat(t, "g2", "scur")
	killed := time.Now()
	require.NoError(t, gws[2].cmd.Process.Kill())
	down2 := h.untilDown(t, "g2", killed)
	crash := b.stop(t)
	t.Logf("SIGKILL to g2: HAProxy stopped routing to it after %v", down2)
	t.Logf("SIGKILL to g2: repe-bench --reconnect -c 6 -P 4, %s of its connections through g2: %v", onKilled, crash)
	assert.Positive(t, crash.OK)

	require.NoError(t, gws[0].cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, gws[0].waitExit(t))
}
