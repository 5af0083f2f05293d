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
