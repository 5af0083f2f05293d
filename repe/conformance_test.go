package repe_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// malformedCase is what the package says about a recorded request that
// Glaze's validator rejects.
type malformedCase struct {
	// parse is Parse's error for the whole request file: what Glaze's
	// registry::call answers for those bytes (REPE.md §2.1–§2.2).
	parse repe.Error
	// split is Split's error for the request file on a stream limited to
	// DefaultMaxMessageSize, nil when it only needs more bytes.
	split *repe.Error
	// splitN is the frame size Split reports: the declared length for an
	// inconsistent but framed request, 0 for a fatal error or "need more".
	splitN int
}

// malformed holds every recorded request of the Glaze manifest that is not
// a valid frame. The texts are Glaze's (REPE.md §2.2) except two choices of
// ours for a stream, where Glaze's asio_server closes without a reply:
// "Invalid header" for length < 48 and the size-limit text.
var malformed = map[string]malformedCase{
	"length_larger_padded": {
		parse:  repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 65, got 69"},
		split:  &repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 65, got 69"},
		splitN: 69,
	},
	"length_smaller_than_parts": {
		parse:  repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 67, got 65"},
		split:  &repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 67, got 65"},
		splitN: 65,
	},
	"query_length_overflow": {
		parse: repe.Error{Code: repe.InvalidHeader,
			Message: "REPE length overflow: query_length 18446744073709551615 + body_length 0 exceed uint64_t"},
		split: &repe.Error{Code: repe.InvalidHeader,
			Message: "REPE length overflow: query_length 18446744073709551615 + body_length 0 exceed uint64_t"},
		splitN: 65,
	},
	"query_length_too_big": {
		parse:  repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 165, got 65"},
		split:  &repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 165, got 65"},
		splitN: 65,
	},
	"body_length_mismatch": {
		parse:  repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 70, got 65"},
		split:  &repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 70, got 65"},
		splitN: 65,
	},
	"wrong_magic": {
		parse: repe.Error{Code: repe.InvalidHeader, Message: "REPE magic number mismatch: expected 0x1507, got 0x1234"},
		split: &repe.Error{Code: repe.InvalidHeader, Message: "REPE magic number mismatch: expected 0x1507, got 0x1234"},
	},
	"wrong_version_2": {
		parse: repe.Error{Code: repe.VersionMismatch, Message: "REPE version mismatch: expected 1, got 2"},
		split: &repe.Error{Code: repe.VersionMismatch, Message: "REPE version mismatch: expected 1, got 2"},
	},
	"wrong_version_0": {
		parse: repe.Error{Code: repe.VersionMismatch, Message: "REPE version mismatch: expected 1, got 0"},
		split: &repe.Error{Code: repe.VersionMismatch, Message: "REPE version mismatch: expected 1, got 0"},
	},
	// The whole 65-byte request reaches Glaze's validator, which finds a
	// complete header whose length disagrees; a stream cannot be framed by
	// a length below the header.
	"length_below_header": {
		parse: repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 65, got 20"},
		split: &repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"},
	},
	"length_zero": {
		parse: repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 65, got 0"},
		split: &repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"},
	},
	"length_over_max": {
		parse: repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 65, got 67108865"},
		split: &repe.Error{Code: repe.InvalidHeader,
			Message: "REPE message exceeds maximum allowed size: length 67108865, limit 67108864"},
	},
	// Truncated: a whole request would be valid, but only part was sent.
	"header_only_truncated_close": {
		parse: repe.Error{Code: repe.InvalidBody, Message: "Failed to parse request"},
	},
	"header_only_truncated_open": {
		parse: repe.Error{Code: repe.InvalidBody, Message: "Failed to parse request"},
	},
	"partial_length_field_close": {
		parse: repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"},
	},
}

