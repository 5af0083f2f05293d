package main

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// read is the reader goroutine.
func (c *conn) read() {
	p, r := c.p, &c.r
	defer close(c.readerDone)
	defer c.flushLatencies()
	var armed int64 // read deadline set on the socket
	for {
		now := p.now()
		if c.writerDone.Load() && r.head == c.sent.Load() {
			return
		}
		if armed-now < int64(pollInterval/2) {
			armed = now + int64(pollInterval)
			if err := c.nc.SetReadDeadline(p.base.Add(time.Duration(armed))); err != nil {
				c.abort(errConnection)
				c.lost = true
				return
			}
		}
		n, err := c.nc.Read(r.buf[r.end:])
		now = p.now()
		if n > 0 {
			if now >= p.warmupEnd {
				r.st.reads++
			}
			r.end += n
			if !c.process(now) {
				c.abort(errInvalidReply)
				return
			}
			c.retired.Store(r.head)
			if c.waiting.Load() {
				c.kick()
			}
			c.progReplies.Store(r.st.replies + r.st.warmupRequests)
			c.progErrors.Store(r.st.failures)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if r.head == c.loadSent() {
				continue
			}
			age := now - c.sentAt(r.head)
			select {
			case <-p.stop:
				// Stopped early: wait a little for the replies in flight,
				// then count them as unfinished, not failed.
				if age > min(p.timeout, int64(stopGrace)) {
					c.abortUnfinished()
					return
				}
			default:
				if age > p.timeout {
					c.abort(errTimeout)
					return
				}
			}
			continue
		}
		if p.redial != nil && errors.Is(err, io.EOF) && r.start == r.end && r.skip == 0 {
			c.requeue()
		} else {
			c.abort(errConnection)
		}
		c.lost = true
		return
	}
}

// requeue ends a connection that the server ended cleanly: the requests in
// flight on it did not run, and are counted for run to send again.
func (c *conn) requeue() {
	r := &c.r
	for sent := c.loadSent(); r.head < sent; r.head++ {
		if r.answered != nil && r.answered[r.head&c.mask] {
			continue
		}
		if c.ring[r.head&c.mask]&1 != 0 {
			r.ended++
		}
	}
	c.retired.Store(r.head)
	c.nc.Close()
}

func (c *conn) loadSent() uint64 {
	c.r.sentSeen = c.sent.Load()
	return c.r.sentSeen
}

func (c *conn) sentAt(seq uint64) int64 { return c.ring[seq&c.mask] >> 1 }

