package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The stream transport: any net.Conn, served by a goroutine of its own
// through the same dispatch core as gnet's connections. It carries the
// listeners gnet does not speak (a tls.Listener, say) and the rest of a
// gnet connection whose peer ended its stream (gnet.go).
//
// A reader goroutine reads the connection and hands what it read to the
// serving goroutine, which frames, routes and calls as an event loop does,
// and writes the replies itself. A write blocks until the socket took it,
// at most WriteTimeout, so a client that does not read stops its own
// connection and no reply piles up; the reader stops reading while
// streamReadAhead bytes wait to be served, so the kernel pushes back on a
// client that sends faster than it is served. The core's limits (one frame
// and MaxPendingInput behind a running call) hold as on gnet.

// streamReadAhead is how much the reader of a stream connection reads ahead
// of the goroutine that serves it.
const streamReadAhead = 4 * readBufferCap

// Serve serves REPE on the connections that ln accepts, until Shutdown
// closes ln, and then returns nil; any other failure to accept is returned.
// It may be called for several listeners, with or without Start.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		return nil
	}
	defer s.untrack(ln)
	s.startHousekeeping()
	return s.accept(ln, func(nc net.Conn) { go s.ServeConn(nc, transportOf(nc)) })
}

// ServeConn serves REPE on nc until it closes, and closes it, counting it
// as a connection of transport t. It returns at once when the server
// refuses the connection (draining, or over a connection limit).
func (s *Server) ServeConn(nc net.Conn, t Transport) {
	identity, ok := s.handshake(nc)
	if !ok {
		_ = nc.Close()
		return
	}
	cs := s.newConn(nc.RemoteAddr())
	cs.tlsIdentity = identity
	loop := func() *loop { return newLoop(s.streamTallies[t]) }
	if !s.admit(cs, loop) && !s.admitDraining(cs, loop) {
		_ = nc.Close()
		return
	}
	s.serveStream(cs, nc, nil, false)
}

// handshakeTimeout bounds the TLS handshake of a connection ServeConn is
// given, so that a client that connects and says nothing holds its
// goroutine no longer.
const handshakeTimeout = 10 * time.Second

// handshake completes the TLS handshake of nc, if it is a TLS connection,
// before the connection is admitted, so that hooks see who the client is
// from on_connect on; it returns the subject of the client's certificate,
// if it gave one. At most MaxConns handshakes run at once: connections not
// yet admitted must not escape the connection limit. It reports false when
// nc is to be closed.
func (s *Server) handshake(nc net.Conn) (string, bool) {
	tc, ok := nc.(interface {
		HandshakeContext(context.Context) error
		ConnectionState() tls.ConnectionState
	})
	if !ok {
		return "", true
	}
	defer s.handshakes.Add(-1)
	if s.handshakes.Add(1) > int64(s.cfg.MaxConns) {
		s.connsLog.Do(func(suppressed int64) {
			s.log.Warn("too many TLS handshakes at once; closing new connections", "limit", s.cfg.MaxConns,
				"remote", addrString(nc.RemoteAddr()), "suppressed", suppressed)
		})
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Debug("TLS handshake failed", "remote", addrString(nc.RemoteAddr()), "error", err)
		return "", false
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.String(), true
	}
	return "", true
}

// streamWire is a net.Conn as the core sees it.
type streamWire struct {
	nc net.Conn
	cs *conn
	// in[r:] is what was read and not yet served.
	in []byte
	r  int

	// kick tells the serving goroutine that something is to be done.
	kick chan struct{}

	// mu guards what the reader and wakers hand to the serving goroutine.
	mu      sync.Mutex
	room    sync.Cond // the reader waits on it while pending is full
	pending []byte    // read and not yet moved to in
	readErr error     // why the reader stopped
	fns     []func()  // wake callbacks to run
	done    bool      // the serving goroutine has finished

	writeErr error
}

// serveStream serves cs through nc until it closes. rest is what was
// received before, and eof says that the peer has ended its stream.
func (s *Server) serveStream(cs *conn, nc net.Conn, rest []byte, eof bool) {
	w := &streamWire{nc: nc, cs: cs, in: rest, kick: make(chan struct{}, 1)}
	w.room.L = &w.mu
	// A connection handed over from gnet leaves its event loop's state.
	cs.loop = newLoop(s.streamTallies[cs.loop.tally.transport])
	cs.setWire(w)
	w.resetOnClose(true) // until it ends cleanly (drain.go)
	if eof {
		w.readErr = io.EOF
	} else {
		go w.read()
	}
	err := w.run()
	w.mu.Lock()
	w.done = true
	w.room.Broadcast()
	w.mu.Unlock()
	if w.writeErr == nil && cs.endsClean() {
		w.resetOnClose(false)
	}
	_ = nc.Close()
	s.closed(cs, err)
}