// TestMalformedRequests checks Parse and Split on every malformed recorded
// request against the table above, and that the table names exactly the
// requests the manifest decodes as invalid.
func TestMalformedRequests(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range loadGlazeCases(t) {
		req := readConformance(t, "glaze", c.RequestFile)
		frames := locateFrames(t, req, len(c.RequestFrames))
		invalid := len(frames) != 1 || !frames[0].valid
		want, listed := malformed[c.Name]
		require.Equal(t, invalid, listed, "%s: invalid=%v but listed=%v", c.Name, invalid, listed)
		if !listed {
			continue
		}
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			m, err := repe.Parse(req)
			assert.Nil(t, m)
			var e *repe.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, want.parse, *e)
			assert.ErrorIs(t, err, want.parse.Code)

			n, err := repe.Split(req, repe.DefaultMaxMessageSize)
			assert.Equal(t, want.splitN, n)
			if want.split == nil {
				assert.NoError(t, err)
				return
			}
			require.ErrorAs(t, err, &e)
			assert.Equal(t, *want.split, *e)
		})
	}
	for name := range malformed {
		assert.True(t, seen[name], "%s is not a malformed request of the manifest", name)
	}
}

// TestGlazeConformance decodes every recorded frame of the Glaze manifest
// (requests, responses, probes) and compares it with the manifest; valid
// requests must re-encode to their bytes and responses must be reproduced
// byte for byte by AppendResponse and AppendError, since Glaze's response
// builder wrote them (REPE.md §3.5).
func TestGlazeConformance(t *testing.T) {
	for _, c := range loadGlazeCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			req := readConformance(t, "glaze", c.RequestFile)
			frames := locateFrames(t, req, len(c.RequestFrames))
			require.Len(t, frames, len(c.RequestFrames))
			for i, f := range frames {
				want := c.RequestFrames[i]
				assertFields(t, f, want)
				if !f.valid {
					continue // TestMalformedRequests checks the errors
				}
				m, err := repe.Parse(f.rest)
				require.NoError(t, err)
				require.Len(t, m, int(want.Length))
				assert.Equal(t, f.query, m.Query())
				assert.Equal(t, f.body, m.Body())
				assert.Equal(t, normalizeNotify(f.rest[:want.Length]), reencode(m))
			}

			checkResponses(t, c.ResponseFile, c.Result.Responses)
			if c.Probe == nil || c.ProbeRequestFile == "" {
				return
			}
			probe, err := repe.Parse(readConformance(t, "glaze", c.ProbeRequestFile))
			require.NoError(t, err)
			assert.Equal(t, uint64(999999), probe.ID())
			assert.Equal(t, "/calculator/value", string(probe.Query()))
			assert.Equal(t, []byte(probe), reencode(probe))
			checkResponses(t, c.ProbeResponseFile, c.Probe.Responses)
		})
	}
}

// checkResponses checks a recorded reply file: its frames decode as the
// manifest says, are valid, and are exactly what the encoders produce.
func checkResponses(t *testing.T, file string, want []manifestFrame) {
	t.Helper()
	if !strings.HasSuffix(file, ".repe") {
		require.Empty(t, want, "%s: no reply file but replies in the manifest", file)
		return
	}
	data := readConformance(t, "glaze", file)
	frames := locateFrames(t, data, len(want))
	require.Len(t, frames, len(want))
	var rebuilt []byte
	for i, f := range frames {
		require.True(t, f.valid, "%s: reply %d is not a valid frame", file, i)
		assertFields(t, f, want[i])
		m, err := repe.Parse(f.rest)
		require.NoError(t, err)
		assert.Empty(t, m.Query(), "Glaze never echoes the query")
		frame := f.rest[:len(m)]
		assert.Equal(t, frame,
			repe.AppendResponse(nil, m.ID(), m.EC(), m.BodyFormat(), m.Body()), "AppendResponse")
		if m.EC() != repe.OK {
			require.Equal(t, repe.BodyUTF8, m.BodyFormat(), "error replies are UTF-8")
			assert.Equal(t, frame, repe.AppendError(nil, m.ID(), m.EC(), string(m.Body())), "AppendError")
		}
		rebuilt = append(rebuilt, frame...)
	}
	assert.Equal(t, data, rebuilt, "%s holds bytes beyond its frames", file)
}

