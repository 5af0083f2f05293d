package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// buildHookrec builds the recording hook plugin, testdata/hookrec.c, as
// build ("" for the first; another gives another file).
func buildHookrec(t *testing.T, build string) string {
	t.Helper()
	var flags []string
	if build != "" {
		flags = append(flags, `-DHOOKREC_BUILD="`+build+`"`)
	}
	so, err := plugintest.BuildTo(t.TempDir(), plugintest.RepoPath("cmd/repe-gw/testdata/hookrec.c"), flags...)
	require.NoError(t, err)
	return so
}

// hookEvents reads what every hookrec instance recorded, a line each,
// split in fields: the instance's tag first.
func hookEvents(t *testing.T, file string) [][]string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.Fields(sc.Text()))
	}
	require.NoError(t, sc.Err())
	return out
}

// TestReloadHooksUnderLoad reloads a hook plugin under pipelined load: for
// a new config, for a new file, for a file that is no plugin, for an init
// that fails, and out of the configuration. Every request succeeds and is
// asked about by exactly one instance, which also sees its response and
// its connection's connect first; each instance that served gets init,
// on_shutdown and destroy once, the last two after its last call; a
// reload that fails changes nothing, and a removed hook is called no more.
func TestReloadHooksUnderLoad(t *testing.T) {
	bin := buildGateway(t)
	hook1, hook2 := buildHookrec(t, ""), buildHookrec(t, "2")
	events := filepath.Join(t.TempDir(), "events")
	dir := t.TempDir()
	install(t, buildVersion(t, "a", filepath.Join(t.TempDir(), "v-events")), filepath.Join(dir, "v.so"))
	install(t, hook1, filepath.Join(dir, "hook.so"))
	cfg := filepath.Join(dir, "gw.yaml")
	writeConfig := func(hook string) {
		t.Helper()
		conf := "plugins:\n"
		if hook != "" {
			conf += "  - path: hook.so\n    config: {file: " + events + ", " + hook + "}\n"
		}
		conf += "  - path: v.so\n"
		require.NoError(t, os.WriteFile(cfg, []byte(conf), 0o600))
	}
	writeConfig("tag: x")
	g := startGateway(t, bin, "--config", cfg)

	const conns, depth = 4, 16
	stop := make(chan struct{})
	load := make([]*loadConn, conns)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range load {
		c, err := net.Dial("tcp", g.addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		load[i] = &loadConn{conn: c, versions: []string{"a"}}
		wg.Go(func() { errs <- load[i].run(depth, stop) })
	}
	waitReplies := func() {
		t.Helper()
		for _, lc := range load {
			base := lc.replies.Load()
			require.Eventually(t, func() bool { return lc.replies.Load() >= base+depth || len(errs) > 0 },
				gatewaytest.Timeout, time.Millisecond, "no load")
		}
	}
	reloads, done := 0, 0
	reload := func(ok bool) {
		t.Helper()
		reloads++
		if ok {
			done++
		}
		g.reload(t, reloads)
		assert.Equal(t, done, strings.Count(g.log(), "msg=\"reload done\""), g.log())
		waitReplies()
	}
	waitReplies()

	writeConfig("tag: y") // a new config: a new instance of the same file
	reload(true)
	install(t, hook2, filepath.Join(dir, "hook.so")) // a new file: y2
	reload(true)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hook.so.tmp"), []byte("not a shared object"), 0o755))
	require.NoError(t, os.Rename(filepath.Join(dir, "hook.so.tmp"), filepath.Join(dir, "hook.so")))
	reload(false)
	install(t, hook2, filepath.Join(dir, "hook.so"))
	writeConfig("tag: z, fail_init: true")
	reload(false)
	assert.Contains(t, g.log(), "msg=\"reload: plugin failed\" file="+filepath.Join(dir, "hook.so"))

	// Out of the configuration: its instance drains and is destroyed,
	// and is called no more.
	var asked int64 // replies to requests the hooks were asked about, at least
	for _, lc := range load {
		asked += lc.replies.Load()
	}
	writeConfig("")
	reload(true)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(events)
		return err == nil && strings.HasSuffix(string(b), "y2 destroy\n")
	}, gatewaytest.Timeout, time.Millisecond, "the removed hook was not destroyed")
	settled, err := os.ReadFile(events)
	require.NoError(t, err)
	waitReplies()
	after, err := os.ReadFile(events)
	require.NoError(t, err)
	assert.Equal(t, string(settled), string(after), "a removed hook was called")

	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, g.waitExit(t), g.log())

	ev := hookEvents(t, events)
	byTag := map[string][]int{} // the lines of each instance
	for i, e := range ev {
		byTag[e[0]] = append(byTag[e[0]], i)
	}
	assert.ElementsMatch(t, []string{"x", "y", "y2", "z2"}, mapKeys(byTag))
	assert.Equal(t, [][]string{{"z2", "init"}, {"z2", "init", "failed"}}, pick(ev, byTag["z2"]), "a failed init gets nothing else")
	for _, tag := range []string{"x", "y", "y2"} {
		lines := byTag[tag]
		assert.Equal(t, []string{tag, "init"}, ev[lines[0]])
		n := len(lines)
		require.GreaterOrEqual(t, n, 4, tag)
		assert.Equal(t, []string{tag, "shutdown"}, ev[lines[n-2]], "%s: on_shutdown after its last call", tag)
		assert.Equal(t, []string{tag, "destroy"}, ev[lines[n-1]], "%s: destroy last", tag)
		assert.Equal(t, 1, countEvent(ev, lines, "shutdown"), tag)
	}
	// Every request asked about once, by the instance that sees its
	// response and saw its connection connect.
	askedBy := map[string]string{}
	connected := map[string]bool{}
	var requests int
	for _, e := range ev {
		switch e[1] {
		case "connect":
			connected[e[0]+" "+e[2]] = true
		case "request":
			// Plain lookups, not assert's: tens of thousands of events, and
			// assert.NotContains walks a map's keys on every call.
			key := e[2] + " " + e[3]
			if _, twice := askedBy[key]; twice {
				t.Errorf("request %s asked about twice", key)
			}
			askedBy[key] = e[0]
			if !connected[e[0]+" "+e[2]] {
				t.Errorf("%s asked about a request of connection %s, which it never saw connect", e[0], e[2])
			}
			requests++
		case "response":
			if by := askedBy[e[2]+" "+e[3]]; by != e[0] {
				t.Errorf("response %s %s seen by %s, asked about by %q", e[2], e[3], e[0], by)
			}
		}
	}
	assert.GreaterOrEqual(t, int64(requests), asked, "requests went by the hooks unasked")
	t.Logf("%d requests asked about by %d instances over %d reloads", requests, 3, reloads)
}

func mapKeys(m map[string][]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func pick(ev [][]string, lines []int) [][]string {
	var out [][]string
	for _, i := range lines {
		out = append(out, ev[i])
	}
	return out
}

func countEvent(ev [][]string, lines []int, event string) int {
	n := 0
	for _, i := range lines {
		if len(ev[i]) == 2 && ev[i][1] == event {
			n++
		}
	}
	return n
}
