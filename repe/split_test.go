package repe_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// streamEvent is one answer of Split that a receiver acts on.
type streamEvent struct {
	frame []byte      // the framed bytes; nil for a fatal error
	err   *repe.Error // nil for a valid frame
}

// streamResult is everything a receiver learns from a stream.
type streamResult struct {
	events []streamEvent
	fatal  bool // the last event is a fatal error: the receiver closes
	// pending is the number of bytes still buffered at the end, waiting for
	// the rest of a frame (only when not fatal).
	pending int
	// consumed is the number of bytes the receiver discarded as framed.
	consumed int
}

// feedStream plays a receiver: it appends the chunks of data one by one, as
// reads deliver them, and after each calls Split until it needs more.
// chunk returns the size of the next read, given what is left.
func feedStream(t testing.TB, data []byte, maxSize uint64, chunk func(left int) int) streamResult {
	t.Helper()
	var res streamResult
	var buf []byte
	for off := 0; off < len(data); {
		k := min(max(chunk(len(data)-off), 1), len(data)-off)
		buf = append(buf, data[off:off+k]...)
		off += k
		for {
			// An exact-capacity slice: reading past len would panic.
			n, err := repe.Split(buf[:len(buf):len(buf)], maxSize)
			// Plain checks: this loop runs millions of times, and testify's
			// helpers walk the stack on every call.
			if n < 0 || n > len(buf) {
				t.Fatalf("Split(%d bytes) = %d: outside the bytes it was given", len(buf), n)
			}
			if n == 0 && err == nil {
				break
			}
			e, ok := err.(*repe.Error)
			if err != nil && !ok {
				t.Fatalf("Split error %T is not a *repe.Error", err)
			}
			if n == 0 {
				res.events = append(res.events, streamEvent{err: e})
				res.fatal = true
				return res
			}
			res.events = append(res.events, streamEvent{frame: bytes.Clone(buf[:n]), err: e})
			res.consumed += n
			buf = buf[n:]
		}
	}
	res.pending = len(buf)
	return res
}

func whole(left int) int { return left }
func bytewise(int) int   { return 1 }
func splitAt(k int) func(int) int {
	first := true
	return func(left int) int {
		if first {
			first = false
			return k
		}
		return left
	}
}

// randomChunks returns read sizes drawn from a seeded source, from 1 byte to
// a little over a frame.
func randomChunks(seed uint64) func(int) int {
	r := rand.New(rand.NewPCG(seed, 0x5e9e))
	return func(int) int { return 1 + r.IntN(80) }
}

// TestSplitEveryChunking feeds every recorded .repe file whole, cut at every
// split point, byte by byte and in random reads: the receiver must see the
// same frames and errors every time (nats split_test.go).
func TestSplitEveryChunking(t *testing.T) {
	for _, f := range allConformanceFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			for _, limit := range []uint64{repe.DefaultMaxMessageSize, 0} {
				want := feedStream(t, f.data, limit, whole)
				require.NotEmpty(t, f.data)
				for k := 1; k < len(f.data); k++ {
					require.Equal(t, want, feedStream(t, f.data, limit, splitAt(k)), "split at %d", k)
				}
				require.Equal(t, want, feedStream(t, f.data, limit, bytewise), "byte by byte")
				for seed := range uint64(8) {
					require.Equal(t, want, feedStream(t, f.data, limit, randomChunks(seed)), "seed %d", seed)
				}
			}
		})
	}
}

// TestSplitConformanceFrames checks what the whole feed of each file gives:
// the frames of reply and repe-rs files are valid and cover the file, and a
// frame Split accepts is one Parse accepts.
func TestSplitConformanceFrames(t *testing.T) {
	for _, f := range allConformanceFiles(t) {
		res := feedStream(t, f.data, repe.DefaultMaxMessageSize, whole)
		for _, ev := range res.events {
			if ev.frame == nil || ev.err != nil {
				continue
			}
			m, err := repe.Parse(ev.frame)
			require.NoError(t, err, f.name)
			require.Len(t, m, len(ev.frame), f.name)
		}
		if bytes.Contains([]byte(f.name), []byte(".res.")) || bytes.HasPrefix([]byte(f.name), []byte("repe-rs/")) {
			assert.False(t, res.fatal, f.name)
			assert.Zero(t, res.pending, f.name)
			assert.Equal(t, len(f.data), res.consumed, f.name)
			for _, ev := range res.events {
				assert.Nil(t, ev.err, f.name)
			}
		}
	}
}

