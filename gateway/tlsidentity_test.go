package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/tlstest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestHookSeesTLSIdentity: a TLS connection is admitted after its
// handshake, so that on_connect sees the subject of the client's
// certificate as tls_identity: a hook that lets in one subject serves that
// client and closes the others, with another certificate, with none, and
// over plain TCP.
func TestHookSeesTLSIdentity(t *testing.T) {
	hook := plugintest.Build(t, plugintest.RepoPath("gateway/testdata/identityhook.c"), `-DWANT="CN=client-a"`)
	h := serveHooked(t, gateway.Config{}, []hookFile{{path: hook}}, gatewaytest.TestPlugin(t, "/gw"))

	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	certFile, keyFile := ca.Server(t, dir, "server")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CertFile)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pem))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven,
	})
	require.NoError(t, err)
	go func() { _ = h.srv.Serve(ln) }()

	// ping dials as client (a certificate's name, or "" for none), sends a
	// ping and reports whether it was answered.
	ping := func(client string) bool {
		t.Helper()
		cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if client != "" {
			c, k := ca.Client(t, dir, client)
			pair, err := tls.LoadX509KeyPair(c, k)
			require.NoError(t, err)
			cfg.Certificates = []tls.Certificate{pair}
		}
		nc, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		require.NoError(t, err)
		defer nc.Close()
		require.NoError(t, nc.SetDeadline(time.Now().Add(gatewaytest.Timeout)))
		if _, err := nc.Write(gatewaytest.Request(1, "/gw/ping", "")); err != nil {
			return false
		}
		buf := make([]byte, repe.HeaderSize)
		_, err = io.ReadFull(nc, buf)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "neither answered nor closed")
		return err == nil && repe.Message(buf).ID() == 1
	}
	assert.True(t, ping("client-a"), "the subject the hook lets in")
	assert.False(t, ping("client-b"), "another subject")
	assert.False(t, ping(""), "no certificate")
	plain := gatewaytest.Dial(t, h.srv.Addr())
	plain.Send(gatewaytest.Request(1, "/gw/ping", ""))
	plain.ExpectClosed()
	assert.Equal(t, int32(2), counter(t, hook, "seen"), "on_connect saw the two certificates' subjects")
}
