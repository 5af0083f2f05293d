package repe_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// TestZeroAllocs is the allocation budget of the hot path (STYLE.md §15):
// framing, validating and reading a valid frame, and encoding a reply into a
// buffer with room, allocate nothing.
func TestZeroAllocs(t *testing.T) {
	frame := repe.AppendMessage(nil, repe.Header{ID: 101, QueryFormat: repe.QueryJSONPointer, BodyFormat: repe.BodyJSON},
		"/calculator/set_value", []byte("42"))
	body := []byte(`{"value":5}`)
	const msg = "REPE length mismatch: expected 65, got 69"
	buf := make([]byte, 0, 256)
	// The closures store their results here, so that no call under
	// measurement can be optimized away.
	var sink struct {
		n   int
		u64 uint64
		b   []byte
		ok  bool
		err error
	}

	tests := []struct {
		name string
		fn   func()
	}{
		{"Split", func() { sink.n, sink.err = repe.Split(frame, repe.DefaultMaxMessageSize) }},
		{"Split need more", func() { sink.n, sink.err = repe.Split(frame[:40], repe.DefaultMaxMessageSize) }},
		{"Parse", func() {
			m, err := repe.Parse(frame)
			sink.b, sink.err = m, err
		}},
		{"PeekID", func() { sink.u64 = repe.PeekID(frame) }},
		{"accessors", func() {
			m := repe.Message(frame)
			sink.u64 = m.Length() + uint64(m.Spec()) + uint64(m.Version()) + uint64(m.NotifyByte()) +
				uint64(m.Reserved()) + m.ID() + m.QueryLength() + m.BodyLength() +
				uint64(m.QueryFormat()) + uint64(m.BodyFormat()) + uint64(m.EC())
			sink.ok = m.Notify()
			sink.b = m.Query()
			sink.b = m.Body()
		}},
		{"AppendHeader", func() { sink.b = repe.AppendHeader(buf[:0], repe.Header{ID: 1}, 3, 4) }},
		{"AppendMessage", func() {
			sink.b = repe.AppendMessage(buf[:0], repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", body)
		}},
		{"AppendResponse", func() { sink.b = repe.AppendResponse(buf[:0], 101, repe.OK, repe.BodyJSON, body) }},
		{"AppendError", func() { sink.b = repe.AppendError(buf[:0], 101, repe.InvalidHeader, msg) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Zero(t, testing.AllocsPerRun(1000, tt.fn))
		})
	}

	// The encoders wrote into buf, not into a buffer of their own.
	out := repe.AppendError(buf[:0], 101, repe.InvalidHeader, msg)
	require.Equal(t, &buf[:1][0], &out[0])
	assert.NotNil(t, sink.b)
}
