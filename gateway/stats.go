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
