package pluginhost

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/repe-gw/repe-gw/repe"
)

// TestCallConcurrent has many goroutines call one plugin at once, each with
// payloads of its own: every reply must be the one for its own request. It
// fails if a reply is copied after another call on the same OS thread has
// overwritten the plugin's thread-local buffer, which Call prevents by
// locking the goroutine to its thread (take runtime.LockOSThread out of
// Call and this test fails on every run).
//
// It provokes that overwrite rather than waiting for it. Every other call
// sleeps 100 µs in the plugin, long enough for the scheduler to hand the
// goroutine's P to another thread. With fewer Ps than goroutines, a call that
// returns then finds no P free: the goroutine waits in the run queue while
// its thread parks, and that thread is the next one woken to run another
// goroutine, whose call overwrites the reply still waiting to be copied.
func TestCallConcurrent(t *testing.T) {
	// A fixed number, not GOMAXPROCS: with as many Ps as goroutines, a
	// returning call would find one free and keep its thread.
	prev := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(prev)

	p := openTest(t)
	const goroutines, calls = 32, 300
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			var dst []byte
			for i := range calls {
				id := uint64(g)<<32 | uint64(i)
				query := "/test/echo"
				if (g+i)%2 == 0 {
					query = "/test/slowecho"
				}
				// Sizes differ too, so a mixed-up reply cannot match by chance.
				body := bytes.Repeat([]byte(strconv.FormatUint(id, 36)+";"), 1+(g+i)%40)
				req := repe.AppendMessage(nil, repe.Header{ID: id}, query, body)
				var err error
				dst, err = p.Call(dst[:0], req)
				if err == nil {
					var m repe.Message
					if m, err = repe.Parse(dst); err == nil && (m.ID() != id || !bytes.Equal(m.Body(), body)) {
						err = fmt.Errorf("got id %d body %q, want id %d body %q", m.ID(), m.Body(), id, body)
					}
				}
				// A reply overwritten with another call's fails Call's own
				// checks (another id, another length) or the comparison.
				if err != nil && wrong.Add(1) == 1 {
					t.Errorf("call %d/%d: %v", g, i, err)
				}
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Errorf("%d of %d calls failed", n, goroutines*calls)
	}
}
