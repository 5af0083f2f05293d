package gateway

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/repe-gw/repe-gw/repe"
)

// job is a run of requests from one connection that a worker calls the
// plugin for, in order. The requests are copied out of the transport's buffer,
// whose bytes must not leave the goroutine that serves the connection.
//
// A worker stops early once the replies reach MaxPendingOutput, so that one
// job cannot pile up more output than a connection may hold; off says how
// much of req it answered, and the rest runs once the client has read.
type job struct {
	cs     *conn
	lane   *lane
	req    *bytebufferpool.ByteBuffer
	reply  *bytebufferpool.ByteBuffer
	off    int // bytes of req answered so far
	reqs   int // requests counted against the plugin's queue limit
	state  atomic.Int32
	failed bool // a panic or a bad frame interrupted the job; written before state
	direct directSent
	// posted is when the job went to its plugin's pipe (pipe.go).
	posted time.Time
}

// Job states. A running job becomes done when its worker finishes; when its
// connection closes first it becomes orphaned, and whoever moves second
// frees it.
const (
	jobRunning int32 = iota
	jobDone
	jobOrphaned
)

// newJob returns a job for requests of cs to l, or nil when a reload has
// retired l. The job holds the lane until it is freed, so that l is not
// drained while requests routed to it wait, queued or parked.
func newJob(cs *conn, l *lane) *job {
	if !l.hold() {
		return nil
	}
	j, _ := cs.srv.jobPool.Get().(*job)
	if j == nil {
		j = new(job)
	}
	j.cs, j.lane = cs, l
	j.req = bytebufferpool.Get()
	j.reply = bytebufferpool.Get()
	j.off, j.reqs = 0, 0
	j.state.Store(jobRunning)
	j.failed = false
	j.direct = directSent{ecs: j.direct.ecs[:0]}
	return j
}

// remaining reports whether requests of j are still to be answered.
func (j *job) remaining() bool { return !j.failed && j.off < len(j.req.B) }

// finish hands the replies to the connection's event loop, or frees the job
// when the connection is gone.
func (j *job) finish() {
	cs := j.cs
	srv := cs.srv
	switch {
	case j.state.CompareAndSwap(jobRunning, jobDone):
		// The connection's transport serves it again, which writes the
		// replies and reads on. When the connection is closing instead,
		// its close frees the job.
		cs.wake(nil)
	default:
		j.free()
	}
	srv.jobs.Done()
}

// finishHere is finish on the connection's own event loop, from a pipe's
// serve: the connection is served once the pipe is (servePipe), instead of
// being woken.
func (j *job) finishHere() {
	cs := j.cs
	srv := cs.srv
	if j.state.CompareAndSwap(jobRunning, jobDone) {
		cs.loop.answered = append(cs.loop.answered, cs)
	} else {
		j.free()
	}
	srv.jobs.Done()
}

// orphan is called on the event loop when the connection closes while the job
// is still running. It reports whether the job still runs: its worker then
// frees it.
func (j *job) orphan() bool {
	if !j.state.CompareAndSwap(jobRunning, jobOrphaned) {
		j.free()
		return false
	}
	return true
}

func (j *job) free() {
	if j.state.Load() == jobOrphaned {
		// Its connection closed while it ran, and left the hooks to it.
		unpinHooks(j.cs.hooks)
	}
	j.lane.holds.Add(-1)
	bytebufferpool.Put(j.req)
	bytebufferpool.Put(j.reply)
	pool := &j.cs.srv.jobPool
	j.cs, j.lane, j.req, j.reply = nil, nil, nil, nil
	pool.Put(j)
}

