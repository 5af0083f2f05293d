package beve

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// unhex reads hex with spaces and comments after '#' on each line.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	require.NoError(t, err)
	return b
}

func TestAppendJSON(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want string
	}{
		// The examples of REPE.md §6, each run through Glaze.
		{"int", "49 05000000", `5`},
		{"double", "61 000000000000 0c40", `3.5`},
		{"string", "02 04 63", `"c"`},
		{"object", "03 08 04 78 49 01000000 04 79 49 feffffff", `{"x":1,"y":-2}`},
		{"int vector", "4c 08 01000000 02000000", `[1,2]`},
		{"string vector", "3c 08 04 61 08 62 63", `["a","bc"]`},
		{"int map", "4b 04 01000000 49 02000000", `{"1":2}`},

		{"null", "00", `null`},
		{"false", "08", `false`},
		{"true", "18", `true`},
		{"i8", "09 ff", `-1`},
		{"i16", "29 00 80", `-32768`},
		{"i64", "69 ffffffffffffff7f", `9223372036854775807`},
		{"u8", "11 ff", `255`},
		{"u16", "31 ffff", `65535`},
		{"u32", "51 ffffffff", `4294967295`},
		{"u64", "71 ffffffffffffffff", `18446744073709551615`},
		{"f32", "41 cdcccc3d", `0.1`},
		{"f64 large", "61 0000000065cdcd41", `1000000000`},
		{"f64 exponent", "61 bbbdd7d9df7cdb3d", `1e-10`},
		{"f64 nan", "61 000000000000f87f", `null`},
		{"f16 1.5", "21 003e", `1.5`},
		{"f16 -2", "21 00c0", `-2`},
		{"f16 subnormal", "21 0100", `5.9604645e-8`},
		{"f16 infinity", "21 007c", `null`},
		{"bf16 1", "01 803f", `1`},
		{"bf16 -3.5", "01 60c0", `-3.5`},
		{"i128 -1", "89 ffffffffffffffff ffffffffffffffff", `-1`},
		{"i128 min", "89 0000000000000000 0000000000000080", `-170141183460469231731687303715884105728`},
		{"u128 2^64", "91 0000000000000000 0100000000000000", `18446744073709551616`},
		{"string escapes", `02 28 22 5c 0a 01 e2 80 a8 ff 3c 3e`, `"\"\\\n\u0001\u2028\ufffd<>"`},
		{"empty string", "02 00", `""`},
		{"100-char string", "02 91 01" + strings.Repeat("61", 100), `"` + strings.Repeat("a", 100) + `"`},
		{"empty object", "03 00", `{}`},
		{"u8 key map", "13 08 01 18 02 08", `{"1":true,"2":false}`},
		{"i16 key map", "2b 04 ffff 00", `{"-1":null}`},
		{"nested", "03 04 04 61 05 08 03 00 05 04 00", `{"a":[{},[null]]}`},
		{"generic array", "05 0c 09 01 02 04 61 18", `[1,"a",true]`},
		{"empty generic array", "05 00", `[]`},
		{"f64 array", "64 08 000000000000f83f 00000000000004c0", `[1.5,-2.5]`},
		{"u8 array", "14 0c 01 02 ff", `[1,2,255]`},
		{"f16 array", "24 08 003c 0040", `[1,2]`},
		{"bf16 array", "04 04 803f", `[1]`},
		{"bool array", "1c 28 a5 02", `[true,false,true,false,false,true,false,true,false,true]`},
		{"empty bool array", "1c 00", `[]`},
		{"aligned f64 array", "5c 64 08 03 000000 000000000000f03f 0000000000000040", `[1,2]`},
		{"two-byte size", "4c 05 01" + strings.Repeat("07000000", 65), `[` + strings.Repeat("7,", 64) + `7]`},
		{"four-byte size", "14 02 00 00 00", `[]`},
		{"eight-byte size", "14 07 00000000000000 05", `[5]`},
		{"type tag", "0e 04 02 04 68", `"h"`},
		{"matrix row-major", "16 00 74 08 0200000000000000 0100000000000000 64 08 000000000000f03f 0000000000000040",
			`{"layout":"layout_right","extents":[2,1],"value":[1,2]}`},
		{"matrix col-major", "16 01 14 04 01 14 04 09", `{"layout":"layout_left","extents":[1],"value":[9]}`},
		{"complex f64", "1e 60 000000000000f03f 00000000000000c0", `[1,-2]`},
		{"complex i32 array", "1e 49 08 01000000 02000000 03000000 fcffffff", `[[1,2],[3,-4]]`},
		{"two values", "09 01 09 02", "1\n2"},
		{"delimited values", "09 01 06 09 02", "1\n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendJSON([]byte("prefix:"), unhex(t, tt.hex))
			require.NoError(t, err)
			assert.Equal(t, "prefix:"+tt.want, string(got))
			for line := range strings.SplitSeq(tt.want, "\n") {
				assert.True(t, json.Valid([]byte(line)), "output %q is not JSON", line)
			}
		})
	}
}

