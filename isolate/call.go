//go:build linux

package isolate

import (
	"encoding/binary"
	"strconv"
	"time"

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
// connection, in order, to the plugin's worker in one write, and appends
// the replies to dst, in order: the plugin's reply to each request, as
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
// its worker had not sent yet. Call is safe for concurrent use; a worker
// runs one batch at a time, so concurrent calls wait for each other, within
// their deadlines. The only error is ErrBatch, when reqs is not whole
// frames back to back, and then nothing is sent. A call on a serving plugin
// allocates nothing beyond growing dst.
func (p *Plugin) Call(dst, reqs []byte, deadline time.Time) ([]byte, error) {
	n, ok := countFrames(reqs)
	if !ok {
		return dst, ErrBatch
	}
	if n == 0 {
		return dst, nil
	}
	start := time.Now()
	if !deadline.IsZero() && !start.Before(deadline) {
		return appendErrors(dst, reqs, repe.SendError, p.msgLate), nil
	}
	if !p.acquire(deadline) {
		return appendErrors(dst, reqs, repe.SendError, p.msgBusy), nil
	}
	defer func() { <-p.sem }()
	for {
		w, msg := p.ready(deadline)
		if w == nil {
			return appendErrors(dst, reqs, repe.SendError, msg), nil
		}
		b := batch{dst: dst, reqs: reqs}
		end := p.exchange(w, &b, deadline)
		if cap(p.rbuf) > keptBufferSize {
			p.rbuf = nil
		}
		if end == endOK {
			w.seq += uint64(n)
			w.release()
			return b.dst, nil
		}
		began, what := p.settle(w, &b, end, n)
		p.retire(w)
		if end == endDied && began == 0 {
			// The worker died before it began any request of the batch
			// (while idle, most likely): wait for the next one, as if
			// the batch had come during the restart.
			w.release()
			continue
		}
		out := p.answerFailed(&b, began, what, end, deadline.Sub(start))
		w.release()
		return out, nil
	}
}

// batch is the state of one exchange with a worker.
type batch struct {
	dst     []byte // the replies are appended here
	reqs    []byte // the request frames
	next    int    // requests answered so far
	at      int    // the offset in reqs of request next
	written int    // bytes of reqs written to the worker
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

// acquire takes the batch slot, waiting until deadline at most.
func (p *Plugin) acquire(deadline time.Time) bool {
	select {
	case p.sem <- struct{}{}:
		return true
	default:
	}
	if deadline.IsZero() {
		p.sem <- struct{}{}
		return true
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case p.sem <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
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

// exchange writes the batch's requests to w and reads a record per
// request, appending the replies to b.dst, until every request is
// answered, the deadline passes or the worker fails.
//
// Writing and reading interleave, on a non-blocking socket, so that a batch
// larger than the socket's buffers cannot deadlock: the worker answers the
// first requests while the gateway still writes the last.
func (p *Plugin) exchange(w *worker, b *batch, deadline time.Time) ending {
	buf := p.rbuf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 64<<10)
	}
	defer func() { p.rbuf = buf[:0] }()
	canWrite, gone := true, false
	for b.at < len(b.reqs) {
		moved := false
		if canWrite && b.written < len(b.reqs) {
			k, err := unix.Write(w.sock, b.reqs[b.written:])
			switch {
			case k > 0:
				b.written += k
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
			used, bad := p.takeRecords(b, buf)
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
		switch poll(&p.pfd, &p.ts, w, canWrite && b.written < len(b.reqs), deadline) {
		case pollTimeout:
			return endDeadline
		case pollExited:
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
// answer to the batch's next request, and returns how many bytes they took.
// It never writes to recs. bad reports a record that cannot be one.
func (p *Plugin) takeRecords(b *batch, recs []byte) (used int, bad bool) {
	for len(recs)-used >= recordHeaderSize {
		kind := binary.LittleEndian.Uint32(recs[used+offRecordKind:])
		size := binary.LittleEndian.Uint32(recs[used+offRecordLength:])
		if b.at == len(b.reqs) || size > maxRecordSize {
			return used, true
		}
		end := used + recordHeaderSize + int(size)
		if end > len(recs) {
			break
		}
		payload := recs[used+recordHeaderSize : end]
		req := repe.Message(b.reqs[b.at:])
		n := int(req.Length())
		if b.at+n > b.written {
			// An answer to a request the worker cannot have read yet.
			return used, true
		}
		switch kind {
		case kindReply:
			if checkReply(payload, req.ID()) != "" {
				return used, true
			}
			if !req.Notify() {
				b.dst = append(b.dst, payload...)
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
				b.dst = repe.AppendError(b.dst, req.ID(), code, msg)
			}
			p.logCallError(req, "plugin call failed", msg)
		default:
			return used, true
		}
		b.next++
		b.at += n
		used = end
	}
	return used, false
}

// settle ends a failed exchange with w. It stops the worker from beginning
// any other request and kills it if it may still live; once the process
// has exited (it waits for that, briefly), it collects the replies the
// worker made but did not send, from the socket and from the progress
// page. It returns how many of the batch's n requests the worker began, and
// what happened to it ("died (signal SIGSEGV)").
func (p *Plugin) settle(w *worker, b *batch, end ending, n int) (began int, what string) {
	var count uint64
	switch end {
	case endDeadline:
		what = "was killed when a request passed its deadline"
		count = w.progress.abort()
		w.kill(killDeadline)
		if w.waitKilled() {
			p.drain(w, b)
			p.recoverPending(w, b)
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
			p.recoverPending(w, b)
		}
	}
	if count < w.seq || count-w.seq > uint64(n) || count-w.seq < uint64(b.next) {
		// The plugin has written over the page: every request not
		// answered may have run.
		return n, what
	}
	return int(count - w.seq), what
}

// drain reads what the socket still holds from a worker that has exited.
func (p *Plugin) drain(w *worker, b *batch) {
	buf := p.rbuf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 64<<10)
	}
	defer func() { p.rbuf = buf[:0] }()
	for b.at < len(b.reqs) && roomForRecord(&buf) {
		k, err := unix.Read(w.sock, buf[len(buf):cap(buf)])
		if k <= 0 {
			if err == unix.EINTR {
				continue
			}
			return
		}
		buf = buf[:len(buf)+k]
		used, bad := p.takeRecords(b, buf)
		if bad {
			return
		}
		buf = buf[:copy(buf, buf[used:])]
	}
}

// recoverPending takes the replies that an exited worker left in the area
// of its progress page, skipping those the socket carried.
func (p *Plugin) recoverPending(w *worker, b *batch) {
	recs, base, ok := w.progress.pending()
	want := w.seq + uint64(b.next)
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
	p.takeRecords(b, recs)
}

// answerFailed answers the batch's requests not answered after a failure:
// the one that was running with connection_failure (timeout for a
// deadline), those the worker had not begun with send_error. Requests
// begun before the running one have replies, unless the worker corrupted
// them; those get connection_failure too.
func (p *Plugin) answerFailed(b *batch, began int, what string, end ending, budget time.Duration) []byte {
	q := strconv.Quote(p.name)
	lost := "connection_failure: plugin " + q + " ran this request, but its worker " + what + " and its reply was lost"
	code, ran := repe.ConnectionFailure, "connection_failure: the worker of plugin "+q+" "+what+" while running this request"
	rest := "send_error: the worker of plugin " + q + " " + what + " before this request started" +
		"; this request did not run and is safe to retry"
	if end == endDeadline {
		code, ran = repe.Timeout, "timeout: plugin "+q+" did not answer within "+budget.Round(time.Millisecond).String()+
			"; its worker was killed and restarts"
		rest = "send_error: plugin " + q + " timed out on an earlier request before this one started" +
			"; this request did not run and is safe to retry"
	}
	dst := b.dst
	for i, reqs := b.next, b.reqs[b.at:]; len(reqs) > 0; i++ {
		req := repe.Message(reqs)
		reqs = reqs[req.Length():]
		c, msg := repe.SendError, rest
		switch {
		case i < began-1:
			c, msg = repe.ConnectionFailure, lost
		case i == began-1:
			c, msg = code, ran
			p.logCallError(req, "plugin request failed", ran)
		}
		if !req.Notify() {
			dst = repe.AppendError(dst, req.ID(), c, msg)
		}
	}
	return dst
}

// logCallError logs a request the plugin could not answer, at most once per
// lograte.Interval, so that a plugin failing every call cannot flood the log.
func (p *Plugin) logCallError(req repe.Message, msg, reason string) {
	p.errLog.Do(func(suppressed int64) {
		p.logger().Warn(msg, "query", string(req.Query()), "error", reason, "suppressed", suppressed)
	})
}
