package gateway_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// readAll reads what the server sends until it closes the connection.
func readAll(t *testing.T, addr net.Addr, send []byte) []byte {
	t.Helper()
	c := gatewaytest.Dial(t, addr)
	c.Send(send)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(gatewaytest.Timeout)))
	got, err := io.ReadAll(c.Conn)
	var oe *net.OpError
	if err != nil && !(errors.As(err, &oe) && !oe.Timeout()) {
		t.Fatalf("reading until the server closes: %v", err)
	}
	return got
}

// TestStreamTransportAnswersAsGnet: one server serves its gnet listener and
// a std listener at once, and both answer the same bytes with the same
// bytes: plugin calls inline and on workers, a large frame, the gateway's own
// errors, a notify, and a frame after which the stream cannot be framed.
func TestStreamTransportAnswersAsGnet(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()

	large := repe.AppendMessage(nil, repe.Header{ID: 5, BodyFormat: repe.BodyRaw}, "/gw/echo", bytes.Repeat([]byte{'x'}, 300_000))
	badMagic := gatewaytest.Request(9, "/gw/ping", "")
	badMagic[8] = 0
	script := bytes.Join([][]byte{
		gatewaytest.Request(1, "/gw/echo", `"one"`),
		gatewaytest.Request(2, "/slow/sleep", ""),
		gatewaytest.Request(3, "/nowhere", ""),
		gatewaytest.Notify("/gw/ping", ""),
		gatewaytest.Notify("/nowhere", ""),
		badLength(4),
		large,
		gatewaytest.Request(6, "/gw/echo", `"six"`),
		badMagic,
		gatewaytest.Request(10, "/gw/ping", ""),
	}, nil)

	fromGnet := readAll(t, srv.Addr(), script)
	fromStream := readAll(t, ln.Addr(), script)
	var ids []uint64
	for b := fromGnet; len(b) > 0; {
		n, err := repe.Split(b, 0)
		require.NoError(t, err)
		require.NotZero(t, n, "a partial reply")
		ids = append(ids, repe.Message(b[:n]).ID())
		b = b[n:]
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 9}, ids, "the replies of the gnet transport")
	require.True(t, bytes.Equal(fromGnet, fromStream), "the transports answered differently: %d and %d bytes", len(fromGnet), len(fromStream))
}

// TestStreamHalfClose: a client of the stream transport that ends its
// stream after its requests gets every reply, then the close.
func TestStreamHalfClose(t *testing.T) {
	_, addr := gatewaytest.ServeStream(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/slow"))
	c := gatewaytest.Dial(t, addr)
	c.Send(bytes.Join([][]byte{
		gatewaytest.Request(1, "/slow/sleep", ""),
		gatewaytest.Request(2, "/slow/ping", ""),
		gatewaytest.Request(3, "/nowhere", ""),
	}, nil))
	require.NoError(t, c.Conn.(*net.TCPConn).CloseWrite())
	for id := uint64(1); id <= 3; id++ {
		require.Equal(t, id, c.Next().ID())
	}
	c.ExpectClosed()
}

// TestStreamOverflowBehindSlowCall: the input bound behind a running call
// holds on the stream transport as on gnet: the call is answered, the first
// request dropped gets ec 9, and the connection closes.
func TestStreamOverflowBehindSlowCall(t *testing.T) {
	_, addr := gatewaytest.ServeStream(t, gateway.Config{MaxPendingInput: 64 << 10}, gatewaytest.TestPlugin(t, "/slow"))
	c := gatewaytest.Dial(t, addr)
	var flood []byte
	flood = append(flood, nap(1, "/slow", 300)...)
	for id := uint64(2); len(flood) < 1<<20; id++ {
		flood = append(flood, gatewaytest.Request(id, "/slow/echo", `"`+string(bytes.Repeat([]byte{'y'}, 1000))+`"`)...)
	}
	go func() { _, _ = c.Write(flood) }() // the gateway stops reading it
	assertReply(t, c.Next(), 1, repe.OK, "")
	m := c.Next()
	assert.Equal(t, repe.ConnectionFailure, m.EC())
	assert.Greater(t, m.ID(), uint64(1))
	c.ExpectClosed()
}

// TestStreamSlowConsumer: a client of the stream transport that never reads
// is closed once a write has waited WriteTimeout, and counted; the gateway
// stops reading it meanwhile instead of queueing its replies.
func TestStreamSlowConsumer(t *testing.T) {
	// The input bound is wide, so that the close is for the replies: 32 MiB
	// of them is more than the sockets' buffers hold.
	srv, addr := gatewaytest.ServeStream(t, gateway.Config{WriteTimeout: 200 * time.Millisecond, MaxPendingInput: 64 << 20},
		gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, addr)
	req := repe.AppendMessage(nil, repe.Header{ID: 1, BodyFormat: repe.BodyRaw}, "/gw/echo", bytes.Repeat([]byte{'z'}, 64<<10))
	done := make(chan error, 1)
	go func() {
		for range 512 {
			if _, err := c.Write(req); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	require.Eventually(t, func() bool { return srv.Stats().SlowConsumers == 1 }, gatewaytest.Timeout, 10*time.Millisecond)
	require.NoError(t, c.Close())
	<-done
}

// TestStreamDeadline: a plugin's deadline holds on the stream transport: ec
// 7, then the next request in order.
func TestStreamDeadline(t *testing.T) {
	_, addr := gatewaytest.ServeStream(t, gateway.Config{Deadline: 100 * time.Millisecond}, gatewaytest.TestPlugin(t, "/gw"))
	c := gatewaytest.Dial(t, addr)
	c.Send(append(nap(1, "/gw", 2000), gatewaytest.Request(2, "/gw/ping", "")...))
	m := c.Next()
	require.Equal(t, repe.Timeout, m.EC())
	assertReply(t, c.Next(), 2, repe.OK, "")
}

// TestTLS: the stream transport serves a tls.Listener, so a TLS client
// reaches the plugins through the same core.
func TestTLS(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()

	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(gatewaytest.Timeout)))
	_, err = nc.Write(append(gatewaytest.Request(1, "/calculator/value", "41.5"), gatewaytest.Request(2, "/calculator/increment", "")...))
	require.NoError(t, err)
	var got []byte
	buf := make([]byte, 4096)
	for ids := 0; ids < 2; {
		n, err := nc.Read(buf)
		require.NoError(t, err)
		got = append(got, buf[:n]...)
		for {
			k, _ := repe.Split(got, 0)
			if k == 0 {
				break
			}
			m := repe.Message(got[:k])
			ids++
			assert.Equal(t, uint64(ids), m.ID())
			assert.Equal(t, repe.OK, m.EC())
			if ids == 2 {
				assert.Equal(t, "42.5", string(m.Body()))
			}
			got = got[k:]
		}
	}
}

// selfSigned makes a certificate for localhost and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
