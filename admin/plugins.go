package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/repe-gw/repe-gw/gateway"
)

// Plugin is what the gateway's owner knows of a plugin that the gateway
// does not: where it came from and how it runs.
type Plugin struct {
	Name, Version, Root string
	// File is the plugin's shared object; SHA256 its digest, in
	// lower-case hexadecimal.
	File, SHA256 string
	// Mode is where the plugin runs: "inprocess" or "isolated".
	Mode string
	// Loaded is when the plugin finished loading.
	Loaded time.Time
	// Required plugins must serve for the gateway to be ready.
	Required bool
	// State returns the plugin's state ("serving", "restarting", ...) and
	// whether it has failed for good. Nil for a plugin in the gateway's
	// own process, which serves as long as the gateway does.
	State func() (state string, failed bool)
	// Restarts returns how many times the plugin's worker process was
	// started again after the first; nil for a plugin in the gateway's own
	// process.
	Restarts func() uint64
}

func (p *Plugin) state() (string, bool) {
	if p.State == nil {
		return "serving", false
	}
	return p.State()
}

// pluginJSON is a plugin as /plugins shows it.
type pluginJSON struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Root     string    `json:"root"`
	File     string    `json:"file"`
	SHA256   string    `json:"sha256"`
	Loaded   time.Time `json:"loaded"`
	Mode     string    `json:"mode"`
	State    string    `json:"state"`
	Required bool      `json:"required"`

	// Requests counts the replies to the plugin's requests, Errors those
	// whose ec is not 0, and Notifies the notifies, which get none.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	Notifies uint64 `json:"notifies"`
	// Calls counts the calls into the plugin, on event loops and workers.
	Calls                uint64 `json:"calls"`
	InlineCalls          uint64 `json:"inline_calls"`
	WorkerCalls          uint64 `json:"worker_calls"`
	InFlight             int    `json:"in_flight"`
	Queued               int    `json:"queued"`
	InvalidReplies       uint64 `json:"invalid_replies"`
	Timeouts             uint64 `json:"timeouts"`
	Stuck                int    `json:"stuck"`
	Late                 uint64 `json:"late"`
	Refused              uint64 `json:"refused"`
	CircuitOpen          bool   `json:"circuit_open"`
	CircuitOpened        uint64 `json:"circuit_opened"`
	DroppedNotifyReplies uint64 `json:"dropped_notify_replies"`
}

// servePlugins answers GET /plugins: every plugin, in the gateway's order.
func (s *Server) servePlugins(w http.ResponseWriter, _ *http.Request) {
	stats := s.cfg.Gateway.PluginStats()
	out := make([]pluginJSON, 0, len(stats))
	for _, ps := range stats {
		p := s.plugin(ps.Root)
		state, _ := p.state()
		requests, errors := countReplies(ps.Replies)
		out = append(out, pluginJSON{
			Name: ps.Name, Version: p.Version, Root: ps.Root, File: p.File, SHA256: p.SHA256,
			Loaded: p.Loaded, Mode: p.Mode, State: state, Required: p.Required,

			Requests:             requests,
			Errors:               errors,
			Notifies:             ps.Notifies,
			Calls:                ps.InlineCalls + ps.WorkerCalls,
			InlineCalls:          ps.InlineCalls,
			WorkerCalls:          ps.WorkerCalls,
			InFlight:             ps.InFlight,
			Queued:               ps.Queued,
			InvalidReplies:       ps.InvalidReplies,
			Timeouts:             ps.Timeouts,
			Stuck:                ps.Stuck,
			Late:                 ps.Late,
			Refused:              ps.Refused,
			CircuitOpen:          ps.CircuitOpen,
			CircuitOpened:        ps.CircuitOpened,
			DroppedNotifyReplies: ps.DroppedNotifyReplies,
		})
	}
	writeJSON(w, out)
}

// countReplies returns how many replies there were, and how many of them
// were errors: an ec other than 0.
func countReplies(replies []gateway.ECCount) (total, errors uint64) {
	for _, r := range replies {
		total += r.Count
		if r.EC != 0 {
			errors += r.Count
		}
	}
	return total, errors
}

// plugin returns the Plugin of root, or an empty one for a plugin the
// owner did not describe.
func (s *Server) plugin(root string) *Plugin {
	plugins := *s.plugins.Load()
	for i := range plugins {
		if plugins[i].Root == root {
			return &plugins[i]
		}
	}
	return &Plugin{Root: root}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a client that went away is no error of ours
}
