package gateway

import (
	"slices"
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
//   - rehook: after a Swap changed the hooks, on_connect of the new
//     instances and on_close of the old ones, for each open connection.
//
// Hooks run in Config.Hooks' order, and the first rejection wins: the
// plugins after it are not asked, and those before it that let a
// connection in see it closed. With no hook plugin, the request path pays
// one nil check per frame, and one load of the server's chain per batch. With one, every request costs one call into C
// per plugin with on_request (no allocation), and one per plugin with
// on_response, plus the per-call timing that the access log also uses.
//
// While a plugin has on_request, calls that leave the event loop are
// handed to workers one frame at a time rather than in runs, and large
// frames are buffered whole rather than read straight into a job, so that
// every frame passes serve's on_request before it is dispatched.

// hookChain is one generation of the server's hook plugins: Swap replaces
// it whole. A connection pins the chain it was let in by (conn.hooks) and
// asks it about every request; between batches, with nothing of its in
// flight, it moves to the server's chain (rehook). A request in flight
// therefore keeps the chain it started with, and each instance is asked
// only about connections it let in.
type hookChain struct {
	plugs []*hookPlug
	// observes is set when some plugin has on_response: replies are then
	// timed and reported through logCall. screens is set when some plugin
	// has on_request.
	observes, screens bool
	// retired is set once a Swap replaced the chain: no connection pins
	// it from then on.
	retired atomic.Bool
}

// hookPlug is one hook plugin instance, shared by the chains that keep it.
type hookPlug struct {
	*pluginhost.Hooks
	// holds counts the connections pinned to a chain that has it: a
	// retired instance is drained, and may be destroyed, at 0.
	holds atomic.Int64
}

// hookCounts are the server's hook counts, across chains.
type hookCounts struct {
	// nextID numbers connections for repe_conn_info.conn_id.
	nextID           atomic.Uint64
	rejectedConns    atomic.Uint64
	rejectedRequests atomic.Uint64
	rejectedNotifies atomic.Uint64
}

// newHookChain returns the chain of hooks, keeping old's instance of each
// hook old has too; nil when there is none: the core tests for nil.
func newHookChain(hooks []*pluginhost.Hooks, old *hookChain) *hookChain {
	if len(hooks) == 0 {
		return nil
	}
	hc := &hookChain{plugs: make([]*hookPlug, len(hooks))}
	for i, h := range hooks {
		hc.plugs[i] = old.plug(h)
		if hc.plugs[i] == nil {
			hc.plugs[i] = &hookPlug{Hooks: h}
		}
		hc.observes = hc.observes || h.Observes()
		hc.screens = hc.screens || h.Screens()
	}
	return hc
}

// plug returns hc's instance of h, or nil.
func (hc *hookChain) plug(h *pluginhost.Hooks) *hookPlug {
	if hc == nil {
		return nil
	}
	for _, p := range hc.plugs {
		if p.Hooks == h {
			return p
		}
	}
	return nil
}

// same reports whether hc calls hooks, in that order.
func (hc *hookChain) same(hooks []*pluginhost.Hooks) bool {
	if hc == nil {
		return len(hooks) == 0
	}
	return slices.EqualFunc(hc.plugs, hooks, func(p *hookPlug, h *pluginhost.Hooks) bool { return p.Hooks == h })
}

// screening reports whether frames must pass on_request one by one before
// they are dispatched; false without hooks.
func (hc *hookChain) screening() bool { return hc != nil && hc.screens }

// pinHooks pins the server's hook chain for a connection and returns it
// (nil: none). A hold taken before the chain is retired keeps its
// instances from being drained; one taken after is given back, and the
// chain that replaced it pinned instead.
func (s *Server) pinHooks() *hookChain {
	for {
		hc := s.hooks.Load()
		if hc == nil {
			return nil
		}
		for _, p := range hc.plugs {
			p.holds.Add(1)
		}
		if !hc.retired.Load() {
			return hc
		}
		unpinHooks(hc)
	}
}

// unpinHooks lets go of a chain pinHooks returned.
func unpinHooks(hc *hookChain) {
	if hc == nil {
		return
	}
	for _, p := range hc.plugs {
		p.holds.Add(-1)
	}
}

// swapHooks makes hooks the chain that connections move to, unless it is
// the chain already, and returns the instances it no longer calls. The
// connections are woken, so that an idle one moves too.
func (s *Server) swapHooks(hooks []*pluginhost.Hooks) []*hookPlug {
	old := s.hooks.Load()
	if old.same(hooks) {
		return nil
	}
	hc := newHookChain(hooks, old)
	s.hooks.Store(hc)
	var gone []*hookPlug
	if old != nil {
		old.retired.Store(true)
		for _, p := range old.plugs {
			if hc.plug(p.Hooks) == nil {
				gone = append(gone, p)
			}
		}
	}
	// Woken outside mu, as Shutdown wakes them: a transport's wake takes
	// locks of its own. A connection admitted meanwhile pins the new chain.
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for cs := range s.conns {
		conns = append(conns, cs)
	}
	s.mu.Unlock()
	for _, cs := range conns {
		cs.wake(nil)
	}
	return gone
}

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
	return HookStats{
		RejectedConns:    s.hookCounts.rejectedConns.Load(),
		RejectedRequests: s.hookCounts.rejectedRequests.Load(),
		RejectedNotifies: s.hookCounts.rejectedNotifies.Load(),
	}
}

