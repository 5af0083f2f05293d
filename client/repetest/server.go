// Package repetest runs small REPE servers on the loopback interface for
// tests of REPE clients, in the spirit of net/http/httptest: a real TCP
// listener and real frames, with the answers written in Go by the test.
package repetest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/repe-gw/repe-gw/repe"
)

// Handler answers one request. It appends the reply frame to dst and
// returns the extended buffer; returning dst unchanged sends nothing, as
// for a notify. Returning an error closes the connection without a reply.
// req is valid only until Handler returns.
type Handler func(dst []byte, req repe.Message) ([]byte, error)

// Config chooses how a Server answers. The zero value answers each
// connection's requests one at a time, in order, as Glaze's asio_server
// and repe-gw do (REPE.md §4.2).
type Config struct {
	// Concurrent runs the handler for each request in its own goroutine and
	// writes each reply when it is ready, so that replies overtake one
	// another, as on a server that answers out of order.
	Concurrent bool
}

// Server is a REPE server listening on 127.0.0.1.
type Server struct {
	// Addr is the host:port the server listens on.
	Addr string

	h        Handler
	cfg      Config
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start starts a Server with handler h and closes it when the test ends.
func Start(tb testing.TB, h Handler, cfg Config) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("repetest: listen: %v", err)
	}
	s := &Server{Addr: ln.Addr().String(), h: h, cfg: cfg, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	tb.Cleanup(s.Close)
	return s
}

// Accepted returns the number of connections accepted so far.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

// CloseConns closes every open connection and keeps listening.
func (s *Server) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.conns {
		_ = nc.Close()
	}
}

// Close stops listening, closes every connection and waits for the
// server's goroutines to end.
func (s *Server) Close() {
	_ = s.ln.Close()
	s.CloseConns()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(nc)
	}
}

// serve answers the frames of one connection. In order, it reuses its
// buffers, so that a steady stream of calls costs the server no allocation
// and client benchmarks measure the client.
func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		_ = nc.Close()
	}()
	br := bufio.NewReaderSize(nc, 64<<10)
	var (
		wmu     sync.Mutex
		out     []byte
		pending sync.WaitGroup
	)
	defer pending.Wait()
	for {
		frame, big, err := readFrame(br)
		if err != nil {
			var re *repe.Error
			if errors.As(err, &re) {
				_, _ = nc.Write(repe.AppendError(nil, 0, re.Code, re.Message))
			}
			return
		}
		if s.cfg.Concurrent {
			req := repe.Message(append([]byte(nil), frame...))
			pending.Add(1)
			go func() {
				defer pending.Done()
				reply, err := s.h(nil, req)
				wmu.Lock()
				defer wmu.Unlock()
				if err != nil {
					_ = nc.Close()
					return
				}
				if len(reply) > 0 {
					_, _ = nc.Write(reply)
				}
			}()
		} else {
			out, err = s.h(out[:0], repe.Message(frame))
			if err != nil {
				return
			}
			if len(out) > 0 {
				if _, err := nc.Write(out); err != nil {
					return
				}
			}
		}
		if !big {
			_, _ = br.Discard(len(frame))
		}
	}
}

// readFrame returns the next whole frame: a view of br's buffer when it
// fits (big false; discard it after use), or a fresh copy.
func readFrame(br *bufio.Reader) (frame []byte, big bool, err error) {
	hdr, err := br.Peek(repe.HeaderSize)
	if err != nil {
		return nil, false, err
	}
	if _, err := repe.Split(hdr, repe.DefaultMaxMessageSize); err != nil {
		return nil, false, err
	}
	length := int(repe.Message(hdr).Length())
	if length <= br.Size() {
		frame, err = br.Peek(length)
		if err != nil {
			return nil, false, err
		}
	} else {
		frame = make([]byte, length)
		if _, err := io.ReadFull(br, frame); err != nil {
			return nil, false, err
		}
		big = true
	}
	m, err := repe.Parse(frame)
	return m, big, err
}

// Echo answers every request with its own body and body format, and sends
// nothing for a notify.
func Echo(dst []byte, req repe.Message) ([]byte, error) {
	if req.Notify() {
		return dst, nil
	}
	return repe.AppendResponse(dst, req.ID(), repe.OK, req.BodyFormat(), req.Body()), nil
}