// assertFields compares a located frame's header, through the Message
// accessors, and its query and body with the manifest.
func assertFields(t *testing.T, f locatedFrame, want manifestFrame) {
	t.Helper()
	m := repe.Message(f.rest)
	assert.Equal(t, want.Length, m.Length(), "length")
	assert.Equal(t, want.Spec, m.Spec(), "spec")
	assert.Equal(t, want.Version, m.Version(), "version")
	assert.Equal(t, want.Notify, m.NotifyByte(), "notify")
	assert.Equal(t, want.Notify != 0, m.Notify(), "notify")
	assert.Equal(t, want.Reserved, m.Reserved(), "reserved")
	assert.Equal(t, want.ID, m.ID(), "id")
	assert.Equal(t, want.QueryLength, m.QueryLength(), "query_length")
	assert.Equal(t, want.BodyLength, m.BodyLength(), "body_length")
	assert.Equal(t, repe.QueryFormat(want.QueryFormat), m.QueryFormat(), "query_format")
	assert.Equal(t, repe.BodyFormat(want.BodyFormat), m.BodyFormat(), "body_format")
	assert.Equal(t, repe.ErrorCode(want.EC), m.EC(), "ec")
	assert.Equal(t, want.ECName, m.EC().Name(), "ec_name")
	assert.Equal(t, want.Query, string(f.query), "query")
	if want.BodyHex != "" {
		body, err := hex.DecodeString(want.BodyHex)
		require.NoError(t, err)
		assert.Equal(t, body, f.body, "body")
	} else {
		assert.Equal(t, want.Body, string(f.body), "body")
	}
}

// TestConformanceFilesReferenced makes sure no recorded frame escapes the
// tests above: every .repe file of glaze/ is named by its manifest.
func TestConformanceFilesReferenced(t *testing.T) {
	named := map[string]bool{}
	for _, c := range loadGlazeCases(t) {
		for _, f := range []string{c.RequestFile, c.ResponseFile, c.ProbeRequestFile, c.ProbeResponseFile} {
			named[f] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(conformanceDir, "glaze"))
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".repe") {
			n++
			assert.True(t, named[e.Name()], "%s is not in the manifest", e.Name())
		}
	}
	assert.Greater(t, n, 100)
}

// TestRepeRSConformance decodes repe-rs's Glaze-made interop fixtures.
// encoder_parity in the manifest is about repe-rs's own encoder (whether it
// rewrites JSON or BEVE bodies identically); this package copies bodies as
// bytes, so every fixture must re-encode exactly, those marked true included.
func TestRepeRSConformance(t *testing.T) {
	fixtures := loadRepeRSFixtures(t)
	parity := 0
	for _, fx := range fixtures {
		t.Run(fx.Name, func(t *testing.T) {
			data := readConformance(t, "repe-rs", fx.Name+".repe")
			m, err := repe.Parse(data)
			require.NoError(t, err)
			require.Len(t, m, len(data))
			assert.Equal(t, fx.Length, m.Length(), "length")
			assert.Equal(t, repe.Magic, m.Spec(), "spec")
			assert.Equal(t, repe.Version, m.Version(), "version")
			assert.Equal(t, fx.Notify, m.NotifyByte(), "notify")
			assert.Equal(t, uint32(0), m.Reserved(), "reserved")
			assert.Equal(t, fx.ID, m.ID(), "id")
			assert.Equal(t, fx.QueryLength, m.QueryLength(), "query_length")
			assert.Equal(t, fx.BodyLength, m.BodyLength(), "body_length")
			assert.Equal(t, repe.QueryFormat(fx.QueryFormat), m.QueryFormat(), "query_format")
			assert.Equal(t, repe.BodyFormat(fx.BodyFormat), m.BodyFormat(), "body_format")
			assert.Equal(t, repe.ErrorCode(fx.EC), m.EC(), "ec")
			assert.Equal(t, fx.Query, string(m.Query()), "query")
			assertRepeRSBody(t, fx, m.Body())
			if fx.EncoderParity {
				parity++
			}
			assert.Equal(t, data, reencode(m), "AppendMessage of the decoded fields")
			if m.EC() != repe.OK {
				assert.Equal(t, data, repe.AppendError(nil, m.ID(), m.EC(), string(m.Body())), "AppendError")
			}
		})
	}
	assert.Positive(t, parity)
}

func assertRepeRSBody(t *testing.T, fx repeRSFixture, body []byte) {
	t.Helper()
	switch fx.BodyKind {
	case "none":
		assert.Empty(t, body)
	case "json":
		assert.Equal(t, fx.BodyJSON, string(body))
	case "utf8":
		assert.Equal(t, fx.BodyText, string(body))
	case "beve_f64", "beve_struct":
		// The manifest gives the value as JSON; decode the BEVE body and
		// compare values.
		got, rest, err := decodeBEVE(body)
		require.NoError(t, err)
		assert.Empty(t, rest, "bytes after the BEVE value")
		var want any
		require.NoError(t, json.Unmarshal([]byte(fx.BodyJSON), &want))
		assert.Equal(t, want, got)
	default:
		t.Fatalf("unknown body_kind %q", fx.BodyKind)
	}
}