// TestSplitPipelined puts every recorded request that frames cleanly, the
// replies, the repe-rs fixtures and the inconsistent-but-framed requests
// (length mismatch and overflow) one after the other in a single stream, with
// a fatal frame last. Fed in any way, the stream must give exactly the
// concatenation of what each file gives alone.
func TestSplitPipelined(t *testing.T) {
	var stream []byte
	var want streamResult
	framed := 0
	for _, f := range allConformanceFiles(t) {
		alone := feedStream(t, f.data, repe.DefaultMaxMessageSize, whole)
		if alone.fatal || alone.pending != 0 || len(alone.events) == 0 {
			continue
		}
		stream = append(stream, f.data...)
		want.events = append(want.events, alone.events...)
		want.consumed += alone.consumed
		for _, ev := range alone.events {
			if ev.err != nil {
				framed++
			}
		}
	}
	require.GreaterOrEqual(t, framed, 4, "the stream holds invalid-but-framed frames")
	require.Greater(t, len(want.events), 150)

	// A fatal frame ends the stream: nothing after it is framed.
	magic := readConformance(t, "glaze", "wrong_magic.req.repe")
	stream = append(stream, magic...)
	stream = append(stream, readConformance(t, "glaze", "calc_get_value.req.repe")...)
	want.events = append(want.events, streamEvent{err: &repe.Error{
		Code: repe.InvalidHeader, Message: "REPE magic number mismatch: expected 0x1507, got 0x1234"}})
	want.fatal = true

	require.Equal(t, want, feedStream(t, stream, repe.DefaultMaxMessageSize, whole))
	require.Equal(t, want, feedStream(t, stream, repe.DefaultMaxMessageSize, bytewise))
	for k := 1; k < len(stream); k++ {
		require.Equal(t, want, feedStream(t, stream, repe.DefaultMaxMessageSize, splitAt(k)), "split at %d", k)
	}
	for seed := range uint64(32) {
		require.Equal(t, want, feedStream(t, stream, repe.DefaultMaxMessageSize, randomChunks(seed)), "seed %d", seed)
	}
}

// header returns a 48-byte header with the given fields and no query or
// body, so that callers can break it.
func header(length uint64, spec uint16, version uint8) []byte {
	b := repe.AppendHeader(nil, repe.Header{ID: 77}, 0, 0)
	binary.LittleEndian.PutUint64(b[repe.OffsetLength:], length)
	binary.LittleEndian.PutUint16(b[repe.OffsetSpec:], spec)
	b[repe.OffsetVersion] = version
	return b
}

// TestSplitDecidesEarly checks that Split answers as soon as the bytes that
// decide are there: the length at 8 bytes, the magic at 10, the version at
// 11, and needs more before that. Each prefix is an exact-capacity slice, so
// a read past it would panic.
func TestSplitDecidesEarly(t *testing.T) {
	const limit = repe.DefaultMaxMessageSize
	tests := []struct {
		name    string
		b       []byte
		maxSize uint64
		decides int // the shortest prefix that gives the error
		want    repe.Error
	}{
		{"length below header", header(20, repe.Magic, 1), limit, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"}},
		{"length zero", header(0, repe.Magic, 1), limit, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"}},
		{"length 47", header(47, repe.Magic, 1), limit, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"}},
		// A length below 48 is found before a bad magic.
		{"length below header and bad magic", header(1, 0xffff, 9), limit, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"}},
		{"over the limit", header(limit+1, repe.Magic, 1), limit, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "REPE message exceeds maximum allowed size: length 67108865, limit 67108864"}},
		{"over a small limit", header(49, repe.Magic, 1), 48, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "REPE message exceeds maximum allowed size: length 49, limit 48"}},
		{"over what an int indexes", header(math.MaxUint64, repe.Magic, 1), 0, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "REPE message exceeds maximum allowed size: length 18446744073709551615, limit " +
				strconv.FormatUint(math.MaxInt, 10)}},
		{"limit above what an int indexes", header(math.MaxInt+1, repe.Magic, 1), math.MaxUint64, 8,
			repe.Error{Code: repe.InvalidHeader, Message: "REPE message exceeds maximum allowed size: length 9223372036854775808, limit " +
				strconv.FormatUint(math.MaxInt, 10)}},
		{"bad magic", header(65, 0x1234, 1), limit, 10,
			repe.Error{Code: repe.InvalidHeader, Message: "REPE magic number mismatch: expected 0x1507, got 0x1234"}},
		{"magic byte-swapped", header(65, 0x0715, 1), limit, 10,
			repe.Error{Code: repe.InvalidHeader, Message: "REPE magic number mismatch: expected 0x1507, got 0x0715"}},
		{"version 0", header(65, repe.Magic, 0), limit, 11,
			repe.Error{Code: repe.VersionMismatch, Message: "REPE version mismatch: expected 1, got 0"}},
		{"version 255", header(65, repe.Magic, 255), limit, 11,
			repe.Error{Code: repe.VersionMismatch, Message: "REPE version mismatch: expected 1, got 255"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k := range tt.decides {
				n, err := repe.Split(tt.b[:k:k], tt.maxSize)
				require.Zero(t, n, "prefix %d", k)
				require.NoError(t, err, "prefix %d decided early", k)
			}
			for k := tt.decides; k <= len(tt.b); k++ {
				n, err := repe.Split(tt.b[:k:k], tt.maxSize)
				assert.Zero(t, n, "prefix %d", k)
				var e *repe.Error
				require.ErrorAs(t, err, &e, "prefix %d", k)
				assert.Equal(t, tt.want, *e, "prefix %d", k)
			}
		})
	}
}

// TestSplitNeedsMore checks the "read more" answer for a valid frame: it
// holds until the last byte arrives, then the frame is framed, trailing
// bytes excluded.
func TestSplitNeedsMore(t *testing.T) {
	frame := repe.AppendMessage(nil, repe.Header{ID: 5, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil)
	for k := range len(frame) {
		n, err := repe.Split(frame[:k:k], repe.DefaultMaxMessageSize)
		require.Zero(t, n, "prefix %d", k)
		require.NoError(t, err, "prefix %d", k)
	}
	stream := append(bytes.Clone(frame), 0x41, 0, 0)
	n, err := repe.Split(stream, repe.DefaultMaxMessageSize)
	require.NoError(t, err)
	assert.Equal(t, len(frame), n)
}

// TestSplitHugeLength: a header announcing 1 GiB under a larger limit makes
// Split wait, without reading past the bytes given or allocating; under the
// default limit it is refused as soon as its length field is there.
func TestSplitHugeLength(t *testing.T) {
	const gib = 1 << 30
	h := header(gib, repe.Magic, 1)
	binary.LittleEndian.PutUint64(h[repe.OffsetBodyLength:], gib-repe.HeaderSize)
	stream := append(h, make([]byte, 4096)...)

	for _, k := range []int{8, 11, 48, len(stream)} {
		n, err := repe.Split(stream[:k:k], 2*gib)
		require.NoError(t, err, "prefix %d", k)
		require.Zero(t, n, "prefix %d", k)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := repe.Split(stream[:48:48], 2*gib); n != 0 || err != nil {
			panic("decided")
		}
	})
	assert.Zero(t, allocs)

	n, err := repe.Split(stream[:8:8], repe.DefaultMaxMessageSize)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, repe.InvalidHeader)
	assert.ErrorContains(t, err, "length 1073741824, limit 67108864")
}

