package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// router maps a query to the lane of the plugin whose root owns it. It
// never changes once built, so event loops read it without locks; a reload
// builds a new one and swaps it in whole (Server.Swap).
//
// A root owns itself and everything below it on a path-segment boundary:
// /calculator owns /calculator and /calculator/x but not /calculatorX. The
// longest matching root wins; the catch-all root "" owns whatever no other
// root does.
type router struct {
	// few holds the roots, longest first, when there are at most
	// maxLinearRoots: comparing a handful of prefixes costs less than
	// hashing the query once.
	few      []*lane
	byRoot   map[string]*lane
	depths   []int // segment counts of the roots, deepest first
	catchAll *lane

	// plugins are the plugins' lanes, in the order they were given; the
	// gateway's own root is routed but not among them.
	plugins []*lane
}

const maxLinearRoots = 8

// newRouter routes to the plugins' lanes and to own, the gateway's, or
// fails when two claim one root.
func newRouter(plugins []*lane, own *lane) (*router, error) {
	r := &router{byRoot: make(map[string]*lane, len(plugins)+1), plugins: plugins}
	for _, l := range append(plugins[:len(plugins):len(plugins)], own) {
		root := l.root
		if root == "" {
			if r.catchAll != nil {
				return nil, fmt.Errorf("gateway: %s and %s both claim the catch-all root", r.catchAll.file, l.file)
			}
			r.catchAll = l
			continue
		}
		if prev, ok := r.byRoot[root]; ok {
			return nil, fmt.Errorf("gateway: %s and %s both claim root %s", prev.file, l.file, root)
		}
		r.byRoot[root] = l
		if d := strings.Count(root, "/"); !slices.Contains(r.depths, d) {
			r.depths = append(r.depths, d)
		}
	}
	slices.Sort(r.depths)
	slices.Reverse(r.depths)
	if len(r.byRoot) <= maxLinearRoots {
		for _, l := range r.byRoot {
			r.few = append(r.few, l)
		}
		slices.SortFunc(r.few, func(a, b *lane) int { return len(b.root) - len(a.root) })
	}
	return r, nil
}

// route returns the lane that owns query, or nil. It looks up only the
// prefixes of query that end on a segment boundary at a depth some root has,
// so a gateway with one root does one map lookup per request.
func (r *router) route(query []byte) *lane {
	if r.few != nil || len(r.byRoot) == 0 {
		for _, l := range r.few {
			if owns(l.root, query) {
				return l
			}
		}
		return r.catchAll
	}
	if len(query) > 0 && query[0] == '/' {
		for _, d := range r.depths {
			if end := segmentEnd(query, d); end > 0 {
				// The string conversion in a map index does not allocate.
				if l, ok := r.byRoot[string(query[:end])]; ok {
					return l
				}
			}
		}
	}
	return r.catchAll
}

// owns reports whether root owns query: query is root, or root followed by
// a '/' and more.
func owns(root string, query []byte) bool {
	return len(query) >= len(root) && string(query[:len(root)]) == root &&
		(len(query) == len(root) || query[len(root)] == '/')
}

// segmentEnd returns the length of the prefix of query made of its first n
// segments ("/a/b" has 2), or 0 when query has fewer.
func segmentEnd(query []byte, n int) int {
	end := 0
	for range n {
		if end >= len(query) || query[end] != '/' {
			return 0
		}
		next := bytes.IndexByte(query[end+1:], '/')
		if next < 0 {
			end = len(query)
		} else {
			end += 1 + next
		}
	}
	return end
}
