package main

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/tlstest"
)

// TestTLS loads the gateway's core behind a TLS listener: every reply
// checked, none failed; without the CA the handshake fails before the run.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	cert, err := tls.LoadX509KeyPair(ca.Server(t, dir, "server"))
	require.NoError(t, err)
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	addr := ln.Addr().String()

	r := runBench(t, nil, "-addr", addr, "--cacert", ca.CertFile, "-c", "2", "-P", "16", "-n", "5000",
		"-query", "/calculator/get_value")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, int64(5000), r.sum.OK)
	assert.Zero(t, r.sum.Errors)

	r = runBench(t, nil, "-addr", addr, "--tls", "-n", "10", "-query", "/calculator/get_value")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "certificate signed by unknown authority")
}