// submit queues j for one of l's workers, and starts one when a slot of the
// plugin's concurrency limit is free. A job the plugin's policy refuses is
// answered at once with ec 8 (see Policy).
func (l *lane) submit(j *job) {
	j.cs.srv.jobs.Add(1)
	if l.deadline > 0 {
		switch {
		case l.stuck.Load() >= l.limit:
			l.refuse(j, l.textStuck)
			return
		case !l.breaker.allow(l.srv.now()):
			l.refuse(j, l.textOpen)
			return
		}
	}
	l.mu.Lock()
	if l.queueLimit > 0 {
		j.reqs = countFrames(j.req.B[j.off:])
		if (len(l.queue) > 0 || l.busy.Load() >= l.limit) && l.queuedReqs+j.reqs > l.queueLimit {
			l.mu.Unlock()
			l.refuse(j, l.textQueue)
			return
		}
		l.queuedReqs += j.reqs
	}
	l.queue = append(l.queue, j)
	l.queued.Store(int32(len(l.queue)))
	l.startLocked()
	l.mu.Unlock()
}

// refuse answers every request left in j with ec 8 and text, without
// calling the plugin.
func (l *lane) refuse(j *job, text string) {
	before := len(j.reply.B)
	for b := j.req.B[j.off:]; len(b) > 0; {
		m := repe.Message(b)
		n := m.Length()
		if len(b) < repe.HeaderSize || n < repe.HeaderSize || n > uint64(len(b)) {
			break
		}
		if !m.Notify() {
			j.reply.B = repe.AppendError(j.reply.B, m.ID(), repe.SendError, text)
			j.cs.made.Add(1)
		}
		l.refused.Add(1)
		b = b[n:]
	}
	if j.cs.timed() {
		l.srv.logReplies(j.cs, l, j.req.B[j.off:], j.reply.B[before:], 0)
	}
	j.off = len(j.req.B)
	j.finish()
}

// countFrames counts the frames in b, which were framed before.
func countFrames(b []byte) int {
	n := 0
	for len(b) >= repe.HeaderSize {
		k := repe.Message(b).Length()
		if k < repe.HeaderSize || k > uint64(len(b)) {
			break
		}
		b = b[k:]
		n++
	}
	return n
}

// startLocked starts a worker for each queued job that a free slot allows;
// l.mu is held.
func (l *lane) startLocked() {
	for len(l.queue) > 0 && l.tryEnter() {
		go l.work(l.popLocked())
	}
}

func (l *lane) popLocked() *job {
	j := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.queued.Store(int32(len(l.queue)))
	l.queuedReqs -= j.reqs
	return j
}

// tryEnter takes one of the plugin's slots if one is free. Every call into
// the plugin holds one, on a worker or on an event loop, so that the limit
// holds whatever path a request takes.
func (l *lane) tryEnter() bool {
	for {
		n := l.busy.Load()
		if n >= l.limit {
			return false
		}
		if l.busy.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// leave frees a slot taken by tryEnter on an event loop, and gives it to a
// queued job if one waits. busy is released before queued is read, and
// submit stores queued before it tries for a slot, so one of the two always
// sees the other and no job is left waiting beside a free slot.
func (l *lane) leave() {
	l.busy.Add(-1)
	if l.queued.Load() > 0 {
		l.mu.Lock()
		l.startLocked()
		l.mu.Unlock()
	}
}

// work runs j and then whatever is queued, holding one slot throughout, and
// exits when the queue is empty so that an idle plugin holds no goroutines.
func (l *lane) work(j *job) {
	w := l.caller.watch()
	if w != nil {
		defer w.timer.Stop()
	}
	for {
		if l.runJob(j, w) {
			j.finish()
		}
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.busy.Add(-1)
			l.mu.Unlock()
			return
		}
		j = l.popLocked()
		l.mu.Unlock()
	}
}

// runJob calls the plugin for the requests of j, and reports whether j is
// still this worker's to finish: it is not when a call passed its deadline
// and the job went on without it.
func (l *lane) runJob(j *job, w *watch) (owned bool) {
	owned = true
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("panic while calling plugin; closing the connection", "panic", r, "stack", string(debug.Stack()))
			if w != nil && !w.abandon() {
				owned = false // the deadline passed first: the job went on
				return
			}
			j.failed = true
		}
	}()
	return l.caller.serve(j, w)
}

