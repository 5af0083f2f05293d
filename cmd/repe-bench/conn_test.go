package main

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// socketless returns a connection with no socket, whose fill and process the
// tests drive directly: what the tool does per request, without the kernel.
func socketless(templates []template, pipeline int) *conn {
	frame := 0
	for _, t := range templates {
		frame = max(frame, len(t.frame))
	}
	p := &plan{
		templates: templates,
		pipeline:  pipeline,
		base:      time.Now(),
		timeout:   int64(time.Minute),
		maxReply:  defaultMaxReply,
		maxBatch:  clamp(pipeline*min(frame, largeFrame), max(minBatch, min(frame, largeFrame)), maxBatch),
		readSize:  clamp(2*pipeline*frame, minRead, maxRead),
		shards:    []histShard{{h: newHistogram()}},
		stop:      make(chan struct{}),
	}
	return newConn(p, nil, -1, 0, &p.shards[0])
}

func getValue() []template {
	h := repe.Header{QueryFormat: repe.QueryJSONPointer}
	return []template{{frame: repe.AppendMessage(nil, h, "/calculator/get_value", nil)}}
}

// cycle sends one window of requests and processes their echo, as one write
// and one read on a socket would.
func cycle(c *conn) int {
	now := c.p.now()
	n, _ := c.fill(now, true, math.MaxInt, c.p.pipeline-int(c.w.seq-c.retired.Load()))
	c.sent.Store(c.w.seq)
	c.r.end += copy(c.r.buf[c.r.end:], c.w.buf)
	c.process(c.p.now())
	c.retired.Store(c.r.head)
	return n
}

func TestCycle(t *testing.T) {
	c := socketless(getValue(), 32)
	for range 10 {
		require.Equal(t, 32, cycle(c))
	}
	st := c.r.st
	assert.Equal(t, int64(320), st.replies)
	assert.Equal(t, int64(320), st.ok)
	assert.Zero(t, st.failures)
	assert.Equal(t, int64(320), c.p.shards[0].h.TotalCount())
	assert.Equal(t, uint64(321), c.r.head)
}

// TestNoAllocsPerRequest is the tool's budget: building, checking and timing
// requests allocates nothing.
func TestNoAllocsPerRequest(t *testing.T) {
	for _, pipeline := range []int{1, 32} {
		c := socketless(getValue(), pipeline)
		allocs := testing.AllocsPerRun(1000, func() { cycle(c) })
		assert.Zero(t, allocs, "pipeline %d", pipeline)
	}
}

// TestFillMixedSizes checks the batch of small frames copied whole and large
// frames written from their template: the bytes written must be the frames
// in order, each with its own id.
func TestFillMixedSizes(t *testing.T) {
	small := repe.AppendMessage(nil, repe.Header{}, "/s", []byte("1"))
	large := repe.AppendMessage(nil, repe.Header{}, "/l", bytes.Repeat([]byte("y"), 100<<10))
	c := socketless([]template{{frame: small}, {frame: small}, {frame: large}, {frame: small}, {frame: large}, {frame: large}}, 64)
	c.p.maxBatch = maxBatch
	n, _ := c.fill(0, true, math.MaxInt, 64)
	// Byte budget: s s L s L fits 256 KiB, a third L does not.
	require.Equal(t, 5, n)
	var got []byte
	for _, b := range c.w.iov {
		got = append(got, b...)
	}
	var want []byte
	for i, f := range [][]byte{small, small, large, small, large} {
		m := append([]byte(nil), f...)
		repe.Message(m)[repe.OffsetID] = byte(i + 1)
		want = append(want, m...)
	}
	assert.Equal(t, len(want), len(got))
	assert.True(t, bytes.Equal(want, got), "batch bytes differ")
	assert.LessOrEqual(t, len(c.w.buf), cap(c.w.buf), "the buffer did not grow")
}

// BenchmarkCycle measures the tool's own work per request, kernel excluded.
func BenchmarkCycle(b *testing.B) {
	for _, pipeline := range []int{1, 32} {
		b.Run(fmt.Sprintf("P=%d", pipeline), func(b *testing.B) {
			c := socketless(getValue(), pipeline)
			b.ReportAllocs()
			requests := 0
			for b.Loop() {
				requests += cycle(c)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(requests), "ns/request")
		})
	}
}
