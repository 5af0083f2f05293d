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
// page turns into rates and percentiles by comparing two readings, so that
// the server keeps no history for it.
type status struct {
	// Time is when the counts were read, in Unix milliseconds.
	Time        int64          `json:"time"`
	Ready       bool           `json:"ready"`
	Why         string         `json:"why"`
	Uptime      float64        `json:"uptime_seconds"`
	Connections int            `json:"connections"`
	Plugins     []pluginStatus `json:"plugins"`
}

type pluginStatus struct {
	Name     string `json:"name"`
	Root     string `json:"root"`
	State    string `json:"state"`
	InFlight int    `json:"in_flight"`
	// Requests counts the plugin's replies, and Errors those whose ec is
	// not 0.
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	Latency  latency `json:"latency"`
}

// latency is a call duration histogram as the page reads it: Counts[i]
// calls took at most Bounds[i] seconds, and the last count is of every
// call.
type latency struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	ok, why := s.ready()
	st := status{
		Time: now.UnixMilli(), Ready: ok, Why: why, Uptime: now.Sub(s.started).Seconds(),
		Connections: s.cfg.Gateway.Stats().Open,
	}
	for _, ps := range s.cfg.Gateway.PluginStats() {
		state, _ := s.plugin(ps.Root).state()
		requests, errors := countReplies(ps.Replies)
		l := latency{Bounds: make([]float64, len(ps.Duration.Bounds)), Counts: make([]uint64, len(ps.Duration.Counts))}
		var sum uint64
		for i, c := range ps.Duration.Counts {
			sum += c
			l.Counts[i] = sum
			if i < len(l.Bounds) {
				l.Bounds[i] = ps.Duration.Bounds[i].Seconds()
			}
		}
		st.Plugins = append(st.Plugins, pluginStatus{
			Name: ps.Name, Root: ps.Root, State: state,
			InFlight: ps.InFlight, Requests: requests, Errors: errors, Latency: l,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, st)
}
