package gateway

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// An isolated plugin's worker process is served by an event loop too: the
// loop that reads a client's requests posts them to the plugin without
// waiting, the worker's socket sits in a loop's epoll set beside the
// clients', and its replies are handed to their connections as they
// arrive. The calls of that loop's connections thus share one write to the
// worker and one wait for it, those of other loops are written by their
// own loop, and no goroutine stands between the loops and the worker.
// Package isolate keeps the order, the deadlines and the failures (its
// pipe.go); the lane keeps the limits and the counts, as for a call on a
// worker goroutine, which is where a job goes when no pipe serves the
// plugin (before its worker is up, while it restarts, once the loops have
// stopped) or the plugin has no free slot.

// loopConn is a worker's socket served by an event loop, as package
// isolate (LoopConn) uses it.
type loopConn = interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	InboundBuffered() int
	OutboundBuffered() int
	Writev(bs [][]byte) (int, error)
	Close() error
	Wake() error
	Loop() any
}

// looped is an isolated plugin whose calls event loops can carry, as
// package isolate's are.
type looped interface {
	UseLoop(enroll func(sock *os.File, serve func(), closed func(error)) (loopConn, error))
	Post(dst, reqs []byte, deadline time.Time, done func(out []byte, arg, loop any), arg any, loop any) bool
}

// pipeCtx is the context of a worker's socket on its event loop.
type pipeCtx struct {
	serve  func()
	closed func(error)
	loop   *loop // the loop's state, set when the loop opens the socket
}

// servePipe serves a worker's socket, then the connections of the same
// loop whose jobs it answered: handing them their replies right here
// saves each a wake-up of the loop through gnet's task queue.
func (h *handler) servePipe(pc *pipeCtx) {
	pc.serve()
	lp := pc.loop
	for i, cs := range lp.answered {
		lp.answered[i] = nil
		gw := cs.w.(*gnetWire)
		if h.OnTraffic(gw.Conn) == gnet.Close {
			_ = gw.EventLoop().Close(gw.Conn)
		}
	}
	lp.answered = lp.answered[:0]
}

// pipeConn is a worker's socket on its event loop.
type pipeConn struct {
	gnet.Conn
	s *Server
}

// Wake has the loop serve the socket, unless the loops have stopped.
func (c pipeConn) Wake() error {
	c.s.wakeMu.RLock()
	defer c.s.wakeMu.RUnlock()
	if c.s.stopped {
		return errLoopsStopped
	}
	return c.Conn.Wake(nil)
}

// Loop returns the connection's event loop.
func (c pipeConn) Loop() any { return c.Conn.EventLoop() }

var errLoopsStopped = errors.New("gateway: the event loops have stopped")

// useLoops lets the event loops carry l's calls, if its plugin can.
func (s *Server) useLoops(l *lane) {
	if p, ok := l.caller.plugged().(looped); ok && s.cli != nil {
		p.UseLoop(s.enrollPipe)
	}
}

// enrollPipe gives a worker's socket to an event loop.
func (s *Server) enrollPipe(sock *os.File, serve func(), closed func(error)) (loopConn, error) {
	nc, err := net.FileConn(sock)
	_ = sock.Close()
	if err != nil {
		return nil, err
	}
	s.wakeMu.RLock()
	if s.stopped {
		s.wakeMu.RUnlock()
		_ = nc.Close()
		return nil, errLoopsStopped
	}
	// The loops stop only once this enrolment is done (stopLoops).
	s.enrolling.Add(1)
	s.wakeMu.RUnlock()
	defer s.enrolling.Done()
	gc, err := s.cli.EnrollContext(nc, &pipeCtx{serve: serve, closed: closed})
	if err != nil {
		return nil, err
	}
	return pipeConn{gc, s}, nil
}

// post hands j to l's plugin through its pipe, and reports whether it did:
// otherwise j is for a worker goroutine, as before.
func (l *lane) post(j *job) bool {
	p, ok := l.caller.plugged().(looped)
	if !ok || !l.tryEnter() {
		return false
	}
	var deadline time.Time
	j.posted = time.Now()
	if l.deadline > 0 {
		deadline = j.posted.Add(time.Duration(l.deadline) * time.Duration(countFrames(j.req.B)))
	}
	// A job read on the loop that serves the worker's socket waits to be
	// written with the others of the loop's batch; one from elsewhere is
	// written at once.
	var loop any
	if gw, ok := j.cs.w.(*gnetWire); ok {
		loop = gw.EventLoop()
	}
	j.cs.srv.jobs.Add(1)
	if !p.Post(j.reply.B, j.req.B, deadline, l.srv.pipeDone, j, loop) {
		j.cs.srv.jobs.Done()
		l.leave()
		return false
	}
	return true
}

// pipeDone takes the replies of a job its pipe has answered. A job of a
// connection on the loop it runs on (el) is served by servePipe once the
// pipe is; any other is woken.
func (s *Server) pipeDone(out []byte, arg, el any) {
	j := arg.(*job)
	l := j.lane
	before := len(j.reply.B)
	j.reply.B = out
	reqs := j.req.B[j.off:]
	j.off = len(j.req.B)
	n := countFrames(reqs)
	ns := int64(time.Since(j.posted))
	l.avg.Store(ns / int64(max(1, n)))
	l.workerCalls.calls(n, ns, false)
	if j.cs.timed() {
		s.logReplies(j.cs, l, reqs, out[before:], ns)
	}
	l.leave()
	if gw, ok := j.cs.w.(*gnetWire); ok && el != nil && gw.EventLoop() == el {
		j.finishHere()
		return
	}
	j.finish()
}
