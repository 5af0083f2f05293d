package gateway

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// Counting for metrics. Every reply is counted once, by plugin and ec, where
// it is made or collected on the goroutine that serves its connection, in
// the slot of that goroutine among the plugin's lane's counters: each gnet
// event loop has a slot of its own in every lane, so that counting writes
// no memory another loop writes; the stream connections share the last.
// The counts live in the lane, not in the loop, so that a reload, which
// adds lanes, moves no count; the replies no plugin made have a lane-like
// set of slots in the Server. The counters are atomics only so that a
// scrape can read them while they are written. Inline calls are counted per run, not per call, and timed
// as a run: a run's calls are each taken to have lasted the run's average.
// Calls on workers are counted when their replies are collected.

// ecSlots is how many error codes have a counter each: every code Glaze
// defines is below it. Replies with higher codes are counted in the last
// slot, as ec ecSlots-1 or higher.
const ecSlots = 128

// durBounds are the upper bounds of the call duration histogram's buckets,
// from 1 µs to 10 s.
var durBounds = []time.Duration{
	1 * time.Microsecond, 2500 * time.Nanosecond, 5 * time.Microsecond,
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	1 * time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	1 * time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second,
}

// durBuckets is len(durBounds)+1: the last bucket is over every bound.
const durBuckets = 23

// tally is the counts of one gnet event loop, or of all stream
// connections of one transport, and the slot they count in, in every
// lane's counters. It counts replies by ec again, apart from the lanes,
// so that a transport's counts survive the reload that removes a lane.
type tally struct {
	slot      int
	transport Transport
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	notifies  atomic.Uint64
	replies   [ecSlots]atomic.Uint64
	// bytesDirect is the part of bytesOut that workers wrote themselves,
	// from the plugins' buffers (direct.go).
	bytesDirect atomic.Uint64
}

// laneTally counts one plugin's replies on one event loop. Pad keeps
// neighbouring loops' hot counters off one cache line.
type laneTally struct {
	replies  [ecSlots]atomic.Uint64
	notifies atomic.Uint64
	inline   atomic.Uint64
	worker   atomic.Uint64
	durSum   atomic.Uint64 // ns
	dur      [durBuckets]atomic.Uint64
	_        [64]byte
}

func newTally(slot int, t Transport) *tally { return &tally{slot: slot, transport: t} }

// newLaneTallies returns the counters of one lane: a slot for each gnet
// event loop and one for the stream connections.
func (s *Server) newLaneTallies() []laneTally { return make([]laneTally, s.cfg.EventLoops+1) }

// streamSlot is the slot of the stream connections, of every transport, in
// every lane's counters.
func (s *Server) streamSlot() int { return s.cfg.EventLoops }

// reply counts a reply with code ec.
func (lt *laneTally) reply(ec uint32) { lt.replies[min(ec, ecSlots-1)].Add(1) }

// reply counts a reply with code ec in lt and in the transport's counts.
func (t *tally) reply(lt *laneTally, ec uint32) {
	lt.reply(ec)
	t.replies[min(ec, ecSlots-1)].Add(1)
}

// notify counts n notifies in lt and in the transport's counts.
func (t *tally) notify(lt *laneTally, n int) {
	lt.notifies.Add(uint64(n))
	t.notifies.Add(uint64(n))
}

// calls counts n calls that took ns in all.
func (lt *laneTally) calls(n int, ns int64, inline bool) {
	if n == 0 {
		return
	}
	if inline {
		lt.inline.Add(uint64(n))
	} else {
		lt.worker.Add(uint64(n))
	}
	lt.durSum.Add(uint64(max(ns, 0)))
	lt.dur[durBucket(ns/int64(n))].Add(uint64(n))
}

// durBucket returns the histogram bucket of a call that took ns.
func durBucket(ns int64) int {
	for i, b := range durBounds {
		if ns <= int64(b) {
			return i
		}
	}
	return len(durBounds)
}

// replyEC returns the error code of the reply that starts at b.
func replyEC(b []byte) uint32 { return binary.LittleEndian.Uint32(b[44:48]) }

// countReplies counts the replies framed back to back in b in lt and in
// the transport's counts.
func (t *tally) countReplies(lt *laneTally, b []byte) {
	for len(b) >= repe.HeaderSize {
		n := repe.Message(b).Length()
		if n < repe.HeaderSize || n > uint64(len(b)) {
			return
		}
		t.reply(lt, replyEC(b))
		b = b[n:]
	}
}

// ECCount is how many replies had one error code.
type ECCount struct {
	EC    uint32
	Count uint64
}

// Histogram is a histogram of call durations: Counts[i] calls took at most
// Bounds[i] (and more than Bounds[i-1]); the last count is of the calls
// that took longer than every bound.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Sum    time.Duration
}

// Count returns the number of calls in h.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// laneSums is the sum of one lane's counts over every event loop.
type laneSums struct {
	replies        []ECCount
	notifies       uint64
	inline, worker uint64
	dur            Histogram
}

// sumLane sums one lane's counters over its slots.
func sumLane(slots []laneTally) laneSums {
	var byEC [ecSlots]uint64
	s := laneSums{dur: Histogram{Bounds: durBounds, Counts: make([]uint64, len(durBounds)+1)}}
	for i := range slots {
		lt := &slots[i]
		for ec := range byEC {
			byEC[ec] += lt.replies[ec].Load()
		}
		s.notifies += lt.notifies.Load()
		s.inline += lt.inline.Load()
		s.worker += lt.worker.Load()
		s.dur.Sum += time.Duration(lt.durSum.Load())
		for b := range s.dur.Counts {
			s.dur.Counts[b] += lt.dur[b].Load()
		}
	}
	for ec, n := range byEC {
		if n > 0 {
			s.replies = append(s.replies, ECCount{EC: uint32(ec), Count: n})
		}
	}
	return s
}

// tallies returns the counts of every event loop, and of the stream
// connections of every transport.
func (s *Server) tallies() []*tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*tally, 0, len(s.loops)+len(s.streamTallies))
	for _, l := range s.loops {
		out = append(out, l.tally)
	}
	return append(out, s.streamTallies[:]...)
}

// Why a connection closed: the reasons the core or a transport gives, set
// once, by whoever closes it first.
const (
	closedByClient uint32 = iota // the peer closed it, or it failed
	closedBadFrame
	closedSlowConsumer
	closedFlood
	closedReadTimeout
	closedIdleTimeout
	closedShutdown
	closedCallFailed
	closedPanic
	closeReasons
)

// setWhy records why cs is being closed, unless a reason was given first.
func (cs *conn) setWhy(why uint32) { cs.why.CompareAndSwap(closedByClient, why) }
