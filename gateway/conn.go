package gateway

import (
	"encoding/binary"
	"io"
	"sync/atomic"
	_ "unsafe" // for go:linkname

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/repe"
)

// textNoPlugin is the body the Glaze host example answers when no plugin owns
// a path; Glaze peers may match on it.
const textNoPlugin = "No plugin registered for path"

// conn is the gateway's state for one client connection. Apart from
// partialSince, which the sweeper reads, it is used only on the connection's
// event loop.
type conn struct {
	srv  *Server
	gc   gnet.Conn
	loop *loop

	// job holds the requests handed to a worker and not yet answered. While
	// it is set, later requests wait in gnet's buffer: one connection's
	// requests run one after another, as in Glaze's server, so a client that
	// writes and then reads sees its own write.
	job *job

	// intake is a large frame still arriving, read straight into the job
	// that will carry it to a worker rather than piled up in gnet's ring
	// buffer and copied out of it again; intakeLane is its plugin and
	// intakeLen its length.
	intake     *job
	intakeLane *lane
	intakeLen  int

	// overflowed is set when the connection sent more than maxWaiting bytes
	// while a call ran; overflowID is the id of its first dropped request.
	overflowed bool
	overflowID uint64

	// partialSince is the coarse time at which bytes of an incomplete frame
	// last arrived, or 0 when no frame is incomplete; partial says which,
	// so that the atomic is written only when it changes.
	partialSince atomic.Int64
	partial      bool
}

// loop is the gateway's state for one gnet event loop, used only on it.
type loop struct {
	// out collects a batch's replies, so that they go out in one write.
	// Shared by the loop's connections, which it serves one at a time.
	out []byte
}

// largeReply is the size above which a worker's replies are written as
// they are instead of being copied into the batch buffer first.
const largeReply = 64 << 10

// maxKeptOut bounds the reply buffer a loop keeps between batches: a rare
// huge reply should not pin its memory for good.
const maxKeptOut = 1 << 20

