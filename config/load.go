package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/repe-gw/repe-gw/gateway"
)

// Load reads the configuration file at path. When the file is not a valid
// configuration, its error is Errors, with every problem found and its
// place; an error reading the file is returned as it is.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{Position{File: path}, "larger than " + FormatSize(MaxFileSize) + ": not a configuration file"}}
	}
	return Parse(path, data)
}

// Parse reads a configuration from data, as Load reads the file at path:
// path starts every message, and relative plugin paths are resolved
// against its directory.
func Parse(path string, data []byte) (*File, error) {
	d := newDecoder(path)
	f := d.decode(data)
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return nil, d.errs
	}
	return f, nil
}

// decoder walks the syntax tree of one file into a File, collecting every
// problem instead of stopping at the first. It walks the tree itself,
// rather than unmarshalling into structs, because that is what keeps the
// place of every value for the checks that span several keys, and what
// finds all the problems in one pass.
type decoder struct {
	name    string
	errs    Errors
	aliases map[*ast.AliasNode]ast.Node // what each alias stands for
	// places holds where each key's value was written, by path
	// ("plugins[0].mode"), for the checks that span keys.
	places map[string]Position
	// budget is how many more values config mappings may hold, aliases
	// expanded.
	budget int
}

func newDecoder(path string) *decoder {
	return &decoder{
		name:    path,
		aliases: map[*ast.AliasNode]ast.Node{},
		places:  map[string]Position{},
		budget:  maxConfigNodes,
	}
}

// Bounds of config mappings, which are free-form.
const (
	// maxConfigDepth bounds their nesting, and so the recursion that
	// converts them, and catches an alias inside its own anchor.
	maxConfigDepth = 64
	// maxConfigNodes bounds their values, aliases expanded, so that a few
	// lines of aliases cannot expand into gigabytes of JSON. A file of
	// MaxFileSize holds fewer without aliases: each value takes two bytes
	// at least.
	maxConfigNodes = 1 << 20
)

// syntaxError is what the YAML parser's errors have in common.
type syntaxError interface {
	error
	GetToken() *token.Token
	GetMessage() string
}

func (d *decoder) decode(data []byte) *File {
	// Duplicate keys are left to the walk, which reports them along with
	// everything else; the parser would stop at the first.
	tree, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		e := &Error{Position{File: d.name}, err.Error()}
		if se, ok := errors.AsType[syntaxError](err); ok {
			e.Msg = se.GetMessage()
			if t := se.GetToken(); t != nil {
				e.Line, e.Column = t.Position.Line, t.Position.Column
			}
		}
		d.errs = append(d.errs, e)
		return nil
	}
	var body ast.Node
	for _, doc := range tree.Docs {
		if isEmpty(doc.Body) {
			continue
		}
		if body != nil {
			d.errorf(doc.Body, "a second YAML document: a configuration is one document")
			continue
		}
		ast.Walk(anchors{d, map[string]ast.Node{}}, doc.Body)
		body = doc.Body
	}
	f := &File{Path: d.name}
	if body != nil {
		d.mapping(body, "", d.fileFields(f))
		d.check(f)
	}
	return f
}

// isEmpty reports a document with nothing in it, or only comments.
func isEmpty(n ast.Node) bool {
	_, comments := n.(*ast.CommentGroupNode)
	return n == nil || comments
}

// anchors records, in the order of the file, what each alias stands for.
type anchors struct {
	d     *decoder
	names map[string]ast.Node
}

func (a anchors) Visit(n ast.Node) ast.Visitor {
	switch n := n.(type) {
	case nil:
		return nil
	case *ast.AnchorNode:
		a.names[n.Name.GetToken().Value] = n.Value
	case *ast.AliasNode:
		if target, ok := a.names[n.Value.GetToken().Value]; ok {
			a.d.aliases[n] = target
		}
	}
	return a
}

func (d *decoder) errorf(n ast.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{d.pos(n), fmt.Sprintf(format, args...)})
}

func (d *decoder) errorAt(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{d.places[path], fmt.Sprintf(format, args...)})
}

