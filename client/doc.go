// Package client calls REPE servers (repe-gw, Glaze's asio_server, any
// server that speaks REPE v1 over TCP) from Go.
//
//	c, err := client.Dial(ctx, "127.0.0.1:5099", nil)
//	...
//	defer c.Close()
//	reply, err := c.Call(ctx, "/calculator/set_value", []byte("2.5"))
//	if errors.Is(err, repe.MethodNotFound) { ... }
//
// # Connections and ids
//
// A Client holds a small pool of TCP connections (Config.Conns) and spreads
// calls over them in turn. Each connection carries any number of calls at
// once: the client gives every request an id unique on its connection
// (counting up from 1, never 0), and a reader matches each reply to its call
// by the id the server echoes, so it works with servers that answer in order
// (repe-gw, Glaze, REPE.md §4.2) and with servers that do not. A Client is
// safe for concurrent use by many goroutines.
//
// Glaze's own client sends id 0 on every request and pairs replies with
// requests by their order on a socket it holds exclusively (REPE.md §4.4).
// This client does not rely on order, so a server must echo the request id,
// as the REPE specification requires and Glaze's servers do. A reply whose
// id matches no call in flight (a late reply to a call that timed out, or a
// stray frame) is read and discarded.
//
// Calls made one after another may travel on different connections, and a
// server sees requests in order only within one connection. Set Conns to 1
// when order matters, for example a notify followed by a read of its
// effect.
//
// # Deadlines and failures
//
// The context of a call bounds it. When the context ends before the reply
// arrives, Call returns an *Error with code repe.Timeout (7) that also wraps
// the context's error, and the connection stays open: the request has been
// sent whole, so the stream is still in sync, and the late reply is
// discarded by id when it arrives. On a server that answers in order, later
// calls on that connection wait behind the slow one; the pool's other
// connections do not. The one exception is a write cut short by the
// deadline: a partly written frame would desynchronise the stream, so that
// connection is closed.
//
// When a connection fails (the server closes it, a read or write fails, a
// reply is malformed or larger than Config.MaxMessageSize), every call in
// flight on it fails with code repe.ConnectionFailure (9), and the next call
// that picks its slot in the pool dials again. A call whose request had
// not been written when its connection was found closed is sent again on a
// new connection, as the README's "How connections end" says: the server
// cannot have seen it. A request written and left unanswered may have run
// (a server that crashed), so its call fails, unless it was made with
// Idempotent, which sends it again too, or the server ended the connection
// cleanly and Config.ResendUnanswered says that it then ran no request it
// left unanswered, as repe-gw promises. A call tries five connections, and
// up to fifteen more that end cleanly.
//
// A reply with a non-zero ec is returned as an *Error with Remote set,
// carrying the code and the server's message, alongside the Reply itself.
// errors.Is(err, repe.MethodNotFound), and errors.As with a *repe.Error
// target, work on every error this package returns from a call.
//
// # Allocation
//
// In steady state a call allocates only its reply body: request frames are
// encoded into a buffer owned by the connection, replies are read through a
// buffer owned by the connection, and per-call state is recycled.
package client
