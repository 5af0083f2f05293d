//go:build linux

package isolate

import (
	"runtime"
	"slices"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// call is one Call's batch on its way through the plugin's queue and an
// exchange. The plugin keeps them in a pool, so that a call allocates
// nothing.
type call struct {
	dst, reqs []byte
	n         int // requests in reqs
	deadline  time.Time
	start     time.Time // when Call began, for the timeout's message

	// state is guarded by Plugin.qmu.
	state callState
	// wake receives one value when a leader has answered the call, or has
	// handed it the lead (state leading).
	wake  chan struct{}
	timer *time.Timer // the call's deadline while it waits

	// Written by the leader that sends the call, read by its caller only
	// after wake.
	done  bool      // every request of the call is answered
	base  int       // the offset of reqs in the exchange's stream
	first int       // the index in the exchange of its first request
	next  int       // its requests answered so far
	at    int       // the offset in reqs of request next
	turn  time.Time // when its first request was seen running
	sent  time.Time // when its requests were written

	// A call posted to a pipe is given back to notify, with arg, instead
	// of waking a caller blocked in Call.
	notify func(out []byte, arg, loop any)
	arg    any
}

// Where a call is; guarded by Plugin.qmu.
type callState int

const (
	queued  callState = iota // in Plugin.queue
	taken                    // in a leader's exchange
	leading                  // handed the lead; still in Plugin.queue
)

func newCall() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{wake: make(chan struct{}, 1), timer: t}
}

// enqueue queues c and reports whether its caller leads: whether no other
// caller is running exchanges, so that this one runs the next.
func (p *Plugin) enqueue(c *call) bool {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	c.state = queued
	p.queue = append(p.queue, c)
	if p.leader {
		return false
	}
	p.leader = true
	return true
}

// await waits for c to be answered, or to be handed the lead, which it
// reports. A call still queued when its deadline passes leaves the queue
// and is answered with send_error, unsent; one already taken into an
// exchange is answered by its leader, which enforces its deadline.
func (p *Plugin) await(c *call) bool {
	if !c.deadline.IsZero() {
		c.timer.Reset(time.Until(c.deadline))
		select {
		case <-c.wake:
			c.timer.Stop()
			return c.state == leading
		case <-c.timer.C:
		}
		p.qmu.Lock()
		if c.state == queued {
			i := slices.Index(p.queue, c)
			p.queue = slices.Delete(p.queue, i, i+1)
			p.qmu.Unlock()
			c.dst = appendErrors(c.dst, c.reqs, repe.SendError, p.msgBusy)
			return false
		}
		p.qmu.Unlock()
	}
	<-c.wake
	return c.state == leading
}

// lead runs exchanges of the queued calls, self among them, until self is
// answered, then hands the lead to the first call still queued, so that
// no caller waits on another's behalf for longer than one exchange.
// Exchanges are what costs: every call queued while one runs goes to the
// worker in the next one, in one write, however many there are.
//
// A pipe attached meanwhile takes the queued calls, self among them.
func (p *Plugin) lead(self *call) {
	for !self.done {
		p.qmu.Lock()
		changed := p.pipeChanged
		p.qmu.Unlock()
		if p.divert() {
			<-self.wake
			return
		}
		select {
		case p.sem <- struct{}{}:
		case <-changed:
			continue
		}
		p.round(self)
		<-p.sem
	}
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if len(p.queue) == 0 {
		p.leader = false
		return
	}
	next := p.queue[0]
	next.state = leading
	next.wake <- struct{}{}
}

// divert posts every queued call to the plugin's pipe, if one is
// attached, and reports whether it did: no caller leads any more.
func (p *Plugin) divert() bool {
	pp := p.pipe.Load()
	if pp == nil {
		return false
	}
	p.qmu.Lock()
	defer p.qmu.Unlock()
	for _, c := range p.queue {
		c.state = taken
	}
	if !pp.postAll(p.queue) {
		for _, c := range p.queue {
			c.state = queued
		}
		return false
	}
	clear(p.queue)
	p.queue = p.queue[:0]
	p.leader = false
	return true
}

