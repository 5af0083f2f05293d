//go:build linux

package isolate

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A pipe carries calls to the serving worker beside an event loop of the
// gateway's, which serves the worker's socket with its clients' (see
// UseLoop). Post never blocks. A call posted on that loop waits for the
// loop to write it with every other call posted since the loop last ran,
// in one write; one posted anywhere else is written at once by its poster,
// unless calls before it still wait. The loop reads the replies and hands
// each call its own as they arrive, however many calls the worker is still
// running. One wait for readiness serves the clients and the worker alike,
// where a blocking exchange costs a thread waiting for the worker and a
// wake-up of the loop to take its replies.
//
// The stream of calls written and not yet answered is guarded by the
// pipe's mutex, since posters on other loops write to it. While a pipe is
// attached it holds p.sem, as a leader does for one exchange: every call,
// Call's included, goes through it. It lets go on a
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
	OutboundBuffered() int
	Writev(bs [][]byte) (int, error)
	Close() error
	Wake() error
	// Loop identifies the event loop, as Post's loop does.
	Loop() any
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

// Post is Call without waiting: it sends reqs to the worker and returns at
// once, and done is called with dst and the replies appended, as Call
// would have returned them, with arg, and with the event loop it runs on
// (nil when it does not run on one). It returns false, and calls nothing,
// when no pipe serves the plugin or reqs is not a batch Post takes (whole
// frames, at least one, with a deadline still ahead); Call then does what
// Post did not. done runs on an event loop, or on a goroutine of the
// plugin's after a failure: it must not block.
//
// loop is the event loop the caller runs on (what LoopConn.Loop returns),
// or nil. On the loop that serves the worker's socket, the batches posted
// wait for the loop to write them together once it is done with what it
// read; from anywhere else, a batch is written at once, unless batches
// before it still wait, so that reaching the worker costs no hand-off to
// another loop.
func (p *Plugin) Post(dst, reqs []byte, deadline time.Time, done func(out []byte, arg, loop any), arg any, loop any) bool {
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
	if !pp.post(c, loop != nil && loop == pp.loop) {
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
	loop any // conn.Loop()

	// mu guards the stream: g, the calls posted and not yet answered,
	// oldest first, of which the bytes past g.written are not written yet.
	mu     sync.Mutex
	g      group
	closed bool // detached: posts are refused
	// byLoop: the loop writes what is not written yet (it was posted on
	// the loop, or the socket was full); posts from elsewhere leave their
	// batches to it too, until everything is written.
	byLoop bool
	woken  atomic.Bool
	bufs   [][]byte

	// Used on the loop only.
	answered []*call
	timer    *time.Timer // wakes the loop to look at a deadline
	ending   bool        // the pipe closes its connection itself
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
	pp := &Pipe{p: p, w: w}
	pp.g.lastDL = -1
	conn, err := (*enroll)(os.NewFile(uintptr(fd), "worker"), pp.serve, pp.closedByLoop)
	if err != nil {
		w.release()
		<-p.sem
		p.logger().Debug("calls go without the event loop", "error", err)
		return
	}
	pp.conn, pp.loop = conn, conn.Loop()
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

// post sends c, or leaves it to the loop when onLoop (or when calls before
// it are still to be written), or reports false when the pipe is detached
// or the plugin is closing.
func (pp *Pipe) post(c *call, onLoop bool) bool {
	pp.mu.Lock()
	if pp.closed || pp.p.stopping.Load() {
		pp.mu.Unlock()
		return false
	}
	pp.add(c)
	wake := !c.deadline.IsZero()
	if onLoop || pp.byLoop {
		pp.byLoop = true
		wake = true
	} else {
		pp.writeDirect()
	}
	pp.mu.Unlock()
	if wake && !pp.woken.Swap(true) {
		pp.wake()
	}
	return true
}

// postAll posts calls, all or none.
func (pp *Pipe) postAll(calls []*call) bool {
	pp.mu.Lock()
	if pp.closed {
		pp.mu.Unlock()
		return false
	}
	for _, c := range calls {
		pp.add(c)
	}
	pp.byLoop = true
	pp.mu.Unlock()
	pp.woken.Store(true)
	pp.wake()
	return true
}

// add appends c to the stream; pp.mu is held.
func (pp *Pipe) add(c *call) {
	g := &pp.g
	now := c.start
	if now.IsZero() && (!c.deadline.IsZero() || g.lastDL >= 0) {
		now = time.Now()
	}
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
}

// unwritten gathers the parts of the stream not yet written; pp.mu is held.
func (pp *Pipe) unwritten() [][]byte {
	g := &pp.g
	pp.bufs = pp.bufs[:0]
	for _, c := range g.calls {
		if skip := g.written - c.base; skip < len(c.reqs) {
			pp.bufs = append(pp.bufs, c.reqs[max(skip, 0):])
		}
	}
	return pp.bufs
}

// writeDirect writes what is not written yet to the worker's socket from
// this goroutine, as an exchange does, and leaves what the socket did not
// take to the loop; pp.mu is held. A failed write is the loop's to see, as
// the end of the socket.
func (pp *Pipe) writeDirect() {
	g := &pp.g
	if k, _ := g.write(pp.w.sock); k > 0 {
		g.written += k
	}
	if g.written < g.size {
		pp.byLoop = true
		if !pp.woken.Swap(true) {
			pp.wake()
		}
	}
}

func (pp *Pipe) wake() { _ = pp.conn.Wake() }

// serve writes what is left to the loop, takes what the worker answered,
// and hands the answered calls back; on the loop.
func (pp *Pipe) serve() {
	p, g := pp.p, &pp.g
	pp.woken.Store(false)
	pp.mu.Lock()
	if pp.closed {
		pp.mu.Unlock()
		return
	}
	if pp.byLoop {
		if g.written < g.size {
			// gnet writes what the socket takes and keeps the rest; a
			// write that fails closes the connection, and closedByLoop
			// runs, after this.
			_, _ = pp.conn.Writev(pp.unwritten())
			clear(pp.bufs)
			g.written = g.size
		}
		pp.byLoop = pp.conn.OutboundBuffered() > 0
	}
	bad := false
	if avail := pp.conn.InboundBuffered(); avail > 0 {
		buf, _ := pp.conn.Peek(avail)
		var used int
		used, bad = p.takeRecords(g, buf)
		_, _ = pp.conn.Discard(used)
	}
	pp.answered = pp.complete(pp.answered[:0])
	overdue, at := false, time.Time{}
	if !bad && g.lastDL >= 0 && len(g.calls) > 0 {
		at, overdue = g.limit(pp.w, time.Now())
	}
	idle := len(g.calls) == 0
	pp.mu.Unlock()

	for _, c := range pp.answered {
		p.finish(c, pp.loop)
	}
	clear(pp.answered)
	switch {
	case bad:
		pp.fail(endProtocol, true)
	case overdue:
		pp.fail(endDeadline, true)
	case idle && p.stopping.Load():
		pp.detach()
	case !at.IsZero():
		d := time.Until(at)
		if pp.timer == nil {
			pp.timer = time.AfterFunc(d, pp.wake)
		} else {
			pp.timer.Reset(d)
		}
	}
}

// complete appends the answered calls to done and drops them from the
// stream; pp.mu is held.
func (pp *Pipe) complete(done []*call) []*call {
	g := &pp.g
	if g.ci == 0 {
		return done
	}
	bytes, reqs := 0, 0
	for _, c := range g.calls[:g.ci] {
		bytes += len(c.reqs)
		reqs += c.n
		done = append(done, c)
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
	return done
}

// finish gives an answered call back: to its done function, or to the
// caller blocked in Call. loop is the event loop finish runs on, if any.
func (p *Plugin) finish(c *call, loop any) {
	c.done = true
	if c.notify == nil {
		c.state = taken
		c.wake <- struct{}{}
		return
	}
	out, done, arg := c.dst, c.notify, c.arg
	c.dst, c.reqs, c.notify, c.arg = nil, nil, nil, nil
	p.calls.Put(c)
	done(out, arg, loop)
}

// closedByLoop is called once the loop has closed the connection: the
// worker's socket ended or failed, or the loop stops (err nil).
func (pp *Pipe) closedByLoop(err error) {
	if pp.ending {
		return
	}
	pp.ending = true
	if err == nil && pp.detach() {
		return
	}
	if err == nil {
		// The loop stops under calls the worker runs: what it had written
		// cannot be told from what gnet still held.
		pp.w.kill(killClose)
	}
	pp.fail(endDied, false)
}

// detach lets go of the worker, unless a call is in flight, and reports
// whether it did: the pipe closes its connection and gives back p.sem, and
// calls go on without it.
func (pp *Pipe) detach() bool {
	pp.mu.Lock()
	if len(pp.g.calls) > 0 {
		pp.mu.Unlock()
		return false
	}
	pp.close()
	pp.mu.Unlock()
	pp.p.setPipe(nil)
	if !pp.ending {
		pp.ending = true
		_ = pp.conn.Close()
	}
	pp.w.release()
	<-pp.p.sem
	return true
}

// close marks the pipe detached; pp.mu is held.
func (pp *Pipe) close() {
	pp.closed = true
	if pp.timer != nil {
		pp.timer.Stop()
	}
}

// fail detaches the pipe from its failed worker and settles the failure,
// in the background, as a failed exchange is (see round). open says
// whether the loop's connection is still open.
func (pp *Pipe) fail(end ending, open bool) {
	p := pp.p
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
	pp.mu.Lock()
	g := new(group)
	*g = pp.g
	pp.close()
	pp.g = group{}
	pp.mu.Unlock()
	p.setPipe(nil)
	go func() {
		p.rbuf = append(p.rbuf[:0], rest...)
		began, what := p.settle(pp.w, g, end)
		p.rbuf = p.rbuf[:0]
		p.retire(pp.w)
		var again []*call
		for _, c := range g.calls {
			switch {
			case c.done:
				p.finish(c, nil)
			case c.first >= began:
				again = append(again, c)
			default:
				p.answerFailed(c, began, what, end)
				p.finish(c, nil)
			}
		}
		pp.w.release()
		<-p.sem
		p.redo(again)
	}()
}

// redo calls again, each as Call would, the calls the worker never began.
func (p *Plugin) redo(calls []*call) {
	for _, c := range calls {
		go func() {
			c.dst, _ = p.Call(c.dst, c.reqs, c.deadline)
			p.finish(c, nil)
		}()
	}
}
