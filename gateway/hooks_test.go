package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// hookFile is a hook plugin to load, with its config as JSON.
type hookFile struct{ path, config string }

// hooked is a gateway with hook plugins, and the means to stop it.
type hooked struct {
	srv     *gateway.Server
	host    *pluginhost.Host
	dataDir string
}

// serveHooked loads the hook plugins, then the REPE plugins at paths, and
// serves them on a free port; the server and the plugins are stopped at
// cleanup, or earlier by stop.
func serveHooked(tb testing.TB, cfg gateway.Config, hooks []hookFile, paths ...string) *hooked {
	tb.Helper()
	h := &hooked{dataDir: tb.TempDir()}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	host, errs := pluginhost.Config{DataDir: h.dataDir, Logger: cfg.Logger}.Load(nil)
	require.Empty(tb, errs)
	h.host = host
	for _, hf := range hooks {
		_, _, err := host.AddFile(hf.path, []byte(hf.config))
		require.NoError(tb, err)
	}
	for _, p := range paths {
		_, err := host.Add(p)
		require.NoError(tb, err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.Hooks = host.Hooks()
	srv, err := gateway.New(cfg, host.Plugins())
	require.NoError(tb, err)
	h.srv = srv
	tb.Cleanup(func() { h.stop(tb) })
	require.NoError(tb, srv.Start())
	return h
}

// stop shuts the server down, then the plugins, as repe-gw does; it may be
// called again.
func (h *hooked) stop(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	h.host.BeginShutdown()
	assert.NoError(tb, h.srv.Shutdown(ctx))
	assert.NoError(tb, h.host.Close(ctx))
}

// counter reads an atomic_int that the plugin at file exports.
func counter(tb testing.TB, file, name string) int32 {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	lib, err := purego.Dlopen(file, purego.RTLD_NOW|purego.RTLD_LOCAL)
	require.NoError(tb, err)
	addr, err := purego.Dlsym(lib, name)
	require.NoError(tb, err)
	return atomic.LoadInt32((*int32)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))))
}

