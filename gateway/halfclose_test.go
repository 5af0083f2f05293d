package gateway_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestHalfCloseGetsEveryReply: a client that writes its requests and at once
// shuts down its side of the connection gets every reply, in order, before
// the gateway closes: for calls inline, on workers and with large frames.
func TestHalfCloseGetsEveryReply(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))

	// Promote /gw to inline calls first: a run of fast calls does it.
	warm := gatewaytest.Dial(t, srv.Addr())
	var pings []byte
	for id := uint64(1); id <= 1000; id++ {
		pings = append(pings, gatewaytest.Request(id, "/gw/ping", "")...)
	}
	warm.Send(pings)
	for range 1000 {
		warm.Next()
	}

	// A frame over gnet's 64 KiB read is read straight into a worker's job;
	// this one also takes 200 ms, so the end of the stream comes while it
	// runs.
	large := repe.AppendMessage(nil, repe.Header{ID: 1, BodyFormat: repe.BodyRaw}, "/slow/sleep", bytes.Repeat([]byte{'x'}, 70_000))
	cases := []struct {
		name string
		reqs [][]byte
	}{
		{"inline", [][]byte{gatewaytest.Request(1, "/gw/ping", ""), gatewaytest.Request(2, "/gw/ping", ""), gatewaytest.Request(3, "/nowhere", "")}},
		{"worker", [][]byte{gatewaytest.Request(1, "/slow/sleep", ""), gatewaytest.Request(2, "/gw/ping", ""), gatewaytest.Request(3, "/slow/sleep", "")}},
		{"large frame", [][]byte{large, gatewaytest.Request(2, "/gw/ping", "")}},
		{"bad frame last", [][]byte{gatewaytest.Request(1, "/slow/sleep", ""), badLength(2)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := gatewaytest.Dial(t, srv.Addr())
			c.Send(bytes.Join(tc.reqs, nil))
			require.NoError(t, c.Conn.(*net.TCPConn).CloseWrite())
			for i, req := range tc.reqs {
				m := c.Next()
				require.Equal(t, repe.Message(req).ID(), m.ID(), "reply %d", i)
			}
			c.ExpectClosed()
		})
	}
}

// badLength returns a frame whose length field disagrees with its query and
// body lengths: the gateway answers it with ec 2 and reads on.
func badLength(id uint64) []byte {
	b := gatewaytest.Request(id, "/gw/ping", "")
	b = append(b, 0)
	b[0]++
	return b
}
