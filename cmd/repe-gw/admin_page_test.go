package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// chromium returns the path of a Chromium or Chrome to drive, or skips the
// test: CI installs Debian's chromium, a developer may have none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no chromium to load the status page in (Debian: apt-get install chromium)")
	return ""
}

// TestStatusPage loads the admin listener's status page in headless
// Chromium against a gateway under load, and checks that what it renders
// follows the load: once it begins, a plugin whose calls time out shows
// errors per second, and one whose calls are slow shows requests per
// second, their median and calls in flight. The page's screenshot is left
// in the test's temporary directory.
func TestStatusPage(t *testing.T) {
	browser := chromium(t)
	bin := buildGateway(t)
	// /t/sleep and /slow/sleep take 200 ms. /t's deadline is 20 ms: its
	// calls are answered ec 7, or refused with ec 8 once its circuit
	// opens. /slow's calls take their time, and are counted in flight.
	conf := filepath.Join(t.TempDir(), "repe-gw.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("plugins:\n"+
		"  - path: "+gatewaytest.TestPlugin(t, "/t")+"\n    deadline: 20ms\n"+
		"  - path: "+gatewaytest.TestPlugin(t, "/slow")+"\n"), 0o600))
	g, admin := startAdminGateway(t, bin, "--config", conf)

	alloc, cancel := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(1000, 300),
	)...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()

	failing, slow := `tr[data-root="/t"]`, `tr[data-root="/slow"]`
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate("http://"+admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(failing+" canvas")),
	))
	assert.Contains(t, cellText(t, ctx, "#summary"), "ready")

	// Before the load: nothing fails (a rate needs two readings, so this
	// is the page's second second at least), nothing is in flight.
	waitCell(t, ctx, failing+" td.errors", func(s string) bool { return s == "0.0" })
	assert.Equal(t, "0.0", cellText(t, ctx, slow+" td.rate"))
	assert.Equal(t, "—", cellText(t, ctx, slow+" td.p50"), "no call, no median")
	assert.Equal(t, "0", cellText(t, ctx, slow+" td.inflight"))

	loadCtx, stopLoad := context.WithCancel(t.Context())
	var loaders sync.WaitGroup
	loaders.Go(func() { keepCalling(loadCtx, g.addr, "/t/sleep") })
	for range 3 {
		loaders.Go(func() { keepCalling(loadCtx, g.addr, "/slow/sleep") })
	}
	defer loaders.Wait()
	defer stopLoad()

	errs := waitCell(t, ctx, failing+" td.errors", positive)
	rate := waitCell(t, ctx, slow+" td.rate", positive)
	p50 := waitCell(t, ctx, slow+" td.p50", func(s string) bool { return strings.HasPrefix(s, "≤") || strings.HasPrefix(s, ">") })
	inFlight := waitCell(t, ctx, slow+" td.inflight", func(s string) bool { return s != "" && s != "0" })
	t.Logf("under load the page shows %s errors/s for /t, and %s requests/s, p50 %s and %s calls in flight for /slow",
		errs, rate, p50, inFlight)

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	require.NoError(t, err)
	shot := filepath.Join(t.TempDir(), "status.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)
}

// keepCalling sends requests for query to the gateway at addr, one after another
// on one connection, until ctx is done.
func keepCalling(ctx context.Context, addr, query string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	buf := make([]byte, 64<<10)
	for id := uint64(1); ctx.Err() == nil; id++ {
		if _, err := c.Write(gatewaytest.Request(id, query, "")); err != nil {
			return
		}
		// One reply per request: read until a whole frame is in.
		have := 0
		for {
			n, err := c.Read(buf[have:])
			if err != nil {
				return
			}
			have += n
			if k, _ := repe.Split(buf[:have], 0); k > 0 {
				break
			}
		}
	}
}

// positive reports whether s is a number above 0.
func positive(s string) bool {
	v, err := strconv.ParseFloat(s, 64)
	return err == nil && v > 0
}

// cellText returns the text of the element sel selects, read in one step
// in the page: the page redraws its table every second, and a node found
// first and read after may be gone by then.
func cellText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(document.querySelector(`+strconv.Quote(sel)+`) || {textContent: ""}).textContent`))
	require.NoError(t, err)
	return s
}

// waitCell waits until the text of sel satisfies ok, as the page
// refreshes every second, and returns it.
func waitCell(t *testing.T, ctx context.Context, sel string, ok func(string) bool) string {
	t.Helper()
	var s string
	require.Eventually(t, func() bool {
		s = cellText(t, ctx, sel)
		return ok(s)
	}, gatewaytest.Timeout, 100*time.Millisecond, "%s shows %q", sel, s)
	return s
}
