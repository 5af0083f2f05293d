package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/tlstest"
)

// TestTLS runs repe against the gateway's core behind a mutual-TLS
// listener: with the CA, its client certificate and the server's name it
// is served; without the certificate it is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := tlstest.NewCA(t, dir, "server-ca"), tlstest.NewCA(t, dir, "client-ca")
	certFile, keyFile := serverCA.Server(t, dir, "server")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	pem, err := os.ReadFile(clientCA.CertFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		_ = srv.Serve(tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		}))
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// The certificate names localhost: --server-name checks that name
	// while --addr dials the address.
	addr := "127.0.0.1:" + port
	clientCert, clientKey := clientCA.Client(t, dir, "alice")

	r := runCLI(t, "", "--addr", addr, "--cacert", serverCA.CertFile, "--cert", clientCert, "--key", clientKey,
		"--server-name", "localhost", "set", "/calculator/value", "41.5")
	assert.Equal(t, result{0, "null\n", ""}, r)
	r = runCLI(t, "", "--addr", addr, "--tls", "--cacert", serverCA.CertFile, "--cert", clientCert, "--key", clientKey,
		"call", "/calculator/increment")
	assert.Equal(t, result{0, "42.5\n", ""}, r)

	r = runCLI(t, "", "--addr", addr, "--cacert", serverCA.CertFile, "get", "/calculator/value")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "tls: certificate required")

	r = runCLI(t, "", "--addr", addr, "--cert", clientCert, "get", "/calculator/value")
	assert.Equal(t, result{exitFailure, "", "repe: client: a client certificate needs both its certificate and its key\n"}, r)
	r = runCLI(t, "", "--tls", "record")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "--tls is not a flag of record")
}
