// Package bridge serves the gateway's plugins over HTTP: REPE frames over
// a WebSocket at GET /repe, JSON-RPC 2.0 at POST /jsonrpc, and every other
// path as Glaze's REST mapping of a registry (rest.go).
//
// It adds transports, not a second gateway: every WebSocket is handed to
// gateway.Server.ServeConn, and every HTTP or JSON-RPC call is one request
// through gateway.Server.Do, so routing, the plugins' policies, the
// limits and the counts are the dispatch core's, as for TCP and TLS. The
// core says which errors it made itself, which is how a plugin's parse
// error (400) is told from a reply of the plugin's it found malformed
// (502).
package bridge

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// Config configures a Bridge. Its zero value takes every default.
type Config struct {
	// MaxMessageSize is the longest REPE frame, as the gateway's
	// MaxMessageSize: the longest WebSocket message read. Default
	// repe.DefaultMaxMessageSize.
	MaxMessageSize uint64
	// Logger receives what goes wrong at the HTTP level. Default:
	// discard.
	Logger *slog.Logger
}

// The paths the bridge serves itself.
const (
	pathWebSocket = "/repe"
	pathJSONRPC   = "/jsonrpc"
)

// Reserved reports whether a plugin at root would claim a path the bridge
// serves itself (/repe, /jsonrpc, or below them): over HTTP it could not
// be reached there, so it is refused while the bridge serves.
func Reserved(root string) bool {
	for _, p := range []string{pathWebSocket, pathJSONRPC} {
		if root == p || strings.HasPrefix(root, p+"/") {
			return true
		}
	}
	return false
}

// Bridge is the HTTP handler of the gateway's HTTP listener.
type Bridge struct {
	srv *gateway.Server
	cfg Config
	// frames recycles the buffers of REST calls: request, then reply.
	frames sync.Pool
}

// New returns the handler that serves srv's plugins over HTTP.
func New(srv *gateway.Server, cfg Config) *Bridge {
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = repe.DefaultMaxMessageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Bridge{srv: srv, cfg: cfg, frames: sync.Pool{New: func() any { return new([]byte) }}}
}

// ServeHTTP routes by path alone, without a ServeMux: two fixed paths, and
// every other one is a query, which the core routes.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case pathWebSocket:
		if r.Method != http.MethodGet {
			only(w, http.MethodGet)
			return
		}
		b.serveWebSocket(w, r)
	case pathJSONRPC:
		if r.Method != http.MethodPost {
			only(w, http.MethodPost)
			return
		}
		b.serveJSONRPC(w, r)
	default:
		b.serveREST(w, r)
	}
}

// only answers 405 for a path that takes method alone.
func only(w http.ResponseWriter, method string) {
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, repe.InvalidHeader, "want "+method)
}
