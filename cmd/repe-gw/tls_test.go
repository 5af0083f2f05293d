package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/tlstest"
)

// tlsGateway is a gateway serving the calculator over TCP and over TLS
// with a server certificate signed by ca.
type tlsGateway struct {
	*process
	tlsAddr, dir, cert, key string
	ca                      *tlstest.CA
}

func startTLSGateway(t *testing.T, bin string, args ...string) *tlsGateway {
	t.Helper()
	dir := t.TempDir()
	g := &tlsGateway{dir: dir, tlsAddr: freeAddr(t), ca: tlstest.NewCA(t, dir, "server-ca")}
	g.cert, g.key = g.ca.Server(t, dir, "server")
	g.process = startGateway(t, bin, append([]string{"--plugin", gatewaytest.Calculator(t),
		"--tls-addr", g.tlsAddr, "--tls-cert", g.cert, "--tls-key", g.key}, args...)...)
	g.waitLog(t, "msg=\"listening for TLS\" addr="+g.tlsAddr)
	return g
}

// dial returns a client of the TLS listener that trusts the server's CA,
// with cfg's client certificate if any.
func (g *tlsGateway) dial(t *testing.T, files client.TLSFiles) (*client.Client, error) {
	t.Helper()
	files.CACert = g.ca.CertFile
	tc, err := client.TLSConfig(files)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	return client.Dial(ctx, g.tlsAddr, &client.Config{TLS: tc})
}

func tlsCall(t *testing.T, c *client.Client, query, body string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	r, err := c.Call(ctx, query, b)
	return string(r.Body), err
}

// TestTLS: the Go client calls the calculator over TLS 1.3; a client
// limited to TLS 1.2 is served too, and one limited to 1.1 is refused.
func TestTLS(t *testing.T) {
	g := startTLSGateway(t, buildGateway(t))
	c, err := g.dial(t, client.TLSFiles{})
	require.NoError(t, err)
	defer c.Close()
	_, err = tlsCall(t, c, "/calculator/set_value", "41.5")
	require.NoError(t, err)
	got, err := tlsCall(t, c, "/calculator/increment", "")
	require.NoError(t, err)
	assert.Equal(t, "42.5", got)
	_, err = tlsCall(t, c, "/nope", "")
	assert.ErrorContains(t, err, "No plugin registered for path", "the same core answers")

	for _, tc := range []struct {
		max, want uint16
	}{{0, tls.VersionTLS13}, {tls.VersionTLS12, tls.VersionTLS12}} {
		cs := g.handshake(t, &tls.Config{MaxVersion: tc.max})
		assert.Equal(t, tc.want, cs.Version)
	}
	_, err = tls.Dial("tcp", g.tlsAddr, &tls.Config{RootCAs: g.pool(t), MaxVersion: tls.VersionTLS11})
	assert.Error(t, err, "TLS 1.1 is refused")
}

// TestMutualTLS: with --tls-client-ca, a client without a certificate, or
// with one another CA signed, is refused in the handshake; one with a
// certificate the CA signed is served.
func TestMutualTLS(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	clients := tlstest.NewCA(t, dir, "clients-ca")
	stranger := tlstest.NewCA(t, dir, "stranger-ca")
	g := startTLSGateway(t, bin, "--tls-client-ca", clients.CertFile)

	refused := func(files client.TLSFiles) error {
		c, err := g.dial(t, files)
		if err != nil {
			return err
		}
		defer c.Close()
		// In TLS 1.3 the client's handshake ends before the server has
		// checked its certificate: the refusal comes with the first read.
		_, err = tlsCall(t, c, "/calculator/get_value", "")
		return err
	}
	err := refused(client.TLSFiles{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate required")

	cert, key := stranger.Client(t, dir, "mallory")
	err = refused(client.TLSFiles{Cert: cert, Key: key})
	require.Error(t, err)
	// Go's client sends no certificate that the server's CA list does not
	// name, and the server refuses it either way.
	assert.Regexp(t, "tls: (certificate required|unknown certificate authority)", err.Error())

	cert, key = clients.Client(t, dir, "alice")
	c, err := g.dial(t, client.TLSFiles{Cert: cert, Key: key})
	require.NoError(t, err)
	defer c.Close()
	got, err := tlsCall(t, c, "/calculator/increment", "")
	require.NoError(t, err)
	assert.Equal(t, "1", got)
}

// TestTLSRotation rotates the server's certificate twice under load, once
// noticed as a file change and once on SIGHUP: new handshakes get the new
// certificate, and no call of the load fails, on connections opened before
// or after.
func TestTLSRotation(t *testing.T) {
	g := startTLSGateway(t, buildGateway(t))
	c, err := g.dial(t, client.TLSFiles{})
	require.NoError(t, err)
	defer c.Close()

	var calls, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				cl := c
				if n%50 == 0 {
					// Now and then a fresh client, whose handshakes see
					// the certificate of the moment.
					fresh, err := g.dial(t, client.TLSFiles{})
					if err != nil {
						t.Errorf("dial %d: %v", i, err)
						failed.Add(1)
						continue
					}
					defer fresh.Close()
					cl = fresh
				}
				if _, err := tlsCall(t, cl, "/calculator/value", ""); err != nil {
					t.Errorf("call %d: %v", i, err)
					failed.Add(1)
				}
				calls.Add(1)
			}
		})
	}

	waitCalls := func(n int64) {
		for deadline := time.Now().Add(gatewaytest.Timeout); calls.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	waitCalls(200)
	first := g.handshake(t, &tls.Config{}).PeerCertificates[0]

	// A file change: the certificate manager replaces both files.
	g.ca.Server(t, g.dir, "server")
	second := g.waitCert(t)
	assert.NotEqual(t, first.SerialNumber, second.SerialNumber)
	waitCalls(calls.Load() + 200)

	// SIGHUP: the same, without waiting for the next check.
	g.ca.Server(t, g.dir, "server")
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGHUP))
	third := g.waitCert(t)
	assert.NotEqual(t, second.SerialNumber, third.SerialNumber)
	waitCalls(calls.Load() + 200)

	close(stop)
	wg.Wait()
	assert.Zero(t, failed.Load())
	t.Logf("%d calls, none failed", calls.Load())
	_, err = tlsCall(t, c, "/calculator/value", "")
	assert.NoError(t, err, "the first connection is still open")
}

// handshake makes a TLS handshake with the listener, trusting its CA.
func (g *tlsGateway) handshake(t *testing.T, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	cfg.RootCAs = g.pool(t)
	conn, err := tls.Dial("tcp", g.tlsAddr, cfg)
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState()
}

func (g *tlsGateway) pool(t *testing.T) *x509.CertPool {
	pem, err := os.ReadFile(g.ca.CertFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return pool
}

// waitCert waits until a handshake presents the certificate now in the
// certificate file, and returns it.
func (g *tlsGateway) waitCert(t *testing.T) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(g.cert)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block)
	want, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	deadline := time.Now().Add(gatewaytest.Timeout)
	for {
		got := g.handshake(t, &tls.Config{}).PeerCertificates[0]
		if got.Equal(want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate with serial %s is not in use:\n%s", strconv.Quote(want.SerialNumber.String()), g.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
