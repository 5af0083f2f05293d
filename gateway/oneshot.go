package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// One-shot calls: one request frame in, its reply out, for transports that
// are not streams of frames (an HTTP request, a JSON-RPC call). A one-shot
// is a connection of its own to the dispatch core, carried by an in-memory
// wire and served on the caller's goroutine as stream.go serves a net.Conn,
// so that routing, policies, limits and counts stay the core's alone.

// Origin says who wrote a reply.
type Origin uint8

const (
	// OriginPlugin: the plugin answered, whatever its ec.
	OriginPlugin Origin = iota
	// OriginGateway: the gateway answered itself (REPE.md §2.2 framing,
	// no plugin for the path, a refusal, a deadline, or a plugin reply it
	// found malformed).
	OriginGateway
)

// ErrRefused is Do's error when the server takes no more connections: it
// is draining, or at MaxConns or MaxConnsPerIP.
var ErrRefused = errors.New("gateway: the server is draining or at its connection limit")

// Do serves the request frame req, from a client at remote, through the
// dispatch core as a connection of its own that carries this one request,
// counted as one of transport t, and appends its reply to dst: nothing for
// a notify. Origin says whether a plugin or the gateway wrote the reply.
// req must be one whole frame; the core answers it as it would on TCP. When ctx ends first, Do returns its
// error and the call, if running, finishes unseen.
func (s *Server) Do(ctx context.Context, t Transport, remote net.Addr, req, dst []byte) ([]byte, Origin, error) {
	// The connection, its wire and the reference to it in one allocation;
	// the loop, only ever used by the goroutine that serves, is recycled.
	o := &oneshot{}
	cs, w := &o.cs, &o.w
	s.initConn(cs, remote)
	if !s.admit(cs, func() *loop { return s.oneshotLoop(t) }) {
		return dst, OriginGateway, ErrRefused
	}
	w.in, w.out, w.kick = req, dst, make(chan struct{}, 1)
	o.ref.w = w
	cs.w = w
	cs.wakeRef.Store(&o.ref)
	err := w.run(ctx, cs)
	s.closed(cs, nil)
	if cs.loop.run.l == nil {
		s.oneshotLoops.Put(cs.loop)
	}
	origin := OriginPlugin
	if cs.made.Load() > 0 {
		origin = OriginGateway
	}
	return w.out, origin, err
}

// oneshot is what a one-shot call needs of its own.
type oneshot struct {
	cs  conn
	w   oneshotWire
	ref wireRef
}

// oneshotLoop returns a loop for a one-shot call of transport t, recycled
// with the reply buffer it grew.
func (s *Server) oneshotLoop(t Transport) *loop {
	l, _ := s.oneshotLoops.Get().(*loop)
	if l == nil {
		return newLoop(s.streamTallies[t])
	}
	l.tally, l.run.tally = s.streamTallies[t], s.streamTallies[t]
	return l
}

// oneshotWire is one request frame as the core sees a connection: its
// bytes in, its reply appended to out.
type oneshotWire struct {
	in  []byte
	r   int
	out []byte

	kick   chan struct{}
	mu     sync.Mutex
	fns    []func()
	closed bool
}

// run serves the request until it is answered, the core closes the
// connection, or ctx ends.
func (w *oneshotWire) run(ctx context.Context, cs *conn) error {
	for {
		w.mu.Lock()
		fns, closed := w.fns, w.closed
		w.fns = nil
		w.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
		if closed || cs.serveOnce() == closeConn {
			return nil
		}
		if w.r == len(w.in) && cs.job == nil && !cs.parked && cs.intake == nil {
			return nil // answered: the request is consumed and nothing runs
		}
		select {
		case <-w.kick:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *oneshotWire) Peek(n int) ([]byte, error) {
	b := w.in[w.r:]
	if n > len(b) {
		return b, io.ErrShortBuffer
	}
	return b[:n], nil
}

func (w *oneshotWire) Discard(n int) (int, error) {
	n = min(n, len(w.in)-w.r)
	w.r += n
	return n, nil
}

func (w *oneshotWire) InboundBuffered() int { return len(w.in) - w.r }

func (w *oneshotWire) Read(p []byte) (int, error) {
	n := copy(p, w.in[w.r:])
	w.r += n
	return n, nil
}

// readDirect reads nothing: the whole request is in.
func (w *oneshotWire) readDirect([]byte) (int, error) { return 0, nil }

// Write keeps a copy: the core reuses its batch buffer.
func (w *oneshotWire) Write(p []byte) (int, error) {
	w.out = append(w.out, p...)
	return len(p), nil
}

// OutboundBuffered is 0: the caller takes the reply whole.
func (w *oneshotWire) OutboundBuffered() int { return 0 }

func (w *oneshotWire) wake(fn func()) {
	if fn != nil {
		w.mu.Lock()
		w.fns = append(w.fns, fn)
		w.mu.Unlock()
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *oneshotWire) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wake(nil)
	return nil
}
