package gateway

// A wire is one client connection as the dispatch core sees it: bytes
// received and not yet consumed, a way to write replies, and a way to be
// served again from another goroutine. The core (conn.go) holds the framing,
// routing, ordering, read-ahead, limits and policies; a transport only moves
// bytes. Two transports drive it: gnet's event loops (gnet.go) and any
// net.Conn on a goroutine of its own (stream.go), which serves TLS and
// other std listeners, and the rest of a gnet connection whose peer ended
// its stream.
//
// The core calls every method but wake on the goroutine that serves the
// connection, and never two at once.
type wire interface {
	// Peek returns the first n bytes received and not yet discarded,
	// valid until the next Discard or Read.
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	InboundBuffered() int
	// Read moves buffered bytes into p.
	Read(p []byte) (int, error)
	// readDirect reads more of the stream into p past the buffer, without
	// waiting: 0 and no error when nothing more has arrived, or when the
	// transport cannot read around its buffer.
	readDirect(p []byte) (int, error)

	// Write queues or writes p whole. OutboundBuffered is what was written
	// and not yet taken by the socket.
	Write(p []byte) (int, error)
	OutboundBuffered() int

	// wake asks the transport to run fn, when it is not nil, and then to
	// serve the connection again, on the goroutine that serves it. It may
	// be called from any goroutine, also after the connection closed.
	wake(fn func())
	// Close closes the connection; it may be called from any goroutine.
	Close() error

	// closeWrite half-closes the connection once its replies are out
	// (errUnflushed: not yet); resetOnClose sets whether closing it resets
	// it (drain.go).
	closeWrite() error
	resetOnClose(on bool)
}

// wireRef is the wire a connection is served through now. It changes once
// at most, when a gnet connection whose peer ended its stream is handed to
// a stream goroutine, so workers read it atomically to wake the right one.
type wireRef struct{ w wire }

// wake asks the transport that serves cs now to serve it again.
func (cs *conn) wake(fn func()) { cs.wakeRef.Load().w.wake(fn) }

// close closes cs from any goroutine.
func (cs *conn) close() { _ = cs.wakeRef.Load().w.Close() }

// setWire makes w the wire that cs is served through.
func (cs *conn) setWire(w wire) {
	cs.w = w
	cs.wakeRef.Store(&wireRef{w: w})
}

// action is what the core asks of the transport after serving.
type action int

const (
	keepOpen action = iota
	closeConn
	// halfClose: the connection is draining and has answered all it will
	// (drain.go).
	halfClose
)
