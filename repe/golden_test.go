package repe_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// readHexGolden reads a golden file of testdata/: sections "== NAME"
// followed by hex bytes, with "#" comments (pebble's readable hex style).
func readHexGolden(t *testing.T, name string) map[string][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]byte{}
	var cur string
	var buf bytes.Buffer
	flush := func() {
		if cur != "" {
			out[cur] = bytes.Clone(buf.Bytes())
		}
		buf.Reset()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if section, ok := strings.CutPrefix(line, "== "); ok {
			flush()
			cur = strings.TrimSpace(section)
			require.NotContains(t, out, cur, "section %q twice", cur)
			continue
		}
		hexDigits := strings.Join(strings.Fields(line), "")
		if hexDigits == "" {
			continue
		}
		require.NotEmpty(t, cur, "bytes before the first section: %q", line)
		b, err := hex.DecodeString(hexDigits)
		require.NoError(t, err, "line %q", line)
		buf.Write(b)
	}
	require.NoError(t, sc.Err())
	flush()
	require.NotEmpty(t, out)
	return out
}

// TestMalformedReplies encodes, for each malformed recorded request, the
// reply a gateway sends: AppendError with PeekID and the code and text of
// the error Parse or Split returns. Each must equal, byte for byte, the reply
// of Glaze's validator written in testdata/malformed-replies.hex.
func TestMalformedReplies(t *testing.T) {
	golden := readHexGolden(t, "malformed-replies.hex")
	for name, want := range malformed {
		assert.Contains(t, golden, name+"/parse")
		if want.split != nil {
			assert.Contains(t, golden, name+"/split")
		}
	}
	for section, wantReply := range golden {
		t.Run(section, func(t *testing.T) {
			name, kind, _ := strings.Cut(section, "/")
			req := readConformance(t, "glaze", name+".req.repe")
			var err error
			switch kind {
			case "parse":
				_, err = repe.Parse(req)
			case "split":
				_, err = repe.Split(req, repe.DefaultMaxMessageSize)
			default:
				t.Fatalf("section %q: want NAME/parse or NAME/split", section)
			}
			require.Error(t, err)
			e := repe.AsError(err)
			got := repe.AppendError(nil, repe.PeekID(req), e.Code, e.Message)
			assert.Equal(t, wantReply, got, "reply\n%s", hex.Dump(got))

			// The reply is itself a valid error frame.
			m, perr := repe.Parse(got)
			require.NoError(t, perr)
			assert.Equal(t, e.Code, m.EC())
			assert.Equal(t, repe.BodyUTF8, m.BodyFormat())
		})
	}
}

// TestGoldenFrames checks the encoders against the frames REPE.md §3.6
// recorded from a Glaze JSON registry (testdata/golden-frames.hex).
func TestGoldenFrames(t *testing.T) {
	golden := readHexGolden(t, "golden-frames.hex")
	junk := []byte("not a valid REPE message")
	require.Len(t, junk, 24)

	tests := []struct {
		name string
		got  func(t *testing.T) []byte
	}{
		{"read_x", func(*testing.T) []byte {
			return repe.AppendResponse(nil, 7, repe.OK, repe.BodyJSON, []byte("5"))
		}},
		{"unknown_path", func(*testing.T) []byte {
			return repe.AppendError(nil, 13, repe.MethodNotFound, "invalid_query: /nope")
		}},
		{"request_ec_echo", func(t *testing.T) []byte {
			req := repe.AppendMessage(nil, repe.Header{ID: 23, QueryFormat: repe.QueryJSONPointer, EC: repe.ParseError}, "/x", nil)
			m, err := repe.Parse(req)
			require.NoError(t, err)
			return repe.AppendError(nil, m.ID(), m.EC(), "")
		}},
		{"junk_24_bytes", func(t *testing.T) []byte {
			_, err := repe.Parse(junk)
			var e *repe.Error
			require.ErrorAs(t, err, &e)
			return repe.AppendError(nil, repe.PeekID(junk), e.Code, e.Message)
		}},
	}
	require.Len(t, golden, len(tests), "every golden frame has a case")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, ok := golden[tt.name]
			require.True(t, ok, "no golden frame %q", tt.name)
			got := tt.got(t)
			assert.Equal(t, want, got, "frame\n%s", hex.Dump(got))
		})
	}
}
