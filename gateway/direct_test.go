package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// Large replies written by the worker straight from the plugin's buffer
// (direct.go): in order, counted, bounded, and never into another
// connection.

func fill(id uint64, n int) []byte {
	return repe.AppendMessage(nil, repe.Header{ID: id, BodyFormat: repe.BodyJSON}, "/gw/fill", fmt.Appendf(nil, "%d", n))
}

// TestLargeRepliesKeepOrder: small requests pipelined around large replies
// are answered in order, the large replies whole; they are counted as
// replies of the plugin, and written from the plugin's buffer.
func TestLargeRepliesKeepOrder(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	sizes := map[uint64]int{1: 3 << 20, 3: 2 << 20, 4: 5 << 20}
	var reqs []byte
	for id := uint64(1); id <= 6; id++ {
		if n, ok := sizes[id]; ok {
			reqs = append(reqs, fill(id, n)...)
		} else {
			reqs = append(reqs, gatewaytest.Request(id, "/gw/ping", "")...)
		}
	}
	go c.Send(reqs)
	for id := uint64(1); id <= 6; id++ {
		m, err := c.NextWithin(6 * gatewaytest.Timeout)
		require.NoError(t, err)
		require.Equal(t, id, m.ID())
		require.Equal(t, repe.OK, m.EC())
		require.Len(t, m.Body(), sizes[id], "reply %d", id)
		if n := sizes[id]; n > 0 {
			require.Equal(t, bytes.Repeat([]byte("x"), n), []byte(m.Body()))
		}
	}
	st := srv.Stats()
	assert.GreaterOrEqual(t, st.DirectBytes, uint64(2<<20), "no large reply was written from the plugin's buffer")
	total := 6*repe.HeaderSize + 10<<20
	assert.Equal(t, uint64(total), st.BytesOut)
	ps := srv.PluginStats()
	require.Len(t, ps, 1)
	assert.Equal(t, []gateway.ECCount{{EC: 0, Count: 6}}, ps[0].Replies)
}

// TestLargeReplyOverStreamTransport: the stream transport copies large
// replies as before.
func TestLargeReplyOverStreamTransport(t *testing.T) {
	srv, addr := gatewaytest.ServeStream(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, addr)
	c.Send(fill(1, 4<<20))
	m, err := c.NextWithin(6 * gatewaytest.Timeout)
	require.NoError(t, err)
	assert.Len(t, m.Body(), 4<<20)
	assert.Zero(t, srv.Stats().DirectBytes)
}

// TestLargeReplyToClientThatStopsReading: a client that stops reading in
// the middle of a large reply holds the plugin's only worker slot no longer
// than the worker's patience, costs about one reply of memory, and is closed
// as a slow consumer after the write timeout.
func TestLargeReplyToClientThatStopsReading(t *testing.T) {
	const size = 32 << 20
	srv, _ := gatewaytest.Serve(t, gateway.Config{PluginConcurrency: 1, WriteTimeout: 500 * time.Millisecond},
		gatewaytest.TestPlugin(t, "/gw"))
	base := heapInUse()
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(fill(1, size))
	head := make([]byte, 1<<20)
	_, err := io.ReadFull(c, head) // then reads no more
	require.NoError(t, err)

	// The plugin's one slot is free again: another client is served.
	c2 := gatewaytest.Dial(t, srv.Addr())
	c2.Send(gatewaytest.Request(2, "/gw/ping", ""))
	assertReply(t, c2.Next(), 2, repe.OK, "")
	grown := int64(heapInUse()) - int64(base)
	assert.Less(t, grown, int64(2*size), "a stalled large reply cost more than about one reply of memory")

	require.Eventually(t, func() bool { return srv.Stats().SlowConsumers == 1 }, gatewaytest.Timeout, 10*time.Millisecond)
	assert.NotZero(t, srv.Stats().DirectBytes, "the reply was not begun from the plugin's buffer")
	c2.Send(gatewaytest.Request(3, "/gw/ping", ""))
	assertReply(t, c2.Next(), 3, repe.OK, "")
}

// TestLargeReplyClientClosesMidReply: clients that close in the middle of a
// large reply do not get the rest of it sent to whoever connects next, even
// when the new connection gets the closed one's descriptor number.
func TestLargeReplyClientClosesMidReply(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	for i := range 8 {
		c, err := net.Dial("tcp", srv.Addr().String())
		require.NoError(t, err)
		_, err = c.Write(fill(1, 16<<20))
		require.NoError(t, err)
		_, err = io.ReadFull(c, make([]byte, 64<<10))
		require.NoError(t, err)
		require.NoError(t, c.Close()) // unread bytes: the close resets

		next := gatewaytest.Dial(t, srv.Addr())
		next.Send(gatewaytest.Request(uint64(100+i), "/gw/ping", ""))
		assertReply(t, next.Next(), uint64(100+i), repe.OK, "")
		next.ExpectSilence(100 * time.Millisecond)
	}
	// The gateway goes on serving large replies.
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(fill(9, 16<<20))
	m, err := c.NextWithin(6 * gatewaytest.Timeout)
	require.NoError(t, err)
	assert.Len(t, m.Body(), 16<<20)
	assert.NotZero(t, srv.Stats().DirectBytes, "no reply was written from the plugin's buffer")
}

// TestLargeReplyAfterHalfClose: a client that sends its request and ends its
// stream before reading gets the whole large reply.
func TestLargeReplyAfterHalfClose(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	c.Send(append(fill(1, 8<<20), gatewaytest.Request(2, "/gw/ping", "")...))
	require.NoError(t, c.Conn.(*net.TCPConn).CloseWrite())
	m, err := c.NextWithin(6 * gatewaytest.Timeout)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), m.ID())
	assert.Len(t, m.Body(), 8<<20)
	assertReply(t, c.Next(), 2, repe.OK, "")
	c.ExpectClosed()
}
