package gateway

import (
	"runtime/debug"
	"sync/atomic"

	"github.com/repe-gw/repe-gw/repe"
)

// textNoPlugin is the body the Glaze host example answers when no plugin owns
// a path; Glaze peers may match on it.
const textNoPlugin = "No plugin registered for path"

// conn is the dispatch core's state for one client connection, whatever
// transport carries it (wire.go). Apart from the atomics, which the sweeper
// and workers read, it is used only on the goroutine that serves the
// connection: its gnet event loop, or its stream goroutine.
type conn struct {
	srv     *Server
	w       wire
	wakeRef atomic.Pointer[wireRef]
	loop    *loop

	// remote is the peer's address, kept here because gnet releases its own
	// when the connection closes, while the sweeper may still log it.
	remote string
	// ip keys the per-address count when MaxConnsPerIP is set.
	ip string

	// job holds the requests handed to a worker and not yet answered. While
	// it is set, later requests wait in gnet's buffer: one connection's
	// requests run one after another, as in Glaze's server, so a client that
	// writes and then reads sees its own write. A job whose worker stopped
	// at the output bound stays here, parked, until the client has read.
	job    *job
	parked bool

	// intake is a large frame still arriving, read straight into the job
	// that will carry it to a worker rather than piled up in gnet's ring
	// buffer and copied out of it again; intakeLen is its length.
	intake    *job
	intakeLen int

	// overflowed is set when the connection sent more than it may while a
	// call ran; overflowID is the id of its first dropped request.
	overflowed bool
	overflowID uint64

	// stalled is set while the connection's unread replies are over
	// MaxPendingOutput: stalledOut is how much was pending when it last
	// shrank, at coarse time stalledSince.
	stalled      bool
	stalledOut   int
	stalledSince int64

	// partialSince is the coarse time at which bytes of an incomplete frame
	// last arrived, or 0 when no frame is incomplete; partial says which,
	// so that the atomic is written only when it changes.
	partialSince atomic.Int64
	partial      bool

	// idleSince is the coarse time since which nothing has been in flight,
	// or 0 while something is; kept only when IdleTimeout is set.
	idleSince atomic.Int64

	// why says why the connection is being closed (tally.go).
	why atomic.Uint32

	// drain is where the connection is in its drain (drain.go); drainLeft
	// is how many of the bytes it had received when the drain began are
	// still to serve. lingerSince and lingerLast are when it half-closed
	// and when input last arrived since, for Shutdown.
	drain       uint8
	drainLeft   int
	lingerSince atomic.Int64
	lingerLast  atomic.Int64

	// hookID is the connection's conn_id for the hook plugins, and hooks
	// the chain of them it pinned (hooks.go); tlsIdentity is the subject of
	// the client's TLS certificate, or "".
	hookID      uint64
	hooks       *hookChain
	tlsIdentity string

	// direct is the duplicate descriptor a worker writes a large reply
	// through (direct.go).
	direct directFd

	// made counts the replies the core wrote itself rather than a plugin
	// (framing, routing, refusals, deadlines, invalid plugin replies), so
	// that a one-shot caller can tell a plugin's ec from the gateway's
	// (oneshot.go). Workers add to it too.
	made atomic.Uint32
}

// loop is the state of one goroutine that serves connections one at a time:
// a gnet event loop, or a stream connection's own goroutine.
type loop struct {
	// out collects a batch's replies, so that they go out in one write.
	// Shared by the loop's connections, which it serves one at a time.
	out []byte

	// run is the run of inline calls in progress, kept here so that a panic
	// in the middle of one still gives its slot back.
	run inlineRun

	// tally counts what the loop serves: its own on a gnet event loop, the
	// stream connections' shared one otherwise.
	tally *tally

	// answered holds the connections whose jobs a pipe on this loop has
	// just answered, for servePipe to serve (pipe.go).
	answered []*conn
}

func newLoop(t *tally) *loop {
	l := &loop{tally: t}
	l.run.tally = t
	return l
}

