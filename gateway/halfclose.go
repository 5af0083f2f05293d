package gateway

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/repe"
)

// A client may write its requests and then shut down its side of the
// connection (shutdown(SHUT_WR), as nc -N does) before it reads the replies.
// gnet closes a connection at the end of its stream, so the requests still
// running or waiting would go unanswered. Instead, the connection is handed
// over: its socket is duplicated before gnet closes its own descriptor, and
// a goroutine answers every whole request that arrived, in order, then
// closes. Only a connection whose earlier replies are still in gnet's buffer
// cannot be handed over, because those bytes cannot be taken out of it: the
// handover would write behind a gap. Such a client stopped reading before it
// stopped writing, and is closed as before.

// handOver takes the rest of a connection whose peer ended its stream, and
// reports whether it did. It runs in OnClose, on the event loop.
func (cs *conn) handOver() bool {
	s, gc := cs.srv, cs.gc
	if gc.OutboundBuffered() > 0 {
		_ = gc.Flush()
	}
	if gc.OutboundBuffered() > 0 {
		s.log.Debug("peer ended its stream with replies unread; closing", "remote", cs.remote)
		return false
	}
	var rest []byte
	if !cs.overflowed && cs.intake == nil {
		if avail := gc.InboundBuffered(); avail > 0 {
			b, _ := gc.Peek(avail)
			// Only whole frames are answered; the copy is bounded by what
			// the connection was allowed to buffer.
			rest = append([]byte(nil), b[:wholeFrames(b, s.cfg.MaxMessageSize)]...)
		}
	}
	j := cs.job
	if j == nil && len(rest) == 0 {
		return false
	}
	fd, err := unix.FcntlInt(uintptr(gc.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Warn("cannot answer a half-closed connection", "remote", cs.remote, "error", err)
		return false
	}
	var ready chan struct{}
	if j != nil {
		if cs.parked {
			ready = nil // its replies so far are written; the rest runs below
		} else {
			ready = make(chan struct{})
			j.done = ready
			if !j.state.CompareAndSwap(jobRunning, jobHandedOver) {
				ready = nil // already done: its replies are ready
			}
		}
	}
	h := &halfClosed{srv: s, cs: cs, fd: fd, job: j, parked: cs.parked, ready: ready, rest: rest,
		overflowed: cs.overflowed, overflowID: cs.overflowID}
	cs.job, cs.parked = nil, false
	s.jobs.Add(1)
	go h.finish()
	return true
}

// wholeFrames returns how many leading bytes of b are whole frames, framing
// errors included, that can still be answered.
func wholeFrames(b []byte, maxSize uint64) int {
	done := 0
	for done < len(b) {
		n, _ := repe.Split(b[done:], maxSize)
		if n == 0 {
			break
		}
		done += n
	}
	return done
}

// halfClosed answers the requests of a connection whose peer ended its
// stream, on a goroutine of its own, writing to a duplicate of its socket.
type halfClosed struct {
	srv        *Server
	cs         *conn
	fd         int
	job        *job
	parked     bool
	ready      chan struct{}
	rest       []byte
	overflowed bool
	overflowID uint64
}

func (h *halfClosed) finish() {
	s := h.srv
	defer s.jobs.Done()
	defer unix.Close(h.fd)
	if err := h.answer(); err != nil {
		s.log.Debug("half-closed connection: replies not delivered", "remote", h.cs.remote, "error", err)
	}
}

func (h *halfClosed) answer() error {
	s := h.srv
	if j := h.job; j != nil {
		if h.ready != nil {
			<-h.ready
		}
		for {
			if !h.parked {
				if err := h.write(j.reply.B); err != nil {
					j.free()
					return err
				}
			}
			h.parked = false
			if !j.remaining() {
				break
			}
			h.run(j)
		}
		failed := j.failed
		j.free()
		if failed {
			return errors.New("the call failed")
		}
		if h.overflowed {
			return h.write(repe.AppendError(nil, h.overflowID, repe.ConnectionFailure, s.textOverflow))
		}
	}
	var out []byte
	for b := h.rest; len(b) > 0; {
		n, err := repe.Split(b, s.cfg.MaxMessageSize)
		frame := repe.Message(b[:n])
		b = b[n:]
		out = out[:0]
		switch l := s.router.route(frame.Query()); {
		case err != nil:
			e := repe.AsError(err)
			out = repe.AppendError(out, frame.ID(), e.Code, e.Message)
		case l == nil:
			if !frame.Notify() {
				out = repe.AppendError(out, frame.ID(), repe.MethodNotFound, textNoPlugin)
			}
		default:
			j := newJob(h.cs, l)
			j.req.B = append(j.req.B, frame...)
			for j.remaining() {
				h.run(j)
				if err := h.write(j.reply.B); err != nil {
					j.free()
					return err
				}
			}
			failed := j.failed
			j.free()
			if failed {
				return errors.New("the call failed")
			}
		}
		if err := h.write(out); err != nil {
			return err
		}
	}
	return nil
}

// run makes j's plugin answer the rest of j, through its lane as any job.
func (h *halfClosed) run(j *job) {
	j.reply.B = j.reply.B[:0]
	j.done = make(chan struct{})
	j.state.Store(jobHandedOver)
	j.lane.submit(j)
	<-j.done
}

// write writes b whole to the socket, waiting for room at most WriteTimeout
// at a time.
func (h *halfClosed) write(b []byte) error {
	timeout := -1
	if h.srv.cfg.WriteTimeout > 0 {
		timeout = int(h.srv.cfg.WriteTimeout / time.Millisecond)
	}
	for len(b) > 0 {
		n, err := unix.Write(h.fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		switch err {
		case unix.EINTR:
		case unix.EAGAIN:
			fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLOUT}}
			k, err := unix.Poll(fds, timeout)
			if err != nil && err != unix.EINTR {
				return err
			}
			if k == 0 {
				return fmt.Errorf("no room to write for %v", h.srv.cfg.WriteTimeout)
			}
		default:
			return err
		}
	}
	return nil
}
