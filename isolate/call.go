//go:build linux

package isolate

import (
	"encoding/binary"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/repe"
)

// How a batch's exchange with its worker ended.
type ending int

const (
	endOK       ending = iota
	endDeadline        // the deadline passed first
	endDied            // the worker's socket closed, or the process exited
	endProtocol        // the worker sent what is not a record the gateway expects
)

// Call sends reqs, one or more whole REPE request frames of one client
// connection, in order, to the plugin's worker, and appends the replies to
// dst, in order: the plugin's reply to each request, as
// pluginhost.Plugin.Call would have appended it (none for a notify, none
// when the plugin returns nothing), or a REPE error that says why the
// plugin could not answer it:
//
//   - timeout (ec 7) for the request that was running when deadline
//     passed; the worker is killed and restarts. A zero deadline is none.
//   - connection_failure (ec 9) for the request that was running when the
//     worker died (the message gives the signal or exit status); it may
//     have run.
//   - send_error (ec 8) for every request that was not run: those after the
//     one that timed out or crashed, and all of them when the plugin is
//     failed, closed, restarting past the deadline or busy with other
//     batches past the deadline. Retrying them is safe.
//
// The replies the plugin made before a failure are kept, including those
// its worker had not sent yet.
//
// Call is safe for concurrent use, and concurrent calls share the cost of
// reaching the worker. Through a pipe (UseLoop), the loop carries a call
// with those posted beside it; otherwise, while the worker runs one
// exchange, the calls that
// arrive wait, and the next exchange carries all of them to it in one
// write, their replies coming back in one. The worker runs their requests
// one after another, in the order the calls queued; each call gets the
// replies to its own requests only. A failure is answered, as above, in
// the call whose request was running; requests of other calls in the same
// exchange that had run keep their replies, and a call none of whose
// requests had begun waits for the next worker, as if it had come during
// the restart. Waiting for earlier exchanges or a restart counts against
// a call's deadline (send_error when it passes there); once its requests
// are sent, the time they wait in the worker behind those of earlier calls
// of the same exchange does not, and a call sent with less than a quarter
// of its budget left still gets that quarter to run before it times out,
// so that waiting never makes a sound worker look hung.
//
// The only error is ErrBatch, when reqs is not whole frames back to back,
// and then nothing is sent. A call on a serving plugin allocates nothing
// beyond growing dst.
func (p *Plugin) Call(dst, reqs []byte, deadline time.Time) ([]byte, error) {
	n, ok := countFrames(reqs)
	if !ok {
		return dst, ErrBatch
	}
	if n == 0 {
		return dst, nil
	}
	now := time.Now()
	if !deadline.IsZero() && !now.Before(deadline) {
		return appendErrors(dst, reqs, repe.SendError, p.msgLate), nil
	}
	c := p.calls.Get().(*call)
	c.dst, c.reqs, c.n, c.deadline, c.start, c.done = dst, reqs, n, deadline, now, false
	if pp := p.pipe.Load(); pp != nil && pp.post(c, false) {
		<-c.wake
	} else if p.enqueue(c) || p.await(c) {
		p.lead(c)
	}
	out := c.dst
	c.dst, c.reqs = nil, nil
	p.calls.Put(c)
	return out, nil
}

// group is the state of one exchange with a worker: the calls it carries,
// their requests back to back making up one stream.
type group struct {
	calls   []*call
	n       int       // requests of all the calls
	size    int       // bytes of all the calls' requests
	written int       // bytes of the stream written to the worker
	next    int       // requests answered so far
	ci      int       // the index in calls of the call being answered
	sent    time.Time // when the exchange began
	running int       // the index in calls of the call last seen running
	lastDL  int       // the index in calls of the last call with a deadline, -1 if none

	iov []unix.Iovec // for writev, kept to avoid allocating
}

// start readies g for an exchange of the calls it holds, none answered.
func (g *group) start() {
	g.n, g.size, g.written, g.next, g.ci, g.running, g.lastDL = 0, 0, 0, 0, 0, 0, -1
	g.sent = time.Now()
	for i, c := range g.calls {
		c.base, c.first, c.next, c.at, c.turn, c.sent = g.size, g.n, 0, 0, time.Time{}, g.sent
		g.size += len(c.reqs)
		g.n += c.n
		if !c.deadline.IsZero() {
			g.lastDL = i
		}
	}
	// The worker begins the first call's requests as soon as it reads
	// them.
	g.calls[0].turn = g.sent
}