// pos is where n begins, as a reader would point at it: for a mapping, its
// first key rather than the first colon, which is what the parser gives.
func (d *decoder) pos(n ast.Node) Position {
	var t *token.Token
	switch n := n.(type) {
	case nil:
		return Position{File: d.name}
	case *ast.MappingNode:
		if !n.IsFlowStyle && len(n.Values) > 0 {
			return d.pos(n.Values[0])
		}
		t = n.Start
	case *ast.MappingValueNode:
		return d.pos(n.Key)
	case *ast.TagNode:
		t = n.Start
	case *ast.AnchorNode:
		t = n.Start
	case *ast.AliasNode:
		t = n.Start
	case *ast.LiteralNode:
		t = n.Start
	case *ast.SequenceNode:
		t = n.Start
	default:
		t = n.GetToken()
	}
	if t == nil {
		return Position{File: d.name}
	}
	return Position{d.name, t.Position.Line, t.Position.Column}
}

// deref returns the node n stands for, through anchors and aliases. It
// reports tags, which would give values types of their own, and aliases
// without an anchor.
func (d *decoder) deref(n ast.Node, path string) (ast.Node, bool) {
	for range maxConfigDepth {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			target, ok := d.aliases[v]
			if !ok {
				d.errorf(v, "%s: no anchor &%s before this alias", label(path), v.Value.GetToken().Value)
				return nil, false
			}
			n = target
		case *ast.TagNode:
			d.errorf(v, "%s: tags such as %s are not read: write the value plainly, quoted if it must be a string", label(path), v.Start.Value)
			return nil, false
		default:
			return n, true
		}
	}
	d.errorf(n, "%s: aliases nested too deep", label(path))
	return nil, false
}

// label names a path in messages: the top level has none.
func label(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

func isNull(n ast.Node) bool {
	_, null := n.(*ast.NullNode)
	return n == nil || null
}

// describe names what n is, for "want X, got Y".
func describe(n ast.Node) string {
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(n.Value)
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + n.GetToken().Value
	case *ast.BoolNode:
		return n.GetToken().Value
	}
	return "a " + n.Type().String()
}

// mappingValues returns the pairs of a mapping, or false if n is none.
func mappingValues(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch n := n.(type) {
	case *ast.MappingNode:
		return n.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{n}, true
	}
	return nil, false
}

// field is a key of a mapping and how to decode its value; path is the
// key's path, for messages.
type field struct {
	key    string
	decode func(n ast.Node, path string)
}

// mapping decodes the mapping n, whose path is path, key by key: a key
// not among fields, or given twice, is reported, and the others decoded.
// Nothing (a key with no value) is an empty mapping.
func (d *decoder) mapping(n ast.Node, path string, fields []field) {
	n, ok := d.deref(n, path)
	if !ok || isNull(n) {
		return
	}
	values, ok := mappingValues(n)
	if !ok {
		d.errorf(n, "%s: want a mapping of %s, got %s", label(path), keyList(fields), describe(n))
		return
	}
	first := map[string]int{}
	for _, mv := range values {
		key, ok := d.key(mv.Key, path)
		if !ok {
			continue
		}
		kp := key
		if path != "" {
			kp = path + "." + key
		}
		if line, dup := first[key]; dup {
			d.errorf(mv.Key, "%s: repeated key, first at line %d", kp, line)
			continue
		}
		first[key] = d.pos(mv.Key).Line
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		if i < 0 {
			d.errorf(mv.Key, "%s: unknown key %q: %s", label(path), key, hint(key, fields))
			continue
		}
		d.places[kp] = d.pos(mv.Value)
		fields[i].decode(mv.Value, kp)
	}
}

// key returns a mapping key as a string.
func (d *decoder) key(k ast.MapKeyNode, path string) (string, bool) {
	switch k := k.(type) {
	case *ast.StringNode:
		return k.Value, true
	case *ast.MergeKeyNode:
		d.errorf(k, "%s: merge keys (<<) are not read: write the keys out", label(path))
	default:
		d.errorf(k, "%s: the key %s is not a string: quote it", label(path), k.GetToken().Value)
	}
	return "", false
}

func keyList(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

// hint suggests the known key closest to an unknown one, or lists them all.
func hint(key string, fields []field) string {
	best, bestDist := "", 3 // farther than two edits is no typo
	for _, f := range fields {
		if dist := editDistance(key, f.key); dist < bestDist {
			best, bestDist = f.key, dist
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	return "want one of " + keyList(fields)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// count decodes a whole number in [lo, hi].
func (d *decoder) count(n ast.Node, path string, lo, hi int, note string) (int, bool) {
	n, ok := d.deref(n, path)
	if !ok {
		return 0, false
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.errorf(n, "%s: want a whole number, got %s", path, describe(n))
		return 0, false
	}
	v := int64(math.MaxInt64)
	switch x := in.Value.(type) {
	case int64:
		v = x
	case uint64:
		if x <= math.MaxInt64 {
			v = int64(x)
		}
	}
	c, err := checkCount(v, lo, hi, note)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return 0, false
	}
	return c, true
}

// fraction decodes a number from 0 to 1.
func (d *decoder) fraction(n ast.Node, path string) (float64, bool) {
	n, ok := d.deref(n, path)
	if !ok {
		return 0, false
	}
	var v float64
	switch x := n.(type) {
	case *ast.FloatNode:
		v = x.Value
	case *ast.IntegerNode:
		switch i := x.Value.(type) {
		case int64:
			v = float64(i)
		case uint64:
			v = float64(i)
		}
	default:
		d.errorf(n, "%s: want a number from 0 to 1, got %s", path, describe(n))
		return 0, false
	}
	if v < 0 || v > 1 {
		d.errorf(n, "%s: want a number from 0 to 1, got %v", path, v)
		return 0, false
	}
	return v, true
}

// size decodes a size in [lo, hi]: a number of bytes, or a string that
// ParseSize reads.
func (d *decoder) size(n ast.Node, path string, lo, hi uint64) (uint64, bool) {
	n, ok := d.deref(n, path)
	if !ok {
		return 0, false
	}
	var v uint64
	var err error
	switch x := n.(type) {
	case *ast.IntegerNode:
		switch y := x.Value.(type) {
		case int64:
			if y < 0 {
				err = checkSize(0, max(lo, 1), hi)
			}
			v = uint64(y)
		case uint64:
			v = y
		}
	case *ast.StringNode:
		if v, err = ParseSize(x.Value); err != nil {
			err = fmt.Errorf("%w: want %s to %s", err, FormatSize(lo), FormatSize(hi))
		}
	default:
		d.errorf(n, "%s: want a size such as 64MiB, got %s", path, describe(n))
		return 0, false
	}
	if err == nil {
		err = checkSize(v, lo, hi)
	}
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return 0, false
	}
	return v, true
}

// duration decodes a Go duration such as 30s; a bare 0 is read too.
func (d *decoder) duration(n ast.Node, path string, check durationCheck) (time.Duration, bool) {
	n, ok := d.deref(n, path)
	if !ok {
		return 0, false
	}
	var v time.Duration
	var err error
	switch x := n.(type) {
	case *ast.StringNode:
		v, err = parseDuration(x.Value, check)
	case *ast.IntegerNode:
		if x.GetToken().Value != "0" {
			d.errorf(n, "%s: a duration needs a unit, such as %ss or %sms", path, x.GetToken().Value, x.GetToken().Value)
			return 0, false
		}
		err = check(0)
	default:
		d.errorf(n, "%s: want a duration such as 30s or 500ms, got %s", path, describe(n))
		return 0, false
	}
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return 0, false
	}
	return v, true
}

// textAs decodes a string and parses it with parse.
func textAs[T any](d *decoder, n ast.Node, path string, parse func(string) (T, error)) (T, bool) {
	var zero T
	n, ok := d.deref(n, path)
	if !ok {
		return zero, false
	}
	var s string
	switch x := n.(type) {
	case *ast.StringNode:
		s = x.Value
	case *ast.LiteralNode:
		s = x.Value.Value
	default:
		d.errorf(n, "%s: want a string, got %s", path, describe(n))
		return zero, false
	}
	v, err := parse(s)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return zero, false
	}
	return v, true
}

// boolean decodes true or false.
func (d *decoder) boolean(n ast.Node, path string) (bool, bool) {
	n, ok := d.deref(n, path)
	if !ok {
		return false, false
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		d.errorf(n, "%s: want true or false, got %s", path, describe(n))
		return false, false
	}
	return b.Value, true
}

// set stores v in *dst when ok.
func set[T any](dst **T, v T, ok bool) {
	if ok {
		*dst = &v
	}
}

func (d *decoder) fileFields(f *File) []field {
	s := f.sections()
	return []field{
		{"listen", func(n ast.Node, path string) { d.mapping(n, path, d.settingFields("listen", s)) }},
		{"limits", func(n ast.Node, path string) { d.mapping(n, path, d.settingFields("limits", s)) }},
		{"log", func(n ast.Node, path string) { d.mapping(n, path, d.settingFields("log", s)) }},
		{"admin", func(n ast.Node, path string) { d.mapping(n, path, d.settingFields("admin", s)) }},
		{"security", func(n ast.Node, path string) { d.mapping(n, path, d.settingFields("security", s)) }},
		{"state", func(n ast.Node, path string) { d.mapping(n, path, d.settingFields("state", s)) }},
		{"defaults", func(n ast.Node, path string) { d.mapping(n, path, d.policyFields(&f.Defaults)) }},
		{"plugins", func(n ast.Node, path string) { d.plugins(n, path, f) }},
	}
}

// settingFields returns the fields of the section of settings named.
func (d *decoder) settingFields(section string, s sections) []field {
	var fields []field
	for _, st := range settings {
		if key, ok := strings.CutPrefix(st.key, section+"."); ok {
			fields = append(fields, field{key, func(n ast.Node, path string) { st.node(d, n, path, s) }})
		}
	}
	return fields
}

func (d *decoder) policyFields(p *Policy) []field {
	return []field{
		{"mode", func(n ast.Node, path string) {
			v, ok := textAs(d, n, path, parseMode)
			set(&p.Mode, v, ok)
		}},
		{"deadline", func(n ast.Node, path string) {
			// 0 is none, as for --deadline: a plugin's entry may undo
			// defaults.deadline with it.
			v, ok := d.duration(n, path, atLeastZero("none"))
			set(&p.Deadline, v, ok)
		}},
		{"concurrency", func(n ast.Node, path string) {
			v, ok := d.count(n, path, 1, gateway.MaxPluginConcurrency, "")
			set(&p.Concurrency, v, ok)
		}},
		{"queue", func(n ast.Node, path string) {
			v, ok := d.count(n, path, 0, MaxCount, " (no limit)")
			set(&p.Queue, v, ok)
		}},
		{"restart", func(n ast.Node, path string) { d.mapping(n, path, d.restartFields(&p.Restart)) }},
	}
}

func (d *decoder) restartFields(r *Restart) []field {
	return []field{
		{"backoff_min", func(n ast.Node, path string) {
			v, ok := d.duration(n, path, positive)
			set(&r.BackoffMin, v, ok)
		}},
		{"backoff_max", func(n ast.Node, path string) {
			v, ok := d.duration(n, path, positive)
			set(&r.BackoffMax, v, ok)
		}},
		{"max_failures", func(n ast.Node, path string) {
			v, ok := d.count(n, path, 1, MaxCount, "")
			set(&r.MaxFailures, v, ok)
		}},
		{"failure_window", func(n ast.Node, path string) {
			v, ok := d.duration(n, path, positive)
			set(&r.FailureWindow, v, ok)
		}},
	}
}

func (d *decoder) pluginFields(p *Plugin) []field {
	fields := []field{
		{"path", func(n ast.Node, path string) {
			if v, ok := textAs(d, n, path, checkedPath); ok {
				p.Path = d.resolve(v)
			}
		}},
		{"enabled", func(n ast.Node, path string) {
			if v, ok := d.boolean(n, path); ok {
				p.Enabled = v
			}
		}},
		{"required", func(n ast.Node, path string) {
			if v, ok := d.boolean(n, path); ok {
				p.Required = v
			}
		}},
	}
	fields = append(fields, d.policyFields(&p.Policy)...)
	return append(fields,
		field{"memory_limit", func(n ast.Node, path string) {
			v, ok := d.size(n, path, MinMemoryLimit, MaxMemoryLimit)
			set(&p.MemoryLimit, v, ok)
		}},
		field{"sha256", func(n ast.Node, path string) {
			// A digest of digits only reads as a number; its text is
			// what counts.
			if v, ok := d.deref(n, path); ok {
				if _, num := v.(*ast.IntegerNode); num {
					n = &ast.StringNode{Token: v.GetToken(), Value: v.GetToken().Value}
				}
			}
			if v, ok := textAs(d, n, path, parseSHA256); ok {
				p.SHA256 = v
			}
		}},
		field{"config", func(n ast.Node, path string) { p.Config = d.config(n, path) }},
	)
}

func checkedPath(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty: want a plugin file or a directory of plugins")
	}
	return s, nil
}

// resolve makes a relative plugin path relative to the file's directory.
func (d *decoder) resolve(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(filepath.Dir(d.name), path)
}

// plugins decodes the list of plugin entries. An entry is a mapping, or
// just a path: a plugin with every default.
func (d *decoder) plugins(n ast.Node, path string, f *File) {
	n, ok := d.deref(n, path)
	if !ok || isNull(n) {
		return
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorf(n, "%s: want a list of plugin entries, got %s", path, describe(n))
		return
	}
	for i, item := range seq.Values {
		ip := fmt.Sprintf("%s[%d]", path, i)
		p := Plugin{Pos: d.pos(item), Enabled: true}
		item, ok := d.deref(item, ip)
		if !ok {
			continue
		}
		switch item.(type) {
		case *ast.StringNode, *ast.LiteralNode:
			d.places[ip+".path"] = d.pos(item)
			if v, ok := textAs(d, item, ip+".path", checkedPath); ok {
				p.Path = d.resolve(v)
			}
		case *ast.MappingNode, *ast.MappingValueNode:
			d.mapping(item, ip, d.pluginFields(&p))
			if _, ok := d.places[ip+".path"]; !ok {
				d.errorf(item, "%s: no path: want the plugin file or directory", ip)
			}
		default:
			d.errorf(item, "%s: want a plugin entry (a path, or a mapping with path:), got %s", ip, describe(item))
			continue
		}
		f.Plugins = append(f.Plugins, p)
	}
}

// check reports what no single key shows: keys that contradict each other,
// or two entries for one path.
func (d *decoder) check(f *File) {
	if r := f.Defaults.Restart; r.BackoffMin != nil || r.BackoffMax != nil {
		d.checkBackoff("defaults", r, pick(r.BackoffMin, nil, DefaultBackoffMin), pick(r.BackoffMax, nil, DefaultBackoffMax))
	}
	first := map[string]int{}
	for i := range f.Plugins {
		p := &f.Plugins[i]
		ip := fmt.Sprintf("plugins[%d]", i)
		if p.Required && !p.Enabled {
			d.errorAt(ip+".required", "%s: a required plugin cannot be disabled: drop required: true or enabled: false", ip)
		}
		eff := f.Effective(p)
		if p.MemoryLimit != nil && eff.Mode != ModeIsolated {
			d.errorAt(ip+".memory_limit", "%s.memory_limit: only an isolated plugin has a memory limit of its own: add mode: isolated", ip)
		}
		if r := p.Restart; r.BackoffMin != nil || r.BackoffMax != nil {
			d.checkBackoff(ip, r, eff.BackoffMin, eff.BackoffMax)
		}
		if p.Path == "" {
			continue
		}
		if j, dup := first[p.Path]; dup {
			d.errorAt(ip+".path", "%s.path: %s is also plugins[%d], at line %d: one entry per file or directory", ip, p.Path, j, f.Plugins[j].Pos.Line)
			continue
		}
		first[p.Path] = i
	}
}

// checkBackoff reports a restart whose first wait is longer than its
// longest, at the key of the two that path sets.
func (d *decoder) checkBackoff(path string, r Restart, lo, hi time.Duration) {
	if lo <= hi {
		return
	}
	at := path + ".restart.backoff_min"
	if r.BackoffMin == nil {
		at = path + ".restart.backoff_max"
	}
	d.errorAt(at, "%s.restart: backoff_min %v is longer than backoff_max %v", path, lo, hi)
}
