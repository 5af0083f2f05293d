package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/tlstest"
)

// TestClientCARotation: the --tls-client-ca file is read again when it
// changes, as the certificate is: a client whose certificate a new CA
// signed is refused before the file names that CA and served after, a
// connection made before stays up, and a file that does not load keeps the
// CAs in use.
func TestClientCARotation(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := tlstest.NewCA(t, dir, "old-ca"), tlstest.NewCA(t, dir, "new-ca")
	caFile := filepath.Join(dir, "clients.crt")
	replace := func(b []byte) {
		// As a certificate manager does: a new file renamed over the old.
		require.NoError(t, os.WriteFile(caFile+".tmp", b, 0o644))
		require.NoError(t, os.Rename(caFile+".tmp", caFile))
	}
	pemOf := func(ca *tlstest.CA) []byte {
		b, err := os.ReadFile(ca.CertFile)
		require.NoError(t, err)
		return b
	}
	replace(pemOf(oldCA))
	g := startTLSGateway(t, buildGateway(t), "--tls-client-ca", caFile)

	oldCert, oldKey := oldCA.Client(t, dir, "alice")
	newCert, newKey := newCA.Client(t, dir, "bob")
	// serves reports whether a client with the certificate is served; in
	// TLS 1.3 a refusal comes with the first read.
	serves := func(cert, key string) bool {
		c, err := g.dial(t, client.TLSFiles{Cert: cert, Key: key})
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = tlsCall(t, c, "/calculator/value", "")
		return err == nil
	}
	waitServes := func(cert, key string, want bool) {
		t.Helper()
		deadline := time.Now().Add(gatewaytest.Timeout)
		for serves(cert, key) != want {
			if time.Now().After(deadline) {
				t.Fatalf("a client of %s is not served=%v:\n%s", cert, want, g.log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// One connection, made and verified before the rotation.
	tc, err := client.TLSConfig(client.TLSFiles{CACert: g.ca.CertFile, Cert: oldCert, Key: oldKey})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	before, err := client.Dial(ctx, g.tlsAddr, &client.Config{TLS: tc, Conns: 1})
	require.NoError(t, err)
	defer before.Close()
	_, err = tlsCall(t, before, "/calculator/increment", "")
	require.NoError(t, err)
	assert.False(t, serves(newCert, newKey), "the new CA is not trusted yet")

	// A file change, seen at a handshake within a second.
	replace(pemOf(newCA))
	waitServes(newCert, newKey, true)
	assert.False(t, serves(oldCert, oldKey), "the old CA is trusted no more")
	got, err := tlsCall(t, before, "/calculator/increment", "")
	require.NoError(t, err, "the connection made before the rotation is still served")
	assert.Equal(t, "2", got)

	// SIGHUP with a file that does not load: the CAs in use stay.
	replace([]byte("not a certificate"))
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGHUP))
	g.waitLog(t, `msg="TLS client CAs not reloaded; the previous ones stay in use"`)
	assert.Contains(t, g.log(), "no PEM certificate in it")
	assert.True(t, serves(newCert, newKey))
	assert.False(t, serves(oldCert, oldKey))

	// SIGHUP with the old CA back.
	replace(pemOf(oldCA))
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGHUP))
	waitServes(oldCert, oldKey, true)
}
