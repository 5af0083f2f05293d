package gateway

import "time"

// Backpressure. A client that sends requests and does not read the replies
// would otherwise make the gateway queue replies without bound. While more
// than MaxPendingOutput of a connection's replies are unread, none of its
// further requests are served; they wait in its input, which gnet keeps
// reading (it cannot pause one connection), so the input has a bound of its
// own: one frame and MaxPendingInput bytes. A connection past that bound,
// or whose unread replies have not shrunk for WriteTimeout, is closed as a
// slow consumer. A stalled connection's memory is thus about
// MaxPendingOutput + MaxPendingInput, plus one frame and one reply.
//
// gnet says nothing when a connection's output drains, so the waker wakes
// each stalled connection to look again: first after wakeFirst, then less
// often while the client reads nothing, and at once again when it reads.

const (
	wakeFirst = time.Millisecond
	wakeMax   = 64 * time.Millisecond
)

// stall is called on the event loop while the connection's unread replies,
// pending bytes of them, are over the bound. It closes a slow consumer and
// otherwise makes sure that the connection is woken to look again.
func (cs *conn) stall(pending int) action {
	s := cs.srv
	now := s.clock.Load()
	switch {
	case !cs.stalled:
		cs.stalled, cs.stalledOut, cs.stalledSince = true, pending, now
		s.watch(cs)
	case pending < cs.stalledOut:
		cs.stalledOut, cs.stalledSince = pending, now
		s.nudge(cs)
	}
	cs.setPartial(false)
	var reason string
	switch {
	case cs.inputOver():
		reason = "it sent more than it may while not reading its replies"
	case s.cfg.WriteTimeout > 0 && now-cs.stalledSince > int64(s.cfg.WriteTimeout):
		reason = "its unread replies did not shrink for the write timeout"
	default:
		return keepOpen
	}
	cs.setWhy(closedSlowConsumer)
	s.slowLog.Do(func(suppressed int64) {
		s.log.Warn("closing a slow consumer: "+reason, "remote", cs.remote,
			"pending_output", pending, "pending_input", cs.w.InboundBuffered(),
			"max_pending_output", s.cfg.MaxPendingOutput, "max_pending_input", s.cfg.MaxPendingInput,
			"write_timeout", s.cfg.WriteTimeout, "suppressed", suppressed)
	})
	return closeConn
}

// unstall is called on the event loop once a stalled connection's output is
// back under the bound.
func (cs *conn) unstall() {
	cs.stalled = false
	cs.srv.unwatch(cs)
}

// afterWrite runs on the event loop after a batch was written for a
// connection that has more to serve once its output drains: it wakes the
// connection at once if the output already drained, and otherwise lets the
// waker do it.
func (cs *conn) afterWrite() action {
	s := cs.srv
	pending := cs.w.OutboundBuffered()
	if pending < s.cfg.MaxPendingOutput {
		cs.wake(nil)
		return keepOpen
	}
	return cs.stall(pending)
}

// wakeState is the waker's schedule for one stalled connection.
type wakeState struct {
	next  int64 // server time of the next wake
	every time.Duration
}

// watch starts waking cs until unwatch; nudge shortens its schedule after
// progress.
func (s *Server) watch(cs *conn) {
	s.stallMu.Lock()
	s.stalled[cs] = &wakeState{next: s.now() + int64(wakeFirst), every: wakeFirst}
	first := len(s.stalled) == 1
	s.stallMu.Unlock()
	if first {
		select {
		case s.stallKick <- struct{}{}:
		default:
		}
	}
}

func (s *Server) nudge(cs *conn) {
	s.stallMu.Lock()
	if w := s.stalled[cs]; w != nil {
		w.every = wakeFirst
		w.next = s.now() + int64(wakeFirst)
	}
	s.stallMu.Unlock()
}

func (s *Server) unwatch(cs *conn) {
	s.stallMu.Lock()
	delete(s.stalled, cs)
	s.stallMu.Unlock()
}

// waker wakes stalled connections on their schedules, and sleeps while
// there are none.
func (s *Server) waker() {
	t := time.NewTicker(wakeFirst)
	defer t.Stop()
	var due []*conn
	for {
		s.stallMu.Lock()
		n := len(s.stalled)
		s.stallMu.Unlock()
		if n == 0 {
			select {
			case <-s.stop:
				return
			case <-s.stallKick:
			}
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.now()
		due = due[:0]
		s.stallMu.Lock()
		for cs, w := range s.stalled {
			if now >= w.next {
				due = append(due, cs)
				w.every = min(2*w.every, wakeMax)
				w.next = now + int64(w.every)
			}
		}
		s.stallMu.Unlock()
		for _, cs := range due {
			cs.wake(nil)
		}
	}
}
