package admin

import (
	_ "embed"
	"net/http"
	"time"
)

// statusPage is the live status page: one file of HTML, CSS and
// JavaScript, embedded so that the binary needs nothing beside it and the
// page loads nothing from elsewhere.
//
//go:embed status.html
var statusPage []byte

func serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page's script is its own, inline; nothing else may run or load.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
	_, _ = w.Write(statusPage)
}

// status is what /status.json answers: counters as they stand, which the
// page turns into rates by comparing two readings, so that the server
// keeps no history for it. The page shows requests per second, p50 and
// p99 and the connection count from three more fields, once the gateway
// counts what they need: "connections" here, and for each plugin
// "requests" (a count) and "latency" ({"bounds": seconds, "counts":
// cumulative, one per bound and a last for all}); until then it shows a
// dash, and charts calls in flight instead of requests.
type status struct {
	// Time is when the counts were read, in Unix milliseconds.
	Time    int64          `json:"time"`
	Ready   bool           `json:"ready"`
	Why     string         `json:"why"`
	Uptime  float64        `json:"uptime_seconds"`
	Plugins []pluginStatus `json:"plugins"`
}

type pluginStatus struct {
	Name     string `json:"name"`
	Root     string `json:"root"`
	State    string `json:"state"`
	InFlight int    `json:"in_flight"`
	// Errors counts the calls the gateway answered with an error for the
	// plugin: timeouts and refusals.
	Errors uint64 `json:"errors"`
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	ok, why := s.ready()
	st := status{Time: now.UnixMilli(), Ready: ok, Why: why, Uptime: now.Sub(s.started).Seconds()}
	for _, ps := range s.cfg.Gateway.PluginStats() {
		state, _ := s.plugin(ps.Root).state()
		st.Plugins = append(st.Plugins, pluginStatus{
			Name: ps.Name, Root: ps.Root, State: state,
			InFlight: ps.InFlight,
			Errors:   ps.Timeouts + ps.Refused,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, st)
}
