package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/repe-gw/repe-gw/repe"
)

// Client calls one REPE server over a pool of TCP connections. It is safe
// for concurrent use. See the package documentation for how calls, ids,
// deadlines and failures work.
type Client struct {
	addr   string
	cfg    Config
	dialer net.Dialer
	turn   atomic.Uint64 // round-robin position in slots
	slots  []slot
	closed atomic.Bool
}

// slot is one place in the pool: a connection, or nil until one is dialled.
type slot struct {
	mu   sync.Mutex // held while dialling
	conn atomic.Pointer[conn]
}

// Reply is a server's answer to a call. Body belongs to the caller.
type Reply struct {
	ID         uint64
	EC         repe.ErrorCode
	BodyFormat repe.BodyFormat
	Body       []byte
}

// Dial connects to the REPE server at addr ("host:port") and returns a
// Client whose first connection is open, so that an unreachable server is
// reported here. cfg may be nil for the defaults. A failed connection is an
// *Error with code repe.ConnectionFailure, or repe.Timeout when ctx ended.
func Dial(ctx context.Context, addr string, cfg *Config) (*Client, error) {
	c := &Client{addr: addr, cfg: cfg.withDefaults()}
	if err := c.cfg.validate(); err != nil {
		return nil, err
	}
	c.dialer = net.Dialer{Timeout: c.cfg.DialTimeout}
	c.slots = make([]slot, c.cfg.Conns)
	if _, err := c.connAt(ctx, "", &c.slots[0]); err != nil {
		return nil, err
	}
	return c, nil
}

// Call sends a request for query with body and waits for the reply or for
// ctx to end. A reply with ec 0 returns (reply, nil). A reply with another
// ec returns the reply and an *Error with Remote set. A call that gets no
// reply returns an *Error with code repe.Timeout (ctx ended),
// repe.ConnectionFailure (the connection failed) or repe.SendError (the
// request could not be sent as asked).
//
// The request's body_format is JSON when body is not empty and raw when it
// is, unless an option says otherwise; its query_format is JSON pointer.
func (c *Client) Call(ctx context.Context, query string, body []byte, opts ...CallOption) (Reply, error) {
	req := newRequest(body, false, opts)
	if err := c.checkSize(query, body); err != nil {
		return Reply{}, err
	}
	s := c.next()
	for attempt, ended := 1, 0; ; attempt++ {
		reply, again, err := c.call(ctx, s, req, query, body)
		if !again || attempt == maxAttempts+ended {
			return reply, err
		}
		if errors.Is(err, errEnded) && ended < maxEnded {
			ended++
		}
	}
}

// maxAttempts bounds the connections one request tries when each ends
// before its reply: a server that closes every connection at once should
// fail the call, not spin it.
const maxAttempts = 5

// maxEnded is how many more connections a request may try when they end
// cleanly: a draining server whose listener still takes connections ends
// each at once, and with SO_REUSEPORT a new connection may land on it
// again. repe-gw closes its listener as its drain begins, so only those
// it accepted just before end so; other servers may go on accepting.
const maxEnded = 15

// call makes one attempt at Call on the next connection of the pool. It
// reports again when the request may be sent again on a new connection:
// the connection had ended before any byte of it was written, so that the
// server cannot have seen it; the server ended it cleanly before the reply,
// so that the request did not run (Config.ResendUnanswered); or the call
// is Idempotent and its connection ended before the reply.
//
// Every attempt uses slot s, whose connection a failed attempt leaves
// dead: the next one dials anew rather than trying the pool's other
// connections, which a server that drains is closing too.
func (c *Client) call(ctx context.Context, s *slot, req request, query string, body []byte) (reply Reply, again bool, err error) {
	cn, err := c.pick(ctx, query, s)
	if err != nil {
		return Reply{}, false, err
	}
	cl, id, err := cn.register(&req)
	if err != nil {
		if cn.dead.Load() {
			return Reply{}, true, localError(query, repe.ConnectionFailure, err)
		}
		return Reply{}, false, localError(query, repe.SendError, err)
	}
	req.header.ID = id
	if n, err := cn.write(ctx, req.header, query, body); err != nil {
		if !cn.forget(id, cl) {
			<-cl.done // the connection failed and answered the call
		}
		cn.recycle(cl)
		if errors.Is(err, context.DeadlineExceeded) {
			return Reply{}, false, contextError(query, ctx)
		}
		return Reply{}, n == 0 || req.idempotent || c.unrun(err), localError(query, repe.ConnectionFailure, err)
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		if cn.forget(id, cl) {
			cn.recycle(cl)
			return Reply{}, false, contextError(query, ctx)
		}
		<-cl.done // answered as the context ended: take the answer
	}
	reply, cerr := cl.reply, cl.err
	cn.recycle(cl)
	if cerr != nil {
		return Reply{}, req.idempotent || c.unrun(cerr), localError(query, repe.ConnectionFailure, cerr)
	}
	if reply.EC != repe.OK {
		return reply, false, remoteError(query, reply)
	}
	return reply, false, nil
}

