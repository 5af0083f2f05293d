package gateway

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Policy is how the gateway treats one plugin's calls. Its zero value takes
// every default.
type Policy struct {
	// Concurrency is how many calls may be in the plugin at once, on event
	// loops and workers alike. Default Config.PluginConcurrency.
	Concurrency int

	// Queue is how many requests may wait for a free slot; beyond it a
	// request is refused at once with ec 8 (send_error: not sent, safe to
	// retry). Default 0: no limit, since what a connection can queue is
	// already bounded by MaxPendingInput.
	Queue int

	// Deadline is how long a call may take. A call still running then is
	// answered ec 7 (timeout), and the requests after it on its connection
	// go on, in order, on another worker. A plugin call in this process
	// cannot be cancelled: its thread stays in the plugin, holding its slot,
	// until the plugin returns, and its late reply is discarded. A plugin
	// with a deadline never runs on an event loop, which must stay free to
	// send the ec 7. Default Config.Deadline; 0 means none.
	Deadline time.Duration

	// CircuitFailures timeouts within CircuitWindow open the plugin's
	// circuit: for CircuitCooldown its requests are refused at once with
	// ec 8; then one request is let through, and its success closes the
	// circuit again. Defaults DefaultCircuitFailures,
	// DefaultCircuitWindow and DefaultCircuitCooldown. Requests are also
	// refused at once while every slot is stuck in a call past its deadline.
	CircuitFailures int
	CircuitWindow   time.Duration
	CircuitCooldown time.Duration
}

// Defaults of the circuit breaker.
const (
	DefaultCircuitFailures = 5
	DefaultCircuitWindow   = time.Minute
	DefaultCircuitCooldown = 30 * time.Second
)

func (p Policy) withDefaults(cfg *Config) Policy {
	if p.Concurrency == 0 {
		p.Concurrency = cfg.PluginConcurrency
	}
	if p.Deadline == 0 {
		p.Deadline = cfg.Deadline
	}
	if p.CircuitFailures == 0 {
		p.CircuitFailures = DefaultCircuitFailures
	}
	if p.CircuitWindow == 0 {
		p.CircuitWindow = DefaultCircuitWindow
	}
	if p.CircuitCooldown == 0 {
		p.CircuitCooldown = DefaultCircuitCooldown
	}
	return p
}

func (p Policy) validate(root string) error {
	switch {
	case p.Concurrency < 1 || p.Concurrency > MaxPluginConcurrency:
		return fmt.Errorf("gateway: plugin %q: concurrency %d is not between 1 and %d", root, p.Concurrency, MaxPluginConcurrency)
	case p.Queue < 0:
		return fmt.Errorf("gateway: plugin %q: queue must not be negative", root)
	case p.Deadline < 0:
		return fmt.Errorf("gateway: plugin %q: deadline must not be negative", root)
	case p.CircuitFailures < 0 || p.CircuitWindow < 0 || p.CircuitCooldown < 0:
		return fmt.Errorf("gateway: plugin %q: circuit settings must not be negative", root)
	}
	return nil
}

// breaker is a plugin's circuit: closed, it lets every request through;
// open, none until its cooldown ends; half-open, one probe at a time.
type breaker struct {
	state    atomic.Int32 // circuitClosed, circuitOpen or circuitHalfOpen
	failures int
	window   int64
	cooldown int64

	mu        sync.Mutex
	recent    []int64 // times of the failures within the window
	openUntil int64
	probing   bool
	opened    atomic.Uint64 // times the circuit opened
}

const (
	circuitClosed int32 = iota
	circuitOpen
	circuitHalfOpen
)

func newBreaker(p Policy) *breaker {
	return &breaker{failures: p.CircuitFailures, window: int64(p.CircuitWindow), cooldown: int64(p.CircuitCooldown)}
}

// allow reports whether a request may be sent to the plugin now.
func (b *breaker) allow(now int64) bool {
	if b.state.Load() == circuitClosed {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case circuitOpen:
		if now < b.openUntil {
			return false
		}
		b.state.Store(circuitHalfOpen)
		b.probing = true
		return true
	case circuitHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
	return true
}

// success records a call that returned in time: a probe's success closes
// the circuit.
func (b *breaker) success() {
	if b.state.Load() == circuitClosed {
		return
	}
	b.mu.Lock()
	if b.state.Load() == circuitHalfOpen {
		b.state.Store(circuitClosed)
		b.recent = b.recent[:0]
		b.probing = false
	}
	b.mu.Unlock()
}

// failure records a call that failed; it reports whether the circuit opened.
func (b *breaker) failure(now int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == circuitHalfOpen {
		b.open(now)
		return true
	}
	keep := b.recent[:0]
	for _, t := range b.recent {
		if now-t < b.window {
			keep = append(keep, t)
		}
	}
	b.recent = append(keep, now)
	if b.state.Load() == circuitClosed && len(b.recent) >= b.failures {
		b.open(now)
		return true
	}
	return false
}

func (b *breaker) open(now int64) {
	b.state.Store(circuitOpen)
	b.openUntil = now + b.cooldown
	b.probing = false
	b.recent = b.recent[:0]
	b.opened.Add(1)
}
