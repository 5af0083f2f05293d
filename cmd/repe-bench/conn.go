package main

import (
	"math"
	"net"
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
	// redial opens a new connection for one that the server closed, with
	// --reconnect; nil without.
	redial func() (net.Conn, error)
	shards []histShard
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
	reconnects            int64 // connections opened again after the server closed one
	resent                int64 // measured requests sent again after a clean end
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

	lost bool // the reader stopped because the connection failed
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
	// ended counts the measured requests in flight when the server ended
	// the connection cleanly: they did not run, and are sent again.
	ended int64
}

func newConn(p *plan, nc net.Conn, quota int64, phase float64, shard *histShard) *conn {
	size := uint64(1)
	for size < uint64(p.pipeline) {
		size <<= 1
	}
	c := &conn{
		p: p, quota: quota, phase: phase,
		ring: make([]int64, size),
		mask: size - 1,
		wake: make(chan struct{}, 1),
	}
	// The batch rule in fill keeps the buffer within maxBatch plus one
	// header, so it never grows and the slices in iov stay valid.
	c.w.buf = make([]byte, 0, p.maxBatch+repe.HeaderSize)
	c.w.st.byEC = map[repe.ErrorCode]int64{}
	c.r.buf = make([]byte, p.readSize)
	c.r.lat = make([]int64, 0, 1024)
	c.r.shard = shard
	c.r.st.byEC = map[repe.ErrorCode]int64{}
	c.attach(nc)
	return c
}

// attach makes nc the connection's socket, with nothing in flight. Ids
// start again from 1: they need only be unique on one socket. The counts,
// the quota and the rate schedule go on.
func (c *conn) attach(nc net.Conn) {
	c.nc = nc
	c.sent.Store(1)
	c.retired.Store(1)
	c.w.seq, c.w.done, c.w.iov = 1, false, nil
	c.w.buf = c.w.buf[:0]
	c.r.head, c.r.sentSeen = 1, 1
	c.r.start, c.r.end, c.r.skip = 0, 0, 0
	c.r.answered, c.r.pending = nil, 0
	c.writerDone.Store(false)
	c.waiting.Store(false)
	c.readerDone = make(chan struct{})
	c.lost = false
	select {
	case <-c.wake:
	default:
	}
}

// run sends and checks until the quota, the deadline or stop ends the run
// and every reply is in, or the connection fails. With --reconnect, a
// connection that the server closed is opened again while the run has
// requests left to send. When the server ended it cleanly (EOF between
// replies), the requests in flight on it did not run (README, "How
// connections end"), and are sent again on the new one; their latency
// counts from then. When it failed otherwise, they may have run, and are
// counted as failed.
func (c *conn) run() {
	for {
		var wg sync.WaitGroup
		wg.Go(c.write)
		c.read()
		wg.Wait()
		c.nc.Close()
		ended := c.r.ended
		c.r.ended = 0
		if c.quota >= 0 {
			c.quota += ended // the quota counts requests answered or failed
		}
		over := c.over()
		if over {
			c.r.st.unfinished += ended
		} else {
			c.r.st.resent += ended
		}
		if !c.lost || c.p.redial == nil || over {
			return
		}
		nc, err := c.p.redial()
		if err != nil {
			return // counted already: the requests lost with the old one
		}
		c.r.st.reconnects++
		c.attach(nc)
	}
}

// over reports whether the run has nothing left for this connection to send.
func (c *conn) over() bool {
	select {
	case <-c.p.stop:
		return true
	default:
	}
	return c.quota == 0 || (c.p.deadline > 0 && c.p.now() >= c.p.deadline)
}
