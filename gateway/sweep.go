package gateway

import "time"

// sweepEvery is how often the sweeper runs at most: it also advances the
// coarse clock that connections read instead of the real one.
const sweepEvery = time.Second

// sweep advances the coarse clock and closes connections that stalled inside
// a frame for longer than ReadTimeout, or stayed idle for IdleTimeout. It
// reads only the connections' atomics; an idle connection is closed from its
// own event loop, after a last look, so that a request arriving at that
// moment is not lost.
func (s *Server) sweep(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var stale, idle []*conn
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.now()
		s.clock.Store(now)
		// The timestamps were read from the clock as it stood, up to one
		// tick before the event: allow that tick, so that no connection is
		// closed before its timeout has really passed.
		readDeadline := now - int64(s.cfg.ReadTimeout) - int64(every)
		idleDeadline := now - int64(s.cfg.IdleTimeout) - int64(every)
		stale, idle = stale[:0], idle[:0]
		s.mu.Lock()
		for cs := range s.conns {
			if s.cfg.ReadTimeout > 0 {
				if p := cs.partialSince.Load(); p != 0 && p < readDeadline {
					stale = append(stale, cs)
				}
			}
			if s.cfg.IdleTimeout > 0 {
				if p := cs.idleSince.Load(); p != 0 && p < idleDeadline {
					idle = append(idle, cs)
				}
			}
		}
		s.mu.Unlock()
		for _, cs := range stale {
			s.log.Debug("closing connection stalled inside a frame", "remote", cs.remote, "timeout", s.cfg.ReadTimeout)
			cs.setWhy(closedReadTimeout)
			cs.close()
		}
		for _, cs := range idle {
			cs.wake(func() { cs.closeIfIdle(idleDeadline) })
		}
	}
}

// closeIfIdle closes the connection, on its event loop, if it is still idle
// since before deadline.
func (cs *conn) closeIfIdle(deadline int64) {
	p := cs.idleSince.Load()
	if p == 0 || p >= deadline || cs.job != nil || cs.intake != nil || cs.w.InboundBuffered() > 0 {
		return
	}
	cs.srv.log.Debug("closing idle connection", "remote", cs.remote, "timeout", cs.srv.cfg.IdleTimeout)
	cs.setWhy(closedIdleTimeout)
	_ = cs.w.Close()
}
