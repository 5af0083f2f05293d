package beve

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendBEVE(t *testing.T) {
	tests := []struct {
		name string
		json string
		hex  string
	}{
		{"null", `null`, "00"},
		{"true", `true`, "18"},
		{"false", `false`, "08"},
		{"int", `5`, "69 0500000000000000"},
		{"negative int", `-2`, "69 feffffffffffffff"},
		{"uint above int64", `18446744073709551615`, "71 ffffffffffffffff"},
		{"double", `3.5`, "61 000000000000 0c40"},
		{"integral double", `1e3`, "61 0000000000408f40"},
		{"big integer as double", `1e400`, ""},
		{"string", `"c"`, "02 04 63"},
		{"object", `{"x":1,"y":-2}`, "03 08 04 78 69 0100000000000000 04 79 69 feffffffffffffff"},
		{"key order kept", `{"b":null,"a":null}`, "03 08 04 62 00 04 61 00"},
		{"int array", `[1,2]`, "6c 08 0100000000000000 0200000000000000"},
		{"uint array", `[18446744073709551615,1]`, "74 08 ffffffffffffffff 0100000000000000"},
		{"number array", `[1.5,2]`, "64 08 000000000000f83f 0000000000000040"},
		{"string array", `["a","bc"]`, "3c 08 04 61 08 62 63"},
		{"bool array", `[true,false,true,true,false,false,false,false,true]`, "1c 24 0d 01"},
		{"empty array", `[]`, "05 00"},
		{"mixed array", `[1,"a",null]`, "05 0c 69 0100000000000000 02 04 61 00"},
		{"signed and unsigned", `[-1,18446744073709551615]`, "05 08 69 ffffffffffffffff 71 ffffffffffffffff"},
		{"int a double cannot hold", `[9007199254740993,0.5]`, "05 08 69 0100000000002000 61 000000000000e03f"},
		{"nested", `{"a":[{}]}`, "03 04 04 61 05 04 03 00"},
		{"long string", `"` + strings.Repeat("a", 100) + `"`, "02 91 01" + strings.Repeat("61", 100)},
		{"whitespace", " [ 1 ]\n", "6c 04 0100000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendBEVE([]byte{0xaa}, []byte(tt.json))
			if tt.hex == "" {
				require.Error(t, err)
				assert.Equal(t, []byte{0xaa}, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, append([]byte{0xaa}, unhex(t, tt.hex)...), got)
		})
	}
}

func TestAppendBEVEErrors(t *testing.T) {
	for _, in := range []string{``, ` `, `{"a":}`, `[1,]`, `1 2`, `{"a":1}}`, `nul`, `"\x01"`,
		strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2)} {
		t.Run(in, func(t *testing.T) {
			got, err := AppendBEVE(nil, []byte(in))
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "beve: "), err.Error())
			assert.Empty(t, got)
		})
	}
}

// TestRoundTrip checks that JSON written in the form AppendJSON produces
// survives encoding and decoding unchanged.
func TestRoundTrip(t *testing.T) {
	for _, in := range []string{
		`null`, `true`, `0`, `-9223372036854775808`, `18446744073709551615`, `0.1`, `-3.5`, `1e+21`, `1e-7`,
		`""`, `"héllo \"wörld\"\n"`, `{}`, `[]`, `[[]]`, `{"a":{"b":{"c":[1,2,3]}}}`,
		`[true,false]`, `["x","",""]`, `[0.5,1,2]`, `[1,"two",3.5,null,[true],{"k":"v"}]`,
		`{"name":"sensor-7","count":42,"ratio":-3.5,"active":true,"values":[1,2,3]}`,
		`{"dup":1,"dup":2}`,
	} {
		t.Run(in, func(t *testing.T) {
			enc, err := AppendBEVE(nil, []byte(in))
			require.NoError(t, err)
			got, err := AppendJSON(nil, enc)
			require.NoError(t, err)
			assert.Equal(t, in, string(got))
		})
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{
		"49 05000000", "61 000000000000 0c40", "02 04 63", "03 08 04 78 49 01000000 04 79 49 feffffff",
		"4c 08 01000000 02000000", "3c 08 04 61 08 62 63", "4b 04 01000000 49 02000000",
		"1c 28 a5 02", "5c 64 08 03 000000 000000000000f03f 0000000000000040", "0e 04 02 04 68",
		"16 01 14 04 01 14 04 09", "1e 49 08 01000000 02000000 03000000 fcffffff", "09 01 06 09 02",
		"89 ffffffffffffffff ffffffffffffffff", "81 0000000000000000 00000000000080ff3f", "21 0100",
	} {
		f.Add(unhex(f, s))
	}
	for _, s := range []string{`{"a":[1,2.5,"x",true,null,{"b":[true,false]}]}`, `[18446744073709551615,1]`} {
		b, err := AppendBEVE(nil, []byte(s))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := AppendJSON([]byte("x"), in)
		if err != nil {
			require.Equal(t, "x", string(out), "dst unchanged on error")
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			require.LessOrEqual(t, se.Offset, len(in))
			return
		}
		// A bool array turns one input byte into at most 8 "false,".
		require.LessOrEqual(t, len(out), 1+48*len(in)+8)
		for line := range bytes.SplitSeq(out[1:], []byte("\n")) {
			if len(line) > 0 {
				require.True(t, json.Valid(line), "invalid JSON %q", line)
			}
		}
	})
}

func FuzzAppendBEVE(f *testing.F) {
	for _, s := range []string{`null`, `[1,2]`, `{"a":[1.5,"x"],"b":{"c":[true]}}`, `["a","b"]`, `[-1,18446744073709551615]`, `1e308`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var want any
		if json.Unmarshal(in, &want) != nil {
			return
		}
		enc, err := AppendBEVE(nil, in)
		if err != nil {
			// Valid JSON fails only for numbers out of float64 range or deep nesting.
			require.Regexp(t, `does not fit a float64|nested deeper|cannot unmarshal`, err.Error())
			return
		}
		out, err := AppendJSON(nil, enc)
		require.NoError(t, err)
		var got any
		require.NoError(t, json.Unmarshal(out, &got), "%s", out)
		assert.Equal(t, want, got)
	})
}
