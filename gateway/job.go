package gateway

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/repe-gw/repe-gw/repe"
)

// job is a run of requests from one connection that a worker calls the
// plugin for, in order. The requests are copied out of gnet's buffer, whose
// bytes must not leave the event loop.
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
	state  atomic.Int32
	failed bool // a panic or a bad frame interrupted the job; written before state

	// done, when set, is closed instead of waking the connection: its event
	// loop has let it go and another goroutine finishes its requests.
	done chan struct{}
}

// Job states. A running job becomes done when its worker finishes; when its
// connection closes first it becomes orphaned, and whoever moves second
// frees it, or handed over, and its worker closes done.
const (
	jobRunning int32 = iota
	jobDone
	jobOrphaned
	jobHandedOver
)

func newJob(cs *conn, l *lane) *job {
	j, _ := cs.srv.jobPool.Get().(*job)
	if j == nil {
		j = new(job)
	}
	j.cs, j.lane = cs, l
	j.req = bytebufferpool.Get()
	j.reply = bytebufferpool.Get()
	j.off = 0
	j.state.Store(jobRunning)
	j.failed = false
	j.done = nil
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
		// Wake runs OnTraffic on the connection's event loop, which writes
		// the replies and reads on. It fails only when the connection is
		// closing, and then OnClose frees the job.
		srv.wake(cs.gc, nil)
	case j.state.Load() == jobHandedOver:
		close(j.done)
	default:
		j.free()
	}
	srv.jobs.Done()
}

// orphan is called on the event loop when the connection closes while the job
// is still running.
func (j *job) orphan() {
	if !j.state.CompareAndSwap(jobRunning, jobOrphaned) {
		j.free()
	}
}

func (j *job) free() {
	bytebufferpool.Put(j.req)
	bytebufferpool.Put(j.reply)
	pool := &j.cs.srv.jobPool
	j.cs, j.lane, j.req, j.reply, j.done = nil, nil, nil, nil, nil
	pool.Put(j)
}

// submit queues j for one of l's workers, and starts one when a slot of the
// plugin's concurrency limit is free.
func (l *lane) submit(j *job) {
	j.cs.srv.jobs.Add(1)
	l.mu.Lock()
	l.queue = append(l.queue, j)
	l.queued.Store(int32(len(l.queue)))
	l.startLocked()
	l.mu.Unlock()
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
	for {
		l.runJob(j)
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

func (l *lane) runJob(j *job) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("panic while calling plugin; closing the connection", "panic", r, "stack", string(debug.Stack()))
			j.failed = true
		}
		j.finish()
	}()
	maxOut := j.cs.srv.cfg.MaxPendingOutput
	for j.off < len(j.req.B) && len(j.reply.B) < maxOut {
		reqs := j.req.B[j.off:]
		// The frames were framed on the event loop before they were copied,
		// but a length that does not frame them must stop the job, never
		// loop on it.
		n := repe.Message(reqs).Length()
		if len(reqs) < repe.HeaderSize || n < repe.HeaderSize || n > uint64(len(reqs)) {
			l.log.Error("a job's frames do not frame; closing the connection", "offset", j.off, "length", n)
			j.failed = true
			return
		}
		frame := repe.Message(reqs[:n])
		if h := j.cs.srv.cfg.testHook; h != nil {
			h(frame.Query(), true)
		}
		start := time.Now()
		j.reply.B = l.call(j.reply.B, frame)
		l.observeWorker(int64(time.Since(start)))
		j.off += int(n)
	}
}
