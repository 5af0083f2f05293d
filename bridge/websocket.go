package bridge

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// serveWebSocket upgrades GET /repe to a WebSocket and serves REPE on it
// through the dispatch core until either side closes it.
func (b *Bridge) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// The default origin check stays: a page of another site cannot make
	// a visitor's browser call the plugins.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		b.cfg.Logger.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "error", err)
		return
	}
	c.SetReadLimit(readLimit(b.cfg.MaxMessageSize))
	// ServeConn returns when the connection closes, so the request's
	// context lives as long as the WebSocket.
	b.srv.ServeConn(frameConn{websocket.NetConn(r.Context(), c, websocket.MessageBinary)}, gateway.TransportWebSocket)
}

// readLimit is the longest message read: one frame of the largest size.
func readLimit(maxMessageSize uint64) int64 {
	return int64(min(maxMessageSize, 1<<62))
}

// frameConn is a WebSocket as a net.Conn that sends each REPE frame
// written to it as a binary message of its own, as REPE over WebSocket
// wants: the gateway's core writes a batch of whole frames at once.
// Reads go on across messages, so a peer that puts several frames in one
// message is served too.
type frameConn struct{ net.Conn }

func (c frameConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		size := len(p)
		if len(p) >= repe.HeaderSize {
			if l := repe.Message(p).Length(); l >= repe.HeaderSize && l < uint64(len(p)) {
				size = int(l)
			}
		}
		k, err := c.Conn.Write(p[:size])
		n += k
		if err != nil {
			return n, err
		}
		p = p[size:]
	}
	return n, nil
}

// DialWebSocket connects to the WebSocket at url (ws://HOST:PORT/repe) and
// returns it as a net.Conn that carries one REPE frame per message each
// way; maxMessageSize bounds the messages read (0: the REPE default). It
// suits client.Config.Dial:
//
//	cfg := &client.Config{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
//		return bridge.DialWebSocket(ctx, "ws://127.0.0.1:8080/repe", 0)
//	}}
func DialWebSocket(ctx context.Context, url string, maxMessageSize uint64) (net.Conn, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	if maxMessageSize == 0 {
		maxMessageSize = repe.DefaultMaxMessageSize
	}
	c.SetReadLimit(readLimit(maxMessageSize))
	// The connection outlives the dial's context.
	return frameConn{websocket.NetConn(context.Background(), c, websocket.MessageBinary)}, nil
}