// serve answers every complete request buffered on the connection, appending
// the replies to out, until it runs out of bytes, hands requests to a worker,
// or meets a frame after which the stream cannot be trusted.
func (cs *conn) serve(out []byte) ([]byte, gnet.Action) {
	s, gc := cs.srv, cs.gc
	if j := cs.job; j != nil {
		if j.state.Load() != jobDone {
			return out, cs.wait()
		}
		if len(j.reply.B) > largeReply {
			// Written apart rather than copied into the batch first.
			if len(out) > 0 {
				_, _ = gc.Write(out)
				out = out[:0]
			}
			_, _ = gc.Write(j.reply.B)
		} else {
			out = append(out, j.reply.B...)
		}
		failed := j.failed
		cs.job = nil
		j.free()
		if failed {
			return out, gnet.Close
		}
		if cs.overflowed {
			// Everything after the call just answered was dropped: say so
			// to the first request dropped, then close.
			out = repe.AppendError(out, cs.overflowID, repe.ConnectionFailure, s.textOverflow)
			return out, gnet.Close
		}
	}

	if cs.intake != nil {
		// The frame read ahead runs as soon as it is whole; what follows it
		// waits its turn.
		return out, cs.continueIntake()
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

	// buf holds every buffered byte and stays valid until the Discard
	// below: frames are served from it in place, and inline calls read
	// them where gnet put them.
	buf := cs.buffered()
	if cs.intake != nil {
		return out, cs.continueIntake()
	}
	done := 0
	action := gnet.None
loop:
	for done < len(buf) {
		b := buf[done:]
		n, err := repe.Split(b, s.cfg.MaxMessageSize)
		if n == 0 {
			if err != nil {
				// The stream cannot be framed any further: say why, then
				// close.
				e := repe.AsError(err)
				s.log.Debug("closing connection after a bad frame", "remote", gc.RemoteAddr(), "error", err)
				out = repe.AppendError(out, repe.PeekID(b), e.Code, e.Message)
				action = gnet.Close
			}
			break
		}
		frame := repe.Message(b[:n])
		if err != nil {
			// The length field still frames the stream: answer and go on.
			// Like Glaze, answer even a notify: its notify byte cannot be
			// trusted.
			e := repe.AsError(err)
			out = repe.AppendError(out, frame.ID(), e.Code, e.Message)
			done += n
			continue
		}
		if s.cfg.testHook != nil {
			s.cfg.testHook(frame.Query())
		}
		l := s.router.route(frame.Query())
		switch {
		case l == nil:
			if !frame.Notify() {
				out = repe.AppendError(out, frame.ID(), repe.MethodNotFound, textNoPlugin)
			}
			done += n
		case l.inline.Load():
			if run != l {
				now := nanotime()
				endRun(now)
				run, runStart = l, now
			}
			out = l.call(out, frame)
			runCalls++
			done += n
		default:
			done += cs.handOff(l, b)
			break loop
		}
	}
	if run != nil {
		endRun(nanotime())
	}
	if done > 0 {
		_, _ = gc.Discard(done)
	}

	switch {
	case action == gnet.Close || cs.job != nil:
		cs.setPartial(false)
	case gc.InboundBuffered() > 0:
		// What is left is the start of a frame: the read timeout runs.
		cs.setPartial(true)
	default:
		cs.setPartial(false)
		if s.draining.Load() {
			action = gnet.Close
		}
	}
	return out, action
}

// wait runs on each read while the connection's requests wait for a call on a
// worker. gnet cannot stop reading a connection, so what arrives meanwhile
// is buffered: a large frame straight into its own buffer (read ahead, so
// that it does not pile up in gnet's ring), the rest in gnet. Past
// maxWaiting bytes the connection is overflowing: from then on what it
// sends is dropped as it arrives, and once the running call is answered the
// first request dropped gets an error saying why and the connection closes.
func (cs *conn) wait() gnet.Action {
	s, gc := cs.srv, cs.gc
	if !cs.overflowed {
		if cs.intake == nil {
			cs.arriving(gc.InboundBuffered())
		}
		if cs.intake != nil {
			if _, err := cs.takeIn(); err != nil {
				return gnet.Close
			}
		}
		if gc.InboundBuffered() <= s.maxWaiting {
			return gnet.None
		}
		cs.overflowed = true
		if cs.intake != nil {
			cs.overflowID = repe.PeekID(cs.intake.req.B)
			cs.intake.free()
			cs.intake, cs.intakeLane = nil, nil
		} else {
			head, _ := gc.Peek(min(gc.InboundBuffered(), repe.HeaderSize))
			cs.overflowID = repe.PeekID(head)
		}
		s.overflowLog.do(func(suppressed int64) {
			s.log.Warn("connection sent too much while an earlier request was running; closing it after that request",
				"remote", gc.RemoteAddr(), "limit", s.maxWaiting, "suppressed", suppressed)
		})
	}
	_, _ = gc.Discard(gc.InboundBuffered())
	cs.setPartial(false)
	return gnet.None
}

// buffered returns every byte buffered on the connection, or nil when there
// is none or the first frame is still arriving. In that case it looks only
// at the header, so that a large frame is not copied out of gnet's ring
// buffer on every read while it arrives.
func (cs *conn) buffered() []byte {
	gc := cs.gc
	avail := gc.InboundBuffered()
	if avail == 0 {
		return nil
	}
	if cs.arriving(avail) {
		return nil
	}
	buf, _ := gc.Peek(avail)
	return buf
}

// arriving reports whether the first of the avail buffered bytes start a
// frame larger than a read that is still incomplete, and then begins its
// intake when it can.
func (cs *conn) arriving(avail int) bool {
	// Up to one read's worth, peeking everything costs at most one copy
	// per read; beyond that, a large frame may be arriving.
	if avail <= readBufferCap {
		return false
	}
	hdr, _ := cs.gc.Peek(repe.HeaderSize)
	if n, err := repe.Split(hdr, cs.srv.cfg.MaxMessageSize); n != 0 || err != nil {
		return false
	}
	length := binary.LittleEndian.Uint64(hdr)
	if length <= uint64(avail) {
		return false
	}
	cs.startIntake(hdr, int(length), avail)
	return true
}

// startIntake begins reading the large frame whose header is hdr straight
// into a job, once its query has arrived and names a plugin. Frames the
// gateway answers itself (no plugin, a bad header) are left to be buffered
// whole, as small ones are.
func (cs *conn) startIntake(hdr []byte, length, avail int) {
	if repe.CheckHeader(hdr) != nil {
		return
	}
	end := repe.HeaderSize + int(repe.Message(hdr).QueryLength())
	if end > avail {
		return
	}
	h, _ := cs.gc.Peek(end)
	l := cs.srv.router.route(repe.Message(h).Query())
	if l == nil {
		return
	}
	cs.intake, cs.intakeLane, cs.intakeLen = newJob(cs), l, length
}

// takeIn moves what has arrived of the intake frame into its job and reports
// whether the frame is whole. What gnet has buffered is copied; the rest is
// read from the socket straight into the job, without passing through gnet's
// read buffer, until the socket has no more. The job's buffer grows fourfold
// as bytes arrive, never past four times what was received, so memory
// follows what the peer sent, not what it announced, while a 16 MiB frame
// costs only about a third of its size in regrowth copies. An error means
// the peer closed or failed in the middle of the frame.
func (cs *conn) takeIn() (bool, error) {
	j, gc := cs.intake, cs.gc
	if n := min(cs.intakeLen-len(j.req.B), gc.InboundBuffered()); n > 0 {
		have := len(j.req.B)
		j.req.B = cs.growIntake(n)
		k, _ := gc.Read(j.req.B[have : have+n])
		j.req.B = j.req.B[:have+k]
	}
	for len(j.req.B) < cs.intakeLen {
		have := len(j.req.B)
		j.req.B = cs.growIntake(min(cs.intakeLen-have, readBufferCap))
		k, err := unix.Read(gc.Fd(), j.req.B[have:min(cap(j.req.B), cs.intakeLen)])
		if k > 0 {
			j.req.B = j.req.B[:have+k]
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err == nil {
			err = io.EOF
		}
		return false, err
	}
	whole := len(j.req.B) == cs.intakeLen
	cs.setPartial(!whole)
	return whole, nil
}

// growIntake makes room for at least n more bytes in the intake buffer.
func (cs *conn) growIntake(n int) []byte {
	b := cs.intake.req.B
	if want := len(b) + n; want > cap(b) {
		grown := make([]byte, len(b), min(cs.intakeLen, max(4*cap(b), want)))
		copy(grown, b)
		b = grown
	}
	return b
}

// continueIntake reads more of the intake frame and hands it to a worker
// once it is whole.
func (cs *conn) continueIntake() gnet.Action {
	whole, err := cs.takeIn()
	if err != nil {
		cs.srv.log.Debug("connection ended inside a frame", "remote", cs.gc.RemoteAddr(), "error", err)
		return gnet.Close
	}
	if whole {
		cs.submit(cs.intakeLane, cs.intake)
		cs.intake, cs.intakeLane = nil, nil
	}
	return gnet.None
}

// submit hands j to one of l's workers; the connection waits for it.
func (cs *conn) submit(l *lane, j *job) {
	cs.job = j
	cs.srv.jobs.Add(1)
	l.submit(j)
}

// setPartial records whether an incomplete frame is buffered: the sweeper
// closes connections whose frame made no progress for ReadTimeout. Each read
// that leaves a frame incomplete is progress and restarts the timer.
func (cs *conn) setPartial(partial bool) {
	switch {
	case partial:
		cs.partialSince.Store(cs.srv.clock.Load())
		cs.partial = true
	case cs.partial:
		cs.partialSince.Store(0)
		cs.partial = false
	}
}

// handOff copies the frame at the start of b, and the frames after it that
// go to the same plugin, out of gnet's buffer and queues them for one of l's
// workers. It returns the bytes it took.
func (cs *conn) handOff(l *lane, b []byte) int {
	j := newJob(cs)
	taken := 0
	for frames, limit := 0, l.jobFrames(); frames < limit; frames++ {
		n, err := repe.Split(b[taken:], cs.srv.cfg.MaxMessageSize)
		if n == 0 || err != nil || (frames > 0 && cs.srv.router.route(repe.Message(b[taken:taken+n]).Query()) != l) {
			break
		}
		taken += n
	}
	j.req.B = append(j.req.B, b[:taken]...)
	cs.submit(l, j)
	return taken
}

// nanotime reads the runtime's monotonic clock: one vDSO call, where
// time.Since makes two (wall and monotonic). Inline runs are timed twice per
// batch, so on a one-request batch this is a visible part of the gateway's
// own CPU time.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64