// round takes every queued call and sends them to the worker in one
// exchange. It answers each, except those that a failure of the worker
// left with no request begun: they go back to the head of the queue, for
// the next worker, as if they had come during its restart.
//
// It may first let the goroutines that are ready to run do so, so that the
// calls they are about to make join this exchange instead of waiting for
// the next: with one P, as a gateway pinned to one CPU has, they could
// not run while this one waits for the worker, which holds its thread in
// the kernel. Yielding costs a switch of threads when the goroutine ready
// is the gateway's event loop, which is locked to its own, so a yield that
// brought no call makes the next ones rarer: one round in 2, 4, up to 64.
func (p *Plugin) round(self *call) {
	g := &p.group
	p.maybeYield()
	p.qmu.Lock()
	g.calls = append(g.calls[:0], p.queue...)
	clear(p.queue)
	p.queue = p.queue[:0]
	for _, c := range g.calls {
		c.state = taken
	}
	p.qmu.Unlock()
	defer func() {
		for _, c := range g.calls {
			if c.done && c != self {
				c.wake <- struct{}{}
			}
		}
		clear(g.calls)
		g.calls = g.calls[:0]
	}()

	var w *worker
	for w == nil {
		now := time.Now()
		var earliest time.Time
		for _, c := range g.calls {
			switch {
			case c.done:
			case !c.deadline.IsZero() && !now.Before(c.deadline):
				p.answerAll(c, p.msgBusy)
			case !c.deadline.IsZero() && (earliest.IsZero() || c.deadline.Before(earliest)):
				earliest = c.deadline
			}
		}
		if !slices.ContainsFunc(g.calls, func(c *call) bool { return !c.done }) {
			return
		}
		var msg string
		if w, msg = p.ready(earliest); w == nil && msg != p.msgRestarting {
			for _, c := range g.calls {
				if !c.done {
					p.answerAll(c, msg)
				}
			}
			return
		} else if w == nil {
			// The restart outlasted the earliest deadline: its call
			// is answered, the others wait on.
			for _, c := range g.calls {
				if !c.done && !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
					p.answerAll(c, msg)
				}
			}
		}
	}
	// Calls answered while waiting for the worker (their deadlines
	// passed) leave the exchange.
	open := g.calls[:0]
	for _, c := range g.calls {
		if !c.done {
			open = append(open, c)
		} else if c != self {
			c.wake <- struct{}{}
		}
	}
	clear(g.calls[len(open):])
	g.calls = open
	g.start()
	end := p.exchange(w, g)
	if cap(p.rbuf) > keptBufferSize {
		p.rbuf = nil
	}
	if end == endOK {
		w.seq += uint64(g.n)
		w.release()
		return
	}
	began, what := p.settle(w, g, end)
	p.retire(w)
	var again []*call
	for _, c := range g.calls {
		switch {
		case c.done:
		case c.first >= began:
			again = append(again, c)
		default:
			p.answerFailed(c, began, what, end)
		}
	}
	w.release()
	if len(again) != 0 {
		p.qmu.Lock()
		for _, c := range again {
			c.state = queued
		}
		p.queue = append(again, p.queue...)
		p.qmu.Unlock()
	}
}

// answerAll answers every request of c with send_error and msg: none was
// sent.
func (p *Plugin) answerAll(c *call, msg string) {
	c.dst = appendErrors(c.dst, c.reqs, repe.SendError, msg)
	c.done = true
}

// maxYieldBackoff bounds the rounds between two yields of round.
const maxYieldBackoff = 64

// maybeYield yields to the goroutines ready to run, unless the last yields
// brought no call to the queue (see round).
func (p *Plugin) maybeYield() {
	if p.yieldSkip > 0 {
		p.yieldSkip--
		return
	}
	p.qmu.Lock()
	before := len(p.queue)
	p.qmu.Unlock()
	runtime.Gosched()
	p.qmu.Lock()
	joined := len(p.queue) > before
	p.qmu.Unlock()
	if joined {
		p.yieldBackoff = 0
	} else {
		p.yieldBackoff = min(max(1, 2*p.yieldBackoff), maxYieldBackoff)
	}
	p.yieldSkip = p.yieldBackoff
}