func TestAppendJSONFloat128(t *testing.T) {
	// binary128 1.5: sign 0, exponent 0x3fff, fraction 0x8000… (top bit).
	b := make([]byte, 17)
	b[0] = 0x81
	b[16] = 0x3f
	b[15] = 0xff
	b[14] = 0x80
	got, err := AppendJSON(nil, b)
	require.NoError(t, err)
	assert.Equal(t, "1.5", string(got))

	b[16] |= 0x80 // negative
	got, err = AppendJSON(nil, b)
	require.NoError(t, err)
	assert.Equal(t, "-1.5", string(got))
}

// TestAppendJSONFixtures decodes the BEVE bodies Glaze v8.0.0 wrote for
// repe-rs and compares them with the JSON repe-rs's manifest gives.
func TestAppendJSONFixtures(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "manifest.json"))
	require.NoError(t, err)
	var manifest struct {
		Fixtures []struct {
			Name       string `json:"name"`
			BodyFormat int    `json:"body_format"`
			BodyJSON   string `json:"body_json"`
		} `json:"fixtures"`
	}
	require.NoError(t, json.Unmarshal(raw, &manifest))
	seen := 0
	for _, f := range manifest.Fixtures {
		if f.BodyFormat != int(repe.BodyBEVE) {
			continue
		}
		seen++
		t.Run(f.Name, func(t *testing.T) {
			frame, err := os.ReadFile(filepath.Join("testdata", f.Name+".repe"))
			require.NoError(t, err)
			m, err := repe.Parse(frame)
			require.NoError(t, err)
			require.Equal(t, repe.BodyBEVE, m.BodyFormat())

			got, err := AppendJSON(nil, m.Body())
			require.NoError(t, err)
			assert.JSONEq(t, f.BodyJSON, string(got))
			assert.Equal(t, f.BodyJSON, string(got), "key order and number form")

			// And back: this package's encoding decodes to the same JSON.
			enc, err := AppendBEVE(nil, got)
			require.NoError(t, err)
			again, err := AppendJSON(nil, enc)
			require.NoError(t, err)
			assert.Equal(t, string(got), string(again))
		})
	}
	assert.Equal(t, 3, seen, "BEVE fixtures in the manifest")
}

func TestAppendJSONErrors(t *testing.T) {
	tests := []struct {
		name   string
		hex    string
		offset int
		msg    string
	}{
		{"empty", "", 0, "no value"},
		{"short int", "49 0500", 1, "number runs past the end"},
		{"string size beyond input", "02 08 61", 1, "string size 2 exceeds"},
		{"huge string size", "02 ffffffffffffffff", 1, "string size 4611686018427387903 exceeds"},
		{"huge 8-byte size", "02 fbffffffffffff0f", 1, "exceeds"},
		{"size cut short", "02 01", 1, "string size runs past"},
		{"object size beyond input", "03 feffffff 04 61 00", 1, "object size 1073741823 exceeds"},
		{"typed array size beyond input", "64 feffffff 00", 1, "typed array size 1073741823 exceeds"},
		{"bool array size beyond input", "1c 41 00 ff", 1, "bool array size 16 exceeds"},
		{"generic array cut short", "05 04 49 05", 3, "number runs past"},
		{"unknown number width", "a1 00", 0, "unsupported number header 0xa1"},
		{"bool key object", "1b 04", 0, "unsupported object key header 0x1b"},
		{"unknown typed array", "7c 00", 0, "unsupported typed array header 0x7c"},
		{"aligned bool array", "5c 1c 00 00", 1, "is not numeric"},
		{"aligned padding beyond input", "5c 14 04 07 00", 4, "aligned array padding runs past"},
		{"reserved type", "07", 0, "reserved type 7"},
		{"unknown extension", "26 00", 0, "unknown extension 4"},
		{"nested delimiter", "05 04 06", 2, "delimiter inside a value"},
		{"complex cut short", "1e 60 00", 2, "complex number runs past"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendJSON(dst, unhex(t, tt.hex))
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.offset, se.Offset)
			assert.Contains(t, se.Error(), tt.msg)
			assert.Equal(t, "keep", string(got), "dst unchanged on error")
		})
	}
}

func TestAppendJSONDepth(t *testing.T) {
	deep := []byte(strings.Repeat("\x05\x04", MaxDepth+2) + "\x00")
	_, err := AppendJSON(nil, deep)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nested deeper")

	ok := []byte(strings.Repeat("\x05\x04", MaxDepth) + "\x00")
	got, err := AppendJSON(nil, ok)
	require.NoError(t, err)
	assert.True(t, json.Valid(got))
}

func TestAppendJSONAllocs(t *testing.T) {
	body := unhex(t, "03 08 04 78 49 01000000 04 79 64 08 000000000000f83f 00000000000004c0")
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		dst, _ = AppendJSON(dst[:0], body)
	})
	assert.Zero(t, allocs)
}

func BenchmarkAppendJSON(b *testing.B) {
	frame, err := os.ReadFile(filepath.Join("testdata", "beve_request_unknown_key.repe"))
	require.NoError(b, err)
	m, err := repe.Parse(frame)
	require.NoError(b, err)
	body := m.Body()
	dst := make([]byte, 0, 512)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst, err = AppendJSON(dst[:0], body)
		if err != nil {
			b.Fatal(err)
		}
	}
}
