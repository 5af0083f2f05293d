package repe_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

func TestMessageAccessors(t *testing.T) {
	h := repe.Header{
		ID:          0x0102030405060708,
		Notify:      true,
		Reserved:    0xdeadbeef,
		QueryFormat: repe.QueryJSONPointer,
		BodyFormat:  repe.BodyBEVE,
		EC:          repe.InvalidUTF8,
	}
	frame := repe.AppendMessage(nil, h, "/a/b", []byte{0x49, 5, 0, 0, 0})
	m := repe.Message(frame)

	assert.Equal(t, uint64(repe.HeaderSize+4+5), m.Length())
	assert.Equal(t, repe.Magic, m.Spec())
	assert.Equal(t, repe.Version, m.Version())
	assert.True(t, m.Notify())
	assert.Equal(t, uint8(1), m.NotifyByte())
	assert.Equal(t, uint32(0xdeadbeef), m.Reserved())
	assert.Equal(t, h.ID, m.ID())
	assert.Equal(t, uint64(4), m.QueryLength())
	assert.Equal(t, uint64(5), m.BodyLength())
	assert.Equal(t, repe.QueryJSONPointer, m.QueryFormat())
	assert.Equal(t, repe.BodyBEVE, m.BodyFormat())
	assert.Equal(t, repe.InvalidUTF8, m.EC())
	assert.Equal(t, "/a/b", string(m.Query()))
	assert.Equal(t, []byte{0x49, 5, 0, 0, 0}, m.Body())

	// Each field sits at its documented offset, little-endian.
	assert.Equal(t, []byte{0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}, frame[repe.OffsetID:repe.OffsetID+8])
	assert.Equal(t, []byte{0x07, 0x15}, frame[repe.OffsetSpec:repe.OffsetSpec+2])
	assert.Equal(t, []byte{0xef, 0xbe, 0xad, 0xde}, frame[repe.OffsetReserved:repe.OffsetReserved+4])
	assert.Equal(t, []byte{69, 0, 0, 0}, frame[repe.OffsetEC:repe.OffsetEC+4])
	assert.Equal(t, repe.HeaderSize, repe.OffsetEC+4, "the ec field ends the header")
}

// The views are sub-slices of the frame, capped so that appending to one
// cannot overwrite the next part of the buffer.
func TestMessageViewsShareAndCap(t *testing.T) {
	frame := repe.AppendMessage(nil, repe.Header{ID: 1}, "/q", []byte("body"))
	frame = append(frame, "next frame"...)
	m, err := repe.Parse(frame)
	require.NoError(t, err)

	q, b := m.Query(), m.Body()
	assert.Equal(t, len(q), cap(q))
	assert.Equal(t, len(b), cap(b))
	assert.Equal(t, len(m), cap(m), "Parse excludes the trailing bytes")
	_ = append(b, 'X')
	assert.True(t, bytes.HasSuffix(frame, []byte("next frame")))

	frame[repe.HeaderSize] = 'Q'
	assert.Equal(t, "Qq", string(m.Query()), "a view, not a copy")
}

func TestNotifyAnyNonZero(t *testing.T) {
	frame := repe.AppendMessage(nil, repe.Header{}, "", nil)
	for _, b := range []byte{0, 1, 2, 0x80, 0xff} {
		frame[repe.OffsetNotify] = b
		m, err := repe.Parse(frame)
		require.NoError(t, err)
		assert.Equal(t, b != 0, m.Notify(), "notify byte %d", b)
		assert.Equal(t, b, m.NotifyByte())
	}
}

func TestPeekID(t *testing.T) {
	frame := repe.AppendMessage(nil, repe.Header{ID: 42}, "/x", nil)
	tests := []struct {
		name string
		b    []byte
		want uint64
	}{
		{"nil", nil, 0},
		{"length field only", frame[:8], 0},
		// Glaze reads the id only from a whole header (REPE.md §2.2): 24
		// junk bytes reach offset 16 but are answered with id 0.
		{"id present but header incomplete", frame[:24], 0},
		{"47 bytes", frame[:47], 0},
		{"whole header", frame[:48], 42},
		{"whole frame", frame, 42},
		{"junk", []byte("not a valid REPE message"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, repe.PeekID(tt.b))
		})
	}
}
