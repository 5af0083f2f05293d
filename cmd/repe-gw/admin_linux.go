//go:build linux

package main

import "github.com/repe-gw/repe-gw/isolate"

// isolatedState reads an isolated plugin's state for the admin listener:
// its worker may be restarting, or have failed for good.
func isolatedState(p *isolatedPlugin) func() (string, bool) {
	return func() (string, bool) {
		s := p.State()
		return s.String(), s == isolate.StateFailed
	}
}

// isolatedRestarts reads how many times an isolated plugin's worker was
// started again, for the admin listener's metrics.
func isolatedRestarts(p *isolatedPlugin) func() uint64 {
	return func() uint64 { return p.Stats().Restarts }
}
