package pluginhost

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// TestCalculatorMatchesGlaze replays the frames recorded from Glaze's own
// calculator plugin, in their order (the value carries over), against the
// example C calculator: every reply must be the recorded one, byte for byte.
func TestCalculatorMatchesGlaze(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/glaze/manifest.json")
	require.NoError(t, err)
	var manifest struct {
		Cases []struct {
			Name              string `json:"name"`
			Description       string `json:"description"`
			RequestFile       string `json:"request_file"`
			ResponseFile      string `json:"response_file"`
			ProbeRequestFile  string `json:"probe_request_file"`
			ProbeResponseFile string `json:"probe_response_file"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &manifest))
	require.NotEmpty(t, manifest.Cases)

	p, err := Open(fresh(t, calculatorSO))
	require.NoError(t, err)
	exchange := func(reqFile, resFile string) {
		t.Helper()
		req := readFrame(t, reqFile)
		want := []byte{}
		if !strings.HasSuffix(resFile, ".nores") {
			want = readFrame(t, resFile)
		}
		got, err := p.Call([]byte{}, req)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "%s", reqFile)
	}
	for _, c := range manifest.Cases {
		// Not subtests: each case depends on the ones before it.
		exchange(c.RequestFile, c.ResponseFile)
		if c.ProbeRequestFile != "" {
			exchange(c.ProbeRequestFile, c.ProbeResponseFile)
		}
	}
}

func readFrame(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/glaze", name))
	require.NoError(t, err)
	return b
}

// calculator is a fresh copy of the example calculator and its state.
type calculator struct {
	t *testing.T
	p *Plugin
}

func newCalculator(t *testing.T) *calculator {
	p, err := Open(fresh(t, calculatorSO))
	require.NoError(t, err)
	return &calculator{t: t, p: p}
}

// call sends a request and decodes the reply.
func (c *calculator) call(query, body string) (ec repe.ErrorCode, bf repe.BodyFormat, reply string) {
	c.t.Helper()
	out, err := c.p.Call(nil, request(42, query, body))
	require.NoError(c.t, err)
	m, err := repe.Parse(out)
	require.NoError(c.t, err)
	require.Equal(c.t, uint64(42), m.ID())
	require.Zero(c.t, m.QueryLength(), "Glaze never echoes the query")
	return m.EC(), m.BodyFormat(), string(m.Body())
}

// ok sends a request that must succeed and returns the JSON body.
func (c *calculator) ok(query, body string) string {
	c.t.Helper()
	ec, bf, reply := c.call(query, body)
	require.Equal(c.t, repe.OK, ec, "%s %q: %s", query, body, reply)
	require.Equal(c.t, repe.BodyJSON, bf)
	return reply
}

func TestCalculatorEndpoints(t *testing.T) {
	t.Parallel()
	c := newCalculator(t)
	assert.Equal(t, "0", c.ok("/calculator/value", ""))
	assert.Equal(t, "null", c.ok("/calculator/set_value", "2.5"))
	assert.Equal(t, "3.5", c.ok("/calculator/increment", "ignored"))
	assert.Equal(t, "3.5", c.ok("/calculator/get_value", "ignored"))
	assert.Equal(t, `{"value":3.5}`, c.ok("/calculator", ""))
	assert.Equal(t, "null", c.ok("/calculator", ` { "value" : -1 , "value":-2 } `))
	assert.Equal(t, "-2", c.ok("/calculator/value", ""))
	assert.Equal(t, "null", c.ok("/calculator", `{}`), "missing keys are fine")
	assert.Equal(t, "-2", c.ok("/calculator/value", ""))
	assert.Equal(t, "null", c.ok("/calculator/value", "\t7 trailing bytes are ignored"))
	assert.Equal(t, "7", c.ok("/calculator/get_value", ""))
	assert.Equal(t, "null", c.ok("/calculator/value", "1e"), "an e without digits ends the number before it")
	assert.Equal(t, "1", c.ok("/calculator/value", ""))
	assert.Equal(t, "null", c.ok("/calculator/set_value", ""), "an empty body calls set_value(0)")
	assert.Equal(t, "0", c.ok("/calculator/value", ""))
	assert.Equal(t, "null", c.ok("/calculator/set_value", "-0"))
	assert.Equal(t, "-0", c.ok("/calculator/value", ""))

	// A notify does the work and gets no bytes.
	out, err := c.p.Call(nil, notifyRequest(5, "/calculator/set_value", "9"))
	require.NoError(t, err)
	assert.Empty(t, out)
	out, err = c.p.Call(nil, notifyRequest(5, "/calculator/increment", ""))
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, "10", c.ok("/calculator/value", ""))
	assert.Zero(t, c.p.DroppedNotifyReplies(), "the calculator sends nothing for a notify")
}

func TestCalculatorErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, body string
		ec                repe.ErrorCode
		text              string
		value             string // /calculator/value afterwards
	}{
		{name: "unknown path", query: "/calculator/nope", ec: repe.MethodNotFound,
			text: "invalid_query: /calculator/nope", value: "5"},
		{name: "prefix of a path", query: "/calculator/val", ec: repe.MethodNotFound,
			text: "invalid_query: /calculator/val", value: "5"},
		{name: "whitespace only", query: "/calculator/set_value", body: " \n", ec: repe.NoReadInput,
			text: "index 2: no_read_input", value: "5"},
		{name: "a string for a number", query: "/calculator/set_value", body: `"abc"`, ec: repe.ParseNumberFailure,
			text: "1:1: parse_number_failure\n   \"abc\"\n   ^", value: "5"},
		{name: "leading zero", query: "/calculator/value", body: "01", ec: repe.ParseNumberFailure,
			text: "1:1: parse_number_failure\n   01\n   ^", value: "5"},
		{name: "plus sign", query: "/calculator/value", body: "+1", ec: repe.ParseNumberFailure, value: "5"},
		{name: "no fraction digits", query: "/calculator/value", body: "1.", ec: repe.ParseNumberFailure, value: "5"},
		{name: "no integer digits", query: "/calculator/value", body: ".5", ec: repe.ParseNumberFailure, value: "5"},
		{name: "lone minus", query: "/calculator/value", body: "-", ec: repe.ParseNumberFailure, value: "5"},
		{name: "NaN", query: "/calculator/value", body: "NaN", ec: repe.ParseNumberFailure, value: "5"},
		{name: "error on the second line", query: "/calculator/set_value", body: "\n  x", ec: repe.ParseNumberFailure,
			text: "2:3: parse_number_failure\n     x\n     ^", value: "5"},
		// Out of range: an error, but Glaze has already stored the number
		// it parsed into the data member (not into set_value's parameter).
		{name: "overflow into the member", query: "/calculator/value", body: "1e400", ec: repe.ParseNumberFailure, value: "null"},
		{name: "underflow into the member", query: "/calculator/value", body: "-1e-400", ec: repe.ParseNumberFailure, value: "-0"},
		{name: "overflow into a parameter", query: "/calculator/set_value", body: "1e400", ec: repe.ParseNumberFailure, value: "5"},
		{name: "not an object", query: "/calculator", body: "[1]", ec: repe.ExpectedBrace,
			text: "1:1: expected_brace\n   [1]\n   ^", value: "5"},
		{name: "unknown key", query: "/calculator", body: `{"value":1,"z":2}`, ec: repe.UnknownKey,
			text: "1:13: unknown_key\n   {\"value\":1,\"z\":2}\n               ^", value: "1"},
		{name: "function key", query: "/calculator", body: `{"increment":1}`, ec: 27, value: "5"},
		{name: "no colon", query: "/calculator", body: `{"value" 1}`, ec: repe.ExpectedColon, value: "5"},
		{name: "no comma", query: "/calculator", body: `{"value":2 "value":3}`, ec: repe.ExpectedComma, value: "2"},
		{name: "trailing comma", query: "/calculator", body: `{"value":2,}`, ec: repe.ExpectedQuote, value: "2"},
		{name: "unquoted key", query: "/calculator", body: `{value:2}`, ec: repe.ExpectedQuote, value: "5"},
		{name: "cut short", query: "/calculator", body: `{"value":`, ec: repe.UnexpectedEnd,
			text: "index 9: unexpected_end", value: "5"},
		{name: "cut short after a member", query: "/calculator", body: `{"value":3 `, ec: repe.UnexpectedEnd,
			text: "index 11: unexpected_end", value: "3"},
		{name: "number for the object", query: "/calculator", body: `5`, ec: repe.ExpectedBrace, value: "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCalculator(t)
			c.ok("/calculator/value", "5")
			ec, bf, text := c.call(tt.query, tt.body)
			assert.Equal(t, tt.ec, ec)
			assert.Equal(t, repe.BodyUTF8, bf)
			if tt.text != "" {
				assert.Equal(t, tt.text, text)
			}
			assert.Equal(t, tt.value, c.ok("/calculator/value", ""))

			// As a notify, the same request gets no bytes at all.
			out, err := c.p.Call(nil, notifyRequest(1, tt.query, tt.body))
			require.NoError(t, err)
			assert.Empty(t, out)
		})
	}
}

func TestCalculatorErrorContext(t *testing.T) {
	t.Parallel()
	c := newCalculator(t)
	// Glaze shows at most 64 bytes of the line, cut around the error.
	long := strings.Repeat("a", 100)
	_, _, text := c.call("/calculator/value", long)
	assert.Equal(t, "1:1: parse_number_failure\n   "+long[:64]+"\n   ^", text)

	// The key starts at column 63: the first 31 bytes are cut, and when the
	// rest is still longer than 64, the end too.
	_, _, text = c.call("/calculator", `{"value":1,`+strings.Repeat(" ", 50)+`"bad":1}`)
	assert.Equal(t, "1:63: unknown_key\n..."+strings.Repeat(" ", 30)+`"bad":1}`+"\n"+strings.Repeat(" ", 34)+"^", text)

	_, _, text = c.call("/calculator", `{"value":1,`+strings.Repeat(" ", 50)+`"bad":1`+strings.Repeat(" ", 60)+"}")
	assert.Equal(t, "1:63: unknown_key\n..."+strings.Repeat(" ", 30)+`"bad":1`+strings.Repeat(" ", 27)+"...\n"+
		strings.Repeat(" ", 34)+"^", text)

	_, _, text = c.call("/calculator/value", "\tx")
	assert.Equal(t, "1:2: parse_number_failure\n    x\n    ^", text, "tabs show as spaces")
}

func TestCalculatorRequestErrorCode(t *testing.T) {
	t.Parallel()
	c := newCalculator(t)
	req := repe.AppendMessage(nil, repe.Header{ID: 23, EC: repe.ParseError}, "/calculator/set_value", []byte("3"))
	out, err := c.p.Call(nil, req)
	require.NoError(t, err)
	assert.Equal(t, repe.AppendResponse(nil, 23, repe.ParseError, repe.BodyUTF8, nil), out, "echoed, not executed")
	assert.Equal(t, "0", c.ok("/calculator/value", ""))

	req = repe.AppendMessage(nil, repe.Header{ID: 23, EC: repe.ParseError}, "/nope", nil)
	out, err = c.p.Call(nil, req)
	require.NoError(t, err)
	assert.Equal(t, repe.AppendError(nil, 23, repe.MethodNotFound, "invalid_query: /nope"), out, "the path is checked first")
}

// TestCalculatorValidatesFrames feeds the raw bytes a plugin can be handed;
// the calculator must answer as Glaze's validator does (REPE.md §2.2), even
// for a notify, whose flag a broken header cannot vouch for.
func TestCalculatorValidatesFrames(t *testing.T) {
	t.Parallel()
	c := newCalculator(t)
	valid := request(77, "/calculator/value", "")
	with := func(edit func(b []byte) []byte) []byte { return edit(append([]byte(nil), valid...)) }
	tests := []struct {
		name string
		req  []byte
		want []byte
	}{
		{"24 junk bytes", []byte("not a valid REPE message"),
			repe.AppendError(nil, 0, repe.InvalidHeader, "Invalid header")},
		{"empty", nil, repe.AppendError(nil, 0, repe.InvalidHeader, "Invalid header")},
		{"bad magic", with(func(b []byte) []byte { b[8], b[9] = 0x34, 0x12; return b }),
			repe.AppendError(nil, 77, repe.InvalidHeader, "REPE magic number mismatch: expected 0x1507, got 0x1234")},
		{"bad magic, notify", with(func(b []byte) []byte { b[8], b[11] = 0, 1; return b }),
			repe.AppendError(nil, 77, repe.InvalidHeader, "REPE magic number mismatch: expected 0x1507, got 0x1500")},
		{"version 2", with(func(b []byte) []byte { b[10] = 2; return b }),
			repe.AppendError(nil, 77, repe.VersionMismatch, "REPE version mismatch: expected 1, got 2")},
		{"lengths overflow", with(func(b []byte) []byte {
			putU64(b[24:], 1<<63)
			putU64(b[32:], 1<<63+52)
			putU64(b[0:], 100)
			return b
		}), repe.AppendError(nil, 77, repe.InvalidHeader,
			"REPE length overflow: query_length 9223372036854775808 + body_length 9223372036854775860 exceed uint64_t")},
		{"length mismatch", with(func(b []byte) []byte { putU64(b, uint64(len(b)+4)); return append(b, 0, 0, 0, 0) }),
			repe.AppendError(nil, 77, repe.InvalidHeader, "REPE length mismatch: expected 65, got 69")},
		{"truncated", with(func(b []byte) []byte { putU64(b[32:], 5); putU64(b, uint64(len(b)+5)); return b }),
			repe.AppendError(nil, 77, repe.InvalidBody, "Failed to parse request")},
		{"trailing bytes are ignored", with(func(b []byte) []byte { return append(b, "junk"...) }),
			repe.AppendResponse(nil, 77, repe.OK, repe.BodyJSON, []byte("0"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, string(tt.want), string(rawCall(c.p, tt.req)))
		})
	}
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// glazeFormat writes v as Glaze's JSON writer does (include/glaze/util/
// zmij.hpp): the shortest digits that read back as v, the closest such,
// fixed notation for decimal exponents -4..15, otherwise 1.5E-7 style;
// non-finite values as null. strconv's shortest formatting picks the same
// digits.
func glazeFormat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	sign := ""
	if math.Signbit(v) {
		sign, v = "-", -v
	}
	if v == 0 {
		return sign + "0"
	}
	s := strconv.FormatFloat(v, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(s, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	n := len(digits)
	switch {
	case x < -4 || x > 15:
		out := digits[:1]
		if n > 1 {
			out += "." + digits[1:]
		}
		return sign + out + "E" + strconv.Itoa(x)
	case x < 0:
		return sign + "0." + strings.Repeat("0", -x-1) + digits
	case n <= x+1:
		return sign + digits + strings.Repeat("0", x+1-n)
	default:
		return sign + digits[:x+1] + "." + digits[x+1:]
	}
}

func TestCalculatorNumberFormat(t *testing.T) {
	t.Parallel()
	c := newCalculator(t)
	check := func(body string) {
		t.Helper()
		v, err := strconv.ParseFloat(body, 64)
		require.NoError(t, err)
		c.ok("/calculator/set_value", body)
		assert.Equal(t, glazeFormat(v), c.ok("/calculator/get_value", ""), "%s", body)
	}
	// Spelled out, so that glazeFormat itself is checked too.
	for body, want := range map[string]string{
		"41.5": "41.5", "7": "7", "0": "0", "-2.5": "-2.5", "100": "100", "0.1": "0.1",
		"0.0001": "0.0001", "0.00001": "1E-5", "1e15": "1000000000000000", "1e16": "1E16",
		"1e21": "1E21", "1.5e-7": "1.5E-7", "123456789012345680000": "1.2345678901234568E20",
		"5e-324": "5E-324", "1.7976931348623157e308": "1.7976931348623157E308",
		"2.2250738585072014e-308": "2.2250738585072014E-308", "0.30000000000000004": "0.30000000000000004",
		"9007199254740993": "9007199254740992", "-1e-7": "-1E-7", "1e100": "1E100",
	} {
		c.ok("/calculator/set_value", body)
		assert.Equal(t, want, c.ok("/calculator/get_value", ""), "%s", body)
		v, _ := strconv.ParseFloat(body, 64)
		assert.Equal(t, want, glazeFormat(v))
	}
	// Every power of two, where the shortest digits may lie above the value
	// only, and random doubles.
	for e := -1074; e <= 1023; e++ {
		check(strconv.FormatFloat(math.Ldexp(1, e), 'g', -1, 64))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		v := math.Float64frombits(rng.Uint64())
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		check(strconv.FormatFloat(v, 'g', -1, 64))
		check(strconv.FormatFloat(v, 'g', 17, 64)) // not the shortest input
	}
}

func TestCalculatorConcurrentIncrements(t *testing.T) {
	t.Parallel()
	c := newCalculator(t)
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			req := request(uint64(g), "/calculator/increment", "")
			for range each {
				if _, err := c.p.Call(nil, req); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, strconv.Itoa(goroutines*each), c.ok("/calculator/value", ""))
}
