package gateway_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
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

// TestNeverReadingClientsStayBounded: clients that pipeline requests and
// never read a reply cost the gateway a bounded amount of memory each, are
// closed, and do not stop a normal client from being served.
func TestNeverReadingClientsStayBounded(t *testing.T) {
	const (
		readers  = 4
		perConn  = 1 << 20 // MaxPendingOutput and MaxPendingInput
		body     = 16 << 10
		duration = 3 * time.Second
	)
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxPendingOutput: perConn, MaxPendingInput: perConn},
		gatewaytest.TestPlugin(t, "/gw"), gatewaytest.Calculator(t))

	var frames []byte
	for id := uint64(1); id <= 64; id++ {
		frames = repe.AppendMessage(frames, repe.Header{ID: id, BodyFormat: repe.BodyRaw}, "/gw/echo", make([]byte, body))
	}
	base := heapInUse()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			// Pipeline without reading; once the gateway closes the
			// connection, come back and do it again.
			for {
				c, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					return
				}
				for err == nil {
					select {
					case <-stop:
						c.Close()
						return
					default:
					}
					_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					_, err = c.Write(frames)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						err = nil // the gateway is not reading: still open
					}
				}
				c.Close()
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			peak.Store(max(peak.Load(), heapInUse()))
		}
	})

	// Meanwhile a normal client calls and reads, one request at a time,
	// for duration and then until every never-reading client has been
	// closed at least once: a loaded machine may take longer to get there,
	// and only a gateway that never closes them runs into the cap.
	c := gatewaytest.Dial(t, srv.Addr())
	var lat []time.Duration
	closedAll := func() bool {
		st := srv.Stats()
		return st.SlowConsumers+st.Floods >= readers
	}
	end, capped := time.Now().Add(duration), time.Now().Add(2*time.Minute)
	for time.Now().Before(end) || (len(lat)%64 != 0 || !closedAll()) && time.Now().Before(capped) {
		id := uint64(len(lat) + 1)
		start := time.Now()
		c.Send(gatewaytest.Request(id, "/calculator/value", ""))
		m := c.Next()
		lat = append(lat, time.Since(start))
		require.Equal(t, id, m.ID())
		require.Equal(t, repe.OK, m.EC())
	}
	close(stop)
	wg.Wait()

	grown := int64(peak.Load()) - int64(base)
	// Each stalled connection holds its unread replies and its input (in
	// gnet's ring buffer, which grows by doubling) and a job's requests and
	// replies, about 2 × (output + input); buffers of the connections just
	// closed wait in pools for a GC cycle or two, as much again at this
	// rate of reconnection.
	bound := int64(readers*4*2*perConn + 16<<20)
	slices.Sort(lat)
	st := srv.Stats()
	t.Logf("%d never-reading clients: heap grew by %.1f MiB at most (bound %.1f MiB); closed: %d slow consumers, %d floods; normal client: %d calls, p50 %v, p99 %v, max %v",
		readers, float64(grown)/(1<<20), float64(bound)/(1<<20), st.SlowConsumers, st.Floods,
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	assert.Less(t, grown, bound, "memory grew past what the per-connection bounds allow")
	// Whether a connection is closed for its unread replies or for what it
	// sent behind a call running on a worker depends on where calls run.
	assert.GreaterOrEqual(t, st.SlowConsumers+st.Floods, uint64(readers), "never-reading clients were not closed")
}

// TestStalledConnectionResumes: a client that sends requests whose replies
// are far over the output bound, and reads them only later, gets every
// reply, in order; the gateway serves the rest as the client reads.
func TestStalledConnectionResumes(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxPendingOutput: 256 << 10}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	const n, size = 200, 64 << 10 // 12.5 MiB of replies
	var reqs []byte
	for id := uint64(1); id <= n; id++ {
		reqs = repe.AppendMessage(reqs, repe.Header{ID: id, BodyFormat: repe.BodyJSON}, "/gw/fill", fmt.Appendf(nil, "%d", size))
	}
	c.Send(reqs)
	time.Sleep(200 * time.Millisecond) // the gateway stalls meanwhile
	for id := uint64(1); id <= n; id++ {
		m := c.Next()
		require.Equal(t, id, m.ID())
		require.Equal(t, repe.OK, m.EC())
		require.Len(t, m.Body(), size)
	}
	assert.Zero(t, srv.Stats().SlowConsumers)
}

// TestWriteTimeoutClosesSlowConsumer: a client whose unread replies stay
// over the bound for the write timeout is closed and counted.
func TestWriteTimeoutClosesSlowConsumer(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{MaxPendingOutput: 64 << 10, WriteTimeout: 100 * time.Millisecond},
		gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, srv.Addr())
	var reqs []byte
	for id := uint64(1); id <= 64; id++ {
		reqs = repe.AppendMessage(reqs, repe.Header{ID: id, BodyFormat: repe.BodyJSON}, "/gw/fill", []byte("1048576"))
	}
	c.Send(reqs)
	require.Eventually(t, func() bool { return srv.Stats().SlowConsumers == 1 }, gatewaytest.Timeout, 10*time.Millisecond)

	// Another connection is served as ever.
	c2 := gatewaytest.Dial(t, srv.Addr())
	c2.Send(gatewaytest.Request(1, "/gw/ping", ""))
	assertReply(t, c2.Next(), 1, repe.OK, "")
}
