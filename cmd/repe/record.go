package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/repe-gw/repe-gw/conformance/replay"
	"github.com/repe-gw/repe-gw/repe"
)

// runRecord is repe record: a proxy that forwards each connection made to
// --listen to --upstream, byte for byte, and writes every request and its
// reply into --out as a case of a recording, until SIGINT or SIGTERM.
func runRecord(opts options, stderr io.Writer) int {
	notes := "Recorded by repe record from the traffic to " + opts.upstream + ". Each case is one request " +
		"and the reply to it, listed in the order the replies came back (a notify when it was sent). " +
		"Replay them in order, against a server started afresh, with repe replay."
	w, err := replay.Create(opts.out, "repe record", notes)
	if err != nil {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return exitFailure
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, func() { ln.Close() })

	// The log serialises the lines of concurrent connections.
	p := &proxy{w: w, upstream: opts.upstream, dialTimeout: opts.timeout, log: log.New(stderr, "repe: ", 0)}
	p.log.Printf("recording: listening on %s, forwarding to %s, writing %s; stop with Ctrl-C", ln.Addr(), opts.upstream, opts.out)
	var wg sync.WaitGroup
	code := exitOK
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Print(err)
				code = exitFailure
			}
			break
		}
		wg.Go(func() { p.serve(ctx, c) })
	}
	stop()
	wg.Wait()
	if p.failed() {
		code = exitFailure
	}
	p.log.Printf("recorded %d cases into %s", w.Len(), opts.out)
	return code
}

// proxy forwards connections and records what passes.
type proxy struct {
	w           *replay.Writer
	upstream    string
	dialTimeout time.Duration
	log         *log.Logger

	mu        sync.Mutex
	writeFail bool // a case could not be written
}

func (p *proxy) failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writeFail
}

func (p *proxy) add(req, reply []byte, closed bool) {
	if err := p.w.Add(req, reply, closed); err != nil {
		p.log.Print(err)
		p.mu.Lock()
		p.writeFail = true
		p.mu.Unlock()
	}
}

// waiting holds a connection's requests that wait for their replies, in
// the order they were sent: REPE servers answer a connection's requests in
// order.
type waiting struct {
	mu   sync.Mutex
	reqs [][]byte
}

func (q *waiting) push(req []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reqs = append(q.reqs, req)
}

func (q *waiting) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.reqs) == 0 {
		return nil, false
	}
	req := q.reqs[0]
	q.reqs = q.reqs[1:]
	return req, true
}

func (q *waiting) drain() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	reqs := q.reqs
	q.reqs = nil
	return reqs
}

// serve proxies one client connection to a connection of its own to the
// upstream server.
func (p *proxy) serve(ctx context.Context, client net.Conn) {
	defer client.Close()
	from := client.RemoteAddr().String()
	up, err := net.DialTimeout("tcp", p.upstream, p.dialTimeout)
	if err != nil {
		p.log.Printf("%s: %v", from, err)
		return
	}
	defer up.Close()
	// Stopping the recorder ends every connection.
	unhook := context.AfterFunc(ctx, func() {
		client.Close()
		up.Close()
	})
	defer unhook()

	var q waiting
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.forwardRequests(from, client, up, &q)
	}()
	p.forwardReplies(ctx, from, up, client, &q)
	client.Close() // the server is done: so is the client's connection
	<-done
	if reqs := q.drain(); len(reqs) > 0 {
		p.log.Printf("%s: %d requests had no reply when the recording stopped: not recorded", from, len(reqs))
	}
}

// forwardRequests copies the client's bytes to the server. Each whole
// request is noted before the bytes that complete it are forwarded, so that
// its reply cannot arrive first: a notify is recorded at once, as no reply
// will come; any other request waits in q for its reply.
func (p *proxy) forwardRequests(from string, client, up net.Conn, q *waiting) {
	var buf []byte
	framed := true
	chunk := make([]byte, 64<<10)
	for {
		n, err := client.Read(chunk)
		if n > 0 && framed {
			buf = append(buf, chunk[:n]...)
			for {
				k, ferr := repe.Split(buf, 0)
				if k == 0 && ferr != nil {
					p.log.Printf("%s: the requests cannot be framed (%v): the rest of this connection is forwarded, not recorded", from, ferr)
					framed, buf = false, nil
					break
				}
				if k == 0 {
					break
				}
				req := slices.Clone(buf[:k])
				buf = buf[k:]
				// A frame with inconsistent lengths is answered whatever its
				// notify byte says, which cannot be trusted.
				if ferr == nil && repe.Message(req).Notify() {
					p.add(req, nil, false)
				} else {
					q.push(req)
				}
			}
		}
		if n > 0 {
			if _, werr := up.Write(chunk[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// The client has sent everything: pass its half-close on, so
			// that the server answers what it has, as the client expects.
			if tc, ok := up.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				tc.CloseWrite()
			}
			return
		}
	}
}

// forwardReplies copies the server's bytes to the client, and records each
// reply with the request it answers before the client sees it. When the
// server closes, the requests still waiting are recorded as closed on.
func (p *proxy) forwardReplies(ctx context.Context, from string, up, client net.Conn, q *waiting) {
	var buf []byte
	framed := true
	chunk := make([]byte, 64<<10)
	for {
		n, err := up.Read(chunk)
		if n > 0 && framed {
			buf = append(buf, chunk[:n]...)
			for {
				k, ferr := repe.Split(buf, 0)
				if k == 0 && ferr != nil {
					p.log.Printf("%s: the replies cannot be framed (%v): the rest of this connection is forwarded, not recorded", from, ferr)
					framed, buf = false, nil
					break
				}
				if k == 0 {
					break
				}
				reply := slices.Clone(buf[:k])
				buf = buf[k:]
				req, ok := q.pop()
				if !ok {
					p.log.Printf("%s: a reply (id %d) to no request waiting for one: not recorded", from, repe.PeekID(reply))
					continue
				}
				p.add(req, reply, false)
			}
		}
		if n > 0 {
			if _, werr := client.Write(chunk[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				for _, req := range q.drain() {
					p.add(req, nil, true)
				}
			}
			return
		}
	}
}