// run serves the connection until it is to be closed, and returns why.
func (w *streamWire) run() error {
	cs := w.cs
	for {
		w.mu.Lock()
		w.takePending()
		fns, readErr := w.fns, w.readErr
		w.fns = nil
		w.room.Broadcast()
		w.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
		if w.writeErr != nil {
			return w.writeErr
		}
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return readErr
		}
		if cs.serveOnce() == closeConn {
			return nil
		}
		if w.writeErr != nil {
			return w.writeErr
		}
		if readErr != nil && cs.job == nil && !cs.parked && len(w.kick) == 0 {
			// The peer ended its stream and every whole request it sent is
			// answered: what is left is the start of a frame it will never
			// finish.
			return readErr
		}
		<-w.kick
	}
}

// takePending moves what the reader read behind what is left to serve; w.mu
// is held.
func (w *streamWire) takePending() {
	if len(w.pending) == 0 {
		return
	}
	if w.r == len(w.in) {
		// Nothing left to serve: swap buffers rather than copy.
		w.in, w.pending, w.r = w.pending, w.in[:0], 0
		return
	}
	if w.r > 0 && w.r >= len(w.in)-w.r {
		// Move the rest to the front, once it is no larger than what was
		// served, so that a frame arriving slowly is not moved each time.
		w.in = w.in[:copy(w.in, w.in[w.r:])]
		w.r = 0
	}
	w.in = append(w.in, w.pending...)
	w.pending = w.pending[:0]
}

// read reads the connection and hands what it read to the serving
// goroutine, until the connection fails or ends.
func (w *streamWire) read() {
	buf := make([]byte, readBufferCap)
	for {
		n, err := w.nc.Read(buf)
		w.mu.Lock()
		w.pending = append(w.pending, buf[:n]...)
		if err != nil {
			w.readErr = err
		}
		for len(w.pending) >= streamReadAhead && !w.done {
			w.signal()
			w.room.Wait()
		}
		stop := w.done
		w.mu.Unlock()
		w.signal()
		if err != nil || stop {
			return
		}
	}
}

func (w *streamWire) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *streamWire) Peek(n int) ([]byte, error) {
	b := w.in[w.r:]
	if n > len(b) {
		return b, io.ErrShortBuffer
	}
	return b[:n], nil
}

func (w *streamWire) Discard(n int) (int, error) {
	n = min(n, len(w.in)-w.r)
	w.r += n
	if w.r == len(w.in) {
		w.in, w.r = w.in[:0], 0
		if cap(w.in) > maxKeptOut {
			w.in = nil // a rare huge frame should not pin its memory
		}
	}
	return n, nil
}

func (w *streamWire) InboundBuffered() int { return len(w.in) - w.r }

func (w *streamWire) Read(p []byte) (int, error) {
	n := copy(p, w.in[w.r:])
	_, _ = w.Discard(n)
	return n, nil
}

// readDirect reads nothing: the reader goroutine owns the connection's
// reads, and a large frame is moved into its job as it arrives.
func (w *streamWire) readDirect([]byte) (int, error) { return 0, nil }

// Write writes p whole, waiting at most WriteTimeout for the client to take
// it; a client that does not is closed as a slow consumer.
func (w *streamWire) Write(p []byte) (int, error) {
	if w.writeErr != nil {
		return 0, w.writeErr
	}
	s := w.cs.srv
	if s.cfg.WriteTimeout > 0 {
		_ = w.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
	n, err := w.nc.Write(p)
	if err != nil {
		w.writeErr = err
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.cs.setWhy(closedSlowConsumer)
			s.slowLog.Do(func(suppressed int64) {
				s.log.Warn("closing a slow consumer: it did not read its replies within the write timeout",
					"remote", w.cs.remote, "write_timeout", s.cfg.WriteTimeout, "suppressed", suppressed)
			})
		}
	}
	return n, err
}

// OutboundBuffered is 0: a write returns once the socket took it all.
func (w *streamWire) OutboundBuffered() int { return 0 }

func (w *streamWire) wake(fn func()) {
	if fn != nil {
		w.mu.Lock()
		w.fns = append(w.fns, fn)
		w.mu.Unlock()
	}
	w.signal()
}

func (w *streamWire) Close() error { return w.nc.Close() }