// countFrames counts the frames of reqs, or reports false when reqs is not
// whole frames back to back, by their length fields (the gateway has
// validated the rest).
func countFrames(reqs []byte) (int, bool) {
	n := 0
	for off := 0; off < len(reqs); n++ {
		rest := reqs[off:]
		if len(rest) < repe.HeaderSize {
			return 0, false
		}
		l := repe.Message(rest).Length()
		if l < repe.HeaderSize || l > uint64(len(rest)) {
			return 0, false
		}
		off += int(l)
	}
	return n, true
}

// appendErrors answers every request of reqs but the notifies with code and
// msg.
func appendErrors(dst, reqs []byte, code repe.ErrorCode, msg string) []byte {
	for len(reqs) > 0 {
		m := repe.Message(reqs)
		if !m.Notify() {
			dst = repe.AppendError(dst, m.ID(), code, msg)
		}
		reqs = reqs[m.Length():]
	}
	return dst
}

// ready returns the serving worker, with a reference for the batch, waiting
// until deadline at most while the plugin restarts; or nil and the message
// that says why there is none.
func (p *Plugin) ready(deadline time.Time) (*worker, string) {
	for {
		p.mu.Lock()
		w, state, changed, failText := p.cur, p.state, p.changed, p.failText
		if w != nil && !w.isDead() {
			w.acquire()
			p.mu.Unlock()
			return w, ""
		}
		p.mu.Unlock()
		switch state {
		case StateClosed:
			return nil, p.msgClosed
		case StateFailed:
			return nil, failText
		}
		if !waitUntil(changed, deadline) {
			return nil, p.msgRestarting
		}
	}
}

// waitUntil waits for ch to close, or reports false when deadline passes
// first.
func waitUntil(ch <-chan struct{}, deadline time.Time) bool {
	if deadline.IsZero() {
		<-ch
		return true
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// exchange writes the group's requests to w and reads a record per
// request, appending the replies to their calls' dst, until every request
// is answered, a deadline passes or the worker fails.
//
// Writing and reading interleave, on a non-blocking socket, so that a batch
// larger than the socket's buffers cannot deadlock: the worker answers the
// first requests while the gateway still writes the last.
func (p *Plugin) exchange(w *worker, g *group) ending {
	buf := p.rbuf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 64<<10)
	}
	defer func() { p.rbuf = buf[:0] }()
	canWrite, gone := true, false
	for g.ci < len(g.calls) {
		moved := false
		if canWrite && g.written < g.size {
			k, err := g.write(w.sock)
			switch {
			case k > 0:
				g.written += k
				moved = true
			case err != unix.EAGAIN && err != unix.EINTR:
				// The worker is gone; what it wrote before can still be read.
				canWrite = false
			}
		}
		if !roomForRecord(&buf) {
			return endProtocol
		}
		k, err := unix.Read(w.sock, buf[len(buf):cap(buf)])
		if k > 0 {
			buf = buf[:len(buf)+k]
			used, bad := p.takeRecords(g, buf)
			if bad {
				return endProtocol
			}
			buf = buf[:copy(buf, buf[used:])]
			continue
		}
		if k == 0 && err == nil || err != unix.EAGAIN && err != unix.EINTR || gone {
			// EOF, a reset, or nothing left to read from a process that
			// has exited.
			return endDied
		}
		if moved {
			continue
		}
		limit, overdue := g.limit(w, time.Now())
		if overdue {
			return endDeadline
		}
		if poll(&p.pfd, &p.ts, w, canWrite && g.written < g.size, limit) == pollExited {
			gone = true
		}
	}
	if len(buf) != 0 {
		// More than a record per request: a broken worker. Its replies so
		// far stand; the next batch gets a new worker.
		return endProtocol
	}
	return endOK
}

// write writes as much of the stream as the socket takes: one write for
// one call, one writev for several, so that their requests are not copied.
func (g *group) write(fd int) (int, error) {
	if len(g.calls) == 1 {
		return unix.Write(fd, g.calls[0].reqs[g.written:])
	}
	g.iov = g.iov[:0]
	for _, c := range g.calls {
		skip := g.written - c.base
		if skip >= len(c.reqs) {
			continue
		}
		v := unix.Iovec{Base: &c.reqs[max(skip, 0)]}
		v.SetLen(len(c.reqs) - max(skip, 0))
		if g.iov = append(g.iov, v); len(g.iov) == maxIovecs {
			break
		}
	}
	k, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&g.iov[0])), uintptr(len(g.iov)))
	if errno != 0 {
		return -1, errno
	}
	return int(k), nil
}

// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
const maxIovecs = 1024

