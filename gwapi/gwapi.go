// Package gwapi is the schema of what repe-gw answers about itself at its
// reserved root, /_gw, over REPE: the JSON bodies of /_gw/plugins and
// /_gw/stats. The gateway fills these types and clients decode them, so
// that neither imports the other.
package gwapi

// Root is the gateway's reserved root.
const Root = "/_gw"

// Plugin is one entry of /_gw/plugins.
type Plugin struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Root    string `json:"root"`
	// Mode is "inprocess" or "isolated".
	Mode string `json:"mode"`
	// State is "serving", "circuit_open", or an isolated plugin's worker
	// state.
	State  string `json:"state"`
	SHA256 string `json:"sha256,omitempty"`
}

// Stats is the body of /_gw/stats. Replies count by ec, as a JSON object
// keyed by the ec in decimal.
type Stats struct {
	Connections Connections       `json:"connections"`
	BytesIn     uint64            `json:"bytes_in"`
	BytesOut    uint64            `json:"bytes_out"`
	Replies     map[string]uint64 `json:"replies"` // the gateway's own
	Plugins     []PluginStats     `json:"plugins"`
	// Transports counts each transport's traffic, keyed by its name: tcp,
	// tls, websocket, http, jsonrpc.
	Transports map[string]TransportStats `json:"transports"`
}

// TransportStats counts one transport's connections (for http and
// jsonrpc, its calls), replies by ec, notifies and bytes.
type TransportStats struct {
	Accepted uint64            `json:"accepted"`
	Open     uint64            `json:"open"`
	Closed   uint64            `json:"closed"`
	Replies  map[string]uint64 `json:"replies"`
	Notifies uint64            `json:"notifies"`
	BytesIn  uint64            `json:"bytes_in"`
	BytesOut uint64            `json:"bytes_out"`
}

// Connections counts connections: Closed by why they closed.
type Connections struct {
	Accepted uint64            `json:"accepted"`
	Open     int               `json:"open"`
	Closed   map[string]uint64 `json:"closed"`
}

// PluginStats counts one plugin's requests.
type PluginStats struct {
	Name        string            `json:"name"`
	Root        string            `json:"root"`
	Replies     map[string]uint64 `json:"replies"`
	Notifies    uint64            `json:"notifies"`
	InlineCalls uint64            `json:"inline_calls"`
	WorkerCalls uint64            `json:"worker_calls"`
	InFlight    int               `json:"in_flight"`
	Queued      int               `json:"queued"`
	Timeouts    uint64            `json:"timeouts"`
	Refused     uint64            `json:"refused"`
	CircuitOpen bool              `json:"circuit_open"`
}
