package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// readBufferCap is gnet's read buffer: the most one read delivers.
const readBufferCap = 64 << 10

// The gnet transport: the gateway's own TCP listener (listen.go), whose
// connections gnet's event loops serve. A connection's bytes are framed
// where gnet read them, and calls to plugins that have proven fast run right
// on the loop.

// startGnet listens on the configured address and starts gnet's event
// loops, and the accept loop that hands them connections, in the
// background. The loops are a gnet.Client's: they serve connections
// enrolled from elsewhere, and have no listener of their own.
func (s *Server) startGnet() error {
	ln, err := s.listen()
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", s.cfg.Addr, err)
	}
	if !s.track(ln) {
		return errors.New("gateway: the server is shut down")
	}
	cli, err := gnet.NewClient((*handler)(s),
		gnet.WithNumEventLoop(s.cfg.EventLoops),
		// Go's accept has set TCP_NODELAY already; TCPDelay keeps gnet
		// from setting it again (it never clears it).
		gnet.WithTCPNoDelay(gnet.TCPDelay),
		gnet.WithReadBufferCap(readBufferCap),
		gnet.WithLogger(gnetLogger{s.log}),
	)
	if err == nil {
		err = cli.Start()
	}
	if err != nil {
		s.untrack(ln)
		_ = ln.Close()
		return fmt.Errorf("gateway: event loops: %w", err)
	}
	s.cli, s.addr = cli, ln.Addr()
	for _, l := range s.routes.Load().plugins {
		s.useLoops(l)
	}
	s.accepting.Go(func() {
		defer s.untrack(ln)
		if err := s.accept(ln, s.enroll); err != nil {
			_ = ln.Close()
			// Written before the loops stop, so before Done is closed.
			s.runErr = fmt.Errorf("gateway: accept on %s: %w", s.addr, err)
			s.stopLoops()
		}
	})
	return nil
}

// stopLoops stops gnet's event loops, which close the connections they
// still serve, once the accept loop has returned, and then closes Done;
// once, in the background.
func (s *Server) stopLoops() {
	s.stopOnce.Do(func() {
		go func() {
			s.accepting.Wait() // no connection is enrolled in stopped loops
			s.wakeMu.Lock()
			s.stopped = true
			s.wakeMu.Unlock()
			s.enrolling.Wait()
			if s.cli != nil {
				if err := s.cli.Stop(); err != nil && s.runErr == nil {
					s.runErr = fmt.Errorf("gateway: event loops: %w", err)
				}
			}
			close(s.done)
		}()
	})
}

// gnetWire is a gnet connection as the core sees it. gnet.Conn has the
// buffer methods already.
type gnetWire struct {
	gnet.Conn
	cs *conn
}

// readDirect reads from the socket past gnet's buffer; the connection's event
// loop calls it while no other goroutine reads the descriptor.
func (w *gnetWire) readDirect(p []byte) (int, error) {
	for {
		n, err := unix.Read(w.Fd(), p)
		switch {
		case n > 0:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		case err == nil:
			return 0, io.EOF
		}
		return 0, err
	}
}

// wake runs OnTraffic on the connection's event loop, after fn, unless the
// event loops have stopped. fn runs only if the connection is still this
// one: gnet reuses a closed connection's slot.
func (w *gnetWire) wake(fn func()) {
	var cb gnet.AsyncCallback
	if fn != nil {
		cb = func(gc gnet.Conn, _ error) error {
			if gc.Context() == w.cs {
				fn()
			}
			return nil
		}
	}
	s := w.cs.srv
	s.wakeMu.RLock()
	if !s.stopped {
		_ = w.Wake(cb)
	}
	s.wakeMu.RUnlock()
}

// handler is Server's gnet.EventHandler, kept apart so that the callbacks
// are not part of Server's API.
type handler Server

func (h *handler) OnBoot(gnet.Engine) gnet.Action { return gnet.None }

func (h *handler) OnShutdown(gnet.Engine) {}

