//go:build linux

package isolate

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A pipe carries calls to the serving worker from an event loop of the
// gateway's, which serves the worker's socket beside its clients' (see
// UseLoop). Post never blocks: it queues a call and wakes the loop, which
// writes every call queued since it last ran in one write, and hands each
// call its replies as they arrive, however many calls the worker is still
// running. One wait for readiness serves the clients and the worker alike,
// where a blocking exchange costs a thread waiting for the worker and a
// wake-up of the loop to take its replies.
//
// While a pipe is attached it holds p.sem, as a leader does for one
// exchange: every call, Call's included, goes through it. It lets go on a
// graceful stop (Close, or the loop's) once its calls are answered, and
// when its worker fails: then the failure is settled exactly as a failed
// exchange's (settle, answerFailed), and the calls the worker had not begun
// wait for the next worker, whose pipe is attached once it serves.

// LoopConn is the gateway's end of a worker's socket as an event loop
// serves it: the buffer methods of a gnet.Conn, Close, and Wake, which
// makes the loop call the pipe's serve function soon. Its methods are
// called on the loop, but for Wake, which is safe anywhere.
type LoopConn = interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	InboundBuffered() int
	Writev(bs [][]byte) (int, error)
	Close() error
	Wake() error
}

// Enroll gives sock, a duplicate of a worker's socket, to an event loop.
// The loop calls serve whenever the socket is readable or Wake was called,
// and closed once when the socket has closed (with nil when the loop
// closed it, or stops), always on the loop; the loop owns sock from then
// on, and closes it.
type Enroll = func(sock *os.File, serve func(), closed func(error)) (LoopConn, error)

// UseLoop has the plugin's calls carried by pipes on the event loops that
// enroll gives its workers' sockets to, from the serving worker on (when
// enroll fails, as it does once the loops stop, calls go on as exchanges).
// A later call replaces enroll for the workers to come.
func (p *Plugin) UseLoop(enroll Enroll) {
	p.enroll.Store(&enroll)
	p.mu.Lock()
	w := p.cur
	p.mu.Unlock()
	if w != nil {
		go p.attach(w)
	}
}

// Post is Call without waiting: it queues reqs for the worker and returns
// at once, and done is called with dst and the replies appended, as Call
// would have returned them, with arg. It returns false, and calls nothing,
// when no pipe serves the plugin or reqs is not a batch Post takes (whole
// frames, at least one, with a deadline still ahead); Call then does what
// Post did not. done runs on an event loop, or on a goroutine of the
// plugin's after a failure: it must not block.
func (p *Plugin) Post(dst, reqs []byte, deadline time.Time, done func([]byte, any), arg any) bool {
	pp := p.pipe.Load()
	if pp == nil {
		return false
	}
	n, ok := countFrames(reqs)
	if !ok || n == 0 {
		return false
	}
	var now time.Time
	if !deadline.IsZero() {
		if now = time.Now(); !now.Before(deadline) {
			return false
		}
	}
	c := p.calls.Get().(*call)
	c.dst, c.reqs, c.n, c.deadline, c.start, c.done = dst, reqs, n, deadline, now, false
	c.notify, c.arg = done, arg
	if !pp.post(c) {
		c.dst, c.reqs, c.notify, c.arg = nil, nil, nil, nil
		p.calls.Put(c)
		return false
	}
	return true
}

// Pipe is one worker's pipe.
type Pipe struct {
	p    *Plugin
	w    *worker
	conn LoopConn

	mu     sync.Mutex
	inbox  []*call // posted, not yet written
	active bool    // holds p.sem: the loop may write
	closed bool    // detached: posts are refused
	woken  atomic.Bool

	// Used on the loop only.
	g      group // the calls written and not yet answered, oldest first
	batch  []*call
	bufs   [][]byte
	timer  *time.Timer // wakes the loop to look at a deadline
	ending bool        // the pipe closes its connection itself
}

