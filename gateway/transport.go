package gateway

import "net"

// Transport names what carried a connection to the dispatch core, so that
// each listener's traffic is counted apart (Stats.Transports).
type Transport uint8

const (
	// TransportTCP: REPE frames over a plain byte stream, the gnet
	// listener's connections (those handed to a goroutine when their peer
	// half-closed included) and Serve's plain listeners.
	TransportTCP Transport = iota
	// TransportTLS: REPE frames over TLS.
	TransportTLS
	// TransportWebSocket: REPE frames over a WebSocket.
	TransportWebSocket
	// TransportHTTP: one REST call (GET, PUT, POST) per connection to the
	// core, through Do.
	TransportHTTP
	// TransportJSONRPC: one JSON-RPC call per connection to the core, a
	// batch's calls each on their own, through Do.
	TransportJSONRPC
	numTransports
)

var transportNames = [numTransports]string{"tcp", "tls", "websocket", "http", "jsonrpc"}

// String is the transport's name in metrics and /_gw/stats.
func (t Transport) String() string {
	if t < numTransports {
		return transportNames[t]
	}
	return "unknown"
}

// TransportStats counts one transport's traffic, since the server was
// created. For TransportHTTP and TransportJSONRPC a connection is one call:
// the HTTP connections themselves are net/http's.
type TransportStats struct {
	Transport Transport
	// Accepted counts the connections admitted, Closed those closed since;
	// Open is how many are open now.
	Accepted, Closed uint64
	Open             uint64
	// Replies counts the replies by ec, whoever made them; Notifies, the
	// notifies, which get none.
	Replies  []ECCount
	Notifies uint64
	// BytesIn and BytesOut count the REPE frames read and written.
	BytesIn, BytesOut uint64
}

// Requests returns how many requests the transport carried: every reply
// and every notify.
func (ts TransportStats) Requests() uint64 {
	n := ts.Notifies
	for _, r := range ts.Replies {
		n += r.Count
	}
	return n
}

// transportStats sums the tallies of every transport; closed counts, by
// transport, the connections closed.
func (s *Server) transportStats(closed *[numTransports]uint64) []TransportStats {
	var byEC [numTransports][ecSlots]uint64
	out := make([]TransportStats, numTransports)
	for t := range out {
		ts := &out[t]
		ts.Transport = Transport(t)
		// Closed first: a connection admitted between the loads makes
		// Open larger, never negative.
		ts.Closed = closed[t]
		ts.Accepted = s.stats.accepted[t].Load()
		ts.Open = ts.Accepted - min(ts.Closed, ts.Accepted)
	}
	for _, t := range s.tallies() {
		ts := &out[t.transport]
		ts.BytesIn += t.bytesIn.Load()
		ts.BytesOut += t.bytesOut.Load()
		ts.Notifies += t.notifies.Load()
		for ec := range t.replies {
			byEC[t.transport][ec] += t.replies[ec].Load()
		}
	}
	for t := range out {
		for ec, n := range byEC[t] {
			if n > 0 {
				out[t].Replies = append(out[t].Replies, ECCount{EC: uint32(ec), Count: n})
			}
		}
	}
	return out
}

// transportOf is the transport of a connection Serve accepted: TLS when it
// makes a TLS handshake.
func transportOf(nc net.Conn) Transport {
	if _, ok := nc.(interface{ Handshake() error }); ok {
		return TransportTLS
	}
	return TransportTCP
}
