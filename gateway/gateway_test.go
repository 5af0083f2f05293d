package gateway_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// assertReply checks a reply's id, ec and body, and that it is laid out as
// Glaze's response builder lays replies out.
func assertReply(t *testing.T, m repe.Message, id uint64, ec repe.ErrorCode, body string) {
	t.Helper()
	require.NoError(t, func() error { _, err := repe.Parse(m); return err }())
	assert.Equal(t, id, m.ID(), "id")
	assert.Equal(t, ec, m.EC(), "ec")
	assert.Equal(t, body, string(m.Body()), "body")
	assert.Zero(t, m.QueryLength(), "query echoed")
	assert.Zero(t, m.NotifyByte(), "notify")
	if ec != repe.OK {
		assert.Equal(t, repe.BodyUTF8, m.BodyFormat(), "body format of an error")
	}
}

func TestCalculatorOverTCP(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	c := gatewaytest.Dial(t, srv.Addr())

	c.Send(gatewaytest.Request(1, "/calculator/set_value", "41.5"))
	assertReply(t, c.Next(), 1, repe.OK, "null")
	c.Send(gatewaytest.Request(2, "/calculator/increment", ""))
	assertReply(t, c.Next(), 2, repe.OK, "42.5")
	c.Send(gatewaytest.Request(3, "/calculator", ""))
	assertReply(t, c.Next(), 3, repe.OK, `{"value":42.5}`)
	c.Send(gatewaytest.Request(4, "/calculator/nope", ""))
	assertReply(t, c.Next(), 4, repe.MethodNotFound, "invalid_query: /calculator/nope")
	c.Send(gatewaytest.Request(5, "/nothing", ""))
	assertReply(t, c.Next(), 5, repe.MethodNotFound, "No plugin registered for path")
	c.Send(gatewaytest.Request(6, "/calculatorX/value", ""))
	assertReply(t, c.Next(), 6, repe.MethodNotFound, "No plugin registered for path")
}

func TestPipelinedRequestsInOneWrite(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	c := gatewaytest.Dial(t, srv.Addr())

	const n = 10000
	var batch []byte
	for i := range uint64(n) {
		if i%2 == 0 {
			batch = append(batch, gatewaytest.Request(i, "/calculator/set_value", fmt.Sprint(i))...)
		} else {
			batch = append(batch, gatewaytest.Request(i, "/calculator/get_value", "")...)
		}
	}
	go c.Send(batch) // the replies must be read while the batch is written
	for i := range uint64(n) {
		m := c.Next()
		require.Equal(t, i, m.ID(), "reply %d out of order", i)
		if i%2 == 0 {
			assertReply(t, m, i, repe.OK, "null")
		} else {
			// Each get sees the set just before it: one connection's
			// requests run in order.
			assertReply(t, m, i, repe.OK, fmt.Sprint(i-1))
		}
	}
}

func TestRequestOneByteAtATime(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	c := gatewaytest.Dial(t, srv.Addr())
	req := gatewaytest.Request(77, "/calculator/set_value", "3.25")
	for _, b := range req {
		c.Send([]byte{b})
		time.Sleep(time.Millisecond)
	}
	assertReply(t, c.Next(), 77, repe.OK, "null")
	c.Send(gatewaytest.Request(78, "/calculator/value", ""))
	assertReply(t, c.Next(), 78, repe.OK, "3.25")
}

