package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/repe-gw/repe-gw/pluginhost"
)

// Routes is what the server serves: its plugins, their policies and the
// digests of their files, and its hook plugins, as Config gives them to
// New.
type Routes struct {
	// Plugins run in this process; Isolated, in worker processes.
	Plugins  []*pluginhost.Plugin
	Isolated []IsolatedPlugin
	// Hooks are the hook plugins, in the order they are called.
	Hooks []*pluginhost.Hooks
	// Policies and Hashes are by root, as in Config.
	Policies map[string]Policy
	Hashes   map[string]string
}

// Swap makes the server serve rt from now on, atomically: each batch of
// requests is routed wholly by the routes before the swap or wholly by
// these. It fails, and changes nothing, when rt is invalid or two of its
// plugins claim one root.
//
// A plugin of the old routes that rt keeps, with the same policy and
// digest, keeps its lane: its counts, its queue, its place on or off the
// event loop. Every other lane of the old routes is retired: calls in
// flight, queued or waiting for their client to read finish on it, and no
// new call enters it. Retired.Wait says when they are done, after which
// a plugin that rt no longer holds may be shut down; the server never
// shuts plugins down itself.
//
// The hook plugins change with the routes: a hook of rt that the server
// calls already keeps its instance; the others are called from the swap
// on, connection by connection, as each has nothing in flight (the new
// instances see it connect first, the old ones see it close). Retired.Wait
// also waits until no connection holds a hook rt dropped, and no hook call
// is in it: it may then be destroyed.
//
// Swaps are made one at a time. Lanes never change once made, so that an
// event loop reads them without locks.
func (s *Server) Swap(rt Routes) (*Retired, error) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	r, retired, err := s.build(rt, s.routes.Load())
	if err != nil {
		s.ReloadFailed()
		return nil, err
	}
	s.routes.Store(r)
	// Retired after the swap: a call that loaded the old routes and enters
	// before this either holds the lane, which Wait then waits for, or
	// sees it retired and routes again with the new ones.
	for _, l := range retired {
		l.retired.Store(true)
	}
	hooks := s.swapHooks(rt.Hooks)
	s.reloads.note(true)
	return &Retired{lanes: retired, hooks: hooks}, nil
}

// build makes the routes for rt, keeping the lanes of old (nil at New)
// whose plugin, policy and digest rt keeps, and returns the lanes of old it
// does not keep.
func (s *Server) build(rt Routes, old *router) (*router, []*lane, error) {
	all := make([]plugin, 0, len(rt.Plugins)+len(rt.Isolated))
	for _, p := range rt.Plugins {
		all = append(all, p)
	}
	for _, p := range rt.Isolated {
		all = append(all, p)
	}
	kept := make(map[plugin]*lane)
	if old != nil {
		for _, l := range old.plugins {
			kept[l.plugged()] = l
		}
	}
	lanes := make([]*lane, len(all))
	for i, p := range all {
		if err := checkReserved(p); err != nil {
			return nil, nil, err
		}
		pol := rt.Policies[p.Root()]
		if _, ok := p.(IsolatedPlugin); ok && pol.Concurrency == 0 {
			// Calls waiting for an isolated plugin cost a goroutine each,
			// and share its worker's next exchange: letting many wait
			// makes its batches larger, not its worker busier.
			pol.Concurrency = max(DefaultIsolatedConcurrency, s.cfg.PluginConcurrency)
		}
		pol = pol.withDefaults(&s.cfg)
		if err := pol.validate(p.Root()); err != nil {
			return nil, nil, err
		}
		sum := rt.Hashes[p.Root()]
		if l := kept[p]; l != nil && l.pol == pol && l.sha256 == sum {
			lanes[i] = l
			delete(kept, p)
			continue
		}
		lanes[i] = newLane(s, p, pol)
		lanes[i].sha256 = sum
		s.useLoops(lanes[i])
	}
	r, err := newRouter(lanes, s.own)
	if err != nil {
		return nil, nil, err
	}
	var retired []*lane
	if old != nil {
		for _, l := range old.plugins {
			if kept[l.plugged()] == l {
				retired = append(retired, l)
			}
		}
	}
	return r, retired, nil
}

// plugged returns the plugin the lane serves, whichever way it runs.
func (l *lane) plugged() plugin { return l.caller.plugged() }

// Retired is the lanes a Swap stopped routing to, and the hook plugins it
// stopped calling.
type Retired struct {
	lanes []*lane
	hooks []*hookPlug
}

// drainPoll is how often Wait looks at the retired lanes: a drain waits
// for calls, which take what they take, so a poll costs the request path
// nothing and the waiter little.
const drainPoll = 5 * time.Millisecond

// Wait returns once no call is in, queued for, or parked on any plugin
// the swap stopped routing to, and no connection holds a hook plugin it
// stopped calling, or when ctx is done first; its error then names the
// plugins still busy.
func (r *Retired) Wait(ctx context.Context) error {
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		var busy []string
		for _, l := range r.lanes {
			if !l.drained() {
				busy = append(busy, fmt.Sprintf("%s (%s)", l.name, l.file))
			}
		}
		for _, p := range r.hooks {
			if n := p.holds.Load(); n > 0 {
				busy = append(busy, fmt.Sprintf("hook %s (%s) held by %d connections", p.Name(), p.File(), n))
			}
		}
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: retired plugins still busy: %s: %w", strings.Join(busy, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

// ReloadStats counts the reloads of a server's plugins.
type ReloadStats struct {
	// OK counts the reloads that swapped the routes (Swap), Failed those
	// that changed nothing because a step failed.
	OK, Failed uint64
	// Last is when the last reload, of either kind, ended; zero before
	// the first. LastFailed says it failed.
	Last       time.Time
	LastFailed bool
}

// reloadCounts are the atomics behind ReloadStats.
type reloadCounts struct {
	ok, failed atomic.Uint64
	// last is the unix time in ns of the last reload, negated when it
	// failed, so that a scrape reads both at once.
	last atomic.Int64
}

func (c *reloadCounts) note(ok bool) {
	now := time.Now().UnixNano()
	if ok {
		c.ok.Add(1)
	} else {
		c.failed.Add(1)
		now = -now
	}
	c.last.Store(now)
}

// ReloadFailed counts a reload that failed before it reached Swap: a file
// that did not load, a configuration that did not parse. Swap counts the
// reloads that reach it.
func (s *Server) ReloadFailed() { s.reloads.note(false) }

// Reloads returns the server's reload counts so far.
func (s *Server) Reloads() ReloadStats {
	st := ReloadStats{OK: s.reloads.ok.Load(), Failed: s.reloads.failed.Load()}
	if last := s.reloads.last.Load(); last != 0 {
		st.LastFailed = last < 0
		st.Last = time.Unix(0, max(last, -last))
	}
	return st
}