// hookConnect runs on_connect for cs, which admit has just counted, and
// reports whether every plugin let it in. A rejected connection is
// uncounted here, and the plugins that had let it in see it closed.
func (s *Server) hookConnect(cs *conn) bool {
	cs.hookID = s.hookCounts.nextID.Add(1)
	cs.hooks = s.pinHooks()
	if cs.hooks == nil || s.connectHooks(cs, cs.hooks.plugs, nil) {
		return true
	}
	s.mu.Lock()
	delete(s.conns, cs)
	if cs.ip != "" {
		if s.perIP[cs.ip]--; s.perIP[cs.ip] <= 0 {
			delete(s.perIP, cs.ip)
		}
	}
	s.mu.Unlock()
	return false
}

// connectHooks runs on_connect for cs on each plugin of plugs that is not
// in let, the chain that let it in already (nil at admission), and reports
// whether they all let it in. When one rejects it, it is counted, every
// plugin that had let it in sees it closed, and cs pins no chain any more.
func (s *Server) connectHooks(cs *conn, plugs []*hookPlug, let *hookChain) bool {
	for i, p := range plugs {
		if let.plug(p.Hooks) != nil || p.Connect(cs.hookID, cs.remote, cs.tlsIdentity) {
			continue
		}
		for _, before := range plugs[:i] {
			before.Close(cs.hookID, cs.remote, cs.tlsIdentity)
		}
		if let != nil {
			for _, q := range let.plugs {
				if !slices.Contains(plugs[:i], q) {
					q.Close(cs.hookID, cs.remote, cs.tlsIdentity)
				}
			}
			unpinHooks(let)
		}
		unpinHooks(cs.hooks)
		cs.hooks = nil
		s.hookCounts.rejectedConns.Add(1)
		s.log.Debug("connection rejected by a hook plugin", "remote", cs.remote, "plugin", p.Name())
		return false
	}
	return true
}

// rehook moves cs, which has nothing in flight, from the chain it pinned
// to the server's, on the goroutine that serves it: the instances the new
// chain adds see it connect, those it drops see it close. It reports
// whether the new ones let it in; if not, cs is to be closed, and no
// instance sees it close again.
func (s *Server) rehook(cs *conn) bool {
	old := cs.hooks
	if cs.hookID == 0 {
		cs.hookID = s.hookCounts.nextID.Add(1) // let in while there was no hook
	}
	cs.hooks = s.pinHooks()
	if cs.hooks != nil && !s.connectHooks(cs, cs.hooks.plugs, old) {
		return false
	}
	if old != nil {
		for _, p := range old.plugs {
			if cs.hooks.plug(p.Hooks) == nil {
				p.Close(cs.hookID, cs.remote, cs.tlsIdentity)
			}
		}
		unpinHooks(old)
	}
	return true
}

// hookClose runs on_close for cs, which its chain let in, and lets go of
// the chain unless a worker still runs requests of cs, which may call
// on_response: the job lets go of it when it ends (job.free).
func (s *Server) hookClose(cs *conn, jobRuns bool) {
	for _, p := range cs.hooks.plugs {
		p.Close(cs.hookID, cs.remote, cs.tlsIdentity)
	}
	if !jobRuns {
		unpinHooks(cs.hooks)
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
	for _, p := range cs.hooks.plugs {
		reason, rejected := p.Request(cs.hookID, frame, name)
		if !rejected {
			continue
		}
		if frame.Notify() {
			s.hookCounts.rejectedNotifies.Add(1)
		}
		s.hookCounts.rejectedRequests.Add(1)
		return cs.answerOwn(out, frame, frame.ID(), repe.InvalidQuery, reason, frame.Notify()), true
	}
	return out, false
}

// hookResponse runs on_response for frame, a request of cs answered by
// reply (empty for a notify) after ns nanoseconds in its plugin.
func hookResponse(cs *conn, frame repe.Message, ec int, ns int64, reply []byte) {
	for _, p := range cs.hooks.plugs {
		p.Response(cs.hookID, frame, uint32(max(ec, 0)), ns, len(reply))
	}
}

// timed reports whether the calls of cs are to be timed and passed to
// logCall: for the access log, the slow-call log, or a hook's on_response.
// The chain of cs changes only while nothing of cs is in flight.
func (cs *conn) timed() bool {
	return cs.srv.timeCalls || cs.hooks != nil && cs.hooks.observes
}
