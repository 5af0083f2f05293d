package main

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// write is the writer goroutine. It sends whenever the window has room and
// the rate allows, and otherwise waits: for a timer, or for the reader,
// which usually sends the next batch itself (see kick).
func (c *conn) write() {
	for {
		c.wmu.Lock()
		res, d := c.step()
		c.wmu.Unlock()
		switch res {
		case stepDone:
			return
		case stepSleep:
			c.sleep(d)
		case stepWait:
			c.waitCredit()
		}
	}
}

// stepResult says what step did, or what its caller must wait for.
type stepResult int

const (
	stepSent  stepResult = iota // a batch was sent
	stepWait                    // the window is full: wait for replies
	stepSleep                   // the rate limit says wait this long
	stepDone                    // nothing more will be sent
)

// step sends one batch if the window, the rate, the quota and the deadline
// allow. The writer and the reader both call it, with wmu held.
func (c *conn) step() (stepResult, int64) {
	p, w := c.p, &c.w
	if w.done {
		return stepDone, 0
	}
	select {
	case <-p.stop:
		return c.stopSending()
	case <-c.readerDone:
		return c.stopSending()
	default:
	}
	now := p.now()
	if p.deadline > 0 && now >= p.deadline {
		return c.stopSending()
	}
	measured := now >= p.warmupEnd
	budget := math.MaxInt
	if measured && c.quota >= 0 {
		if c.quota == 0 {
			return c.stopSending()
		}
		budget = int(min(c.quota, math.MaxInt32))
	}
	if p.interval > 0 {
		due := math.Floor((float64(now)-c.phase)/p.interval) + 1 - float64(w.issued)
		if due < 1 {
			return stepSleep, int64(c.phase+float64(w.issued)*p.interval) - now
		}
		budget = min(budget, int(min(due, math.MaxInt32)))
	}
	avail := p.pipeline - int(w.seq-c.retired.Load())
	if avail <= 0 && !p.isNotify(w.issued) && p.templates[w.next].notify == 0 {
		return stepWait, 0
	}
	n, notifies := c.fill(now, measured, budget, avail)
	c.sent.Store(w.seq)
	last := false
	if measured && c.quota >= 0 {
		c.quota -= int64(n)
		last = c.quota == 0
	}
	if last {
		// Say so before the last write, so that the reader, which may see
		// the last reply before Write returns, can stop at once.
		c.stopSending()
	}
	sent, err := c.flush()
	if measured {
		w.st.bytesSent += sent
		w.st.writes++
	}
	if err != nil {
		// The reader sees the failure and counts what is lost.
		return c.stopSending()
	}
	if measured {
		w.st.notifies += int64(notifies)
		if notifies > 0 {
			w.st.last = p.now()
		}
	} else {
		w.st.warmupRequests += int64(notifies)
	}
	c.progNotifies.Store(int64(w.nseq))
	if last {
		return stepDone, 0
	}
	return stepSent, 0
}

func (c *conn) stopSending() (stepResult, int64) {
	c.w.done = true
	c.writerDone.Store(true)
	return stepDone, 0
}

// kick is called by the reader when it has freed slots of a full window. When
// the batches are small enough that a write cannot block for long, the reader
// sends the next batch itself: the writer goroutine stays parked and the
// reply-to-request turnaround costs no goroutine switch. Otherwise, or when
// the writer is busy, it wakes the writer.
func (c *conn) kick() {
	if c.p.direct && c.wmu.TryLock() {
		res := stepSent
		for res == stepSent {
			res, _ = c.step()
		}
		c.wmu.Unlock()
		if res == stepWait {
			return
		}
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// fill builds the next batch in the write buffer: at most budget requests,
// at most avail of them expecting a reply, and no more than maxBatch bytes
// unless a single request is larger. It returns how many requests it built
// and how many of them are notifies.
func (c *conn) fill(now int64, measured bool, budget, avail int) (n, notifies int) {
	p, w := c.p, &c.w
	w.buf, w.iov = w.buf[:0], w.iov[:0]
	mark, size := 0, 0
	var tm uint64
	if measured {
		tm = 1
	}
	for n < budget {
		t := &p.templates[w.next]
		notify := t.notify != 0 || p.isNotify(w.issued)
		if !notify && avail <= 0 {
			break
		}
		fl := len(t.frame)
		if n > 0 && size+fl > p.maxBatch {
			break
		}
		var h []byte
		off := len(w.buf)
		if fl <= largeFrame {
			w.buf = append(w.buf, t.frame...)
			h = w.buf[off:]
		} else {
			if off > mark {
				w.iov = append(w.iov, w.buf[mark:off])
			}
			w.buf = append(w.buf, t.frame[:repe.HeaderSize]...)
			h = w.buf[off:]
			w.iov = append(w.iov, w.buf[off:], t.frame[repe.HeaderSize:])
			mark = len(w.buf)
		}
		var id uint64
		if notify {
			id = notifyBit | tm*measuredBit | w.nseq
			w.nseq++
			if t.notify == 0 {
				h[repe.OffsetNotify] = 1
			}
			notifies++
		} else {
			id = w.seq
			ts := now
			if p.interval > 0 {
				// With a rate limit, latency counts from when the request
				// was due, not from when a backed-up writer got to send it,
				// so a stalled server cannot hide its stall (coordinated
				// omission).
				ts = int64(c.phase + float64(w.issued)*p.interval)
			}
			c.ring[id&c.mask] = ts<<1 | int64(tm)
			w.seq++
			avail--
		}
		binary.LittleEndian.PutUint64(h[repe.OffsetID:], id)
		size += fl
		n++
		w.issued++
		if w.next++; w.next == len(p.templates) {
			w.next = 0
		}
	}
	if len(w.iov) > 0 && len(w.buf) > mark {
		w.iov = append(w.iov, w.buf[mark:])
	}
	return n, notifies
}

// flush writes the batch fill built, with one write, or one writev when it
// holds large frames.
func (c *conn) flush() (int64, error) {
	w := &c.w
	if len(w.iov) == 0 {
		n, err := c.nc.Write(w.buf)
		return int64(n), err
	}
	return w.iov.WriteTo(c.nc)
}

// waitCredit blocks the writer until the reader frees a slot of the window,
// or the reader, having sent in its place, needs the writer to go on.
func (c *conn) waitCredit() {
	c.waiting.Store(true)
	// Check again after publishing waiting: the reader may have freed slots
	// before it could see the flag.
	if int(c.sent.Load()-c.retired.Load()) < c.p.pipeline {
		c.waiting.Store(false)
		return
	}
	select {
	case <-c.wake:
	case <-c.readerDone:
	case <-c.p.stop:
	}
	c.waiting.Store(false)
}

// sleep waits d nanoseconds for the rate schedule, or until the run stops.
func (c *conn) sleep(d int64) {
	if d <= 0 {
		return
	}
	if c.timer == nil {
		c.timer = time.NewTimer(time.Duration(d))
	} else {
		c.timer.Reset(time.Duration(d))
	}
	select {
	case <-c.timer.C:
	case <-c.readerDone:
	case <-c.p.stop:
	}
}
