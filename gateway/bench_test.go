package gateway_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// BenchmarkRequestPath measures the whole request path in process: TCP
// loopback, framing, routing, the calculator plugin and the reply write, with
// conns connections each keeping depth requests in flight. One op is one
// request; allocs/op counts the whole process, client included.
func BenchmarkRequestPath(b *testing.B) {
	for _, tc := range []struct{ conns, depth int }{{1, 1}, {4, 32}} {
		b.Run(fmt.Sprintf("c%d-P%d", tc.conns, tc.depth), func(b *testing.B) {
			srv, _ := gatewaytest.Serve(b, gateway.Config{}, gatewaytest.Calculator(b))
			benchPipelined(b, srv.Addr(), tc.conns, tc.depth, "/calculator/get_value")
		})
	}
}

// benchPipelined runs b.N requests for query on conns connections to
// addr, each keeping depth in flight, after a warm-up of 200 rounds each
// (past a plugin's probation).
func benchPipelined(b *testing.B, addr net.Addr, conns, depth int, query string) {
	clients := make([]*pipeliner, conns)
	for i := range clients {
		clients[i] = newPipeliner(b, addr, depth, query)
		clients[i].round(b, 200)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/(conns*depth) + 1
	for _, c := range clients {
		wg.Go(func() { c.round(b, per) })
	}
	wg.Wait()
	b.ReportMetric(float64(per*conns*depth)/float64(b.N), "req/op")
}

// pipeliner writes depth requests at a time on one connection and reads
// their replies, without allocating.
type pipeliner struct {
	conn  net.Conn
	batch []byte
	store []byte // the read buffer
	buf   []byte // the unparsed bytes within store
	depth int
}

func newPipeliner(tb testing.TB, addr net.Addr, depth int, query string) *pipeliner {
	c, err := net.Dial("tcp", addr.String())
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	p := &pipeliner{conn: c, depth: depth, store: make([]byte, 64<<10)}
	p.buf = p.store[:0]
	for i := range depth {
		p.batch = repe.AppendMessage(p.batch, repe.Header{ID: uint64(i), QueryFormat: repe.QueryJSONPointer}, query, nil)
	}
	return p
}

// round sends rounds batches and checks every reply's ec.
func (p *pipeliner) round(tb testing.TB, rounds int) {
	for range rounds {
		if _, err := p.conn.Write(p.batch); err != nil {
			tb.Error(err)
			return
		}
		for got := 0; got < p.depth; {
			n, err := repe.Split(p.buf, 0)
			if err != nil {
				tb.Error(err)
				return
			}
			if n > 0 {
				if ec := repe.Message(p.buf[:n]).EC(); ec != repe.OK {
					tb.Errorf("reply ec %d", ec)
					return
				}
				p.buf = p.buf[n:]
				got++
				continue
			}
			if cap(p.buf)-len(p.buf) < 4096 {
				p.buf = p.store[:copy(p.store, p.buf)]
			}
			k, err := p.conn.Read(p.buf[len(p.buf):cap(p.buf)])
			if err != nil && err != io.EOF {
				tb.Error(err)
				return
			}
			p.buf = p.buf[:len(p.buf)+k]
		}
	}
}

// BenchmarkLargeBody sends a 16 MiB body through the echo test plugin and
// reads it back; MB/s counts the body once.
func BenchmarkLargeBody(b *testing.B) {
	srv, _ := gatewaytest.Serve(b, gateway.Config{}, gatewaytest.TestPlugin(b, "/gw"))
	body := make([]byte, 16<<20)
	for i := range body {
		body[i] = byte(i)
	}
	req := repe.AppendMessage(nil, repe.Header{ID: 1, BodyFormat: repe.BodyRaw}, "/gw/echo", body)
	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(b, err)
	defer c.Close()
	reply := make([]byte, repe.HeaderSize+len(body))
	roundTrip := func() {
		errc := make(chan error, 1)
		go func() { _, err := c.Write(req); errc <- err }()
		if _, err := io.ReadFull(c, reply); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	roundTrip()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		roundTrip()
	}
	b.StopTimer()
	if m := repe.Message(reply); m.BodyLength() != uint64(len(body)) || m.Body()[12345] != body[12345] {
		b.Fatal("the body changed on the way")
	}
}

// BenchmarkConnect measures what a connection costs apart from its
// requests: one op dials, makes one call, reads its reply and closes. It
// runs with and without ReusePort, by one client at a time and by eight at
// once.
func BenchmarkConnect(b *testing.B) {
	for _, reusePort := range []bool{false, true} {
		srv, _ := gatewaytest.Serve(b, gateway.Config{ReusePort: reusePort}, gatewaytest.Calculator(b))
		addr := srv.Addr().String()
		req := repe.AppendMessage(nil, repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}, "/calculator/get_value", nil)
		connect := func(reply []byte) error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write(req); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, reply[:repe.HeaderSize]); err != nil {
				return err
			}
			m := repe.Message(reply)
			if _, err := io.ReadFull(c, reply[repe.HeaderSize:m.Length()]); err != nil {
				return err
			}
			if ec := m.EC(); ec != repe.OK {
				return fmt.Errorf("reply ec %d", ec)
			}
			return nil
		}
		b.Run(fmt.Sprintf("reuseport=%t/serial", reusePort), func(b *testing.B) {
			reply := make([]byte, 4096)
			for b.Loop() {
				if err := connect(reply); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
		b.Run(fmt.Sprintf("reuseport=%t/parallel8", reusePort), func(b *testing.B) {
			b.SetParallelism(8 / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				reply := make([]byte, 4096)
				for pb.Next() {
					if err := connect(reply); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}
