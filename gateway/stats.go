package gateway

import (
	"sync/atomic"
	"time"

	"github.com/repe-gw/repe-gw/pluginhost"
)

// Stats counts events of a server's life that an operator may want to see.
// Each count is since the server was created.
type Stats struct {
	// Accepted counts the connections admitted; Open is how many are open
	// now.
	Accepted uint64
	Open     int
	// The closed connections, by why they closed. ClientCloses counts those
	// the peer closed, or that failed under it; BadFrames, those closed
	// after a frame that cannot be framed; SlowConsumers, those that did
	// not read their replies (MaxPendingOutput, MaxPendingInput,
	// WriteTimeout); Floods, those that sent more than MaxPendingInput
	// behind a running call; ReadTimeouts, those stalled inside a frame;
	// IdleTimeouts, those idle for IdleTimeout; ShutdownCloses, those
	// closed by Shutdown; FailedCalls, those whose call failed beyond a
	// reply (a panic in a worker, or frames that do not frame); Panics,
	// those whose serving panicked.
	ClientCloses   uint64
	BadFrames      uint64
	SlowConsumers  uint64
	Floods         uint64
	ReadTimeouts   uint64
	IdleTimeouts   uint64
	ShutdownCloses uint64
	FailedCalls    uint64
	Panics         uint64
	// MaxConnsRefused and PerIPRefused count connections closed as they
	// were accepted, over MaxConns and MaxConnsPerIP.
	MaxConnsRefused uint64
	PerIPRefused    uint64
	// BytesIn and BytesOut count the request and reply bytes of every
	// connection.
	BytesIn, BytesOut uint64
	// DirectBytes is the part of BytesOut that the workers wrote to the
	// sockets themselves, straight from the plugins' buffers: large replies
	// on the gateway's own listener (README, "Large bodies").
	DirectBytes uint64
	// Replies counts, by ec, the replies the gateway made itself because
	// no plugin was chosen: bad frames, paths no plugin owns (ec 6), the
	// first request a flooding connection dropped (ec 9). Notifies counts
	// the notifies to paths no plugin owns.
	Replies  []ECCount
	Notifies uint64
	// Transports counts each transport's connections, requests and bytes,
	// one entry per Transport in its order.
	Transports []TransportStats
}

// counters are the atomics behind Stats that are written only on rare
// events; the rest are in the tallies (tally.go).
type counters struct {
	accepted        [numTransports]atomic.Uint64
	closedBy        [numTransports][closeReasons]atomic.Uint64
	maxConnsRefused atomic.Uint64
	perIPRefused    atomic.Uint64
}

// Stats returns the server's counts so far. It sums the counts of every
// event loop: call it for a scrape, not per request.
func (s *Server) Stats() Stats {
	var why [closeReasons]uint64
	var closed [numTransports]uint64
	for t := range s.stats.closedBy {
		for r := range why {
			n := s.stats.closedBy[t][r].Load()
			why[r] += n
			closed[t] += n
		}
	}
	gw := sumLane(s.gwTally)
	st := Stats{
		Open:            s.connCount(),
		ClientCloses:    why[closedByClient],
		BadFrames:       why[closedBadFrame],
		SlowConsumers:   why[closedSlowConsumer],
		Floods:          why[closedFlood],
		ReadTimeouts:    why[closedReadTimeout],
		IdleTimeouts:    why[closedIdleTimeout],
		ShutdownCloses:  why[closedShutdown],
		FailedCalls:     why[closedCallFailed],
		Panics:          why[closedPanic],
		MaxConnsRefused: s.stats.maxConnsRefused.Load(),
		PerIPRefused:    s.stats.perIPRefused.Load(),
		Replies:         gw.replies,
		Notifies:        gw.notifies,
		Transports:      s.transportStats(&closed),
	}
	for _, ts := range st.Transports {
		st.Accepted += ts.Accepted
		st.BytesIn += ts.BytesIn
		st.BytesOut += ts.BytesOut
	}
	for _, t := range s.tallies() {
		st.DirectBytes += t.bytesDirect.Load()
	}
	return st
}

// PluginStats counts what happened to one plugin's calls.
type PluginStats struct {
	Name, Root string
	// Replies counts the replies to the plugin's requests by ec, those the
	// gateway made for it included (ec 5, 7, 8); Notifies counts its
	// notifies, which get no reply.
	Replies  []ECCount
	Notifies uint64
	// InlineCalls and WorkerCalls count the calls made on an event loop
	// and on a worker (or worker process); Duration is how long they took.
	// Inline calls are timed as runs: each call of a run counts the run's
	// average.
	InlineCalls uint64
	WorkerCalls uint64
	Duration    Histogram
	// InFlight is how many calls are in the plugin now, stuck ones
	// included; Queued is how many jobs wait for a slot.
	InFlight int
	Queued   int
	// InvalidReplies counts replies the plugin made that were not valid
	// REPE replies to their requests, answered ec 5 instead.
	InvalidReplies uint64
	// Timeouts counts calls answered ec 7 at their deadline; Stuck is how
	// many of those are still in the plugin; Late counts those that
	// returned since, their replies discarded.
	Timeouts uint64
	Stuck    int
	Late     uint64
	// Refused counts requests answered ec 8 without calling the plugin:
	// queue full, circuit open, every slot stuck.
	Refused uint64
	// CircuitOpen tells whether the circuit is open now; CircuitOpened
	// counts the times it opened.
	CircuitOpen   bool
	CircuitOpened uint64
	// DroppedNotifyReplies counts replies the plugin returned to notify
	// requests, which are never sent.
	DroppedNotifyReplies uint64
}

// PluginStats returns the counts of every plugin served now: those given
// to New (or to the last Swap) in their order, then the isolated ones. A
// plugin a reload replaced starts from zero, and the counts of one it
// removed are gone with it. An isolated plugin's worker process
// counts its own timeouts and crashes (isolate.Plugin.Stats). It sums the
// counts of every event loop: call it for a scrape, not per request.
func (s *Server) PluginStats() []PluginStats {
	lanes := s.routes.Load().plugins
	out := make([]PluginStats, len(lanes))
	for i, l := range lanes {
		sums := sumLane(l.tally)
		wc := &l.workerCalls
		sums.dur.Sum += time.Duration(wc.durSum.Load())
		for b := range sums.dur.Counts {
			sums.dur.Counts[b] += wc.dur[b].Load()
		}
		out[i] = PluginStats{
			Name:           l.name,
			Root:           l.root,
			Replies:        sums.replies,
			Notifies:       sums.notifies,
			InlineCalls:    sums.inline,
			WorkerCalls:    wc.worker.Load(),
			Duration:       sums.dur,
			InFlight:       int(l.busy.Load()),
			Queued:         int(l.queued.Load()),
			InvalidReplies: l.invalid.Load(),
			Timeouts:       l.timeouts.Load(),
			Stuck:          int(l.stuck.Load()),
			Late:           l.late.Load(),
			Refused:        l.refused.Load(),
			CircuitOpen:    l.breaker.state.Load() != circuitClosed,
			CircuitOpened:  l.breaker.opened.Load(),
		}
		if p, ok := l.plugin.(*pluginhost.Plugin); ok {
			out[i].DroppedNotifyReplies = p.DroppedNotifyReplies()
		}
	}
	return out
}
