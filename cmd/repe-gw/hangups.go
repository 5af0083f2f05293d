package main

import "sync"

// hangups hands each SIGHUP to every part of the gateway that asked for
// it (the plugins' reload, the TLS certificate's), so that one handler,
// watchSignals, owns the signal.
type hangups struct {
	mu   sync.Mutex
	subs []chan struct{}
}

// subscribe returns a channel that receives each SIGHUP from now on. It
// has room for one: SIGHUPs that come while one is being handled make one
// more, not one each.
func (h *hangups) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs = append(h.subs, ch)
	h.mu.Unlock()
	return ch
}

// notify hands a SIGHUP to every subscriber without waiting for any.
func (h *hangups) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
