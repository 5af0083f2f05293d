package gateway

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/repe-gw/repe-gw/repe"
)

// textNoPlugin is the body the Glaze host example answers when no plugin owns
// a path; Glaze peers may match on it.
const textNoPlugin = "No plugin registered for path"

// conn is the gateway's state for one client connection. Apart from
// partialSince, which the sweeper reads, it is used only on the connection's
// event loop.
type conn struct {
	srv *Server
	gc  gnet.Conn

	// job holds the requests handed to a worker and not yet answered. While
	// it is set, later requests wait in gnet's buffer: one connection's
	// requests run one after another, as in Glaze's server, so a client that
	// writes and then reads sees its own write.
	job *job

	// partialSince is the coarse time at which bytes of an incomplete frame
	// last arrived, or 0 when no frame is incomplete.
	partialSince atomic.Int64
}

// serve answers every complete request buffered on the connection, appending
// the replies to out, until it runs out of bytes, hands requests to a worker,
// or meets a frame after which the stream cannot be trusted.
func (cs *conn) serve(out *bytebufferpool.ByteBuffer) gnet.Action {
	s, gc := cs.srv, cs.gc
	if j := cs.job; j != nil {
		if j.state.Load() != jobDone {
			if gc.InboundBuffered() > s.maxWaiting {
				s.log.Debug("closing connection: it sent too much while its previous request was running",
					"remote", gc.RemoteAddr(), "buffered", gc.InboundBuffered())
				return gnet.Close
			}
			return gnet.None
		}
		out.B = append(out.B, j.reply.B...)
		failed := j.failed
		cs.job = nil
		j.free()
		if failed {
			return gnet.Close
		}
	}

	// Inline calls are timed per run of calls to one plugin, not per call:
	// reading the clock costs about as much as a fast plugin call.
	var (
		run      *lane
		runCalls int
		runStart int64
	)
	endRun := func(now int64) {
		if run != nil {
			run.observeInline(runCalls, now-runStart)
			run, runCalls = nil, 0
		}
	}
	defer func() { endRun(s.nanotime()) }()

	for {
		b, n, err := cs.peekFrame()
		if b == nil {
			break
		}
		if n == 0 {
			// The stream cannot be framed any further: say why, then close.
			e := repe.AsError(err)
			s.log.Debug("closing connection after a bad frame", "remote", gc.RemoteAddr(), "error", err)
			out.B = repe.AppendError(out.B, repe.PeekID(b), e.Code, e.Message)
			return gnet.Close
		}
		frame := repe.Message(b[:n])
		if err != nil {
			// The length field still frames the stream: answer and go on.
			// Like Glaze, answer even a notify: its notify byte cannot be
			// trusted.
			e := repe.AsError(err)
			out.B = repe.AppendError(out.B, frame.ID(), e.Code, e.Message)
			_, _ = gc.Discard(n)
			continue
		}
		if s.cfg.testHook != nil {
			s.cfg.testHook(frame.Query())
		}
		l := s.router.route(frame.Query())
		switch {
		case l == nil:
			if !frame.Notify() {
				out.B = repe.AppendError(out.B, frame.ID(), repe.MethodNotFound, textNoPlugin)
			}
			_, _ = gc.Discard(n)
		case l.inline.Load():
			if run != l {
				now := s.nanotime()
				endRun(now)
				run, runStart = l, now
			}
			// frame points into gnet's buffer; the call copies the reply
			// before returning, so the bytes are discarded only after it.
			out.B = l.call(out.B, frame)
			runCalls++
			_, _ = gc.Discard(n)
		default:
			cs.handOff(l, frame)
			return gnet.None
		}
	}
	if s.draining.Load() {
		return gnet.Close
	}
	return gnet.None
}

// peekFrame looks at the next frame in gnet's buffer without consuming it.
// It returns b == nil when no complete frame is buffered yet; otherwise b,
// n and err as repe.Split reports them for b. It peeks at the header before
// the whole frame, so that a large frame still arriving is not copied out of
// gnet's ring buffer on every read.
func (cs *conn) peekFrame() (b []byte, n int, err error) {
	s, gc := cs.srv, cs.gc
	avail := gc.InboundBuffered()
	if avail == 0 {
		cs.partialSince.Store(0)
		return nil, 0, nil
	}
	b, _ = gc.Peek(min(avail, repe.HeaderSize))
	n, err = repe.Split(b, s.cfg.MaxMessageSize)
	if n == 0 && err == nil && len(b) == repe.HeaderSize {
		// Split vouched for the length field: it is at most MaxMessageSize.
		if length := int(binary.LittleEndian.Uint64(b)); avail >= length {
			b, _ = gc.Peek(length)
			n, err = repe.Split(b, s.cfg.MaxMessageSize)
		}
	}
	if n == 0 && err == nil {
		cs.partialSince.Store(s.clock.Load())
		return nil, 0, nil
	}
	cs.partialSince.Store(0)
	return b, n, err
}

// handOff copies frame, and the frames after it that go to the same plugin,
// out of gnet's buffer and queues them for one of l's workers.
func (cs *conn) handOff(l *lane, frame repe.Message) {
	gc := cs.gc
	j := newJob(cs)
	j.req.B = append(j.req.B, frame...)
	_, _ = gc.Discard(len(frame))
	for frames, limit := 1, l.jobFrames(); frames < limit; frames++ {
		b, n, err := cs.peekFrame()
		if b == nil || n == 0 || err != nil || cs.srv.router.route(repe.Message(b[:n]).Query()) != l {
			break
		}
		j.req.B = append(j.req.B, b[:n]...)
		_, _ = gc.Discard(n)
	}
	cs.job = j
	cs.srv.jobs.Add(1)
	l.submit(j)
}

// nanotime is a monotonic clock for timing plugin calls.
func (s *Server) nanotime() int64 { return int64(time.Since(s.started)) }