// attach gives w a pipe, when UseLoop was called and w still serves.
func (p *Plugin) attach(w *worker) {
	enroll := p.enroll.Load()
	if enroll == nil || !w.piped.CompareAndSwap(false, true) {
		return
	}
	// The exchange in flight, if any, ends first: once the loop serves the
	// socket, it reads whatever the worker writes.
	p.sem <- struct{}{}
	p.mu.Lock()
	if p.cur != w || p.state != StateServing {
		p.mu.Unlock()
		<-p.sem
		return
	}
	w.acquire()
	p.mu.Unlock()
	fd, err := unix.FcntlInt(uintptr(w.sock), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		w.release()
		<-p.sem
		p.logger().Warn("calls go without the event loop: cannot duplicate the worker's socket", "error", err)
		return
	}
	pp := &Pipe{p: p, w: w, active: true}
	pp.g.lastDL = -1
	conn, err := (*enroll)(os.NewFile(uintptr(fd), "worker"), pp.serve, pp.closedByLoop)
	if err != nil {
		w.release()
		<-p.sem
		p.logger().Debug("calls go without the event loop", "error", err)
		return
	}
	pp.conn = conn
	// Calls post to the pipe from now on, and the callers waiting to lead
	// an exchange post theirs.
	p.setPipe(pp)
}

// setPipe makes pp the plugin's pipe (nil: none), and lets the callers
// waiting to lead an exchange know.
func (p *Plugin) setPipe(pp *Pipe) {
	p.qmu.Lock()
	p.pipe.Store(pp)
	close(p.pipeChanged)
	p.pipeChanged = make(chan struct{})
	p.qmu.Unlock()
}

// post queues c, or reports false when the pipe is detached or the plugin
// is closing.
func (pp *Pipe) post(c *call) bool {
	pp.mu.Lock()
	if pp.closed || pp.p.stopping.Load() {
		pp.mu.Unlock()
		return false
	}
	pp.inbox = append(pp.inbox, c)
	pp.mu.Unlock()
	if !pp.woken.Swap(true) {
		pp.wake()
	}
	return true
}

// postAll queues calls, all or none.
func (pp *Pipe) postAll(calls []*call) bool {
	pp.mu.Lock()
	if pp.closed {
		pp.mu.Unlock()
		return false
	}
	pp.inbox = append(pp.inbox, calls...)
	pp.mu.Unlock()
	pp.woken.Store(true)
	pp.wake()
	return true
}

func (pp *Pipe) wake() { _ = pp.conn.Wake() }

// serve writes what was posted, takes what the worker answered, and hands
// the answered calls back; on the loop.
func (pp *Pipe) serve() {
	p, g := pp.p, &pp.g
	pp.woken.Store(false)
	pp.mu.Lock()
	if !pp.active || pp.closed {
		pp.mu.Unlock()
		return
	}
	pp.batch = append(pp.batch[:0], pp.inbox...)
	clear(pp.inbox)
	pp.inbox = pp.inbox[:0]
	pp.mu.Unlock()

	if len(pp.batch) > 0 {
		now := time.Now()
		pp.bufs = pp.bufs[:0]
		for _, c := range pp.batch {
			c.base, c.first, c.next, c.at, c.sent, c.turn = g.size, g.n, 0, 0, now, time.Time{}
			if len(g.calls) == 0 {
				// The worker is idle: it begins this one as it reads it.
				c.turn = now
			}
			if !c.deadline.IsZero() {
				g.lastDL = len(g.calls)
			}
			g.size += len(c.reqs)
			g.n += c.n
			g.calls = append(g.calls, c)
			pp.bufs = append(pp.bufs, c.reqs)
		}
		clear(pp.batch)
		// gnet writes what the socket takes and buffers the rest; a write
		// that fails closes the connection, and closedByLoop has run.
		_, _ = pp.conn.Writev(pp.bufs)
		clear(pp.bufs)
		g.written = g.size
		if pp.closed {
			return
		}
	}
	if avail := pp.conn.InboundBuffered(); avail > 0 {
		buf, _ := pp.conn.Peek(avail)
		used, bad := p.takeRecords(g, buf)
		_, _ = pp.conn.Discard(used)
		if bad {
			pp.fail(endProtocol, true)
			return
		}
	}
	pp.complete()
	if p.stopping.Load() && len(g.calls) == 0 && pp.detach() {
		return
	}
	pp.watch()
}

// complete hands the answered calls back and drops them from the stream.
func (pp *Pipe) complete() {
	g := &pp.g
	if g.ci == 0 {
		return
	}
	bytes, reqs := 0, 0
	for _, c := range g.calls[:g.ci] {
		bytes += len(c.reqs)
		reqs += c.n
		pp.p.finish(c)
	}
	k := copy(g.calls, g.calls[g.ci:])
	clear(g.calls[k:])
	g.calls = g.calls[:k]
	for _, c := range g.calls {
		c.base -= bytes
		c.first -= reqs
	}
	g.size -= bytes
	g.written -= bytes
	g.n -= reqs
	g.next -= reqs
	g.running = max(g.running-g.ci, 0)
	if g.lastDL -= g.ci; g.lastDL < 0 {
		g.lastDL = -1
	}
	g.ci = 0
	pp.w.seq += uint64(reqs)
}