// TestSplitInconsistentFrame: a frame whose length disagrees with its query
// and body lengths is framed by its length and reported, so that the caller
// answers it and stays in sync (REPE.md §4.1); the next frame parses.
func TestSplitInconsistentFrame(t *testing.T) {
	bad := repe.AppendMessage(nil, repe.Header{ID: 9}, "/x", []byte("12"))
	binary.LittleEndian.PutUint64(bad[repe.OffsetBodyLength:], 5)
	good := repe.AppendMessage(nil, repe.Header{ID: 10}, "/y", nil)
	stream := append(bytes.Clone(bad), good...)

	n, err := repe.Split(stream, 0)
	require.Equal(t, len(bad), n)
	var e *repe.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, repe.Error{Code: repe.InvalidHeader, Message: "REPE length mismatch: expected 55, got 52"}, *e)
	assert.Equal(t, uint64(9), repe.PeekID(stream[:n]))

	n, err = repe.Split(stream[n:], 0)
	require.NoError(t, err)
	assert.Equal(t, len(good), n)
}

// TestCheckHeader checks that the header-only validation agrees with Parse
// on every way a header can be wrong, and accepts a header whose frame has
// not fully arrived.
func TestCheckHeader(t *testing.T) {
	valid := repe.AppendMessage(nil, repe.Header{ID: 9}, "/calculator/value", []byte("12"))
	set := func(off int, put func(b []byte)) []byte {
		b := slices.Clone(valid)
		put(b[off:])
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"short", valid[:47]},
		{"magic", set(repe.OffsetSpec, func(b []byte) { binary.LittleEndian.PutUint16(b, 0x1234) })},
		{"version", set(repe.OffsetVersion, func(b []byte) { b[0] = 2 })},
		{"overflow", set(repe.OffsetQueryLength, func(b []byte) { binary.LittleEndian.PutUint64(b, math.MaxUint64) })},
		{"mismatch", set(repe.OffsetLength, func(b []byte) { binary.LittleEndian.PutUint64(b, 1000) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, want := repe.Parse(tt.b)
			require.Error(t, want)
			assert.Equal(t, want, repe.CheckHeader(tt.b))
		})
	}
	assert.NoError(t, repe.CheckHeader(valid[:repe.HeaderSize]), "a header alone is enough")
	assert.NoError(t, repe.CheckHeader(valid))
}
