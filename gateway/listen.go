package gateway

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The gateway's own TCP listener is Go's, not gnet's. gnet's engine cannot
// close its listener without stopping its event loops, and a draining
// gateway must stop accepting at once, so that with SO_REUSEPORT the new
// gateway on the same port gets every new connection and, alone on its
// port, new clients are refused rather than accepted only to be ended. So
// an accept loop runs on a goroutine of its own and enrolls each
// connection in gnet's event loops, which serve it as they served the
// connections they accepted themselves.

// listen opens the gateway's TCP listener. SO_REUSEADDR lets a restarted
// gateway bind past its predecessor's TIME_WAIT connections, SO_REUSEPORT
// (ReusePort) lets a second one bind while the first runs. Keep-alive is
// set on the listener where accepted connections inherit it, which saves
// three system calls per connection, and by each accept elsewhere.
func (s *Server) listen() (net.Listener, error) {
	ka := s.cfg.KeepAlive
	lc := net.ListenConfig{
		Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			cerr := rc.Control(func(fd uintptr) {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				if err == nil && s.cfg.ReusePort {
					err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
				}
				if err == nil && ka > 0 && keepAliveInherited {
					err = setKeepAlive(int(fd), ka)
				}
			})
			return errors.Join(cerr, err)
		},
		KeepAlive: -1, // Go's accept leaves keep-alive alone
	}
	if ka > 0 && !keepAliveInherited {
		// As gnet's SetKeepAlivePeriod did: probes after ka idle, ka apart.
		lc.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: ka, Interval: ka, Count: -1}
	}
	return lc.Listen(context.Background(), "tcp", s.cfg.Addr)
}

// track counts ln among the listeners Shutdown closes, or closes it and
// reports false when the server is already draining.
func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		_ = ln.Close()
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

// accept hands each connection ln accepts to serve, until Shutdown closes
// ln, and then returns nil; any other failure to accept is returned.
func (s *Server) accept(ln net.Listener, serve func(net.Conn)) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return nil
			}
			// Out of descriptors, say: wait, as net/http does, rather than
			// spin or give up on a listener that may recover.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		serve(nc)
	}
}

// isTemporary reports whether an accept error is one the listener recovers
// from: out of descriptors or memory, or a connection aborted before it
// was accepted.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// enroll hands nc to the gnet event loop with the fewest connections,
// where OnOpen admits it, and waits for that: the next connection's choice
// of loop then counts this one, so a burst of connections spreads over
// the loops rather than all going to the one that had the fewest. gnet
// serves a duplicate of nc's descriptor and closes nc, whatever the
// outcome.
func (s *Server) enroll(nc net.Conn) {
	if _, err := s.cli.Enroll(nc); err != nil {
		s.enrollLog.Do(func(suppressed int64) {
			s.log.Warn("cannot serve an accepted connection; closed it", "remote", addrString(nc.RemoteAddr()), "error", err, "suppressed", suppressed)
		})
	}
}
