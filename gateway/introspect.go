package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/repe-gw/repe-gw/gwapi"
	"github.com/repe-gw/repe-gw/repe"
)

// ReservedRoot is the gateway's own root. It answers there about itself, in
// JSON, as a plugin answers at its root, so that any REPE client, Glaze's
// included, can ask:
//
//	/_gw/plugins  name, version, root, state and sha256 of each plugin
//	/_gw/stats    the counts of Stats and PluginStats
//	/_gw/health   "serving", or "draining" once Shutdown began
//	/_gw/version  the gateway's version
//
// It is read-only and shows no file paths. No plugin may claim it, or a
// root below it.
const ReservedRoot = gwapi.Root

// introspection is the gateway's own root, served as an in-process plugin
// whose calls are cheap enough to run inline.
type introspection struct{ s *Server }

func (in introspection) Name() string    { return "" }
func (in introspection) Version() string { return in.s.cfg.Version }
func (in introspection) Root() string    { return ReservedRoot }
func (in introspection) File() string    { return "" }

// Call answers one request to the reserved root.
func (in introspection) Call(dst, req []byte) ([]byte, error) {
	m := repe.Message(req)
	if m.Notify() {
		return dst, nil
	}
	var v any
	switch q := strings.TrimPrefix(string(m.Query()), ReservedRoot); q {
	case "/plugins":
		v = in.plugins()
	case "/stats":
		v = in.stats()
	case "/health":
		status := "serving"
		if in.s.draining.Load() {
			status = "draining"
		}
		v = map[string]string{"status": status}
	case "/version":
		v = map[string]string{"version": in.s.cfg.Version}
	default:
		// As a Glaze registry answers a path it does not have.
		return repe.AppendError(dst, m.ID(), repe.MethodNotFound, "invalid_query: "+string(m.Query())), nil
	}
	body, err := json.Marshal(v)
	if err != nil {
		return repe.AppendError(dst, m.ID(), repe.ParseError, err.Error()), nil
	}
	return repe.AppendResponse(dst, m.ID(), repe.OK, repe.BodyJSON, body), nil
}

func (in introspection) plugins() []gwapi.Plugin {
	lanes := in.s.routes.Load().plugins
	out := make([]gwapi.Plugin, 0, len(lanes))
	for _, l := range lanes {
		v := gwapi.Plugin{Name: l.name, Version: l.version, Root: l.root, Mode: "inprocess", State: l.state(),
			SHA256: l.sha256}
		if _, ok := l.plugged().(IsolatedPlugin); ok {
			v.Mode = "isolated"
		}
		out = append(out, v)
	}
	return out
}

// state says how the plugin is: "serving", "circuit_open", or the state
// of an isolated plugin's worker.
func (l *lane) state() string {
	if st, ok := l.plugged().(interface{ Status() string }); ok {
		return st.Status()
	}
	if l.breaker.state.Load() != circuitClosed {
		return "circuit_open"
	}
	return "serving"
}

// byEC turns counts into a JSON object keyed by ec.
func byEC(counts []ECCount) map[string]uint64 {
	m := make(map[string]uint64, len(counts))
	for _, c := range counts {
		m[strconv.FormatUint(uint64(c.EC), 10)] = c.Count
	}
	return m
}

func (in introspection) stats() gwapi.Stats {
	st := in.s.Stats()
	var v gwapi.Stats
	v.Connections.Accepted, v.Connections.Open = st.Accepted, st.Open
	v.Connections.Closed = map[string]uint64{
		"client": st.ClientCloses, "bad_frame": st.BadFrames, "slow_consumer": st.SlowConsumers,
		"flood": st.Floods, "read_timeout": st.ReadTimeouts, "idle_timeout": st.IdleTimeouts,
		"shutdown": st.ShutdownCloses, "failed_call": st.FailedCalls, "panic": st.Panics,
		"max_conns": st.MaxConnsRefused, "max_conns_per_ip": st.PerIPRefused,
	}
	v.BytesIn, v.BytesOut, v.Replies = st.BytesIn, st.BytesOut, byEC(st.Replies)
	v.Transports = make(map[string]gwapi.TransportStats, len(st.Transports))
	for _, t := range st.Transports {
		v.Transports[t.Transport.String()] = gwapi.TransportStats{
			Accepted: t.Accepted, Open: t.Open, Closed: t.Closed, Replies: byEC(t.Replies),
			Notifies: t.Notifies, BytesIn: t.BytesIn, BytesOut: t.BytesOut,
		}
	}
	for _, p := range in.s.PluginStats() {
		v.Plugins = append(v.Plugins, gwapi.PluginStats{
			Name: p.Name, Root: p.Root, Replies: byEC(p.Replies), Notifies: p.Notifies,
			InlineCalls: p.InlineCalls, WorkerCalls: p.WorkerCalls, InFlight: p.InFlight, Queued: p.Queued,
			Timeouts: p.Timeouts, Refused: p.Refused, CircuitOpen: p.CircuitOpen,
		})
	}
	return v
}

// checkReserved refuses a plugin that claims the reserved root or a root
// below it.
func checkReserved(p plugin) error {
	if r := p.Root(); r == ReservedRoot || strings.HasPrefix(r, ReservedRoot+"/") {
		return fmt.Errorf("gateway: %s claims root %s, which the gateway reserves for itself", p.File(), r)
	}
	return nil
}
