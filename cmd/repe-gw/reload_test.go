package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// buildVersion builds the gateway's test plugin serving /v as name, with
// its init and shutdown recorded in events, and returns the file.
func buildVersion(t *testing.T, name, events string) string {
	t.Helper()
	so, err := plugintest.BuildTo(t.TempDir(), plugintest.RepoPath("gateway/testdata/gwtest.c"),
		fmt.Sprintf("-DGW_NAME=%q", name), `-DGW_ROOT="/v"`, fmt.Sprintf("-DGW_LOG=%q", events))
	require.NoError(t, err)
	return so
}

// twoVersions builds versions a and b of a plugin at root /v, both logging
// their lifecycle to the file events, and installs a as so, v.so in the
// plugin directory dir.
func twoVersions(t *testing.T) (events, a, b, dir, so string) {
	t.Helper()
	events = filepath.Join(t.TempDir(), "events")
	a, b = buildVersion(t, "a", events), buildVersion(t, "b", events)
	dir = t.TempDir()
	so = filepath.Join(dir, "v.so")
	install(t, a, so)
	return events, a, b, dir, so
}

// install puts the plugin file src at dst as an installer does: written
// beside it, then renamed over it, so that the file a running gateway
// mapped at start is never rewritten.
func install(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	tmp := filepath.Join(filepath.Dir(dst), ".installing")
	require.NoError(t, os.WriteFile(tmp, b, 0o755))
	require.NoError(t, os.Rename(tmp, dst))
}

// reload sends SIGHUP and waits until the reload has ended, well or not:
// it is the n-th reload of the process.
func (g *process) reload(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		log := g.log()
		return strings.Count(log, "msg=\"reload done\"")+strings.Count(log, "msg=\"reload failed; nothing changed\"") >= n
	}, gatewaytest.Timeout, time.Millisecond, "reload %d did not end:\n%s", n, g.log())
}

// loadConn keeps depth requests for /v/name in flight on one connection,
// and checks every reply: in order, ec 0, and from exactly one of the
// versions.
type loadConn struct {
	conn     net.Conn
	versions []string
	replies  atomic.Int64
	seen     sync.Map // the versions that answered
}

func (lc *loadConn) run(depth int, stop <-chan struct{}) error {
	var batch []byte
	buf := make([]byte, 0, 64<<10)
	next := uint64(0)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		batch = batch[:0]
		for i := range depth {
			batch = repe.AppendMessage(batch, repe.Header{ID: next + uint64(i), QueryFormat: repe.QueryJSONPointer}, "/v/name", nil)
		}
		if _, err := lc.conn.Write(batch); err != nil {
			return err
		}
		for got := 0; got < depth; {
			n, err := repe.Split(buf, 0)
			if err != nil {
				return err
			}
			if n == 0 {
				if len(buf) == cap(buf) {
					return fmt.Errorf("a reply over %d bytes", cap(buf))
				}
				k, err := lc.conn.Read(buf[len(buf):cap(buf)])
				if err != nil {
					return err
				}
				buf = buf[:len(buf)+k]
				continue
			}
			m := repe.Message(buf[:n])
			if m.ID() != next {
				return fmt.Errorf("reply id %d, want %d: out of order", m.ID(), next)
			}
			if m.EC() != repe.OK {
				return fmt.Errorf("reply %d: ec %d: %s", next, m.EC(), m.Body())
			}
			body := string(m.Body())
			if !strings.Contains(strings.Join(lc.versions, "\n")+"\n", body+"\n") {
				return fmt.Errorf("reply %d: body %q is no version's", next, body)
			}
			lc.seen.Store(body, true)
			lc.replies.Add(1)
			next++
			got++
			buf = buf[:copy(buf, buf[n:])]
		}
	}
}

