package gateway

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/repe-gw/repe-gw/internal/lograte"
	"github.com/repe-gw/repe-gw/repe"
)

// Probation: a plugin's calls leave the event loop until this many calls in a
// row have finished within the inline budget. A plugin sent back soon after
// it was trusted must prove itself for twice as long, up to maxProbation, so
// that a plugin that is often slow settles off the event loop; one that ran
// inline for decayCalls first starts afresh, so that rare hiccups on a busy
// machine do not exile a fast plugin for good.
const (
	initialProbation = 64
	maxProbation     = 1 << 20
	decayCalls       = 1 << 20
)

// A run of inline calls overran the budget only if it also held the event
// loop for at least minStall; it takes two such runs in a row to send the
// plugin off the event loop, unless one held it for severeStall. The clock
// that times runs is wall time, which also counts time the thread spent
// descheduled: one short overrun is more likely the machine than the plugin.
const (
	minStall    = 500 * time.Microsecond
	severeStall = 20 * time.Millisecond
)

// maxJobFrames bounds the frames of one connection handed to a worker at once.
// jobBudget sizes a job so that its first reply waits about this long.
const (
	maxJobFrames = 256
	jobBudget    = time.Millisecond
)

// lane is the gateway's side of one plugin: it decides where each call runs
// and runs the calls that leave the event loop on worker goroutines. At most
// limit calls are in the plugin at once, counting both kinds.
//
// Calls run on the event loop (inline) while the plugin has proven fast: that
// costs no hand-off at all. A plugin starts on probation, off the event loop,
// and is trusted inline after a run of fast calls; an inline batch that
// overruns the budget sends it back. Requests of one connection always run one
// after another, in order, wherever they run, as Glaze's own server does.
type lane struct {
	srv *Server
	// caller calls the plugin on workers; plugin is set too when it runs
	// in this process, for the calls made inline, which only such a
	// plugin may take.
	caller    caller
	plugin    inProcess
	name      string
	version   string
	root      string // the plugin's root, kept here for the router
	file      string
	sha256    string // the digest of the plugin's file, if known
	log       *slog.Logger
	limit     int32
	budget    int64 // ns per call
	canInline bool

	// pol is the policy the lane was made with: a reload that changes it
	// makes a new lane, since lanes never change.
	pol Policy

	// The plugin's policy: deadline in ns (0: none), queue limit in
	// requests (0: none), its circuit, and the texts of its refusals,
	// formatted once.
	deadline    int64
	queueLimit  int
	breaker     *breaker
	textTimeout string
	textQueue   string
	textOpen    string
	textStuck   string

	inline      atomic.Bool
	streak      atomic.Int64 // consecutive fast calls off the loop
	probation   atomic.Int64 // streak needed to run inline
	strikes     atomic.Int32 // overrunning inline runs in a row
	inlineCalls atomic.Int64 // calls run inline since the last promotion
	avg         atomic.Int64 // moving average ns per call, for sizing jobs

	// busy counts the calls in the plugin, inline and on workers; queued
	// mirrors len(queue) for readers that do not hold mu.
	busy   atomic.Int32
	queued atomic.Int32
	mu     sync.Mutex
	queue  []*job
	// queuedReqs counts the requests of the queued jobs; kept only with a
	// queue limit.
	queuedReqs int

	// holds counts the jobs alive for the plugin, queued, running or
	// parked. retired is set once a reload no longer routes to the lane:
	// from then on no call enters it, and it is drained when neither a
	// job nor a slot is held (Server.Swap).
	holds   atomic.Int32
	retired atomic.Bool

	// tally counts the plugin's replies, one slot per event loop (tally.go).
	tally []laneTally

	// What happened to the plugin's calls, for Server.PluginStats.
	timeouts atomic.Uint64
	stuck    atomic.Int32
	late     atomic.Uint64
	refused  atomic.Uint64
	invalid  atomic.Uint64 // replies refused as malformed, answered ec 5
	// workerCalls counts and times the calls made on workers; their
	// replies are counted in the tally of the loop that collects them.
	workerCalls laneTally

	errLog     lograte.Limiter
	timeoutLog lograte.Limiter
}

// plugin is what a lane needs to know of either kind of plugin.
type plugin interface {
	Name() string
	Version() string
	Root() string
	File() string
}

// inProcess is a plugin whose calls run on this process's threads, one
// request at a time: a pluginhost.Plugin, or the gateway's own root.
type inProcess interface {
	plugin
	Call(dst, req []byte) ([]byte, error)
}