// inlineRun is a run of consecutive inline calls into one plugin. It holds
// one of the plugin's slots throughout, and is timed as a whole: reading the
// clock costs about as much as a fast plugin call.
type inlineRun struct {
	l     *lane
	calls int
	start int64
	// ok and notifies count the run's calls answered ec 0 and its
	// notifies, until the run ends; other replies are counted as they come.
	ok, notifies int
	tally        *tally
}

// enter makes the run's plugin l, and reports false when l has no free
// slot, or when a reload has retired it: a slot taken before the check
// holds the lane's drain back (Server.Swap), one taken after is given back.
func (r *inlineRun) enter(l *lane, now func() int64) bool {
	if r.l == l {
		return true
	}
	r.end(now)
	if !l.tryEnter() {
		return false
	}
	if l.retired.Load() {
		l.leave()
		return false
	}
	r.l, r.calls, r.ok, r.notifies, r.start = l, 0, 0, 0, now()
	return true
}

// end closes the run, if any: it gives the slot back and reports the timing.
func (r *inlineRun) end(now func() int64) {
	if r.l == nil {
		return
	}
	l := r.l
	r.l = nil
	ns := now() - r.start
	l.observeInline(r.calls, ns)
	lt := &l.tally[r.tally.slot]
	if r.ok > 0 {
		lt.replies[repe.OK].Add(uint64(r.ok))
		r.tally.replies[repe.OK].Add(uint64(r.ok))
	}
	if r.notifies > 0 {
		r.tally.notify(lt, r.notifies)
	}
	lt.calls(r.calls, ns, true)
	l.leave()
}

// abandon gives the slot back after a panic, without timing the run.
func (r *inlineRun) abandon() {
	if r.l != nil {
		r.l.leave()
		r.l = nil
	}
}

// largeReply is the size above which a worker's replies are written as
// they are instead of being copied into the batch buffer first.
const largeReply = 64 << 10

// maxKeptOut bounds the reply buffer a loop keeps between batches: a rare
// huge reply should not pin its memory for good.
const maxKeptOut = 1 << 20

// serveOnce serves cs once, on the goroutine that serves it: it answers what
// is buffered, writes the replies in one write, and arranges to be woken
// when more is to be served.
func (cs *conn) serveOnce() (act action) {
	s := cs.srv
	defer func() {
		// A bug must cost one connection, not the server (as net/http does).
		if r := recover(); r != nil {
			cs.loop.run.abandon()
			s.log.Error("panic while serving a connection; closing it",
				"remote", cs.remote, "panic", r, "stack", string(debug.Stack()))
			cs.setWhy(closedPanic)
			act = closeConn
		}
	}()
	if cs.drain >= drainFinDue {
		return cs.linger()
	}
	out, act, more := cs.serve(cs.loop.out[:0])
	if len(out) > 0 {
		cs.loop.tally.bytesOut.Add(uint64(len(out)))
		// One write per batch of replies. A transport that fails to write
		// closes the connection itself.
		_, _ = cs.w.Write(out)
	}
	if cap(out) > maxKeptOut {
		out = nil
	}
	cs.loop.out = out
	switch {
	case act == halfClose:
		cs.drain = drainFinDue
		return cs.linger()
	case act == keepOpen && (more || cs.parked):
		act = cs.afterWrite()
	}
	return act
}

