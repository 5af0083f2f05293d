package gateway

import (
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// caller is how a lane's workers call its plugin, wherever it runs: the
// lane queues, limits, counts and times jobs the same way for both, and
// only the caller knows whether a job's requests run on this thread one at
// a time (inProcessCaller) or go to a worker process as one batch
// (isolatedCaller).
type caller interface {
	// plugged returns the plugin called.
	plugged() plugin
	// watch returns the deadline timer of one worker's calls, or nil when
	// they need none.
	watch() *watch
	// serve calls the plugin for the requests of j from j.off on,
	// appending the replies to j.reply, and reports whether j is still
	// the worker's to finish: it is not when a call passed its deadline
	// and the job went on without it.
	serve(j *job, w *watch) (owned bool)
}

// newCaller returns the caller of p for l.
func newCaller(l *lane, p plugin) caller {
	if p, ok := p.(IsolatedPlugin); ok {
		return isolatedCaller{l, p}
	}
	return inProcessCaller{l, p.(inProcess)}
}

// inProcessCaller calls a plugin of this process on the worker's thread,
// one request at a time, each within the plugin's deadline.
type inProcessCaller struct {
	l *lane
	p inProcess
}

func (c inProcessCaller) plugged() plugin { return c.p }

func (c inProcessCaller) watch() *watch {
	if c.l.deadline > 0 {
		return newWatch(c.l)
	}
	return nil
}

func (c inProcessCaller) serve(j *job, w *watch) (owned bool) {
	l := c.l
	maxOut := l.srv.cfg.MaxPendingOutput
	for j.off < len(j.req.B) && len(j.reply.B) < maxOut {
		reqs := j.req.B[j.off:]
		// The frames were framed on the event loop before they were copied,
		// but a length that does not frame them must stop the job, never
		// loop on it.
		n := repe.Message(reqs).Length()
		if len(reqs) < repe.HeaderSize || n < repe.HeaderSize || n > uint64(len(reqs)) {
			l.log.Error("a job's frames do not frame; closing the connection", "offset", j.off, "length", n)
			j.failed = true
			return true
		}
		frame := repe.Message(reqs[:n])
		if h := l.srv.cfg.testHook; h != nil {
			h(frame.Query(), true)
		}
		start, before := time.Now(), len(j.reply.B)
		if w == nil {
			j.reply.B = l.callJob(j, frame)
		} else if !w.call(j, frame) {
			return false
		}
		ns := j.elapsed(start)
		if j.cs.timed() {
			l.srv.logCall(j.cs, l, frame, j.reply.B[before:], ns)
		}
		l.observeWorker(ns)
		l.workerCalls.calls(1, ns, false)
		j.off += int(n)
	}
	return true
}

// isolatedCaller sends the rest of a job to the plugin's worker process in
// one batch. The plugin's deadline is per request: a batch of n requests
// gets n deadlines' worth, and the worker process is killed if it passes
// them.
type isolatedCaller struct {
	l *lane
	p IsolatedPlugin
}

func (c isolatedCaller) plugged() plugin { return c.p }

func (c isolatedCaller) watch() *watch { return nil } // the plugin keeps its deadlines

func (c isolatedCaller) serve(j *job, _ *watch) bool {
	l := c.l
	reqs := j.req.B[j.off:]
	n := countFrames(reqs)
	var deadline time.Time
	if l.deadline > 0 {
		deadline = time.Now().Add(time.Duration(l.deadline) * time.Duration(n))
	}
	start, before := time.Now(), len(j.reply.B)
	out, err := c.p.Call(j.reply.B, reqs, deadline)
	if err != nil {
		l.log.Error("isolated plugin refused a batch; closing the connection", "error", err)
		j.failed = true
		return true
	}
	j.reply.B = out
	j.off = len(j.req.B)
	ns := int64(time.Since(start))
	l.avg.Store(ns / int64(max(1, n)))
	l.workerCalls.calls(n, ns, false)
	if j.cs.timed() {
		l.srv.logReplies(j.cs, l, reqs, out[before:], ns)
	}
	return true
}
