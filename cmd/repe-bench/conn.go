package main

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/repe-gw/repe-gw/repe"
)

// Ids. Requests that expect a reply carry their sequence number on the
// connection, from 1 up, so replies are matched by id with no lookup table
// and an id of 0 (what a server that could not read the header answers) never
// matches. Notify requests carry notifyBit, so that a reply to a notify (which
// REPE servers must not send, but the echo floor does) is recognised, and
// measuredBit when they belong to the measured phase.
const (
	notifyBit   uint64 = 1 << 63
	measuredBit uint64 = 1 << 62
)

const (
	// largeFrame is the frame size above which a request is not copied into
	// the write buffer: its header is patched in a copy and its body written
	// from the template with writev.
	largeFrame = 64 << 10
	// pollInterval bounds how long a reader blocks in Read, so that it sees
	// the end of the run and overdue requests without a timer per request.
	pollInterval = 50 * time.Millisecond
	// stopGrace is how long replies in flight are awaited after an
	// interrupt.
	stopGrace = time.Second
)

// errKind is a failure the client sees, as opposed to a server's ec.
type errKind int

const (
	errIDMismatch   errKind = iota // a reply whose id matches no request in flight
	errTimeout                     // no reply within -timeout
	errInvalidReply                // a reply that is not a valid REPE frame
	errConnection                  // connection lost with requests in flight
	numErrKinds
)

var errKindNames = [numErrKinds]string{"id_mismatch", "timeout", "invalid_reply", "connection"}

func (k errKind) String() string { return errKindNames[k] }

// plan is what every connection shares, fixed before the run starts. Times
// are nanoseconds since base.
type plan struct {
	templates   []template
	pipeline    int
	notifyRatio float64
	base        time.Time
	warmupEnd   int64   // requests sent before this are not measured
	deadline    int64   // nothing is sent from then on; 0: no limit
	interval    float64 // ns between two requests of one connection; 0: no rate limit
	timeout     int64
	expectEC    repe.ErrorCode
	anyEC       bool
	maxReply    uint64
	stop        <-chan struct{} // closed to end the run early
	shards      []histShard
	// buffer sizes, from the templates and the pipeline depth
	maxBatch, readSize int
	// direct lets readers send batches (kick): only when a whole window is
	// small enough to sit in the socket buffers, so that a write from the
	// reader cannot block on a server that waits for its replies to be read.
	direct bool
}

func (p *plan) now() int64 { return int64(time.Since(p.base)) }

// isNotify says whether the k-th request of a connection is sent as a
// notify. It spreads notifies evenly (every 4th for 0.25) and needs no state.
func (p *plan) isNotify(k uint64) bool {
	r := p.notifyRatio
	return r > 0 && math.Floor(float64(k+1)*r) != math.Floor(float64(k)*r)
}

// histShard is a latency histogram shared by a few connections. Readers
// record a whole read's replies under one lock; sharding bounds both the
// memory (a histogram is about 200 KiB) and the contention.
type histShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// Histogram range: 1 ns to an hour, 3 significant digits (0.1 %).
const histMax = int64(time.Hour)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, 3) }

// connStats are one connection's counts for the measured phase, written by
// its reader and writer and read once both have finished.
type connStats struct {
	replies, ok, notifies int64
	notifyReplies         int64 // replies to notifies: the echo floor sends them, REPE servers must not
	reordered             int64 // replies matched by id out of order
	byEC                  map[repe.ErrorCode]int64
	client                [numErrKinds]int64
	bytesSent, bytesRecv  int64
	maxLatency            int64
	last                  int64 // when the last measured request completed
	warmupRequests        int64
	warmupErrors          int64
	unfinished            int64 // requests in flight when the run was stopped
	failures              int64 // every error above, warm-up included, for progress
	writes, reads         int64 // system calls, to see how well requests batch
}

// conn drives one connection: a writer goroutine sends batches of requests,
// keeping at most plan.pipeline in flight, and a reader goroutine checks the
// replies. They share the ring of send times and two counters.
type conn struct {
	p     *plan
	nc    net.Conn
	quota int64   // measured requests left to send; -1: no limit
	phase float64 // when this connection's rate schedule starts, ns

	// ring[seq&mask] holds the send time of request seq shifted left once,
	// with the low bit set when it is measured. The writer fills a slot before
	// publishing it through sent; the reader frees it through retired.
	ring    []int64
	mask    uint64
	sent    atomic.Uint64 // requests [retired, sent) are in flight
	retired atomic.Uint64

	// wmu is held to send: by the writer goroutine, or by the reader
	// sending in its place (kick). It guards w.
	wmu        sync.Mutex
	writerDone atomic.Bool   // nothing more will be sent
	waiting    atomic.Bool   // the writer waits for wake
	wake       chan struct{} // the reader frees slots while the writer waits
	readerDone chan struct{} // the reader has stopped; the writer stops too
	timer      *time.Timer   // the writer goroutine's rate-limit timer

	// Progress, stored by their owner goroutine, read once a second.
	progReplies, progErrors atomic.Int64 // reader
	progNotifies            atomic.Int64 // writer

	w writer
	r reader
}

type writer struct {
	seq, nseq uint64 // next request and notify sequence numbers
	issued    uint64 // requests built so far, notifies included
	next      int    // next template
	done      bool   // nothing more will be sent
	buf       []byte
	iov       net.Buffers
	st        connStats
}

type reader struct {
	head     uint64 // oldest request in flight
	sentSeen uint64 // last value loaded from conn.sent
	buf      []byte
	start    int // unread bytes are buf[start:end]
	end      int
	skip     uint64 // bytes of a large reply still to skip
	skipHdr  [repe.HeaderSize]byte
	answered []bool // requests answered out of order; nil until one is
	pending  int    // true entries in answered
	lat      []int64
	shard    *histShard
	st       connStats
}

func newConn(p *plan, nc net.Conn, quota int64, phase float64, shard *histShard) *conn {
	size := uint64(1)
	for size < uint64(p.pipeline) {
		size <<= 1
	}
	c := &conn{
		p: p, nc: nc, quota: quota, phase: phase,
		ring:       make([]int64, size),
		mask:       size - 1,
		wake:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
	}
	c.sent.Store(1)
	c.retired.Store(1)
	c.w.seq = 1
	// The batch rule in fill keeps the buffer within maxBatch plus one
	// header, so it never grows and the slices in iov stay valid.
	c.w.buf = make([]byte, 0, p.maxBatch+repe.HeaderSize)
	c.w.st.byEC = map[repe.ErrorCode]int64{}
	c.r.head, c.r.sentSeen = 1, 1
	c.r.buf = make([]byte, p.readSize)
	c.r.lat = make([]int64, 0, 1024)
	c.r.shard = shard
	c.r.st.byEC = map[repe.ErrorCode]int64{}
	return c
}

// run sends and checks until the quota, the deadline or stop ends the run
// and every reply is in, or the connection fails.
func (c *conn) run() {
	var wg sync.WaitGroup
	wg.Go(c.write)
	c.read()
	wg.Wait()
	c.nc.Close()
}

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
		c.abort(errConnection)
		return
	}
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