// serve answers every complete request buffered on the connection, appending
// the replies to out, until it runs out of bytes, hands requests to a worker,
// reaches the connection's output bound, or meets a frame after which the
// stream cannot be trusted. more reports that requests were left for when
// the client has read.
func (cs *conn) serve(out []byte) (_ []byte, action action, more bool) {
	s, w := cs.srv, cs.w
	if cs.drain == drainNone && s.draining.Load() {
		cs.noteDrain()
	}
	if j := cs.job; j != nil && !cs.parked {
		if j.state.Load() != jobDone {
			return out, cs.wait(), false
		}
		out, action = cs.collect(out, j)
		if action != keepOpen {
			return out, action, false
		}
	}

	// Unread replies over the bound: serve nothing more until they shrink.
	room := s.cfg.MaxPendingOutput - w.OutboundBuffered() - len(out)
	if room <= 0 {
		return out, cs.stall(s.cfg.MaxPendingOutput - room), false
	}
	if cs.stalled {
		cs.unstall()
	}
	if cs.parked {
		cs.parked = false
		cs.job.reply.B = cs.job.reply.B[:0]
		cs.job.state.Store(jobRunning)
		cs.job.lane.submit(cs.job)
		return out, keepOpen, false
	}
	if cs.intake != nil {
		// The frame read ahead runs as soon as it is whole; what follows it
		// waits its turn.
		return out, cs.continueIntake(), false
	}
	// Nothing of cs is in flight: it may move to the hooks a reload swapped
	// in (hooks.go), one load per batch.
	if s.hooks.Load() != cs.hooks && !s.rehook(cs) {
		return out, closeConn, false
	}

	// buf holds every buffered byte and stays valid until the Discard
	// below: frames are served from it in place, and inline calls read
	// them where gnet put them.
	buf := cs.buffered()
	if cs.intake != nil {
		return out, cs.continueIntake(), false
	}
	if cs.drain == drainNoted {
		buf = buf[:min(len(buf), cs.drainLeft)]
	}
	run := &cs.loop.run
	// One load of the routes per batch: a reload swaps them whole, and a
	// batch that started before it finishes routing with the old ones.
	routes := s.routes.Load()
	done := 0
	// hooked is 1 + the offset of the frame on_request last saw: a frame
	// routed again after a reload is not asked about twice.
	hooked := 0
	room += len(out)
loop:
	for done < len(buf) {
		if len(out) >= room {
			more = true
			break
		}
		b := buf[done:]
		n, err := repe.Split(b, s.cfg.MaxMessageSize)
		if n == 0 {
			if err != nil {
				// The stream cannot be framed any further: say why, then
				// close.
				e := repe.AsError(err)
				s.log.Debug("closing connection after a bad frame", "remote", cs.remote, "error", err)
				out = cs.answerOwn(out, b[:min(len(b), repe.HeaderSize)], repe.PeekID(b), e.Code, e.Message, false)
				cs.loop.tally.bytesIn.Add(uint64(len(b))) // received, never served
				cs.setWhy(closedBadFrame)
				action = closeConn
			}
			break
		}
		frame := repe.Message(b[:n])
		if err != nil {
			// The length field still frames the stream: answer and go on.
			// Like Glaze, answer even a notify: its notify byte cannot be
			// trusted.
			e := repe.AsError(err)
			out = cs.answerOwn(out, frame, frame.ID(), e.Code, e.Message, false)
			done += n
			continue
		}
		if s.cfg.testHook != nil {
			s.cfg.testHook(frame.Query(), false)
		}
		l := routes.route(frame.Query())
		if cs.hooks != nil && hooked != done+1 {
			hooked = done + 1
			var refused bool
			if out, refused = cs.hookRefused(out, frame, l); refused {
				done += n
				continue
			}
		}
		switch {
		case l == nil:
			out = cs.answerOwn(out, frame, frame.ID(), repe.MethodNotFound, textNoPlugin, frame.Notify())
			done += n
		case l.inline.Load() && run.enter(l, s.now):
			before := len(out)
			if cs.timed() {
				start := s.now()
				out = l.call(out, frame, cs)
				s.logCall(cs, l, frame, out[before:], s.now()-start)
			} else {
				out = l.call(out, frame, cs)
			}
			run.calls++
			switch {
			case len(out) == before:
				run.notifies++
			case replyEC(out[before:]) == 0:
				run.ok++
			default:
				cs.loop.tally.reply(&l.tally[cs.loop.tally.slot], replyEC(out[before:]))
			}
			done += n
		default:
			taken := cs.handOff(routes, l, b)
			if taken == 0 {
				// A reload retired l since this batch loaded the routes:
				// route the frame again with the new ones.
				routes = s.routes.Load()
				continue
			}
			done += taken
			break loop
		}
	}
	run.end(s.now)
	if done > 0 {
		_, _ = w.Discard(done)
		cs.loop.tally.bytesIn.Add(uint64(done))
		if cs.drain == drainNoted {
			cs.drainLeft = max(cs.drainLeft-done, 0)
		}
	}

	switch {
	case action == closeConn || cs.job != nil:
		cs.setPartial(false)
	case more:
	case cs.drain == drainNoted:
		// Every request received before the drain is answered; what is
		// left arrived after it, or is a frame it will not finish.
		cs.setPartial(false)
		cs.setWhy(closedShutdown)
		action = halfClose
	case w.InboundBuffered() > 0:
		// What is left is the start of a frame: the read timeout runs.
		cs.setPartial(true)
	default:
		cs.setPartial(false)
	}
	if s.cfg.IdleTimeout > 0 {
		cs.trackIdle(done > 0, more)
	}
	return out, action, more
}

