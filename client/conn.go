package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// readBufferSize is the size of a connection's read buffer: replies up to
// this size cost one read system call or fewer.
const readBufferSize = 64 << 10

// maxKeptWriteBuffer is the largest write buffer a connection keeps between
// requests, so that one large request does not pin its memory for good.
const maxKeptWriteBuffer = 1 << 20

// conn is one TCP connection with its calls in flight.
type conn struct {
	nc      net.Conn
	log     *slog.Logger
	maxSize uint64
	dead    atomic.Bool   // set once by fail
	done    chan struct{} // closed when readLoop returns

	wmu         sync.Mutex // serialises writes
	wbuf        []byte
	hasDeadline bool // a write deadline is set on nc

	mu      sync.Mutex
	pending map[uint64]*call
	nextID  uint64
	err     error // why the connection failed; set with dead

	calls sync.Pool // of *call, recycled to avoid an allocation per call
}

// call is the state of one request waiting for its reply.
type call struct {
	done  chan struct{} // receives exactly one value per registration that is answered or failed
	reply Reply
	err   error // connection failure, when no reply came
}

func newConn(nc net.Conn, cfg *Config) *conn {
	c := &conn{
		nc:      nc,
		log:     cfg.Logger.With("remote", nc.RemoteAddr().String()),
		maxSize: cfg.MaxMessageSize,
		done:    make(chan struct{}),
		pending: make(map[uint64]*call),
	}
	c.calls.New = func() any { return &call{done: make(chan struct{}, 1)} }
	go c.readLoop()
	return c
}

// register adds a call in flight under the requested id, or the next free
// one, and returns it with its id.
func (c *conn) register(req *request) (*call, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, 0, c.err
	}
	id := req.header.ID
	if req.hasID {
		if _, busy := c.pending[id]; busy {
			return nil, 0, errIDInUse(id)
		}
	} else {
		// Skip 0 (what Glaze's clients send) and any id a WithID call holds.
		for {
			c.nextID++
			if _, busy := c.pending[c.nextID]; c.nextID != 0 && !busy {
				break
			}
		}
		id = c.nextID
	}
	cl := c.calls.Get().(*call)
	c.pending[id] = cl
	return cl, id, nil
}

func errIDInUse(id uint64) error {
	return errors.New("client: id " + strconv.FormatUint(id, 10) + " is in flight on this connection")
}

// forget removes a call whose context ended. It reports false when the
// reader has already taken the call, in which case its result is on the
// way and the caller must wait for it.
func (c *conn) forget(id uint64, cl *call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[id] != cl {
		return false
	}
	delete(c.pending, id)
	return true
}

// recycle returns a finished call, whose done channel is empty again.
func (c *conn) recycle(cl *call) {
	cl.reply = Reply{}
	cl.err = nil
	c.calls.Put(cl)
}

// nextNotifyID returns an id for a notify, which needs no registration.
func (c *conn) nextNotifyID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID++
	}
	return c.nextID
}

// write sends one whole frame and returns how many of its bytes were
// written. A write that fails before sending any byte leaves the stream in
// sync; any other failure closes the connection, because a partial frame
// cannot be taken back. A write stopped by the context's deadline returns
// context.DeadlineExceeded. On a connection that has already failed,
// nothing is written.
func (c *conn) write(ctx context.Context, h repe.Header, query string, body []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead.Load() {
		// The reader saw the server close: what is written now would be
		// lost, or reset the connection.
		c.mu.Lock()
		defer c.mu.Unlock()
		return 0, c.err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetWriteDeadline(dl) // an error here shows up as a failed Write
		c.hasDeadline = true
	} else if c.hasDeadline {
		_ = c.nc.SetWriteDeadline(time.Time{})
		c.hasDeadline = false
	}
	c.wbuf = repe.AppendMessage(c.wbuf[:0], h, query, body)
	n, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > maxKeptWriteBuffer {
		c.wbuf = nil
	}
	if err == nil {
		return n, nil
	}
	if errors.Is(err, net.ErrClosed) {
		// The reader failed the connection after the check above, and
		// closed it: why it failed is the error, not the close (a TLS
		// server's refusal of a client certificate comes so, say).
		c.mu.Lock()
		cause := c.err
		c.mu.Unlock()
		if cause != nil {
			return n, cause
		}
	}
	if n > 0 {
		c.fail(err)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return n, context.DeadlineExceeded
	}
	c.fail(err)
	return n, err
}

var errServerClosed = errors.New("server closed the connection")

// errEnded is a connection the server ended cleanly: at a frame boundary,
// with a FIN rather than a reset. With Config.ResendUnanswered, the
// requests on it that got no reply did not run, and are sent again.
var errEnded = errors.New("server closed the connection cleanly")

// readLoop reads replies until the connection fails, and hands each to the
// call with its id.
func (c *conn) readLoop() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	for {
		if err := c.readReply(br); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *conn) readReply(br *bufio.Reader) error {
	hdr, err := br.Peek(repe.HeaderSize)
	if err != nil {
		if len(hdr) == 0 && errors.Is(err, io.EOF) {
			return errEnded
		}
		return err
	}
	// On the header alone, Split rejects a bad magic or version and a
	// length over the limit, before anything is buffered or allocated.
	if _, err := repe.Split(hdr, c.maxSize); err != nil {
		return err
	}
	m := repe.Message(hdr)
	length, ql, bl := m.Length(), m.QueryLength(), m.BodyLength()
	if ql > length-repe.HeaderSize || bl != length-repe.HeaderSize-ql {
		return &repe.Error{Code: repe.InvalidHeader, Message: "reply length " + strconv.FormatUint(length, 10) +
			" does not match query_length " + strconv.FormatUint(ql, 10) + " + body_length " + strconv.FormatUint(bl, 10)}
	}
	id, ec, bf := m.ID(), m.EC(), m.BodyFormat()
	// hdr is not valid past this point.
	if _, err := br.Discard(repe.HeaderSize + int(ql)); err != nil {
		return err
	}
	if !c.waiting(id) {
		c.log.Debug("client: discarding a reply that matches no call", "id", id, "ec", uint32(ec))
		_, err := br.Discard(int(bl))
		return err
	}
	var body []byte
	if bl > 0 {
		body = make([]byte, bl) // the one allocation of a call: the caller owns the body
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
	}
	c.mu.Lock()
	cl := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if cl == nil {
		return nil // its context ended while the body was read
	}
	cl.reply = Reply{ID: id, EC: ec, BodyFormat: bf, Body: body}
	cl.done <- struct{}{}
	return nil
}

// waiting reports whether a call in flight has this id. The body is read
// only for such calls, so that late replies cost no allocation.
func (c *conn) waiting(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	return ok
}

// fail marks the connection dead, closes it and fails every call in flight
// with err. Only the first failure counts.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errServerClosed
	}
	c.err = err
	c.dead.Store(true)
	for id, cl := range c.pending {
		delete(c.pending, id)
		cl.err = err
		cl.done <- struct{}{}
	}
	c.mu.Unlock()
	c.log.Debug("client: connection failed", "err", err)
	_ = c.nc.Close()
}

// close fails the connection with cause and waits for its reader to stop.
func (c *conn) close(cause error) {
	c.fail(cause)
	<-c.done
}
