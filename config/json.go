package config

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/goccy/go-yaml/ast"
)

// config converts a plugin's config mapping to the JSON handed to the
// plugin. It writes the JSON itself, rather than decoding into a map and
// marshalling that, to keep the keys in the order written, and so that a
// value JSON cannot hold (.inf, a key that is not a string) is an error at
// its line instead of a surprise in the plugin. Nil when there is no
// mapping, or it has errors.
func (d *decoder) config(n ast.Node, path string) json.RawMessage {
	n, ok := d.deref(n, path)
	if !ok || isNull(n) {
		return nil
	}
	if _, ok := mappingValues(n); !ok {
		d.errorf(n, "%s: want a mapping, handed to the plugin as a JSON object, got %s", path, describe(n))
		return nil
	}
	b, ok := d.appendJSON(nil, n, path, 0)
	if !ok {
		return nil
	}
	return b
}

// appendJSON appends the JSON form of n to b; it reports every value that
// has none, and returns false if there was one.
func (d *decoder) appendJSON(b []byte, n ast.Node, path string, depth int) ([]byte, bool) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errorf(n, "%s: too many values in config mappings, aliases expanded", path)
		}
		return b, false
	}
	if depth > maxConfigDepth {
		d.errorf(n, "%s: nested more than %d deep (an alias inside its own anchor?)", path, maxConfigDepth)
		return b, false
	}
	n, ok := d.deref(n, path)
	if !ok {
		return b, false
	}
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return append(b, "null"...), true
	case *ast.BoolNode:
		return strconv.AppendBool(b, n.Value), true
	case *ast.IntegerNode:
		switch v := n.Value.(type) {
		case int64:
			return strconv.AppendInt(b, v, 10), true
		case uint64:
			return strconv.AppendUint(b, v, 10), true
		}
	case *ast.FloatNode:
		num, err := json.Marshal(n.Value)
		if err == nil {
			return append(b, num...), true
		}
	case *ast.StringNode:
		return appendString(b, n.Value), true
	case *ast.LiteralNode:
		return appendString(b, n.Value.Value), true
	case *ast.SequenceNode:
		b = append(b, '[')
		for i, v := range n.Values {
			if i > 0 {
				b = append(b, ',')
			}
			var vok bool
			b, vok = d.appendJSON(b, v, path+"["+strconv.Itoa(i)+"]", depth+1)
			ok = ok && vok
		}
		return append(b, ']'), ok
	case *ast.MappingNode, *ast.MappingValueNode:
		values, _ := mappingValues(n)
		first := map[string]int{}
		b = append(b, '{')
		for i, mv := range values {
			key, kok := d.key(mv.Key, path)
			if !kok {
				ok = false
				continue
			}
			kp := path + "." + key
			if line, dup := first[key]; dup {
				d.errorf(mv.Key, "%s: repeated key, first at line %d", kp, line)
				ok = false
				continue
			}
			first[key] = d.pos(mv.Key).Line
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, key)
			b = append(b, ':')
			var vok bool
			b, vok = d.appendJSON(b, mv.Value, kp, depth+1)
			ok = ok && vok
		}
		return append(b, '}'), ok
	}
	d.errorf(n, "%s: %s has no JSON form", path, describe(n))
	return b, false
}

// appendString appends s as a JSON string, leaving <, > and & as they are:
// this JSON goes to a plugin, not into a web page.
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