// answerOwn appends the gateway's own error reply to the request frame,
// whose id is id, unless it is a notify, and counts and logs it as a
// reply no plugin made (cs.made tells Server.Do's callers so). frame is
// only logged: the header alone of a frame that cannot be framed, or nil
// when only the id is known.
func (cs *conn) answerOwn(out, frame []byte, id uint64, ec repe.ErrorCode, msg string, notify bool) []byte {
	s := cs.srv
	t, lt := cs.loop.tally, &s.gwTally[cs.loop.tally.slot]
	before := len(out)
	if notify {
		t.notify(lt, 1)
	} else {
		out = repe.AppendError(out, id, ec, msg)
		cs.made.Add(1)
		t.reply(lt, uint32(ec))
	}
	if cs.timed() {
		if frame == nil {
			frame = repe.AppendHeader(nil, repe.Header{ID: id}, 0, 0)
		}
		s.logCall(cs, nil, frame, out[before:], 0)
	}
	return out
}

// collect appends the replies of the finished job j to out, and either
// frees j or parks it when the worker stopped at the output bound.
func (cs *conn) collect(out []byte, j *job) ([]byte, action) {
	s, w := cs.srv, cs.w
	t := cs.loop.tally
	t.countReplies(&j.lane.tally[t.slot], j.countDirect(t))
	if len(j.reply.B) > largeReply {
		// Written apart rather than copied into the batch first. A gnet
		// write that fails closes the connection within the call, and the
		// close frees j: once cs.job is no longer j, j must not be touched.
		if len(out) > 0 {
			_, _ = w.Write(out)
			t.bytesOut.Add(uint64(len(out)))
			out = out[:0]
			if cs.job != j {
				return out, closeConn
			}
		}
		n := len(j.reply.B)
		_, _ = w.Write(j.reply.B)
		t.bytesOut.Add(uint64(n))
		if cs.job != j {
			return out, closeConn
		}
	} else {
		out = append(out, j.reply.B...)
	}
	if j.remaining() {
		cs.parked = true
		return out, keepOpen
	}
	failed := j.failed
	cs.job = nil
	j.free()
	if failed {
		cs.setWhy(closedCallFailed)
		return out, closeConn
	}
	if cs.overflowed {
		// Everything after the call just answered was dropped: say so to
		// the first request dropped, then close.
		out = cs.answerOwn(out, nil, cs.overflowID, repe.ConnectionFailure, s.textOverflow, false)
		cs.setWhy(closedFlood)
		return out, closeConn
	}
	return out, keepOpen
}