func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := (*Server)(h)
	if pc, ok := gc.Context().(*pipeCtx); ok {
		s.mu.Lock()
		pc.loop = s.loopLocked(gc.EventLoop())
		s.mu.Unlock()
		return nil, gnet.None
	}
	cs := s.newConn(gc.RemoteAddr())
	gw := &gnetWire{Conn: gc, cs: cs}
	cs.setWire(gw)
	loop := func() *loop { return s.loopLocked(gc.EventLoop()) }
	if !s.admit(cs, loop) && !s.admitDraining(cs, loop) {
		return nil, gnet.Close
	}
	gc.SetContext(cs)
	gw.resetOnClose(true) // until it ends cleanly (drain.go)
	if cs.drain != drainNone && cs.linger() == closeConn {
		return nil, gnet.Close
	}
	return nil, gnet.None
}

func (h *handler) OnClose(gc gnet.Conn, err error) gnet.Action {
	s := (*Server)(h)
	cs, _ := gc.Context().(*conn)
	if cs == nil {
		if pc, ok := gc.Context().(*pipeCtx); ok {
			pc.closed(err)
		}
		return gnet.None
	}
	// The peer ended its stream: answer what it sent before that, unless
	// the connection had answered all it will (drain.go).
	if errors.Is(err, io.EOF) && cs.drain < drainFinDue && cs.handOver(gc) {
		return gnet.None
	}
	if gc.OutboundBuffered() > 0 {
		_ = gc.Flush()
	}
	if cs.endsClean() {
		cs.w.resetOnClose(false)
	}
	s.closed(cs, err)
	return gnet.None
}

func (h *handler) OnTraffic(gc gnet.Conn) gnet.Action {
	cs, _ := gc.Context().(*conn)
	if cs == nil {
		if pc, ok := gc.Context().(*pipeCtx); ok {
			h.servePipe(pc)
			return gnet.None
		}
		return gnet.Close
	}
	if cs.serveOnce() == closeConn {
		return gnet.Close
	}
	return gnet.None
}

func (h *handler) OnTick() (time.Duration, gnet.Action) { return 0, gnet.None }

// A client may write its requests and then shut down its side of the
// connection (shutdown(SHUT_WR), as nc -N does) before it reads the replies.
// gnet closes a connection at the end of its stream, so the requests still
// running or waiting would go unanswered. Instead, the connection is handed
// over: its socket is duplicated before gnet closes its own descriptor, and
// a stream goroutine (stream.go) goes on serving it through the same core,
// with what gnet had buffered, until it has answered every whole request.
// Only a connection whose earlier replies are still in gnet's buffer cannot
// be handed over, because those bytes cannot be taken out of it: the
// handover would write behind a gap. Such a client stopped reading before
// it stopped writing, and is closed as before.

// handOver gives cs to a stream goroutine, and reports whether it did. It
// runs in OnClose, on the event loop.
func (cs *conn) handOver(gc gnet.Conn) bool {
	s := cs.srv
	if gc.OutboundBuffered() > 0 {
		_ = gc.Flush()
	}
	if gc.OutboundBuffered() > 0 {
		s.log.Debug("peer ended its stream with replies unread; closing", "remote", cs.remote)
		return false
	}
	if cs.intake != nil {
		// A frame the peer will never finish: nothing after it can be
		// answered either.
		cs.intake.free()
		cs.intake = nil
		_, _ = gc.Discard(gc.InboundBuffered())
	}
	if cs.job == nil && (gc.InboundBuffered() == 0 || cs.overflowed) {
		return false
	}
	fd, err := unix.FcntlInt(uintptr(gc.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Warn("cannot answer a half-closed connection", "remote", cs.remote, "error", err)
		return false
	}
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	_ = f.Close() // FileConn made a descriptor of its own
	if err != nil {
		s.log.Warn("cannot answer a half-closed connection", "remote", cs.remote, "error", err)
		return false
	}
	var rest []byte
	if avail := gc.InboundBuffered(); avail > 0 && !cs.overflowed {
		b, _ := gc.Peek(avail)
		// The copy is bounded by what the connection was allowed to buffer.
		rest = append([]byte(nil), b...)
	}
	go s.serveStream(cs, nc, rest, true)
	return true
}

// gnetLogger passes gnet's own logs to slog. gnet's informational chatter is
// logged at debug level so that the gateway's log stays its own.
type gnetLogger struct{ log *slog.Logger }

func (l gnetLogger) Debugf(format string, args ...any) {
	l.log.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Infof(format string, args ...any) {
	l.log.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Warnf(format string, args ...any) {
	l.log.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Errorf(format string, args ...any) {
	l.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Fatalf(format string, args ...any) {
	l.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
