package gateway

import (
	"encoding/binary"

	"github.com/repe-gw/repe-gw/repe"
)

// buffered returns every byte buffered on the connection, or nil when there
// is none or the first frame is still arriving. In that case it looks only
// at the header, so that a large frame is not copied out of the transport's
// buffer (gnet's is a ring) on every read while it arrives.
func (cs *conn) buffered() []byte {
	w := cs.w
	avail := w.InboundBuffered()
	if avail == 0 {
		return nil
	}
	// A draining connection starts no intake: it reads no more.
	if cs.drain == drainNone && cs.arriving(avail) {
		return nil
	}
	buf, _ := w.Peek(avail)
	return buf
}

// arriving reports whether the first of the avail buffered bytes start a
// frame larger than a read that is still incomplete, and then begins its
// intake when it can.
func (cs *conn) arriving(avail int) bool {
	// Up to one read's worth, peeking everything costs at most one copy
	// per read; beyond that, a large frame may be arriving. With on_request
	// hooks, a frame is buffered whole, so that serve asks them about it.
	if avail <= readBufferCap || cs.hooks.screening() {
		return false
	}
	hdr, _ := cs.w.Peek(repe.HeaderSize)
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
	h, _ := cs.w.Peek(end)
	for {
		l := cs.srv.routes.Load().route(repe.Message(h).Query())
		if l == nil {
			return
		}
		// nil: a reload retired l since the load; the next gives its
		// successor.
		if j := newJob(cs, l); j != nil {
			cs.intake, cs.intakeLen = j, length
			return
		}
	}
}

// takeIn moves what has arrived of the intake frame into its job and reports
// whether the frame is whole. What the transport has buffered is copied; the
// rest is read from the socket straight into the job where the transport
// can (bypassing gnet's read buffer), until the socket has no more. The
// job's buffer grows fourfold as bytes arrive, never past four times what
// was received, so memory follows what the peer sent, not what it
// announced, while a 16 MiB frame costs only about a third of its size in
// regrowth copies. An error means
// the peer closed or failed in the middle of the frame.
func (cs *conn) takeIn() (bool, error) {
	j, w := cs.intake, cs.w
	if n := min(cs.intakeLen-len(j.req.B), w.InboundBuffered()); n > 0 {
		have := len(j.req.B)
		j.req.B = cs.growIntake(n)
		k, _ := w.Read(j.req.B[have : have+n])
		j.req.B = j.req.B[:have+k]
	}
	for len(j.req.B) < cs.intakeLen {
		have := len(j.req.B)
		j.req.B = cs.growIntake(min(cs.intakeLen-have, readBufferCap))
		k, err := w.readDirect(j.req.B[have:min(cap(j.req.B), cs.intakeLen)])
		if err != nil {
			return false, err
		}
		if k == 0 {
			break
		}
		j.req.B = j.req.B[:have+k]
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
func (cs *conn) continueIntake() action {
	whole, err := cs.takeIn()
	if err != nil {
		cs.srv.log.Debug("connection ended inside a frame", "remote", cs.remote, "error", err)
		return closeConn
	}
	if whole {
		j := cs.intake
		cs.intake = nil
		t := cs.loop.tally
		t.bytesIn.Add(uint64(len(j.req.B)))
		if repe.Message(j.req.B).Notify() {
			t.notify(&j.lane.tally[t.slot], 1)
		}
		cs.job = j
		j.lane.submit(j)
	}
	return keepOpen
}