// wait runs on each read while the connection's requests wait for a call on a
// worker. gnet cannot stop reading a connection, so what arrives meanwhile
// is buffered: a large frame straight into its own buffer (read ahead, so
// that it does not pile up in gnet's ring), the rest in gnet, up to one
// frame and MaxPendingInput bytes. Past that the connection is overflowing:
// from then on what it sends is dropped as it arrives, and once the running
// call is answered the first request dropped gets an error saying why and
// the connection closes.
func (cs *conn) wait() action {
	s, w := cs.srv, cs.w
	if !cs.overflowed {
		if cs.intake == nil && cs.drain == drainNone {
			cs.arriving(w.InboundBuffered())
		}
		if cs.intake != nil {
			if _, err := cs.takeIn(); err != nil {
				return closeConn
			}
		}
		if !cs.inputOver() {
			return keepOpen
		}
		cs.overflowed = true
		if cs.intake != nil {
			cs.overflowID = repe.PeekID(cs.intake.req.B)
			cs.intake.free()
			cs.intake = nil
		} else {
			head, _ := w.Peek(min(w.InboundBuffered(), repe.HeaderSize))
			cs.overflowID = repe.PeekID(head)
		}
		s.overflowLog.Do(func(suppressed int64) {
			s.log.Warn("connection sent too much while an earlier request was running; closing it after that request",
				"remote", cs.remote, "limit", s.cfg.MaxPendingInput, "suppressed", suppressed)
		})
	}
	dropped := w.InboundBuffered()
	_, _ = w.Discard(dropped)
	cs.loop.tally.bytesIn.Add(uint64(dropped))
	cs.setPartial(false)
	return keepOpen
}

// inputOver reports whether the connection has buffered more than it may
// while its requests cannot be served: the frame at the head of its queue,
// whatever its size up to MaxMessageSize, and MaxPendingInput bytes more.
func (cs *conn) inputOver() bool {
	w := cs.w
	avail := w.InboundBuffered()
	allowed := cs.srv.cfg.MaxPendingInput
	if cs.intake == nil && avail >= 8 {
		// The frame at the head is buffered in gnet: allow for it. A length
		// over MaxMessageSize is refused once the frame is served.
		hdr, _ := w.Peek(8)
		allowed += int(min(repe.Message(hdr).Length(), cs.srv.cfg.MaxMessageSize))
	}
	return avail > allowed
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

// trackIdle keeps idleSince for the idle timeout: it restarts whenever a
// request was served and is 0 while anything is in flight or buffered.
func (cs *conn) trackIdle(served, more bool) {
	busy := more || cs.job != nil || cs.intake != nil || cs.w.InboundBuffered() > 0 || cs.w.OutboundBuffered() > 0
	switch {
	case busy:
		if cs.idleSince.Load() != 0 {
			cs.idleSince.Store(0)
		}
	case served || cs.idleSince.Load() == 0:
		cs.idleSince.Store(cs.srv.clock.Load())
	}
}

// handOff copies the frame at the start of b, and the frames after it that
// routes send to the same plugin, out of gnet's buffer and queues them for
// one of l's workers. It returns the bytes it took, and 0 when a reload has
// retired l.
func (cs *conn) handOff(routes *router, l *lane, b []byte) int {
	j := newJob(cs, l)
	if j == nil {
		return 0
	}
	taken, notifies := 0, 0
	for frames, limit := 0, l.jobFrames(); frames < limit && taken < cs.srv.cfg.MaxPendingInput; frames++ {
		n, err := repe.Split(b[taken:], cs.srv.cfg.MaxMessageSize)
		// With on_request hooks, each frame must pass them in serve first.
		if n == 0 || err != nil || (frames > 0 && (cs.hooks.screening() || routes.route(repe.Message(b[taken:taken+n]).Query()) != l)) {
			break
		}
		if repe.Message(b[taken:]).Notify() {
			notifies++
		}
		taken += n
	}
	if notifies > 0 {
		cs.loop.tally.notify(&l.tally[cs.loop.tally.slot], notifies)
	}
	j.req.B = append(j.req.B, b[:taken]...)
	cs.job = j
	if !l.post(j) {
		l.submit(j)
	}
	return taken
}