// TestReloadUnderLoad: 20 reloads alternating between two builds of a
// plugin, under pipelined load on many connections, lose no request; each
// reply is one version's, in order; each image loaded gets its init and,
// once retired, its shutdown, once.
func TestReloadUnderLoad(t *testing.T) {
	bin := buildGateway(t)
	events, a, b, dir, so := twoVersions(t)
	g := startGateway(t, bin, "--plugins", dir)

	const conns, depth, reloads = 8, 16, 20
	stop := make(chan struct{})
	load := make([]*loadConn, conns)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range load {
		c, err := net.Dial("tcp", g.addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		load[i] = &loadConn{conn: c, versions: []string{"a", "b"}}
		wg.Go(func() { errs <- load[i].run(depth, stop) })
	}
	// waitReplies waits until every connection has had another round of
	// replies, or one has failed.
	waitReplies := func() {
		t.Helper()
		for _, lc := range load {
			base := lc.replies.Load()
			require.Eventually(t, func() bool { return lc.replies.Load() >= base+depth || len(errs) > 0 },
				gatewaytest.Timeout, time.Millisecond, "no load")
		}
	}
	waitReplies()
	for i := range reloads {
		install(t, []string{b, a}[i%2], so)
		g.reload(t, i+1)
		// Replies from after the swap on every connection, before the next.
		waitReplies()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var total int64
	for _, lc := range load {
		total += lc.replies.Load()
	}
	t.Logf("%d replies on %d connections over %d reloads, every one in order and from one version", total, conns, reloads)
	log := g.log()
	assert.Equal(t, reloads, strings.Count(log, "msg=\"reload done\""), log)
	assert.Equal(t, reloads, strings.Count(log, "msg=\"reload: plugin replaced\""), log)
	assert.NotContains(t, log, "reload failed")
	for _, lc := range load {
		for _, v := range []string{"a", "b"} {
			_, ok := lc.seen.Load(v)
			assert.True(t, ok, "no reply from %s on a connection", v)
		}
	}
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, g.waitExit(t), g.log())
	got, err := os.ReadFile(events)
	require.NoError(t, err)
	// a at start and after every second reload, b after the others.
	assert.Equal(t, reloads/2+1, strings.Count(string(got), "a init\n"))
	assert.Equal(t, reloads/2+1, strings.Count(string(got), "a shutdown\n"))
	assert.Equal(t, reloads/2, strings.Count(string(got), "b init\n"))
	assert.Equal(t, reloads/2, strings.Count(string(got), "b shutdown\n"))
}

// TestReloadFailsWhole: a reload that meets a file that is no plugin, or
// a root another plugin serves, changes nothing and says why.
func TestReloadFailsWhole(t *testing.T) {
	bin := buildGateway(t)
	_, a, b, dir, so := twoVersions(t)
	g := startGateway(t, bin, "--plugins", dir)
	c := g.dial(t)
	name := func() string {
		t.Helper()
		c.Send(gatewaytest.Request(1, "/v/name", ""))
		m := c.Next()
		require.Equal(t, repe.OK, m.EC(), "%s", m.Body())
		return string(m.Body())
	}
	require.Equal(t, "a", name())

	// b in place of a, beside a file that is no plugin: neither loads.
	install(t, b, so)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.so"), []byte("not a shared object"), 0o755))
	g.reload(t, 1)
	log := g.log()
	assert.Contains(t, log, "msg=\"reload: plugin failed\" file="+filepath.Join(dir, "broken.so"))
	assert.Contains(t, log, "msg=\"reload failed; nothing changed\" error=\"1 of 2 plugin files failed to load\"")
	assert.Equal(t, "a", name())

	// Without the broken file, but with b at v.so and at w.so: the second
	// of two new plugins for /v is refused before its init.
	require.NoError(t, os.Remove(filepath.Join(dir, "broken.so")))
	install(t, b, filepath.Join(dir, "w.so"))
	g.reload(t, 2)
	assert.Contains(t, g.log(), `\"/v\" is served by`)
	assert.Equal(t, "a", name())

	// a, unchanged, at v.so and b at w.so: the routes refuse the clash.
	install(t, a, so)
	g.reload(t, 3)
	assert.Contains(t, g.log(), "both claim root /v")
	assert.Equal(t, "a", name())

	// Fixed: b serves.
	require.NoError(t, os.Remove(filepath.Join(dir, "w.so")))
	install(t, b, so)
	g.reload(t, 4)
	assert.Contains(t, g.log(), "msg=\"reload: plugin replaced\" file="+so)
	assert.Equal(t, "b", name())
}

// TestReloadRemoveDrains: a plugin removed by a reload finishes the call
// it is in, is shut down only after it, and its paths get method_not_found
// at once.
func TestReloadRemoveDrains(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	dir := t.TempDir()
	gt.build(t, dir, "gate", "/gate", false)
	g := startGateway(t, bin, "--plugins", dir)

	held := g.dial(t)
	held.Send(gatewaytest.Request(7, "/gate/wait", ""))
	gt.waitEvent(t, "gate wait 7")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.Remove(filepath.Join(dir, e.Name())))
	}
	g.reload(t, 1)
	assert.Contains(t, g.log(), "msg=\"reload: plugin removed\"")

	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/gate/echo", "1"))
	assert.Equal(t, repe.MethodNotFound, c.Next().EC())
	assert.NotContains(t, gt.events(t), "gate shutdown", "shut down with a call in it")

	gt.open(t, "go")
	m := held.Next()
	assert.Equal(t, repe.OK, m.EC(), "%s", m.Body())
	assert.Equal(t, uint64(7), m.ID())
	gt.waitEvent(t, "gate shutdown")
	g.waitLog(t, "msg=\"reload: old plugin shut down\"")

	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, g.waitExit(t), g.log())
	assert.Equal(t, 1, strings.Count(gt.events(t), "gate shutdown\n"))
}

