package repe_test

import (
	"testing"

	"github.com/repe-gw/repe-gw/repe"
)

// benchFrame is the request the recorded Glaze calculator case sends most:
// read /calculator/value (65 bytes).
func benchFrame() []byte {
	return repe.AppendMessage(nil, repe.Header{ID: 101, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil)
}

func BenchmarkSplit(b *testing.B) {
	b.Run("one frame", func(b *testing.B) {
		frame := benchFrame()
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			n, err := repe.Split(frame, repe.DefaultMaxMessageSize)
			if n != len(frame) || err != nil {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("32 pipelined", func(b *testing.B) {
		var stream []byte
		for range 32 {
			stream = append(stream, benchFrame()...)
		}
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		for b.Loop() {
			frames := 0
			for buf := stream; len(buf) > 0; frames++ {
				n, err := repe.Split(buf, repe.DefaultMaxMessageSize)
				if n == 0 || err != nil {
					b.Fatal(n, err)
				}
				buf = buf[n:]
			}
			if frames != 32 {
				b.Fatal(frames)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	frame := benchFrame()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := repe.Parse(frame)
		if err != nil || m.ID() != 101 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	body := []byte("5")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = repe.AppendResponse(buf[:0], 101, repe.OK, repe.BodyJSON, body)
	}
	if len(buf) != repe.HeaderSize+1 {
		b.Fatal(len(buf))
	}
}

func BenchmarkAppendError(b *testing.B) {
	const msg = "REPE length mismatch: expected 65, got 69"
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = repe.AppendError(buf[:0], 101, repe.InvalidHeader, msg)
	}
	if len(buf) != repe.HeaderSize+len(msg) {
		b.Fatal(len(buf))
	}
}
