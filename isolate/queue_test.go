//go:build linux

package isolate

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/repe-gw/repe-gw/repe"
)

// queuedCalls starts calls in goroutines, one after another, each once the
// one before it has queued behind the exchange in flight, so that they go
// to the worker in one exchange in this order. Each call's replies are
// in the slot of its name once wait returns.
type queuedCalls struct {
	t       *testing.T
	p       *Plugin
	wg      sync.WaitGroup
	mu      sync.Mutex
	replies map[string][]repe.Message
}

func newQueuedCalls(t *testing.T, p *Plugin) *queuedCalls {
	return &queuedCalls{t: t, p: p, replies: map[string][]repe.Message{}}
}

// queueLen returns how many calls wait for the next exchange, and whether
// a caller leads.
func (q *queuedCalls) queueLen() (int, bool) {
	q.p.qmu.Lock()
	defer q.p.qmu.Unlock()
	return len(q.p.queue), q.p.leader
}

// start calls the plugin with batch in a goroutine, and returns once the
// call is queued: the queue has grown by one.
func (q *queuedCalls) start(name string, batch []byte, dl time.Time) {
	before, _ := q.queueLen()
	q.wg.Go(func() {
		out, err := q.p.Call([]byte(name), batch, dl)
		if !assert.NoError(q.t, err) || !assert.Equal(q.t, name, string(out[:len(name)]), "dst's prefix kept") {
			return
		}
		q.mu.Lock()
		q.replies[name] = frames(q.t, out[len(name):])
		q.mu.Unlock()
	})
	for {
		if n, _ := q.queueLen(); n > before {
			return
		}
		runtime.Gosched()
	}
}

// hold starts a call of a 2 s nap and returns once its exchange has begun,
// so that the calls started next queue behind it.
func (q *queuedCalls) hold() {
	q.wg.Go(func() {
		out, err := q.p.Call(nil, request(100, "/crash/nap", ""), time.Time{})
		if assert.NoError(q.t, err) {
			got := frames(q.t, out)
			assert.Len(q.t, got, 1)
			assert.Equal(q.t, repe.OK, got[0].EC())
		}
	})
	for {
		if n, leads := q.queueLen(); leads && n == 0 {
			return
		}
		runtime.Gosched()
	}
}

func (q *queuedCalls) wait() map[string][]repe.Message {
	q.wg.Wait()
	return q.replies
}

// want checks one reply: its id, its ec, and a part of its body.
func want(t *testing.T, m repe.Message, id uint64, ec repe.ErrorCode, body string) {
	t.Helper()
	assert.Equal(t, id, m.ID())
	assert.Equal(t, ec, m.EC(), string(m.Body()))
	assert.Contains(t, string(m.Body()), body)
}