// process handles every complete reply in the read buffer. It returns false
// when the stream can no longer be framed.
func (c *conn) process(now int64) bool {
	r := &c.r
	data := r.buf[r.start:r.end]
	for len(data) > 0 {
		if r.skip > 0 {
			k := min(r.skip, uint64(len(data)))
			r.skip -= k
			data = data[k:]
			if r.skip == 0 {
				c.reply(r.skipHdr[:], now)
			}
			continue
		}
		n, err := repe.Split(data, c.p.maxReply)
		if err != nil {
			if n == 0 {
				return false
			}
			// Framed by its length but inconsistent: the reply to the
			// oldest request, since REPE servers answer in order.
			c.retireHead(now, errInvalidReply)
			data = data[n:]
			continue
		}
		if n > 0 {
			c.reply(data[:n], now)
			data = data[n:]
			continue
		}
		if len(data) < repe.HeaderSize {
			break
		}
		// A reply larger than the buffer is checked by its header and
		// skipped, never buffered whole.
		m := repe.Message(data)
		length := m.Length()
		if length <= uint64(len(r.buf)) {
			break
		}
		if ql := m.QueryLength(); ql > length-repe.HeaderSize || m.BodyLength() != length-repe.HeaderSize-ql {
			return false
		}
		copy(r.skipHdr[:], data[:repe.HeaderSize])
		r.skip = length - uint64(len(data))
		data = data[len(data):]
	}
	// Keep the unread part of a reply; move it to the front when the space
	// after it runs short, so a reply that fits the buffer always fits.
	r.start = r.end - len(data)
	switch {
	case r.start == r.end:
		r.start, r.end = 0, 0
	case len(r.buf)-r.end < len(r.buf)/4:
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	c.flushLatencies()
	return true
}

// reply checks one reply, given at least its header.
func (c *conn) reply(h []byte, now int64) {
	r := &c.r
	id := binary.LittleEndian.Uint64(h[repe.OffsetID:])
	if id&notifyBit != 0 {
		if id&measuredBit != 0 {
			r.st.notifyReplies++
			r.st.bytesRecv += int64(repe.Message(h).Length())
		}
		return
	}
	if id != r.head || id >= r.sentSeen && id >= c.loadSent() {
		if id > r.head && id < c.loadSent() && (r.answered == nil || !r.answered[id&c.mask]) {
			// Answered out of order: count it now, free its slot when the
			// requests before it are answered.
			if r.answered == nil {
				r.answered = make([]bool, len(c.ring))
			}
			r.answered[id&c.mask] = true
			r.pending++
			r.st.reordered++
			c.count(id, h, now)
			return
		}
		c.retireHead(now, errIDMismatch)
		return
	}
	c.count(id, h, now)
	r.head++
	c.popAnswered()
}

// count records the reply h to request seq.
func (c *conn) count(seq uint64, h []byte, now int64) {
	r := &c.r
	slot := c.ring[seq&c.mask]
	ec := repe.ErrorCode(binary.LittleEndian.Uint32(h[repe.OffsetEC:]))
	bad := !c.p.anyEC && ec != c.p.expectEC
	if slot&1 == 0 {
		r.st.warmupRequests++
		if bad {
			r.st.warmupErrors++
			r.st.failures++
		}
		return
	}
	lat := max(now-slot>>1, 1)
	r.st.replies++
	r.st.bytesRecv += int64(repe.Message(h).Length())
	r.st.last = now
	r.st.maxLatency = max(r.st.maxLatency, lat)
	if bad {
		r.st.byEC[ec]++
		r.st.failures++
	} else {
		r.st.ok++
	}
	r.lat = append(r.lat, lat)
	if len(r.lat) == cap(r.lat) {
		c.flushLatencies()
	}
}

// retireHead fails the oldest request in flight with kind; with none in
// flight, the stray reply is counted against the measured phase.
func (c *conn) retireHead(now int64, kind errKind) {
	r := &c.r
	if r.head >= c.loadSent() {
		r.st.client[kind]++
		r.st.failures++
		return
	}
	c.fail(r.head, kind, now)
	r.head++
	c.popAnswered()
}

func (c *conn) fail(seq uint64, kind errKind, now int64) {
	r := &c.r
	r.st.failures++
	if c.ring[seq&c.mask]&1 == 0 {
		r.st.warmupRequests++
		r.st.warmupErrors++
		return
	}
	r.st.client[kind]++
	r.st.last = now
}

// popAnswered frees the slots of requests answered out of order that are
// now the oldest.
func (c *conn) popAnswered() {
	r := &c.r
	for r.pending > 0 && r.answered[r.head&c.mask] {
		r.answered[r.head&c.mask] = false
		r.pending--
		r.head++
	}
}

// abort fails every request in flight with kind and closes the connection,
// which also stops the writer.
func (c *conn) abort(kind errKind) {
	r := &c.r
	now := c.p.now()
	for sent := c.loadSent(); r.head < sent; r.head++ {
		if r.answered != nil && r.answered[r.head&c.mask] {
			continue
		}
		c.fail(r.head, kind, now)
	}
	c.retired.Store(r.head)
	c.nc.Close()
}

// abortUnfinished ends a run stopped early, counting the requests still in
// flight as unfinished rather than failed.
func (c *conn) abortUnfinished() {
	r := &c.r
	for sent := c.loadSent(); r.head < sent; r.head++ {
		if r.answered == nil || !r.answered[r.head&c.mask] {
			r.st.unfinished++
		}
	}
	c.retired.Store(r.head)
	c.nc.Close()
}

// flushLatencies moves the latencies of the replies read so far into the
// shared histogram, under one lock.
func (c *conn) flushLatencies() {
	r := &c.r
	if len(r.lat) == 0 {
		return
	}
	r.shard.mu.Lock()
	for _, v := range r.lat {
		// Values beyond the range are clamped: the exact maximum is kept
		// apart.
		if v > histMax {
			v = histMax
		}
		_ = r.shard.h.RecordValue(v)
	}
	r.shard.mu.Unlock()
	r.lat = r.lat[:0]
}