func TestConcurrentConnections(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/gw"))
	const conns, perConn = 50, 200
	var wg sync.WaitGroup
	for i := range conns {
		c := gatewaytest.Dial(t, srv.Addr())
		wg.Go(func() {
			for j := range perConn {
				id := uint64(i*perConn + j)
				body := fmt.Sprintf(`"conn %d request %d"`, i, j)
				c.Send(gatewaytest.Request(id, "/gw/echo", body))
				m := c.Next()
				if !assert.Equal(t, id, m.ID()) || !assert.Equal(t, body, string(m.Body())) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSlowPluginDoesNotStall checks that while one plugin's calls each take
// 200 ms, requests to another plugin on other connections are answered in
// the meantime, and that the slow calls of different connections run at
// once.
func TestSlowPluginDoesNotStall(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{EventLoops: 2, PluginConcurrency: 8},
		gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/slow"))

	// Warm the calculator up so that its calls run on the event loops:
	// that is where a stall would hurt.
	warm := gatewaytest.Dial(t, srv.Addr())
	for i := range uint64(200) {
		warm.Send(gatewaytest.Request(i, "/calculator/get_value", ""))
		warm.Next()
	}

	const slowConns = 6
	var slowAnswered atomic.Bool
	var wg sync.WaitGroup
	for i := range slowConns {
		c := gatewaytest.Dial(t, srv.Addr())
		// The first call takes 3 s: a window that the calculator's 200
		// calls fit in even on a loaded machine.
		c.Send(gatewaytest.Request(0, "/slow/nap", "3000"))
		wg.Go(func() {
			for j := range 3 {
				if j > 0 {
					c.Send(gatewaytest.Request(uint64(j), "/slow/sleep", ""))
				}
				m := c.Next()
				slowAnswered.Store(true)
				if m.EC() != repe.OK {
					t.Errorf("slow call %d on connection %d: ec %d", j, i, m.EC())
				}
			}
		})
	}

	// The slow calls were sent first; had they held the event loops, no
	// calculator reply could come back before one of them did.
	fast := make([]*gatewaytest.Conn, 4)
	for i := range fast {
		fast[i] = gatewaytest.Dial(t, srv.Addr())
	}
	before := 0
	for i := range 200 {
		c := fast[i%len(fast)]
		c.Send(gatewaytest.Request(uint64(i), "/calculator/get_value", ""))
		require.Equal(t, repe.OK, c.Next().EC())
		if !slowAnswered.Load() {
			before++
		}
	}
	wg.Wait()
	t.Logf("%d of 200 calculator replies came while the first slow calls ran", before)
	assert.GreaterOrEqual(t, before, 50, "a slow plugin stalled the gateway")

	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(gatewaytest.Request(1, "/slow/inside", ""))
	m := c.Next()
	assert.Equal(t, "6", string(m.Body()), "slow calls from different connections did not run at once")
}

// TestPluginConcurrencyLimit: calls from different connections run in
// parallel, but never more than PluginConcurrency at once into one plugin.
func TestPluginConcurrencyLimit(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{PluginConcurrency: 2}, gatewaytest.TestPlugin(t, "/slow"))
	conns := make([]*gatewaytest.Conn, 4)
	for i := range conns {
		conns[i] = gatewaytest.Dial(t, srv.Addr())
	}
	for i, c := range conns {
		c.Send(gatewaytest.Request(uint64(i), "/slow/sleep", ""))
	}
	for _, c := range conns {
		c.Next()
	}
	c := conns[0]
	c.Send(gatewaytest.Request(9, "/slow/inside", ""))
	assertReply(t, c.Next(), 9, repe.OK, "2")
}

func TestNotifyGetsNoReply(t *testing.T) {
	srv, host := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(gatewaytest.Notify("/calculator/set_value", "5"))
	c.Send(gatewaytest.Notify("/nothing", ""))         // no plugin: still silent
	c.Send(gatewaytest.Notify("/calculator/nope", "")) // the plugin's own error: silent
	c.Send(gatewaytest.Notify("/calculator/set_value", "{bad"))
	c.Send(gatewaytest.Notify("/gw/notify", "")) // the plugin replies anyway
	notifyTwo := gatewaytest.Notify("/calculator/set_value", "6")
	notifyTwo[repe.OffsetNotify] = 2 // any non-zero byte means notify
	c.Send(notifyTwo)
	c.ExpectSilence(200 * time.Millisecond)

	// The next reply on the connection answers the next request: nothing
	// stray was sent in between.
	c.Send(gatewaytest.Request(9, "/calculator/value", ""))
	assertReply(t, c.Next(), 9, repe.OK, "6")
	var dropped uint64
	for _, p := range host.Plugins() {
		dropped += p.DroppedNotifyReplies()
	}
	assert.Equal(t, uint64(1), dropped, "replies to notifies dropped")
}

func TestRequestWithErrorCodeIsForwarded(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	c := gatewaytest.Dial(t, srv.Addr())
	req := gatewaytest.Request(5, "/calculator/value", "")
	binary.LittleEndian.PutUint32(req[repe.OffsetEC:], uint32(repe.InvalidBody))
	c.Send(req)
	// The plugin answers as a Glaze registry does: the ec echoed, no body.
	assertReply(t, c.Next(), 5, repe.InvalidBody, "")
}

func TestFramingErrors(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxMessageSize: 1 << 20}, gatewaytest.Calculator(t))
	valid := func(id uint64) []byte { return gatewaytest.Request(id, "/calculator/value", "") }
	withU64 := func(b []byte, off int, v uint64) []byte {
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	t.Run("bad magic closes", func(t *testing.T) {
		c := gatewaytest.Dial(t, srv.Addr())
		req := valid(11)
		binary.LittleEndian.PutUint16(req[repe.OffsetSpec:], 0x1234)
		c.Send(req)
		assertReply(t, c.Next(), 11, repe.InvalidHeader, "REPE magic number mismatch: expected 0x1507, got 0x1234")
		c.ExpectClosed()
	})
	t.Run("bad version closes", func(t *testing.T) {
		c := gatewaytest.Dial(t, srv.Addr())
		req := valid(12)
		req[repe.OffsetVersion] = 2
		c.Send(req)
		assertReply(t, c.Next(), 12, repe.VersionMismatch, "REPE version mismatch: expected 1, got 2")
		c.ExpectClosed()
	})
	t.Run("length below header closes", func(t *testing.T) {
		c := gatewaytest.Dial(t, srv.Addr())
		c.Send(withU64(valid(13), repe.OffsetLength, 20))
		assertReply(t, c.Next(), 13, repe.InvalidHeader, "Invalid header")
		c.ExpectClosed()
	})
	t.Run("length mismatch keeps the stream", func(t *testing.T) {
		c := gatewaytest.Dial(t, srv.Addr())
		req := append(withU64(valid(14), repe.OffsetLength, uint64(len(valid(0))+4)), 0, 0, 0, 0)
		req = append(req, valid(15)...)
		c.Send(req)
		assertReply(t, c.Next(), 14, repe.InvalidHeader, fmt.Sprintf("REPE length mismatch: expected %d, got %d", len(valid(0)), len(valid(0))+4))
		require.Equal(t, uint64(15), c.Next().ID())
	})
	t.Run("length overflow keeps the stream", func(t *testing.T) {
		c := gatewaytest.Dial(t, srv.Addr())
		c.Send(withU64(valid(16), repe.OffsetQueryLength, 1<<64-1))
		assertReply(t, c.Next(), 16, repe.InvalidHeader, fmt.Sprintf("REPE length overflow: query_length %d + body_length 0 exceed uint64_t", uint64(1<<64-1)))
		c.Send(valid(17))
		require.Equal(t, uint64(17), c.Next().ID())
	})
	t.Run("malformed notify is still answered", func(t *testing.T) {
		c := gatewaytest.Dial(t, srv.Addr())
		req := gatewaytest.Notify("/calculator/value", "")
		binary.LittleEndian.PutUint64(req[repe.OffsetBodyLength:], 5)
		c.Send(req)
		assert.Equal(t, repe.InvalidHeader, c.Next().EC())
	})
}

func TestOversizedLengthIsRefusedWithoutBuffering(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	c := gatewaytest.Dial(t, srv.Addr())
	req := gatewaytest.Request(21, "/calculator/value", "")
	binary.LittleEndian.PutUint64(req[repe.OffsetLength:], 1<<40) // 1 TiB
	before := heapInUse()
	c.Send(req)
	// Keep sending "body" the header announced: the gateway must have
	// closed the connection instead of buffering it.
	junk := bytes.Repeat([]byte{'x'}, 1<<20)
	for range 64 {
		if _, err := c.Write(junk); err != nil {
			break
		}
	}
	m := c.Next()
	assert.Equal(t, uint64(21), m.ID())
	assert.Equal(t, repe.InvalidHeader, m.EC())
	assert.True(t, strings.HasPrefix(string(m.Body()), "REPE message exceeds maximum allowed size"), string(m.Body()))
	c.ExpectClosed()
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew by %d bytes", grown)
	assert.Less(t, grown, int64(8<<20), "the gateway buffered what the header claimed")
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func TestStalledHalfFrameIsClosed(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{ReadTimeout: 200 * time.Millisecond}, gatewaytest.Calculator(t))
	idle := gatewaytest.Dial(t, srv.Addr())
	idle.Send(gatewaytest.Request(1, "/calculator/value", ""))
	idle.Next()

	stalled := gatewaytest.Dial(t, srv.Addr())
	req := gatewaytest.Request(2, "/calculator/value", "")
	start := time.Now()
	stalled.Send(req[:30])
	stalled.ExpectClosed()
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "closed before the read timeout")

	// A connection idle between frames is left alone.
	idle.Send(gatewaytest.Request(3, "/calculator/value", ""))
	assert.Equal(t, uint64(3), idle.Next().ID())
}

func TestMaxConns(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxConns: 2}, gatewaytest.Calculator(t))
	a, b := gatewaytest.Dial(t, srv.Addr()), gatewaytest.Dial(t, srv.Addr())
	a.Send(gatewaytest.Request(1, "/calculator/value", ""))
	a.Next()
	b.Send(gatewaytest.Request(2, "/calculator/value", ""))
	b.Next()
	gatewaytest.Dial(t, srv.Addr()).ExpectClosed()
	a.Close()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		if _, err := c.Write(gatewaytest.Request(3, "/calculator/value", "")); err != nil {
			return false
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		var hdr [repe.HeaderSize]byte
		_, err = c.Read(hdr[:])
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "a freed slot is not reused")
}