// TestQueuedCrash sends the batches of five callers to the worker in one
// exchange, in which one caller's request crashes it, and checks each
// caller's replies: exactly its own, in order, with the documented codes.
// The calls before the crash keep their replies; the crashing call gets
// connection_failure for its running request and send_error after it; a
// call none of whose requests began is sent again to the next worker; and
// deadlines still hold, while queued and during the restart.
func TestQueuedCrash(t *testing.T) {
	p, logs := startPlugin(t, crashSO, func(c *Config) { c.BackoffMin = time.Second })
	firstPID := p.Stats().PID
	q := newQueuedCalls(t, p)
	q.hold()
	start := time.Now()
	q.start("before", append(request(1, "/crash/echo", `"b"`), request(2, "/crash/ping", "")...), time.Time{})
	var crash []byte
	crash = append(crash, request(11, "/crash/ping", "")...)
	crash = append(crash, request(12, "/crash/segv", "")...)
	crash = append(crash, notify(13, "/crash/ping")...)
	crash = append(crash, request(14, "/crash/echo", `"c"`)...)
	q.start("crash", crash, time.Time{})
	q.start("after", request(21, "/crash/pid", ""), start.Add(30*time.Second))
	// Its deadline passes while it waits for the nap's exchange to end.
	q.start("impatient", request(31, "/crash/ping", ""), start.Add(300*time.Millisecond))
	// Its deadline passes during the restart, which takes a second.
	q.start("restart", request(41, "/crash/ping", ""), start.Add(2500*time.Millisecond))
	got := q.wait()

	if b := got["before"]; assert.Len(t, b, 2) {
		want(t, b[0], 1, repe.OK, `"b"`)
		want(t, b[1], 2, repe.OK, "")
	}
	if c := got["crash"]; assert.Len(t, c, 3, "no reply to the notify") {
		want(t, c[0], 11, repe.OK, "")
		want(t, c[1], 12, repe.ConnectionFailure, "died (signal SIGSEGV) while running this request")
		want(t, c[2], 14, repe.SendError, "did not run and is safe to retry")
	}
	if a := got["after"]; assert.Len(t, a, 1) {
		want(t, a[0], 21, repe.OK, "")
		pid, _ := strconv.Atoi(string(a[0].Body()))
		assert.NotEqual(t, firstPID, pid, "answered by the next worker")
	}
	if i := got["impatient"]; assert.Len(t, i, 1) {
		want(t, i[0], 31, repe.SendError, "was busy with other requests until the request's deadline")
	}
	if r := got["restart"]; assert.Len(t, r, 1) {
		want(t, r[0], 41, repe.SendError, "is restarting and was not ready before the request's deadline")
	}
	st := p.Stats()
	assert.Equal(t, uint64(1), st.Crashes)
	assert.Equal(t, uint64(1), st.Restarts)
	assert.Len(t, logs.find("plugin worker died"), 1)
}

// TestQueuedDeadline: in an exchange of three calls, the second hangs. It
// gets timeout once its own deadline, counted from its turn, has passed;
// the first keeps its reply, and the third, never begun, is answered by
// the next worker.
func TestQueuedDeadline(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	q := newQueuedCalls(t, p)
	q.hold()
	start := time.Now()
	q.start("first", request(1, "/crash/ping", ""), start.Add(30*time.Second))
	// The nap's exchange takes 2 s of this deadline; the hang gets the
	// rest once its turn comes.
	q.start("hang", append(request(2, "/crash/hang", ""), request(3, "/crash/ping", "")...), start.Add(2300*time.Millisecond))
	q.start("third", request(4, "/crash/ping", ""), start.Add(30*time.Second))
	got := q.wait()

	if f := got["first"]; assert.Len(t, f, 1) {
		want(t, f[0], 1, repe.OK, "")
	}
	if h := got["hang"]; assert.Len(t, h, 2) {
		// Its budget, from its Call to its deadline: 2.3 s, less the time
		// its goroutine took to start.
		want(t, h[0], 2, repe.Timeout, `timeout: plugin "crashplugin" did not answer within 2.`)
		want(t, h[1], 3, repe.SendError, "timed out on an earlier request before this one started")
	}
	if th := got["third"]; assert.Len(t, th, 1) {
		want(t, th[0], 4, repe.OK, "")
	}
	assert.Equal(t, uint64(1), p.Stats().Timeouts)
}

// TestQueuedAllocs: calls made concurrently, which share exchanges,
// allocate nothing once warm.
func TestQueuedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p, _ := startPlugin(t, calculatorSO, nil)
	batch := calculatorBatch(8)
	const callers, calls = 4, 500
	run := func() {
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				dst := make([]byte, 0, 4096)
				for range calls {
					out, err := p.Call(dst[:0], batch, deadline(10*time.Second))
					if n, _ := countFrames(out); err != nil || n != 8 {
						t.Error(n, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run()
	runtime.ReadMemStats(&after)
	// The goroutines and their buffers cost a few allocations; the calls
	// none.
	perCall := float64(after.Mallocs-before.Mallocs) / (callers * calls)
	assert.Less(t, perCall, 0.05, "allocations per call")
}
