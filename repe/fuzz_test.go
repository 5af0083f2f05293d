package repe_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// fuzzLimit is the size limit the fuzzed stream is framed with: small, so
// that the fuzzer reaches the limit check with short inputs.
const fuzzLimit = 4096

// FuzzParse checks Parse and Split on arbitrary bytes. The committed corpus
// (testdata/fuzz/FuzzParse) holds every recorded conformance frame and
// pipelines of them; the seeds below add frames made by the encoders.
// Properties (STYLE.md §14):
//   - no panic;
//   - consumed <= len(input), and a parsed Message is a prefix of the input;
//   - a valid frame re-encodes (AppendMessage of its decoded fields) to its
//     own bytes;
//   - the input parsed as a stream in chunks whose sizes come from the input
//     gives the same frames and errors as parsed whole.
func FuzzParse(f *testing.F) {
	query := repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}
	valid := repe.AppendMessage(nil, query, "/calculator/value", nil)
	seeds := [][]byte{
		nil,
		valid[:7],
		valid[:8],
		valid[:11],
		valid[:47],
		valid[:48],
		valid,
		append(bytes.Clone(valid), 0xff, 0xfe),
		repe.AppendMessage(nil, repe.Header{ID: math.MaxUint64, Notify: true, Reserved: 7,
			QueryFormat: 9999, BodyFormat: repe.BodyJSON, EC: 4096}, "/a", []byte(`{"x":1}`)),
		repe.AppendMessage(nil, repe.Header{BodyFormat: repe.BodyBEVE}, "", []byte{0x61, 0, 0, 0, 0, 0, 0, 0x18, 0x40}),
		repe.AppendResponse(nil, 7, repe.OK, repe.BodyJSON, []byte("5")),
		repe.AppendError(nil, 13, repe.MethodNotFound, "invalid_query: /nope"),
		repe.AppendError(repe.AppendResponse(nil, 2, repe.OK, repe.BodyJSON, []byte("null")), 3, repe.ParseError, ""),
		[]byte("not a valid REPE message"),
	}
	// Broken copies of the valid frame, one field at a time.
	for _, brk := range []func(b []byte){
		func(b []byte) { binary.LittleEndian.PutUint64(b[repe.OffsetLength:], 20) },
		func(b []byte) { binary.LittleEndian.PutUint64(b[repe.OffsetLength:], fuzzLimit+1) },
		func(b []byte) { binary.LittleEndian.PutUint16(b[repe.OffsetSpec:], 0x1234) },
		func(b []byte) { b[repe.OffsetVersion] = 2 },
		func(b []byte) { b[repe.OffsetNotify] = 0x80 },
		func(b []byte) { binary.LittleEndian.PutUint64(b[repe.OffsetQueryLength:], math.MaxUint64) },
		func(b []byte) { binary.LittleEndian.PutUint64(b[repe.OffsetBodyLength:], 1<<63) },
	} {
		b := bytes.Clone(valid)
		brk(b)
		seeds = append(seeds, b, append(b, valid...))
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := repe.Parse(data)
		if err != nil {
			require.Nil(t, m)
			e, ok := err.(*repe.Error)
			require.True(t, ok, "Parse error %T is not a *repe.Error", err)
			require.Contains(t, []repe.ErrorCode{repe.VersionMismatch, repe.InvalidHeader, repe.InvalidBody}, e.Code)
			require.NotEmpty(t, e.Message)
		} else {
			checkValidFrame(t, data, m)
			// Split frames the same bytes.
			n, err := repe.Split(data, 0)
			require.NoError(t, err)
			require.Equal(t, len(m), n)
		}

		for _, limit := range []uint64{fuzzLimit, 0} {
			all := feedStream(t, data, limit, whole)
			require.LessOrEqual(t, all.consumed+all.pending, len(data))
			if !all.fatal {
				require.Equal(t, len(data), all.consumed+all.pending)
			}
			for _, ev := range all.events {
				if ev.frame != nil && ev.err == nil {
					m, err := repe.Parse(ev.frame)
					require.NoError(t, err)
					checkValidFrame(t, ev.frame, m)
				}
			}
			require.Equal(t, all, feedStream(t, data, limit, chunksFrom(data)), "chunked")
		}
	})
}

// checkValidFrame checks a Message that Parse accepted from data.
func checkValidFrame(t *testing.T, data []byte, m repe.Message) {
	require.LessOrEqual(t, len(m), len(data))
	require.Equal(t, data[:len(m)], []byte(m), "a Message is a prefix of its input")
	require.Equal(t, m.Length(), uint64(len(m)))
	require.Equal(t, repe.HeaderSize+len(m.Query())+len(m.Body()), len(m))
	require.Equal(t, normalizeNotify(m), reencode(m), "decode then encode")
}

// chunksFrom returns read sizes of 1 to 16 bytes taken from the input
// itself, so that the fuzzer steers where the stream is cut.
func chunksFrom(data []byte) func(int) int {
	i := 0
	return func(int) int {
		if len(data) == 0 {
			return 1
		}
		c := int(data[i%len(data)]&15) + 1
		i++
		return c
	}
}