func newLane(srv *Server, p plugin, pol Policy) *lane {
	cfg := &srv.cfg
	l := &lane{
		srv:        srv,
		name:       p.Name(),
		version:    p.Version(),
		root:       p.Root(),
		file:       p.File(),
		log:        cfg.Logger.With("plugin", p.Name(), "file", p.File()),
		pol:        pol,
		tally:      srv.newLaneTallies(),
		limit:      int32(pol.Concurrency),
		budget:     int64(cfg.InlineBudget),
		deadline:   int64(pol.Deadline),
		queueLimit: pol.Queue,
		breaker:    newBreaker(pol),
		textTimeout: fmt.Sprintf("timeout: plugin %s did not answer within its deadline of %v; its late reply will be discarded",
			p.Name(), pol.Deadline),
		textQueue: fmt.Sprintf("send_error: plugin %s is busy: %d requests already wait for it; this one was not sent and is safe to retry",
			p.Name(), pol.Queue),
		textOpen: fmt.Sprintf("send_error: plugin %s is failing: its circuit opened after %d timeouts within %v; this request was not sent and is safe to retry",
			p.Name(), pol.CircuitFailures, pol.CircuitWindow),
		textStuck: fmt.Sprintf("send_error: every one of plugin %s's %d slots is stuck in a call past its deadline; this request was not sent and is safe to retry",
			p.Name(), pol.Concurrency),
	}
	// An isolated plugin's batches of different connections go to it at
	// once, up to its concurrency; it decides how its worker processes
	// take them.
	l.caller = newCaller(l, p)
	if p, ok := l.caller.(inProcessCaller); ok {
		l.plugin = p.p
		l.canInline = cfg.InlineBudget > 0 && pol.Deadline == 0
	}
	l.probation.Store(initialProbation)
	return l
}

// hold counts one more job for l, or reports false when l is retired: a
// hold taken before the check keeps l from being drained, one taken after
// is given back.
func (l *lane) hold() bool {
	l.holds.Add(1)
	if l.retired.Load() {
		l.holds.Add(-1)
		return false
	}
	return true
}

// drained reports whether a retired lane has nothing left in its plugin:
// no job, queued, running or parked, and no slot taken on an event loop.
func (l *lane) drained() bool { return l.holds.Load() == 0 && l.busy.Load() == 0 }

// observeInline records a run of n inline calls that held the event loop for
// ns nanoseconds, and sends the plugin back to probation when it overran.
func (l *lane) observeInline(n int, ns int64) {
	l.inlineCalls.Add(int64(n))
	if ns <= l.budget*int64(n) || ns < int64(minStall) {
		l.strikes.Store(0)
		return
	}
	if ns < int64(severeStall) && l.strikes.Add(1) < 2 {
		return
	}
	if !l.inline.CompareAndSwap(true, false) {
		return
	}
	next := int64(initialProbation)
	if l.inlineCalls.Load() < decayCalls {
		next = min(2*l.probation.Load(), maxProbation)
	}
	l.probation.Store(next)
	l.streak.Store(0)
	l.strikes.Store(0)
	l.log.Info("plugin calls are slow; they now run off the event loop",
		"calls", n, "took", time.Duration(ns), "budget", time.Duration(l.budget), "probation", next)
}

// observeWorker records one call made on a worker and promotes the plugin to
// inline calls after a long enough run of fast ones.
func (l *lane) observeWorker(ns int64) {
	l.avg.Store((3*l.avg.Load() + ns) / 4)
	if !l.canInline {
		return
	}
	if ns > l.budget {
		l.streak.Store(0)
		return
	}
	if l.streak.Add(1) >= l.probation.Load() && l.inline.CompareAndSwap(false, true) {
		l.inlineCalls.Store(0)
		l.log.Debug("plugin calls are fast; they now run on the event loop")
	}
}

// jobFrames is how many frames of one connection a worker should take at
// once: enough to amortise the hand-off, few enough that the first reply is
// not held back by more than jobBudget.
func (l *lane) jobFrames() int {
	avg := l.avg.Load()
	if avg <= 0 {
		return 1
	}
	return int(max(1, min(maxJobFrames, int64(jobBudget)/avg)))
}

// call runs one request and appends its reply, or a REPE error that says why
// the plugin could not answer, to dst.
func (l *lane) call(dst []byte, frame repe.Message, cs *conn) []byte {
	out, err := l.plugin.Call(dst, frame)
	if err != nil {
		return l.callFailed(dst, frame, cs, err)
	}
	return out
}

// callFailed appends to dst the REPE error that says why the plugin could
// not answer frame, unless frame is a notify.
func (l *lane) callFailed(dst []byte, frame repe.Message, cs *conn, err error) []byte {
	l.invalid.Add(1)
	cs.made.Add(1)
	e := repe.AsError(err)
	l.errLog.Do(func(suppressed int64) {
		l.log.Warn("plugin call failed", "query", string(frame.Query()), "error", err, "suppressed", suppressed)
	})
	if frame.Notify() {
		return dst
	}
	return repe.AppendError(dst, frame.ID(), e.Code, e.Message)
}
