// Package gateway serves REPE plugins over TCP with gnet, and over any
// net.Listener.
//
// Every request goes one way: bytes in the transport's buffer → a
// repe.Message view of them → the plugin whose root owns the query → the
// plugin's reply, appended to a per-batch buffer that is written with one
// write per batch.
//
// # Transports and the core
//
// One dispatch core (conn.go) holds framing, routing, ordering, read-ahead,
// the limits and the plugins' policies; transports only move bytes through
// a small interface (wire.go). gnet's event loops serve the connections
// of the gateway's own TCP listener (listen.go, gnet.go), which closes as
// the drain begins; Serve and ServeConn serve any net.Listener or
// net.Conn, a tls.Listener say, on a goroutine per connection (stream.go).
// Both answer the same bytes with the same bytes.
//
// # Framing
//
// Frames are parsed where gnet buffered them, without copying while they stay
// on the event loop: one Peek per read, one Split per frame, one Discard per
// batch. A length field over MaxMessageSize is refused before any of its
// body is buffered. A large frame still arriving is looked at by its header
// alone and, once its query names a plugin, read from the socket straight
// into the buffer that carries it to a worker.
// Partial frames, frames split at any byte and many frames in one read all
// work. Frames the gateway cannot accept are answered as Glaze's validator
// answers them (REPE.md §2.2); where the stream can no longer be framed (bad
// magic or version, length below the header size or over the limit) the
// connection is closed after that reply, and where the length field still
// frames it (length mismatch or overflow) the connection stays usable.
//
// # Routing
//
// A root owns its own path and every path below it on a segment boundary;
// the longest root wins and "" is the catch-all. No owner: ec 6 with body
// "No plugin registered for path", as the Glaze host example answers. Notify
// requests never get a reply, except for frames whose header is broken,
// which Glaze answers too because their notify byte cannot be trusted.
//
// # Reloads
//
// Swap replaces the routes whole while the server runs: each batch loads
// them once, so it is routed wholly by the old routes or wholly by the new,
// without a lock. Lanes never change once made; a swap keeps the lanes of
// the plugins it keeps and retires the others. A call enters a lane only by
// taking one of its slots or a job's hold on it, and only while it is not
// retired, so calls in flight finish on the old version and a retired lane
// with no slot and no hold has seen its last call (Retired.Wait): then its
// plugin may be shut down. Counts live in the lanes, a slot per event loop
// (tally.go), so a swap moves none.
//
// # Where calls run
//
// Each connection's requests run one after another and are answered in
// order, as in Glaze's server. Calls to a plugin that has proven fast run on
// the event loop that read them (no hand-off at all); calls to a plugin that
// is slow, or not yet proven, are copied out of gnet's buffer and run on
// worker goroutines while the event loop serves other connections. See lane
// for the policy. Every call, wherever it runs, holds one of the plugin's
// PluginConcurrency slots, so the limit holds on every path.
//
// # Hook plugins
//
// Config.Hooks are C hook plugins (plugins/include/repe_gateway.h), called
// by the core on connect, for each validated request before it is
// dispatched, after each reply and on close (hooks.go). A rejected request
// is answered ec 3 with the plugin's reason and never dispatched. Without
// hooks the request path pays one nil check per frame.
//
// # Memory per connection
//
// What a connection may make the gateway hold is bounded whatever it sends
// or fails to read. Its input, while its requests cannot be served, is one
// frame and MaxPendingInput bytes: past that, behind a running call, the
// call is answered, the first request dropped gets ec 9 and the connection
// closes. Its unread replies are MaxPendingOutput (and one batch): past
// that none of its requests are served until it reads, and a connection
// that stays so for WriteTimeout, or sends past its input bound meanwhile,
// is closed as a slow consumer (backpressure.go). On the stream transport a
// write blocks until the client takes it, at most WriteTimeout, and the
// reader stops reading meanwhile, so its unread replies are what the socket
// holds.
//
// # Limits, timeouts and shutdown
//
// MaxConns and MaxConnsPerIP bound connections; ReadTimeout closes a
// connection stalled inside a frame and IdleTimeout (off by default) one
// with nothing in flight. A peer that ends its stream after its requests
// still gets every reply (gnet.go hands it to a stream goroutine). A panic while serving a connection
// resets that connection only. Shutdown finishes the requests already
// received, ends every connection cleanly (drain.go: a clean end promises
// that the requests left unanswered did not run; every other end is a
// reset) and stops the event loops; the caller then shuts the plugins down.
package gateway