// watch is a worker's deadline timer. Its call runs the plugin into a
// buffer of its own, so that when the deadline passes first, the job can go
// on elsewhere while this worker's thread is still in the plugin.
type watch struct {
	l       *lane
	timer   *time.Timer
	scratch []byte

	mu     sync.Mutex
	j      *job  // the job of the call in progress; nil between calls
	start  int64 // when it started, in server time
	frame  repe.Message
	passed bool // the deadline passed first
	// keep is the request buffer of a call that passed its deadline: the
	// plugin may still read it, so it is freed only when the call returns.
	keep *bytebufferpool.ByteBuffer
}

func newWatch(l *lane) *watch {
	w := &watch{l: l}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	return w
}

// call calls the plugin for frame, a request of j, and reports whether j is
// still this worker's: false when the deadline passed first.
func (w *watch) call(j *job, frame repe.Message) bool {
	l := w.l
	w.mu.Lock()
	w.j, w.start, w.frame, w.passed = j, l.srv.now(), frame, false
	cs := j.cs // read under mu: once the deadline passes, j may be freed
	w.mu.Unlock()
	w.timer.Reset(time.Duration(l.deadline))
	w.scratch = l.call(w.scratch[:0], frame, cs)
	w.timer.Stop()
	w.mu.Lock()
	passed, keep := w.passed, w.keep
	w.j, w.keep = nil, nil
	w.mu.Unlock()
	if passed {
		bytebufferpool.Put(keep)
		l.stuck.Add(-1)
		l.late.Add(1)
		return false
	}
	l.breaker.success()
	j.reply.B = append(j.reply.B, w.scratch...)
	return true
}

// abandon ends the call in progress after a panic, and reports whether its
// job is still this worker's.
func (w *watch) abandon() bool {
	w.timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.passed {
		bytebufferpool.Put(w.keep)
		w.keep = nil
		w.l.stuck.Add(-1)
		return false
	}
	w.j = nil
	return true
}

// expire runs when the deadline timer fires: it answers the call in
// progress with ec 7 and lets its job go on without this worker.
func (w *watch) expire() {
	l := w.l
	now := l.srv.now()
	w.mu.Lock()
	j := w.j
	if j == nil || now-w.start < l.deadline {
		// The call returned, or this is an earlier call's timer that fired
		// as it returned.
		w.mu.Unlock()
		return
	}
	frame := w.frame
	id, notify, query := frame.ID(), frame.Notify(), string(frame.Query())
	w.j, w.passed = nil, true
	// The plugin may go on reading the request: the stuck call keeps the
	// buffer, and the job goes on with a copy of the requests after it.
	w.keep = j.req
	j.req = bytebufferpool.Get()
	j.req.B = append(j.req.B, w.keep.B[j.off+len(frame):]...)
	j.off = 0
	w.mu.Unlock()

	l.stuck.Add(1)
	l.timeouts.Add(1)
	// Timed at its deadline, so that the histogram shows the calls that
	// took longest; the late return is not timed again.
	l.workerCalls.calls(1, now-w.start, false)
	opened := l.breaker.failure(now)
	l.timeoutLog.Do(func(suppressed int64) {
		l.log.Warn("plugin call passed its deadline; its caller gets ec 7", "query", query,
			"deadline", time.Duration(l.deadline), "stuck", l.stuck.Load(), "suppressed", suppressed)
	})
	if opened {
		l.log.Error("plugin circuit opened: its requests are refused for the cooldown", "timeouts", l.breaker.failures)
	}
	before := len(j.reply.B)
	if !notify {
		j.reply.B = repe.AppendError(j.reply.B, id, repe.Timeout, l.textTimeout)
		j.cs.made.Add(1)
	}
	if j.cs.timed() {
		frame := repe.AppendMessage(nil, repe.Header{ID: id, Notify: notify}, query, nil)
		l.srv.logCall(j.cs, l, frame, j.reply.B[before:], now-w.start)
	}
	if j.remaining() && len(j.reply.B) < l.srv.cfg.MaxPendingOutput {
		srv := l.srv
		l.submit(j) // the rest, on another worker
		srv.jobs.Done()
		return
	}
	j.finish()
}
