// Package bridge serves the gateway's plugins over HTTP: REPE frames over
// a WebSocket at GET /repe.
//
// It adds a transport, not a second gateway: every WebSocket is handed to
// gateway.Server.ServeConn, so routing, the plugins' policies, the limits
// and the counts are the dispatch core's, as for TCP and TLS.
package bridge

import (
	"log/slog"
	"net/http"

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

// Bridge is the HTTP handler of the gateway's HTTP listener.
type Bridge struct {
	srv *gateway.Server
	cfg Config
	mux *http.ServeMux
}

// New returns the handler that serves srv's plugins over HTTP.
func New(srv *gateway.Server, cfg Config) *Bridge {
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = repe.DefaultMaxMessageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{srv: srv, cfg: cfg, mux: http.NewServeMux()}
	b.mux.HandleFunc("GET /repe", b.serveWebSocket)
	return b
}

func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }
