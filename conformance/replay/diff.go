package replay

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/repe-gw/repe-gw/repe"
)

// Diff returns "" when got equals want byte for byte, and otherwise the
// differences for people to read, one per line: each header field that
// differs, then the query and the body as text (or hex when they are not
// text). Bytes that are no whole frame are compared as bytes.
func Diff(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	wm, werr := repe.Parse(want)
	gm, gerr := repe.Parse(got)
	if werr != nil || gerr != nil || len(wm) != len(want) || len(gm) != len(got) {
		i := 0
		for i < len(want) && i < len(got) && want[i] == got[i] {
			i++
		}
		return fmt.Sprintf("  bytes differ from offset %d: got %d bytes %x, want %d bytes %x", i, len(got), got, len(want), want)
	}
	var lines []string
	field := func(name string, g, w uint64, names func(uint64) string) {
		if g == w {
			return
		}
		if names != nil {
			lines = append(lines, fmt.Sprintf("  %s: got %d (%s), want %d (%s)", name, g, names(g), w, names(w)))
			return
		}
		lines = append(lines, fmt.Sprintf("  %s: got %d, want %d", name, g, w))
	}
	ec := func(c uint64) string { return repe.ErrorCode(c).String() }
	bf := func(f uint64) string { return repe.BodyFormat(f).String() }
	qf := func(f uint64) string { return repe.QueryFormat(f).String() }
	field("length", gm.Length(), wm.Length(), nil)
	field("notify", uint64(gm.NotifyByte()), uint64(wm.NotifyByte()), nil)
	field("reserved", uint64(gm.Reserved()), uint64(wm.Reserved()), nil)
	field("id", gm.ID(), wm.ID(), nil)
	field("query_format", uint64(gm.QueryFormat()), uint64(wm.QueryFormat()), qf)
	field("body_format", uint64(gm.BodyFormat()), uint64(wm.BodyFormat()), bf)
	field("ec", uint64(gm.EC()), uint64(wm.EC()), ec)
	if !bytes.Equal(gm.Query(), wm.Query()) {
		lines = append(lines, fmt.Sprintf("  query: got %s, want %s", show(gm.Query()), show(wm.Query())))
	}
	if !bytes.Equal(gm.Body(), wm.Body()) {
		lines = append(lines, fmt.Sprintf("  body: got %s, want %s", showBody(gm), showBody(wm)))
	}
	return strings.Join(lines, "\n")
}

// describe sums up a frame in one line.
func describe(b []byte) string {
	if len(b) < repe.HeaderSize {
		return fmt.Sprintf("%d bytes %x", len(b), b)
	}
	m := repe.Message(b)
	s := fmt.Sprintf("id %d, ec %d (%s), body_format %d", m.ID(), m.EC(), m.EC().String(), m.BodyFormat())
	if _, err := repe.Parse(b); err == nil {
		s += ", body " + showBody(m)
	}
	return s
}

// showBody shows a frame's body as show does, but a BEVE body as hex
// always: it is binary even where its bytes happen to be valid UTF-8.
func showBody(m repe.Message) string {
	if m.BodyFormat() == repe.BodyBEVE {
		return fmt.Sprintf("%x (hex)", m.Body())
	}
	return show(m.Body())
}

// show quotes b as Go text when it is UTF-8, and as hex otherwise.
func show(b []byte) string {
	if utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%x (hex)", b)
}
