package gateway

import (
	"errors"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// How a draining gateway ends a connection. REPE has no going-away frame,
// so the end of the stream itself must tell the client what ran:
//
//   - Once Shutdown begins, a connection serves the requests it had already
//     received (drainLeft bytes of them), and no request that arrives later.
//   - Once every one of those is answered, and the replies have left the
//     gateway's buffers, it half-closes: shutdown(SHUT_WR), a FIN after the
//     last reply. A connection accepted while draining half-closes at once.
//   - It then reads and discards, without running anything, until the
//     client closes, or nothing has arrived for lingerQuiet, or the
//     shutdown deadline; then it closes. Closing while the client still
//     sends would reset the connection, and a reset can destroy replies
//     the client has not read yet: a client that goes on sending has not
//     seen the FIN, so it is not cut short.
//
// So a client that reads a clean end of stream (EOF at a frame boundary)
// knows that every request it sent and got no reply for did not run, and
// may send it again on a new connection, whatever the request does.
// Connections that close having run requests whose replies cannot be
// delivered (slow consumers, failed calls, panics, a call still running at
// the shutdown deadline, a gateway that died) are reset instead
// (endsClean), so that the client cannot mistake them for that.

const (
	// lingerQuiet ends the linger of a client that has stopped sending: by
	// then it has most likely seen the FIN, many round trips ago.
	lingerQuiet = 250 * time.Millisecond
	// drainRewake is how often Shutdown serves again the connections that
	// have not half-closed yet: gnet says nothing when its buffered replies
	// have left, and the FIN must wait for them.
	drainRewake = 20 * time.Millisecond
)

// Drain states of a connection, kept on the goroutine that serves it.
const (
	drainNone   uint8 = iota
	drainNoted        // serving what it had received when Shutdown began
	drainFinDue       // answered: half-close as soon as the replies are out
	drainFinned       // half-closed: discarding until it closes
)

// errUnflushed is closeWrite's answer while replies wait in the transport's
// buffer: it must be asked again later.
var errUnflushed = errors.New("gateway: replies not yet flushed")

// errNoHalfClose is closeWrite's answer from a transport that cannot
// half-close: the connection is closed instead.
var errNoHalfClose = errors.New("gateway: the connection cannot be half-closed")

// noteDrain starts the drain of cs: it will serve the bytes it holds now,
// and nothing after them. A large frame whose intake had begun is dropped
// with everything behind it: its rest is not received yet.
func (cs *conn) noteDrain() {
	cs.drain = drainNoted
	cs.drainLeft = cs.w.InboundBuffered()
	if cs.intake != nil {
		cs.intake.free()
		cs.intake = nil
		cs.drainLeft = 0
	}
}

// linger runs instead of serving once cs has answered everything it will:
// it half-closes when its replies are out, and then discards what arrives.
func (cs *conn) linger() action {
	w, s := cs.w, cs.srv
	if cs.drain == drainFinDue {
		switch err := w.closeWrite(); {
		case errors.Is(err, errUnflushed):
			return keepOpen // Shutdown serves it again
		case err != nil:
			return closeConn
		}
		cs.drain = drainFinned
		now := s.now()
		cs.lingerSince.Store(now)
		cs.lingerLast.Store(now)
	}
	if n := w.InboundBuffered(); n > 0 {
		_, _ = w.Discard(n)
		cs.loop.tally.bytesIn.Add(uint64(n))
		cs.lingerLast.Store(s.now())
	}
	cs.setPartial(false)
	return keepOpen
}

// lingerDone reports whether the lingering cs may be closed now.
func (cs *conn) lingerDone(now int64) bool {
	return cs.lingerSince.Load() != 0 && now-cs.lingerLast.Load() > int64(lingerQuiet)
}

// lostReplies reports whether cs is being closed with replies to requests
// that ran not delivered.
func (cs *conn) lostReplies() bool {
	switch cs.why.Load() {
	case closedSlowConsumer, closedCallFailed, closedPanic:
		return true
	}
	return false
}

// endsClean reports whether cs, about to close, may end with a FIN: no
// request of it is running, and every reply to one that ran is out of the
// gateway. Every connection is set to be reset when it closes from the
// moment it is admitted, so that a gateway that dies (a crash, SIGKILL)
// resets its connections rather than ending them cleanly: ending cleanly is
// a promise (see above) only a live gateway can keep. The transports turn
// the reset off just before a close for which endsClean holds.
func (cs *conn) endsClean() bool {
	return cs.job == nil && !cs.lostReplies() && cs.w.OutboundBuffered() == 0
}

// admitDraining counts cs, which admit refused, as a connection that
// half-closes at once, when the refusal was because the server is
// draining: closed at once, it would reset the requests the client has
// already sent, and the client could not tell that they did not run.
func (s *Server) admitDraining(cs *conn, loop func() *loop) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.draining.Load() || len(s.conns) >= s.cfg.MaxConns {
		return false
	}
	cs.loop = loop()
	cs.drain = drainFinDue
	cs.setWhy(closedShutdown)
	s.conns[cs] = struct{}{}
	if cs.ip != "" {
		s.perIP[cs.ip]++
	}
	// Counted as accepted, and as closed by the shutdown once it closes.
	s.stats.accepted[cs.loop.tally.transport].Add(1)
	return true
}

// drainTick runs on each tick of Shutdown's wait: it closes connections
// whose linger is over, all that linger when deadline is set and, every
// drainRewake, serves again those that have not half-closed yet.
func (s *Server) drainTick(rewake, deadline bool) {
	now := s.now()
	var done, wake []*conn
	s.mu.Lock()
	for cs := range s.conns {
		switch {
		case cs.lingerDone(now) || deadline && cs.lingerSince.Load() != 0:
			done = append(done, cs)
		case rewake && cs.lingerSince.Load() == 0:
			wake = append(wake, cs)
		}
	}
	s.mu.Unlock()
	for _, cs := range done {
		cs.close()
	}
	for _, cs := range wake {
		cs.wake(nil)
	}
}

// closeWrite half-closes a gnet connection once gnet has written every
// reply it holds.
func (w *gnetWire) closeWrite() error {
	if w.OutboundBuffered() > 0 {
		_ = w.Flush()
		if w.OutboundBuffered() > 0 {
			return errUnflushed
		}
	}
	return unix.Shutdown(w.Fd(), unix.SHUT_WR)
}

// resetOnClose sets whether closing a gnet connection resets it.
func (w *gnetWire) resetOnClose(on bool) { _ = w.SetLinger(lingerSecs(on)) }

// lingerSecs is SO_LINGER for resetOnClose: 0 resets, -1 is the default.
func lingerSecs(reset bool) int {
	if reset {
		return 0
	}
	return -1
}

// closeWrite half-closes a stream connection; its writes are done when
// they return. A TLS connection sends close_notify first.
func (w *streamWire) closeWrite() error {
	if c, ok := w.nc.(interface{ CloseWrite() error }); ok {
		return c.CloseWrite()
	}
	return errNoHalfClose
}

// resetOnClose sets whether closing a stream connection resets it, when it
// is TCP (under TLS or not).
func (w *streamWire) resetOnClose(on bool) {
	nc := w.nc
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	if t, ok := nc.(*net.TCPConn); ok {
		_ = t.SetLinger(lingerSecs(on))
	}
}

// closeWrite ends a one-shot call: it has no stream to half-close.
func (w *oneshotWire) closeWrite() error { return errNoHalfClose }

func (w *oneshotWire) resetOnClose(bool) {}