// minRunShare: a call sent with less than 1/minRunShare of its budget
// left, having waited for other calls or a restart, still gets that share
// to run before it counts as hung. Otherwise a call sent a moment before
// its deadline would get the fresh worker killed, and a plugin restarting
// under load could fail for good, every such kill counting toward
// Config.MaxFailures.
const minRunShare = 4

// tick bounds the wait of an exchange that carries calls with deadlines
// after the one running, so that the turn of each is seen within a tick
// of its coming, and its deadline counted from then. An exchange that
// ends sooner never wakes for it.
const tick = time.Millisecond

// limit returns when the exchange must next look at the worker's progress
// (zero: not before a reply), and whether the call the worker is running
// is past its deadline. The progress page says which request the worker
// has begun last; its call's deadline counts from when its turn was first
// seen (the exchange's start, for the first call), and leaves it at least
// 1/minRunShare of its budget to run.
func (g *group) limit(w *worker, now time.Time) (at time.Time, overdue bool) {
	began := int64(w.progress.started.Load()&^abortBit - w.seq)
	i := g.next // the request running, or the next to run
	if began > int64(g.next) && began <= int64(g.n) {
		i = int(began) - 1
	}
	for g.running+1 < len(g.calls) && g.calls[g.running+1].first <= i {
		g.running++
	}
	c := g.calls[g.running]
	if c.turn.IsZero() {
		c.turn = now
	}
	if !c.deadline.IsZero() {
		at = c.turn.Add(max(c.deadline.Sub(c.sent), c.deadline.Sub(c.start)/minRunShare))
		if !now.Before(at) {
			return at, true
		}
	}
	if g.running < g.lastDL && (at.IsZero() || at.Sub(now) > tick) {
		at = now.Add(tick)
	}
	return at, false
}

// roomForRecord makes room in buf for the rest of the record it starts
// with, or reports false when the record's length cannot be right.
func roomForRecord(buf *[]byte) bool {
	b := *buf
	if len(b) < recordHeaderSize {
		return true // cap(b) is at least 64 KiB
	}
	size := binary.LittleEndian.Uint32(b[offRecordLength:])
	if size > maxRecordSize {
		return false
	}
	if need := recordHeaderSize + int(size); need > cap(b) {
		*buf = append(make([]byte, 0, need), b...)
	}
	return true
}

// takeRecords consumes the whole records at the front of recs, each the
// answer to the group's next request, and returns how many bytes they took.
// It never writes to recs. bad reports a record that cannot be one.
func (p *Plugin) takeRecords(g *group, recs []byte) (used int, bad bool) {
	for len(recs)-used >= recordHeaderSize {
		kind := binary.LittleEndian.Uint32(recs[used+offRecordKind:])
		size := binary.LittleEndian.Uint32(recs[used+offRecordLength:])
		if g.ci == len(g.calls) || size > maxRecordSize {
			return used, true
		}
		end := used + recordHeaderSize + int(size)
		if end > len(recs) {
			break
		}
		payload := recs[used+recordHeaderSize : end]
		c := g.calls[g.ci]
		req := repe.Message(c.reqs[c.at:])
		n := int(req.Length())
		if c.base+c.at+n > g.written {
			// An answer to a request the worker cannot have read yet.
			return used, true
		}
		switch kind {
		case kindReply:
			if checkReply(payload, req.ID()) != "" {
				return used, true
			}
			if !req.Notify() {
				c.dst = append(c.dst, payload...)
			}
		case kindEmpty:
			if size != 0 {
				return used, true
			}
		case kindError:
			if size < 4 {
				return used, true
			}
			code := repe.ErrorCode(binary.LittleEndian.Uint32(payload))
			msg := string(payload[4:])
			if !req.Notify() {
				c.dst = repe.AppendError(c.dst, req.ID(), code, msg)
			}
			p.logCallError(req, "plugin call failed", msg)
		default:
			return used, true
		}
		c.next++
		c.at += n
		g.next++
		if c.at == len(c.reqs) {
			c.done = true
			g.ci++
		}
		used = end
	}
	return used, false
}

