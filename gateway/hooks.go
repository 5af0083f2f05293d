package gateway

import (
	"sync/atomic"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// Hook plugins (plugins/include/repe_gateway.h): C code that the core asks
// about every connection and request. The core calls them at four places:
//
//   - admit: on_connect, once the connection is counted; a rejection
//     closes it before anything is read.
//   - serve: on_request, for each frame that passed validation, after it
//     is routed and before it is dispatched; a rejection answers it with
//     ec 3 (invalid_query) and the plugin's reason, and it is not
//     dispatched. A rejected notify gets no reply and is counted.
//   - logCall: on_response, for every reply the core made or passed on,
//     and every notify served, with the plugin time and the reply's size.
//   - closed: on_close, for every connection on_connect let in.
//
// Hooks run in Config.Hooks' order, and the first rejection wins: the
// plugins after it are not asked, and those before it that let a
// connection in see it closed. With no hook plugin, the request path pays
// one nil check per frame. With one, every request costs one call into C
// per plugin with on_request (no allocation), and one per plugin with
// on_response, plus the per-call timing that the access log also uses.
//
// While a plugin has on_request, calls that leave the event loop are
// handed to workers one frame at a time rather than in runs, and large
// frames are buffered whole rather than read straight into a job, so that
// every frame passes serve's on_request before it is dispatched.

// hookChain is the server's hook plugins and their counts.
type hookChain struct {
	hooks []*pluginhost.Hooks
	// observes is set when some plugin has on_response: replies are then
	// timed and reported through logCall. screens is set when some plugin
	// has on_request.
	observes, screens bool
	// nextID numbers connections for repe_conn_info.conn_id.
	nextID atomic.Uint64

	rejectedConns    atomic.Uint64
	rejectedRequests atomic.Uint64
	rejectedNotifies atomic.Uint64
}

// newHookChain returns the chain of hooks, or nil when there is none: the
// core tests for nil.
func newHookChain(hooks []*pluginhost.Hooks) *hookChain {
	if len(hooks) == 0 {
		return nil
	}
	hc := &hookChain{hooks: hooks}
	for _, h := range hooks {
		hc.observes = hc.observes || h.Observes()
		hc.screens = hc.screens || h.Screens()
	}
	return hc
}

// screening reports whether frames must pass on_request one by one before
// they are dispatched; false without hooks.
func (hc *hookChain) screening() bool { return hc != nil && hc.screens }

// HookStats counts what the hook plugins refused.
type HookStats struct {
	// RejectedConns counts the connections closed by on_connect.
	RejectedConns uint64
	// RejectedRequests counts the requests on_request rejected, notifies
	// included; RejectedNotifies counts those that were notifies, which
	// got no reply.
	RejectedRequests uint64
	RejectedNotifies uint64
}

// HookStats returns the counts of the hook plugins' refusals; all zero
// without hooks.
func (s *Server) HookStats() HookStats {
	hc := s.hooks
	if hc == nil {
		return HookStats{}
	}
	return HookStats{
		RejectedConns:    hc.rejectedConns.Load(),
		RejectedRequests: hc.rejectedRequests.Load(),
		RejectedNotifies: hc.rejectedNotifies.Load(),
	}
}

// hookConnect runs on_connect for cs, which admit has just counted, and
// reports whether every plugin let it in. A rejected connection is
// uncounted here, and the plugins that had let it in see it closed.
func (s *Server) hookConnect(cs *conn) bool {
	hc := s.hooks
	cs.hookID = hc.nextID.Add(1)
	for i, h := range hc.hooks {
		if h.Connect(cs.hookID, cs.remote, cs.tlsIdentity) {
			continue
		}
		for _, before := range hc.hooks[:i] {
			before.Close(cs.hookID, cs.remote, cs.tlsIdentity)
		}
		hc.rejectedConns.Add(1)
		s.mu.Lock()
		delete(s.conns, cs)
		if cs.ip != "" {
			if s.perIP[cs.ip]--; s.perIP[cs.ip] <= 0 {
				delete(s.perIP, cs.ip)
			}
		}
		s.mu.Unlock()
		s.log.Debug("connection rejected by a hook plugin", "remote", cs.remote, "plugin", h.Name())
		return false
	}
	return true
}

// hookClose runs on_close for cs, which on_connect let in.
func (s *Server) hookClose(cs *conn) {
	for _, h := range s.hooks.hooks {
		h.Close(cs.hookID, cs.remote, cs.tlsIdentity)
	}
}

// hookRefused runs on_request for frame, which l serves (nil: no plugin),
// and reports whether a plugin rejected it; it has then been answered in
// out, and must not be dispatched.
func (cs *conn) hookRefused(out []byte, frame repe.Message, l *lane) ([]byte, bool) {
	s := cs.srv
	name := ""
	if l != nil {
		name = l.name
	}
	for _, h := range s.hooks.hooks {
		reason, rejected := h.Request(cs.hookID, frame, name)
		if !rejected {
			continue
		}
		if frame.Notify() {
			s.hooks.rejectedNotifies.Add(1)
		}
		s.hooks.rejectedRequests.Add(1)
		return cs.answerOwn(out, frame, frame.ID(), repe.InvalidQuery, reason, frame.Notify()), true
	}
	return out, false
}

// hookResponse runs on_response for frame, a request answered by reply
// (empty for a notify) after ns nanoseconds in its plugin.
func (s *Server) hookResponse(cs *conn, frame repe.Message, ec int, ns int64, reply []byte) {
	for _, h := range s.hooks.hooks {
		h.Response(cs.hookID, frame, uint32(max(ec, 0)), ns, len(reply))
	}
}