// TestReloadWatch: with --watch, a plugin file renamed into place reloads
// the plugins, and a hidden file being written does not.
func TestReloadWatch(t *testing.T) {
	bin := buildGateway(t)
	_, _, b, dir, so := twoVersions(t)
	g := startGateway(t, bin, "--plugins", dir, "--watch")
	// The watch starts after the listener: a change before it is missed.
	g.waitLog(t, "msg=\"--watch: watching the plugins and the configuration\" folders=1")
	c := g.dial(t)

	install(t, b, so)
	g.waitLog(t, "msg=\"reload done\"")
	assert.Contains(t, g.log(), "msg=\"reloading plugins\" trigger=watch")
	c.Send(gatewaytest.Request(1, "/v/name", ""))
	m := c.Next()
	require.Equal(t, repe.OK, m.EC(), "%s", m.Body())
	assert.Equal(t, "b", string(m.Body()))
	assert.Equal(t, 1, strings.Count(g.log(), "msg=\"reloading plugins\""), "one reload for one install")
}

// TestReloadAdmin: POST /reload on the admin listener reloads and answers
// the report as JSON, 422 when nothing changed, and the metrics count the
// reloads by result.
func TestReloadAdmin(t *testing.T) {
	bin := buildGateway(t)
	_, _, b, dir, so := twoVersions(t)
	_, admin := startAdminGateway(t, bin, "--plugins", dir)
	post := func() (int, reloadReport) {
		t.Helper()
		resp, err := http.Post("http://"+admin+"/reload", "", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		var rep reloadReport
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
		return resp.StatusCode, rep
	}

	install(t, b, so)
	code, rep := post()
	require.Equal(t, http.StatusOK, code, "%+v", rep)
	assert.True(t, rep.OK)
	require.Len(t, rep.Plugins, 1)
	assert.Equal(t, pluginChange{File: so, Change: changeReplaced, Plugin: "b", Root: "/v", SHA256: rep.Plugins[0].SHA256}, rep.Plugins[0])
	assert.Equal(t, 2, rep.Mapped, "a stays mapped beside b")

	require.NoError(t, os.WriteFile(so+".tmp", []byte("not a shared object"), 0o755))
	require.NoError(t, os.Rename(so+".tmp", so))
	code, rep = post()
	require.Equal(t, http.StatusUnprocessableEntity, code, "%+v", rep)
	assert.False(t, rep.OK)
	assert.Equal(t, "1 of 1 plugin files failed to load", rep.Error)
	require.Len(t, rep.Plugins, 1)
	assert.Equal(t, changeFailed, rep.Plugins[0].Change)
	assert.Contains(t, rep.Plugins[0].Reason, "cannot open shared object")

	status, metrics := adminGet(t, admin, "/metrics", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, metrics, `repe_gw_reloads_total{result="ok"} 1`)
	assert.Contains(t, metrics, `repe_gw_reloads_total{result="failed"} 1`)
	assert.Regexp(t, `(?m)^repe_gw_last_reload_timestamp_seconds [1-9]`, metrics)
}

// TestReloadRefusesPin: a reload that would bring in a file whose digest
// differs from its entry's sha256 pin changes nothing, and says why.
func TestReloadRefusesPin(t *testing.T) {
	bin := buildGateway(t)
	_, a, b, dir, so := twoVersions(t)
	cfg := filepath.Join(dir, "gw.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("plugins:\n  - path: v.so\n    sha256: "+fileSum(t, a)+"\n"), 0o600))
	g := startGateway(t, bin, "--config", cfg)
	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/v/name", ""))
	require.Equal(t, "a", string(c.Next().Body()))

	install(t, b, so)
	g.reload(t, 1)
	log := g.log()
	assert.Contains(t, log, "its SHA-256 is "+fileSum(t, b)+", but its entry pins "+fileSum(t, a))
	assert.Contains(t, log, "msg=\"reload failed; nothing changed\"")
	c.Send(gatewaytest.Request(2, "/v/name", ""))
	assert.Equal(t, "a", string(c.Next().Body()), "the pinned version still serves")
}

// TestReloadOverwrittenInPlace: a plugin file loaded at start and then
// overwritten in place, as cp does, under load: the gateway serves on from
// its private copy, calls in flight on the old image succeed, and the
// reload loads the new content.
func TestReloadOverwrittenInPlace(t *testing.T) {
	bin := buildGateway(t)
	events, _, b, dir, so := twoVersions(t)
	g := startGateway(t, bin, "--plugins", dir)

	stop := make(chan struct{})
	errs := make(chan error, 1)
	c, err := net.Dial("tcp", g.addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	lc := &loadConn{conn: c, versions: []string{"a", "b"}}
	go func() { errs <- lc.run(8, stop) }()
	require.Eventually(t, func() bool { return lc.replies.Load() > 0 || len(errs) > 0 }, gatewaytest.Timeout, time.Millisecond)

	// A call in the old image while its file is rewritten and reloaded.
	held := g.dial(t)
	held.Send(gatewaytest.Request(9, "/v/nap", "300"))

	content, err := os.ReadFile(b)
	require.NoError(t, err)
	f, err := os.OpenFile(so, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	for len(content) > 0 { // in small writes, so that readers see it half written
		n := min(len(content), 4096)
		_, err := f.Write(content[:n])
		require.NoError(t, err)
		content = content[n:]
	}
	require.NoError(t, f.Close())
	base := lc.replies.Load()
	require.Eventually(t, func() bool { return lc.replies.Load() > base+64 || len(errs) > 0 }, gatewaytest.Timeout, time.Millisecond,
		"no load after the overwrite")

	g.reload(t, 1)
	assert.Contains(t, g.log(), "msg=\"reload: plugin replaced\" file="+so)
	m := held.Next()
	assert.Equal(t, repe.OK, m.EC(), "%s", m.Body())
	assert.Equal(t, uint64(9), m.ID())
	require.Eventually(t, func() bool {
		_, ok := lc.seen.Load("b")
		return ok || len(errs) > 0
	}, gatewaytest.Timeout, time.Millisecond, "b never answered")
	close(stop)
	require.NoError(t, <-errs)
	_, ok := lc.seen.Load("a")
	assert.True(t, ok)

	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, g.waitExit(t), g.log())
	got, err := os.ReadFile(events)
	require.NoError(t, err)
	assert.Equal(t, "a init\nb init\na shutdown\nb shutdown\n", string(got))
}
