// Package lograte keeps a misbehaving peer or plugin from flooding the log:
// a Limiter lets one log call through per interval and counts the rest.
package lograte

import (
	"sync/atomic"
	"time"
)

// Interval is the least time between two log calls a Limiter lets through.
const Interval = 10 * time.Second

// Limiter runs a logging function at most once per Interval and counts the
// calls it skipped. Its zero value is ready, and it is safe for concurrent
// use.
type Limiter struct {
	next       atomic.Int64
	suppressed atomic.Int64
}

// Do calls log with the number of calls skipped since the last one it let
// through, unless one went through less than Interval ago.
func (r *Limiter) Do(log func(suppressed int64)) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(Interval)) {
		r.suppressed.Add(1)
		return
	}
	log(r.suppressed.Swap(0))
}