// reencode is AppendMessage of m's decoded fields.
func reencode(m repe.Message) []byte {
	h := repe.Header{
		ID:          m.ID(),
		Notify:      m.Notify(),
		Reserved:    m.Reserved(),
		QueryFormat: m.QueryFormat(),
		BodyFormat:  m.BodyFormat(),
		EC:          m.EC(),
	}
	return repe.AppendMessage(nil, h, string(m.Query()), m.Body())
}

// normalizeNotify returns a copy of frame with its notify byte as
// AppendHeader writes it: Header.Notify is a bool, so a notify byte of 2..255
// (which Glaze reads as notify, REPE.md §1.1) encodes back as 1.
func normalizeNotify(frame []byte) []byte {
	b := append([]byte(nil), frame...)
	if b[repe.OffsetNotify] != 0 {
		b[repe.OffsetNotify] = 1
	}
	return b
}

// decodeBEVE decodes the subset of BEVE (REPE.md §6) the repe-rs fixtures
// use into the values encoding/json would give for the same document:
// objects with string keys, strings, booleans, numbers and typed or generic
// arrays, numbers as float64.
func decodeBEVE(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("beve: empty")
	}
	h, b := b[0], b[1:]
	switch h & 7 {
	case 0:
		switch h {
		case 0x00:
			return nil, b, nil
		case 0x08:
			return false, b, nil
		case 0x18:
			return true, b, nil
		}
	case 1:
		return beveNumber(h, b)
	case 2:
		s, b, err := beveString(b)
		return s, b, err
	case 3:
		if h != 0x03 {
			return nil, nil, fmt.Errorf("beve: integer-keyed object %#x", h)
		}
		n, b, err := beveSize(b)
		if err != nil {
			return nil, nil, err
		}
		obj := map[string]any{}
		for range n {
			var k string
			if k, b, err = beveString(b); err != nil {
				return nil, nil, err
			}
			if obj[k], b, err = decodeBEVE(b); err != nil {
				return nil, nil, err
			}
		}
		return obj, b, nil
	case 4:
		n, rest, err := beveSize(b)
		if err != nil {
			return nil, nil, err
		}
		if (h>>3)&3 == 3 {
			return nil, nil, fmt.Errorf("beve: bool or string array %#x", h)
		}
		arr := []any{}
		elem := byte(1) | h&0xf8 // the number header of one element
		for range n {
			var v any
			if v, rest, err = beveNumber(elem, rest); err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
		}
		return arr, rest, nil
	case 5:
		n, b, err := beveSize(b)
		if err != nil {
			return nil, nil, err
		}
		arr := []any{}
		for range n {
			var v any
			if v, b, err = decodeBEVE(b); err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
		}
		return arr, b, nil
	}
	return nil, nil, fmt.Errorf("beve: header %#x", h)
}

func beveNumber(h byte, b []byte) (any, []byte, error) {
	size := 1 << (h >> 5)
	if len(b) < size {
		return nil, nil, errors.New("beve: short number")
	}
	var u uint64
	for i := size - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	switch kind := (h >> 3) & 3; {
	case kind == 0 && size == 8:
		return math.Float64frombits(u), b[size:], nil
	case kind == 0 && size == 4:
		return float64(math.Float32frombits(uint32(u))), b[size:], nil
	case kind == 1:
		shift := 64 - 8*size
		return float64(int64(u<<shift) >> shift), b[size:], nil
	case kind == 2:
		return float64(u), b[size:], nil
	}
	return nil, nil, fmt.Errorf("beve: number header %#x", h)
}

func beveSize(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errors.New("beve: missing size")
	}
	n := 1 << (b[0] & 3)
	if len(b) < n {
		return 0, nil, errors.New("beve: short size")
	}
	var buf [8]byte
	copy(buf[:], b[:n])
	v := binary.LittleEndian.Uint64(buf[:]) >> 2
	if v > uint64(len(b)) {
		return 0, nil, errors.New("beve: size beyond input")
	}
	return int(v), b[n:], nil
}

func beveString(b []byte) (string, []byte, error) {
	n, b, err := beveSize(b)
	if err != nil {
		return "", nil, err
	}
	if len(b) < n {
		return "", nil, errors.New("beve: short string")
	}
	return string(b[:n]), b[n:], nil
}