// finish gives an answered call back: to its done function, or to the
// caller blocked in Call.
func (p *Plugin) finish(c *call) {
	c.done = true
	if c.notify == nil {
		c.state = taken
		c.wake <- struct{}{}
		return
	}
	out, done, arg := c.dst, c.notify, c.arg
	c.dst, c.reqs, c.notify, c.arg = nil, nil, nil, nil
	p.calls.Put(c)
	done(out, arg)
}

// watch kills the worker when the request it runs is past its deadline,
// and otherwise has the loop woken when it next must look.
func (pp *Pipe) watch() {
	g := &pp.g
	if g.lastDL < 0 || len(g.calls) == 0 {
		if pp.timer != nil {
			pp.timer.Stop()
		}
		return
	}
	now := time.Now()
	at, overdue := g.limit(pp.w, now)
	if overdue {
		pp.fail(endDeadline, true)
		return
	}
	if at.IsZero() {
		return
	}
	if pp.timer == nil {
		pp.timer = time.AfterFunc(at.Sub(now), pp.wake)
	} else {
		pp.timer.Reset(at.Sub(now))
	}
}

// closedByLoop is called once the loop has closed the connection: the
// worker's socket ended or failed, or the loop stops (err nil).
func (pp *Pipe) closedByLoop(err error) {
	if pp.ending {
		return
	}
	pp.ending = true
	if err == nil && len(pp.g.calls) == 0 && pp.detach() {
		return
	}
	if err == nil {
		// The loop stops under calls the worker runs: what it had written
		// cannot be told from what gnet still held.
		pp.w.kill(killClose)
	}
	pp.fail(endDied, false)
}

// detach lets go of the worker, when no call is in flight, and reports
// whether it did; the calls posted meanwhile go on without the pipe.
func (pp *Pipe) detach() bool {
	pp.mu.Lock()
	inbox, active := pp.close()
	pp.mu.Unlock()
	pp.p.setPipe(nil)
	if !pp.ending {
		pp.ending = true
		_ = pp.conn.Close()
	}
	pp.w.release()
	if active {
		<-pp.p.sem
	}
	pp.p.redo(inbox)
	return true
}

// close marks the pipe detached and returns its inbox, and whether it held
// p.sem (attach lets go of it otherwise); pp.mu is held.
func (pp *Pipe) close() (inbox []*call, active bool) {
	pp.closed = true
	if pp.timer != nil {
		pp.timer.Stop()
	}
	inbox, active = pp.inbox, pp.active
	pp.inbox, pp.active = nil, false
	return inbox, active
}

// fail detaches the pipe from its failed worker and settles the failure,
// in the background, as a failed exchange is (see round). open says
// whether the loop's connection is still open.
func (pp *Pipe) fail(end ending, open bool) {
	p := pp.p
	pp.mu.Lock()
	inbox, active := pp.close()
	pp.mu.Unlock()
	p.setPipe(nil)
	if !active {
		// It has written nothing, and the exchange that holds p.sem sees
		// the failure itself.
		if open {
			pp.ending = true
			_ = pp.conn.Close()
		}
		pp.w.release()
		p.redo(inbox)
		return
	}
	var rest []byte
	if open {
		// What gnet read of a record not yet whole; the rest is still in
		// the socket.
		if avail := pp.conn.InboundBuffered(); avail > 0 {
			b, _ := pp.conn.Peek(avail)
			rest = append(rest, b...)
		}
		pp.ending = true
		_ = pp.conn.Close()
	}
	g := new(group)
	*g = pp.g
	pp.g = group{}
	go func() {
		p.rbuf = append(p.rbuf[:0], rest...)
		began, what := p.settle(pp.w, g, end)
		p.rbuf = p.rbuf[:0]
		p.retire(pp.w)
		var again []*call
		for _, c := range g.calls {
			switch {
			case c.done:
				p.finish(c)
			case c.first >= began:
				again = append(again, c)
			default:
				p.answerFailed(c, began, what, end)
				p.finish(c)
			}
		}
		pp.w.release()
		<-p.sem
		p.redo(append(again, inbox...))
	}()
}

// redo calls again, each as Call would, the calls the worker never began.
func (p *Plugin) redo(calls []*call) {
	for _, c := range calls {
		go func() {
			c.dst, _ = p.Call(c.dst, c.reqs, c.deadline)
			p.finish(c)
		}()
	}
}