func TestLargeBodyPassesThrough(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	req := repe.AppendMessage(nil, repe.Header{ID: 31, BodyFormat: repe.BodyRaw}, "/gw/echo", body)
	go c.Send(req)
	// 32 MiB through loopback takes seconds under the race detector on a
	// busy machine: wait for it longer than for a small reply.
	m, err := c.NextWithin(6 * gatewaytest.Timeout)
	require.NoError(t, err)
	assert.Equal(t, uint64(31), m.ID())
	assert.True(t, bytes.Equal(body, m.Body()), "body changed on the way")
}

// TestLargeFrames covers frames big enough to be read straight into a
// worker's buffer while they arrive, and the ones the gateway answers itself.
func TestLargeFrames(t *testing.T) {
	srv, host := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	body := bytes.Repeat([]byte{7}, 1<<20)
	large := func(id uint64, query string) []byte {
		return repe.AppendMessage(nil, repe.Header{ID: id, BodyFormat: repe.BodyRaw}, query, body)
	}
	c := gatewaytest.Dial(t, srv.Addr())

	// Sent in small pieces, with a small request pipelined behind it.
	req := append(large(1, "/gw/echo"), gatewaytest.Request(2, "/gw/ping", "")...)
	go func() {
		for len(req) > 0 {
			n := min(len(req), 100_000)
			c.Send(req[:n])
			req = req[n:]
			time.Sleep(time.Millisecond)
		}
	}()
	m := c.Next()
	assert.Equal(t, uint64(1), m.ID())
	assert.True(t, bytes.Equal(body, m.Body()))
	assert.Equal(t, uint64(2), c.Next().ID())

	// No plugin owns it: buffered whole and answered by the gateway.
	c.Send(large(3, "/nothing"))
	assertReply(t, c.Next(), 3, repe.MethodNotFound, "No plugin registered for path")

	// A notify gets no reply, and the connection goes on.
	notify := large(4, "/gw/echo")
	notify[repe.OffsetNotify] = 1
	c.Send(notify)
	c.Send(gatewaytest.Request(5, "/gw/ping", ""))
	assert.Equal(t, uint64(5), c.Next().ID())

	// A peer that leaves in the middle of a large frame costs nothing more.
	gone := gatewaytest.Dial(t, srv.Addr())
	gone.Send(large(6, "/gw/echo")[:300_000])
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, gone.Close())
	c.Send(gatewaytest.Request(7, "/gw/ping", ""))
	assert.Equal(t, uint64(7), c.Next().ID())
	assert.Zero(t, host.Plugins()[0].DroppedNotifyReplies(), "the echo plugin does not answer notifies")
}