// unrun reports whether err, which ended a call's connection before its
// reply, proves that the request did not run.
func (c *Client) unrun(err error) bool {
	return c.cfg.ResendUnanswered && errors.Is(err, errEnded)
}

// Notify sends a request with the notify flag set, for which the server
// sends no reply, and returns once the request is written. Options work as
// for Call.
func (c *Client) Notify(ctx context.Context, query string, body []byte, opts ...CallOption) error {
	req := newRequest(body, true, opts)
	if err := c.checkSize(query, body); err != nil {
		return err
	}
	s := c.next()
	for attempt := 1; ; attempt++ {
		cn, err := c.pick(ctx, query, s)
		if err != nil {
			return err
		}
		if !req.hasID {
			req.header.ID = cn.nextNotifyID()
		}
		n, err := cn.write(ctx, req.header, query, body)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			return contextError(query, ctx)
		case n > 0 || attempt == maxAttempts:
			return localError(query, repe.ConnectionFailure, err)
		}
		// Nothing was written: send it on a new connection.
	}
}

// Close closes every connection. Calls in flight fail with
// repe.ConnectionFailure wrapping ErrClosed, and so do later calls. Close
// waits for the connections' readers to stop; it always returns nil.
func (c *Client) Close() error {
	c.closed.Store(true)
	for i := range c.slots {
		s := &c.slots[i]
		s.mu.Lock()
		if cn := s.conn.Load(); cn != nil {
			cn.close(ErrClosed)
		}
		s.mu.Unlock()
	}
	return nil
}

// checkSize refuses a request larger than MaxMessageSize, which the server
// would refuse by closing the connection.
func (c *Client) checkSize(query string, body []byte) error {
	if n := uint64(repe.HeaderSize) + uint64(len(query)) + uint64(len(body)); n > c.cfg.MaxMessageSize {
		return localError(query, repe.SendError, errors.New("request of "+strconv.FormatUint(n, 10)+
			" bytes exceeds the maximum message size of "+strconv.FormatUint(c.cfg.MaxMessageSize, 10)))
	}
	return nil
}

// next returns the next slot in turn.
func (c *Client) next() *slot {
	return &c.slots[c.turn.Add(1)%uint64(len(c.slots))]
}

// pick returns the live connection of slot s, dialling it when it has none
// or its connection failed.
func (c *Client) pick(ctx context.Context, query string, s *slot) (*conn, error) {
	if cn := s.conn.Load(); cn != nil && !cn.dead.Load() {
		return cn, nil
	}
	return c.connAt(ctx, query, s)
}

// dial opens one connection as the Config asks: its Dial, TLS or TCP.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	switch {
	case c.cfg.Dial != nil:
		if c.cfg.DialTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.cfg.DialTimeout)
			defer cancel()
		}
		return c.cfg.Dial(ctx, c.addr)
	case c.cfg.TLS != nil:
		// The handshake happens here, so that a refused certificate is
		// the dial's error rather than the first call's.
		d := tls.Dialer{NetDialer: &c.dialer, Config: c.cfg.TLS}
		return d.DialContext(ctx, "tcp", c.addr)
	}
	return c.dialer.DialContext(ctx, "tcp", c.addr)
}

func (c *Client) connAt(ctx context.Context, query string, s *slot) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed.Load() {
		return nil, localError(query, repe.ConnectionFailure, ErrClosed)
	}
	if cn := s.conn.Load(); cn != nil && !cn.dead.Load() {
		return cn, nil // another call dialled it meanwhile
	}
	nc, err := c.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, contextError(query, ctx)
		}
		return nil, localError(query, repe.ConnectionFailure, err)
	}
	if old := s.conn.Load(); old != nil {
		<-old.done // its reader has stopped; let it go
	}
	cn := newConn(nc, &c.cfg)
	s.conn.Store(cn)
	return cn, nil
}