// settle ends a failed exchange with w. It stops the worker from beginning
// any other request and kills it if it may still live; once the process
// has exited (it waits for that, briefly), it collects the replies the
// worker made but did not send, from the socket and from the progress
// page. It returns how many of the group's requests the worker began, and
// what happened to it ("died (signal SIGSEGV)").
func (p *Plugin) settle(w *worker, g *group, end ending) (began int, what string) {
	var count uint64
	switch end {
	case endDeadline:
		what = "was killed when a request passed its deadline"
		count = w.progress.abort()
		w.kill(killDeadline)
		if w.waitKilled() {
			p.drain(w, g)
			p.recoverPending(w, g)
		}
	case endProtocol:
		// Neither its socket nor its page can be trusted.
		what = "was killed for breaking the worker protocol"
		count = w.progress.abort()
		w.kill(killProtocol)
	default:
		status := w.waitExit()
		switch {
		case w.killed.Load() == killClose:
			what = "was killed because the plugin is shutting down"
		case status == "" || w.killed.Load() == killProtocol:
			what = "closed its socket, and was killed"
		default:
			what = "died (" + status + ")"
		}
		count = w.progress.abort()
		if status != "" {
			p.recoverPending(w, g)
		}
	}
	if count < w.seq || count-w.seq > uint64(g.n) || count-w.seq < uint64(g.next) {
		// The plugin has written over the page: every request not
		// answered may have run.
		return g.n, what
	}
	return int(count - w.seq), what
}

// drain reads what the socket still holds from a worker that has exited.
//
// It begins with what p.rbuf holds: the start of a record a pipe had read.
func (p *Plugin) drain(w *worker, g *group) {
	buf := p.rbuf
	if cap(buf) == 0 {
		buf = make([]byte, 0, 64<<10)
	}
	defer func() { p.rbuf = buf[:0] }()
	for g.ci < len(g.calls) && roomForRecord(&buf) {
		k, err := unix.Read(w.sock, buf[len(buf):cap(buf)])
		if k <= 0 {
			if err == unix.EINTR {
				continue
			}
			return
		}
		buf = buf[:len(buf)+k]
		used, bad := p.takeRecords(g, buf)
		if bad {
			return
		}
		buf = buf[:copy(buf, buf[used:])]
	}
}

// recoverPending takes the replies that an exited worker left in the area
// of its progress page, skipping those the socket carried.
func (p *Plugin) recoverPending(w *worker, g *group) {
	recs, base, ok := w.progress.pending()
	want := w.seq + uint64(g.next)
	if !ok || base > want {
		return
	}
	for skip := want - base; skip > 0; skip-- {
		if len(recs) < recordHeaderSize {
			return
		}
		size := uint64(binary.LittleEndian.Uint32(recs[offRecordLength:]))
		if size > uint64(len(recs)-recordHeaderSize) {
			return
		}
		recs = recs[recordHeaderSize+size:]
	}
	p.takeRecords(g, recs)
}

// answerFailed answers the requests of c, a call of the group, not
// answered after a failure, when the worker had begun at least one of
// them (began is the group's count): the one that was running with
// connection_failure (timeout for a deadline), those the worker had not
// begun with send_error. Requests begun before the running one have
// replies, unless the worker corrupted them; those get connection_failure
// too.
func (p *Plugin) answerFailed(c *call, began int, what string, end ending) {
	q := strconv.Quote(p.name)
	lost := "connection_failure: plugin " + q + " ran this request, but its worker " + what + " and its reply was lost"
	failCode, ran := repe.ConnectionFailure, "connection_failure: the worker of plugin "+q+" "+what+" while running this request"
	rest := "send_error: the worker of plugin " + q + " " + what + " before this request started" +
		"; this request did not run and is safe to retry"
	if end == endDeadline {
		failCode, ran = repe.Timeout, "timeout: plugin "+q+" did not answer within "+c.deadline.Sub(c.start).Round(time.Millisecond).String()+
			"; its worker was killed and restarts"
		rest = "send_error: plugin " + q + " timed out on an earlier request before this one started" +
			"; this request did not run and is safe to retry"
	}
	for i, reqs := c.first+c.next, c.reqs[c.at:]; len(reqs) > 0; i++ {
		req := repe.Message(reqs)
		reqs = reqs[req.Length():]
		code, msg := repe.SendError, rest
		switch {
		case i < began-1:
			code, msg = repe.ConnectionFailure, lost
		case i == began-1:
			code, msg = failCode, ran
			p.logCallError(req, "plugin request failed", ran)
		}
		if !req.Notify() {
			c.dst = repe.AppendError(c.dst, req.ID(), code, msg)
		}
	}
	c.done = true
}

// logCallError logs a request the plugin could not answer, at most once per
// lograte.Interval, so that a plugin failing every call cannot flood the log.
func (p *Plugin) logCallError(req repe.Message, msg, reason string) {
	p.errLog.Do(func(suppressed int64) {
		p.logger().Warn(msg, "query", string(req.Query()), "error", reason, "suppressed", suppressed)
	})
}