// TestOverflowBehindSlowCall: a connection that sends more than the gateway
// will hold while an earlier request runs gets that request's reply, then an
// error for the first request dropped, then a close; nothing is lost
// silently and memory stays bounded.
func TestOverflowBehindSlowCall(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxPendingInput: 1 << 20}, gatewaytest.TestPlugin(t, "/slow"))
	c := gatewaytest.Dial(t, srv.Addr())
	// The call takes 3 s, time enough to send the flood on a loaded machine.
	c.Send(gatewaytest.Request(1, "/slow/nap", "3000"))
	body := bytes.Repeat([]byte{'x'}, 32<<10)
	go func() {
		for id := uint64(2); id < 200; id++ { // 6 MiB, over the frame and 1 MiB the gateway holds
			if _, err := c.Write(repe.AppendMessage(nil, repe.Header{ID: id}, "/slow/echo", body)); err != nil {
				return
			}
		}
	}()
	assertReply(t, c.Next(), 1, repe.OK, "")
	m := c.Next()
	assert.Equal(t, uint64(2), m.ID())
	assert.Equal(t, repe.ConnectionFailure, m.EC())
	assert.Contains(t, string(m.Body()), "connection closed: more than 1048576 bytes of requests arrived behind one frame while an earlier request was running")
	c.ExpectClosed()
}

func TestGracefulShutdown(t *testing.T) {
	log := filepath.Join(t.TempDir(), "events")
	logFlag := fmt.Sprintf(`-DGW_LOG="%s"`, log)
	srv, host := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/one", logFlag), gatewaytest.TestPlugin(t, "/two", logFlag))
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(gatewaytest.Request(1, "/one/sleep", ""))
	time.Sleep(50 * time.Millisecond) // the call is running

	ctx := t.Context()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, host.Close(ctx))
	require.NoError(t, host.Close(ctx), "a second close is harmless")

	// The request in flight was answered before the connection closed.
	assertReply(t, c.Next(), 1, repe.OK, "")
	c.ExpectClosed()
	_, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second)
	if err == nil {
		t.Error("the gateway still accepts connections after shutdown")
	}

	events, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"one init", "two init", "one shutdown", "two shutdown"},
		strings.Split(strings.TrimSpace(string(events)), "\n"))
}