// TestHookRejectsRequest: a rejected request is answered ec 3 with the
// hook's reason and never reaches its plugin; a rejected notify gets no
// reply; every hook runs for every request, and on_shutdown and destroy
// once each.
func TestHookRejectsRequest(t *testing.T) {
	hp := plugintest.Build(t, plugintest.RepoPath("pluginhost/testdata/hookplugin.c"))
	h := serveHooked(t, gateway.Config{}, []hookFile{{path: hp}},
		gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/deny"))
	c := gatewaytest.Dial(t, h.srv.Addr())

	c.Send(gatewaytest.Request(1, "/gw/ping", ""))
	assertReply(t, c.Next(), 1, repe.OK, "")
	c.Send(gatewaytest.Request(2, "/deny/ping", ""))
	assertReply(t, c.Next(), 2, repe.InvalidQuery, "denied: /deny/ping")
	c.Send(gatewaytest.Notify("/deny/ping", ""))
	c.Send(gatewaytest.Request(3, "/gw/ping", ""))
	assertReply(t, c.Next(), 3, repe.OK, "")

	// Pipelined, allowed and rejected requests alternate: the replies keep
	// their order, whether the allowed ones run on a worker or inline.
	const n = 400
	var batch []byte
	for i := range uint64(n) {
		q := "/gw/ping"
		if i%3 == 0 {
			q = "/deny/x"
		}
		batch = append(batch, gatewaytest.Request(100+i, q, "")...)
	}
	c.Send(batch)
	rejected := 0
	for i := range uint64(n) {
		m := c.Next()
		require.Equal(t, 100+i, m.ID())
		if i%3 == 0 {
			assertReply(t, m, 100+i, repe.InvalidQuery, "denied: /deny/x")
			rejected++
		} else {
			assertReply(t, m, 100+i, repe.OK, "")
		}
	}

	for _, ps := range h.srv.PluginStats() {
		if ps.Root == "/deny" {
			assert.Zero(t, ps.InlineCalls+ps.WorkerCalls, "a rejected request reached its plugin")
		}
	}
	st := h.srv.HookStats()
	assert.EqualValues(t, 2+rejected, st.RejectedRequests)
	assert.EqualValues(t, 1, st.RejectedNotifies)

	c.Close()
	h.stop(t)
	h.stop(t)
	total := int32(4 + n)
	assert.Equal(t, total, counter(t, hp, "hp_requests"))
	assert.Equal(t, total, counter(t, hp, "hp_responses"), "on_response once per request")
	assert.EqualValues(t, 1, counter(t, hp, "hp_connects"))
	assert.EqualValues(t, 1, counter(t, hp, "hp_closes"))
	assert.EqualValues(t, 1, counter(t, hp, "hp_shutdowns"))
	assert.EqualValues(t, 1, counter(t, hp, "hp_destroys"))
	assert.EqualValues(t, 1, counter(t, hp, "hp_destroy_flag"), "shutting_down was 1 at destroy")
}

// TestHookRateLimit: with no refill to speak of, a burst of 5 per
// connection and 7 per address lets exactly 5 of one connection's 8
// requests through, then 2 of another's 4 from the same address.
func TestHookRateLimit(t *testing.T) {
	rl := plugintest.Build(t, plugintest.RepoPath("plugins/hooks/ratelimit/ratelimit.c"))
	h := serveHooked(t, gateway.Config{},
		[]hookFile{{path: rl, config: `{"rate": 1e-9, "burst": 5, "address_burst": 7}`}},
		gatewaytest.TestPlugin(t, "/gw"))

	send := func(c *gatewaytest.Conn, first uint64, n int) (ok, limited int) {
		var batch []byte
		for i := range uint64(n) {
			batch = append(batch, gatewaytest.Request(first+i, "/gw/ping", "")...)
		}
		c.Send(batch)
		for i := range uint64(n) {
			m := c.Next()
			require.Equal(t, first+i, m.ID())
			switch m.EC() {
			case repe.OK:
				ok++
			case repe.InvalidQuery:
				assert.Equal(t, "rate limit exceeded", string(m.Body()))
				limited++
			default:
				t.Fatalf("unexpected ec %d", m.EC())
			}
		}
		return ok, limited
	}
	ok, limited := send(gatewaytest.Dial(t, h.srv.Addr()), 0, 8)
	assert.Equal(t, 5, ok)
	assert.Equal(t, 3, limited)
	ok, limited = send(gatewaytest.Dial(t, h.srv.Addr()), 100, 4)
	assert.Equal(t, 2, ok)
	assert.Equal(t, 2, limited)
	assert.EqualValues(t, 5, h.srv.HookStats().RejectedRequests)
}

// TestHookAllowList: a connection from an address the list does not allow
// is closed before anything is read; one it allows is served.
func TestHookAllowList(t *testing.T) {
	al := plugintest.Build(t, plugintest.RepoPath("plugins/hooks/allowlist/allowlist.c"))
	deny := serveHooked(t, gateway.Config{}, []hookFile{{path: al, config: `{"allow": ["10.0.0.0/8", "::1/128"]}`}},
		gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, deny.srv.Addr())
	c.Send(gatewaytest.Request(1, "/gw/ping", ""))
	c.ExpectClosed()
	assert.EqualValues(t, 1, deny.srv.HookStats().RejectedConns)
	assert.Zero(t, deny.srv.Stats().Accepted)

	al2 := plugintest.Build(t, plugintest.RepoPath("plugins/hooks/allowlist/allowlist.c")) // a library of its own
	allow := serveHooked(t, gateway.Config{}, []hookFile{{path: al2, config: `{"allow": ["127.0.0.1"]}`}},
		gatewaytest.TestPlugin(t, "/gw"))
	c = gatewaytest.Dial(t, allow.srv.Addr())
	c.Send(gatewaytest.Request(1, "/gw/ping", ""))
	assertReply(t, c.Next(), 1, repe.OK, "")
}

// TestHookAudit: after shutdown, the audit file holds every request once,
// with its ec, those no plugin served and a notify included.
func TestHookAudit(t *testing.T) {
	au := plugintest.Build(t, plugintest.RepoPath("plugins/hooks/audit/audit.c"))
	h := serveHooked(t, gateway.Config{}, []hookFile{{path: au, config: `{"file": "requests.jsonl"}`}},
		gatewaytest.Calculator(t))
	want := map[uint64]uint32{}
	for conn := range uint64(3) {
		c := gatewaytest.Dial(t, h.srv.Addr())
		var batch []byte
		for i := range uint64(300) {
			id := conn*1000 + i
			q, ec := "/calculator/get_value", repe.OK
			if i%10 == 9 {
				q, ec = "/nowhere", repe.MethodNotFound
			}
			batch = append(batch, gatewaytest.Request(id, q, "")...)
			want[id] = uint32(ec)
		}
		c.Send(batch)
		for range 300 {
			c.Next()
		}
	}
	c := gatewaytest.Dial(t, h.srv.Addr())
	c.Send(gatewaytest.Notify("/calculator/set_value", "1"))
	c.Send(gatewaytest.Request(5000, "/calculator/get_value", ""))
	assertReply(t, c.Next(), 5000, repe.OK, "1")
	want[0] = 0 // the notify's id is 0, as is the first request's: counted apart below
	want[5000] = 0
	h.stop(t)

	f, err := os.Open(filepath.Join(h.dataDir, filepath.Base(au[:len(au)-len(".so")]), "requests.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	seen := map[uint64]int{}
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Conn, ID   uint64
			Query      string
			EC         uint32
			ReplyBytes uint64 `json:"reply_bytes"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), sc.Text())
		lines++
		seen[rec.ID]++
		assert.Equal(t, want[rec.ID], rec.EC, "ec of %d", rec.ID)
	}
	require.NoError(t, sc.Err())
	assert.Equal(t, 3*300+2, lines)
	for id := range want {
		n := 1
		if id == 0 {
			n = 2 // the first request and the notify
		}
		assert.Equal(t, n, seen[id], fmt.Sprint("id ", id))
	}
}

// BenchmarkHookCost measures what a hook plugin whose on_request does
// nothing adds to the pipelined request path: 4 connections with 32
// requests in flight each, to the calculator, served inline. A server
// without hooks and one with the hook run in interleaved rounds, so that
// drift in the machine's speed hits both alike, and the process's CPU time
// per request is compared round by round. The client's work is the same
// for both, so the difference is the server's. One op is one round on each
// server; the metrics are medians over the rounds.
func BenchmarkHookCost(b *testing.B) {
	noop := plugintest.Build(b, "testdata/noophook.c")
	plain := serveHooked(b, gateway.Config{}, nil, gatewaytest.Calculator(b))
	hook := serveHooked(b, gateway.Config{}, []hookFile{{path: noop}}, gatewaytest.Calculator(b))
	clients := func(srv *gateway.Server) []*pipeliner {
		ps := make([]*pipeliner, 4)
		for i := range ps {
			ps[i] = newPipeliner(b, srv.Addr(), 32, "/calculator/get_value")
			ps[i].round(b, 200) // past the plugin's probation
		}
		return ps
	}
	off, on := clients(plain.srv), clients(hook.srv)
	const batches = 100 // per connection and round: 12800 requests
	round := func(ps []*pipeliner) (cpu, wall float64) {
		before, start := cpuTime(b), time.Now()
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Go(func() { p.round(b, batches) })
		}
		wg.Wait()
		n := float64(len(ps) * 32 * batches)
		return float64(cpuTime(b)-before) / n, float64(time.Since(start)) / n
	}
	var cpuOff, cpuOn, cpuAdded, wallOff, wallOn []float64
	for b.Loop() {
		c0, w0 := round(off)
		c1, w1 := round(on)
		cpuOff, cpuOn, cpuAdded = append(cpuOff, c0), append(cpuOn, c1), append(cpuAdded, c1-c0)
		wallOff, wallOn = append(wallOff, w0), append(wallOn, w1)
	}
	b.ReportMetric(median(cpuOff), "cpu-ns/req-off")
	b.ReportMetric(median(cpuOn), "cpu-ns/req-on")
	b.ReportMetric(median(cpuAdded), "cpu-ns/req-added")
	b.ReportMetric(median(wallOff), "ns/req-off")
	b.ReportMetric(median(wallOn), "ns/req-on")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
