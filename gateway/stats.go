package gateway

import "sync/atomic"

// Stats counts events of a server's life that an operator may want to see.
// Each field counts since the server was created.
type Stats struct {
	// SlowConsumers counts connections closed because they did not read
	// their replies (MaxPendingOutput, MaxPendingInput, WriteTimeout).
	SlowConsumers uint64
	// Floods counts connections closed because they sent more than
	// MaxPendingInput behind a running call.
	Floods uint64
	// ReadTimeouts counts connections closed inside a frame (ReadTimeout).
	ReadTimeouts uint64
	// IdleTimeouts counts connections closed while idle (IdleTimeout).
	IdleTimeouts uint64
	// MaxConnsRefused and PerIPRefused count connections closed as they
	// were accepted, over MaxConns and MaxConnsPerIP.
	MaxConnsRefused uint64
	PerIPRefused    uint64
}

// counters are the atomics behind Stats, written only on rare events.
type counters struct {
	slowConsumers   atomic.Uint64
	floods          atomic.Uint64
	readTimeouts    atomic.Uint64
	idleTimeouts    atomic.Uint64
	maxConnsRefused atomic.Uint64
	perIPRefused    atomic.Uint64
}

// Stats returns the server's counts so far.
func (s *Server) Stats() Stats {
	return Stats{
		SlowConsumers:   s.stats.slowConsumers.Load(),
		Floods:          s.stats.floods.Load(),
		ReadTimeouts:    s.stats.readTimeouts.Load(),
		IdleTimeouts:    s.stats.idleTimeouts.Load(),
		MaxConnsRefused: s.stats.maxConnsRefused.Load(),
		PerIPRefused:    s.stats.perIPRefused.Load(),
	}
}

// PluginStats counts what happened to one plugin's calls.
type PluginStats struct {
	Name, Root string
	// InFlight is how many calls are in the plugin now, stuck ones included.
	InFlight int
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

// PluginStats returns the counts of every plugin: those given to New in
// their order, then Config.Isolated. An isolated plugin's worker process
// counts its own timeouts and crashes (isolate.Plugin.Stats).
func (s *Server) PluginStats() []PluginStats {
	out := make([]PluginStats, len(s.lanes))
	for i, l := range s.lanes {
		out[i] = PluginStats{
			Name:          l.name,
			Root:          l.root,
			InFlight:      int(l.busy.Load()),
			Timeouts:      l.timeouts.Load(),
			Stuck:         int(l.stuck.Load()),
			Late:          l.late.Load(),
			Refused:       l.refused.Load(),
			CircuitOpen:   l.breaker.state.Load() != circuitClosed,
			CircuitOpened: l.breaker.opened.Load(),
		}
		if l.plugin != nil {
			out[i].DroppedNotifyReplies = l.plugin.DroppedNotifyReplies()
		}
	}
	return out
}
