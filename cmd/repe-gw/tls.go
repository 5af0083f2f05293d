package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
)

// REPE over TLS: gnet has no TLS, so a crypto/tls listener feeds the same
// dispatch core through gateway.Server.Serve, with the same routing,
// policies, limits and counts as the TCP listener.
//
// Server.ServeConn makes the handshake before it admits the connection, at
// most MaxConns at once, so that hooks see the subject of the client's
// certificate as tls_identity from on_connect on.

// certCheckEvery is how often a handshake may look at the certificate
// files for a change: a stat of two files per second costs nothing, and a
// rotated certificate is in use within a second of being written.
const certCheckEvery = time.Second

// handshakeTimeout bounds a TLS handshake, so that a client that connects
// and says nothing holds its connection slot for no longer.
const handshakeTimeout = 10 * time.Second

// tlsSettings are the TLS listener's settings, checked.
type tlsSettings struct {
	addr, cert, key, clientCA string
}

// tlsSettingsOf reads the TLS listener's settings from f; nil when there is
// none.
func tlsSettingsOf(f *config.File) (*tlsSettings, error) {
	l := f.Listen
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	s := &tlsSettings{addr: str(l.TLSAddr), cert: str(l.TLSCert), key: str(l.TLSKey), clientCA: str(l.TLSClientCA)}
	switch {
	case s.addr == "" && (s.cert != "" || s.key != "" || s.clientCA != ""):
		return nil, errors.New("--tls-cert, --tls-key and --tls-client-ca need --tls-addr")
	case s.addr == "":
		return nil, nil
	case s.cert == "" || s.key == "":
		return nil, errors.New("--tls-addr needs --tls-cert and --tls-key")
	}
	return s, nil
}

// certs holds the certificate the TLS listener presents, and the client
// CAs it trusts, and loads them again when their files change or on
// SIGHUP. Connections keep what their handshake used; only new handshakes
// see a change, so a rotation drops no connection.
type certs struct {
	certFile, keyFile, caFile string
	log                       *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   []byte      // the certificate files' sizes and times when cert was loaded
	conf    *tls.Config // the handshakes' settings, with the client CAs in use
	caStamp []byte      // the client CA file's size and time when conf was made
	checked time.Time   // when the files were last looked at
}

// loadCerts loads the certificate and key, and the client CAs when caFile
// is set, and fails when they do not load.
func loadCerts(log *slog.Logger, certFile, keyFile, caFile string) (*certs, error) {
	c := &certs{certFile: certFile, keyFile: keyFile, caFile: caFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	if err := c.reloadCA(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload loads the certificate files again, unless they have not changed
// since the last load. A pair that does not load (a key written after its
// certificate, say) keeps the certificate in use; the next check tries
// again. c.mu is held, or c is not shared yet.
func (c *certs) reload() error {
	stamp, err := fileStamp(c.certFile, c.keyFile)
	if err == nil && c.cert != nil && bytes.Equal(stamp, c.stamp) {
		return nil
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.LoadX509KeyPair(c.certFile, c.keyFile)
	}
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp = &cert, stamp
	if cert.Leaf != nil {
		c.log.Info("TLS certificate loaded", "file", c.certFile, "subject", cert.Leaf.Subject.String(),
			"not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// reloadCA makes the handshakes' settings again with the client CA file,
// unless it has not changed since. A file that does not load keeps the CAs
// in use. The settings are TLS 1.3, or 1.2 for older clients, and with a
// client CA, a client certificate it signed required in the handshake.
// c.mu is held, or c is not shared yet.
func (c *certs) reloadCA() error {
	if c.caFile == "" {
		if c.conf == nil {
			c.conf = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
		}
		return nil
	}
	stamp, err := fileStamp(c.caFile)
	if err == nil && c.conf != nil && bytes.Equal(stamp, c.caStamp) {
		return nil
	}
	var pem []byte
	if err == nil {
		pem, err = os.ReadFile(c.caFile)
	}
	if err != nil {
		return fmt.Errorf("--tls-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--tls-client-ca %s: no PEM certificate in it", c.caFile)
	}
	c.conf = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get,
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	c.caStamp = stamp
	c.log.Info("TLS client CAs loaded", "file", c.caFile)
	return nil
}

// fileStamp describes files by size and modification time.
func fileStamp(names ...string) ([]byte, error) {
	var b []byte
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		b = fmt.Appendf(b, "%d %d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b, nil
}

// get is tls.Config.GetCertificate: the handshake's settings were checked
// for a change by forClient, just before.
func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert, nil
}

// forClient is tls.Config.GetConfigForClient: it looks for a change of the
// files at most once per certCheckEvery.
func (c *certs) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= certCheckEvery {
		c.checked = now
		c.reloadLogged()
	}
	return c.conf, nil
}

// reloadLogged reloads and logs a failure; c.mu is held.
func (c *certs) reloadLogged() {
	if err := c.reload(); err != nil {
		c.log.Error("TLS certificate not reloaded; the previous one stays in use", "error", err)
	}
	if err := c.reloadCA(); err != nil {
		c.log.Error("TLS client CAs not reloaded; the previous ones stay in use", "error", err)
	}
}

// watchHUP reloads the certificate and client CAs on each SIGHUP that hup
// gives, until stop is closed.
func (c *certs) watchHUP(hup <-chan struct{}, stop <-chan struct{}) {
	go func() {
		for {
			select {
			case <-hup:
				c.mu.Lock()
				c.checked = time.Now()
				c.reloadLogged()
				c.mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
}

// startTLS listens on the TLS address and serves it through srv until srv
// shuts down, which closes the listener. hup gives the SIGHUPs, and stop
// ends their watch.
func startTLS(log *slog.Logger, s *tlsSettings, srv *gateway.Server, stop, hup <-chan struct{}) error {
	c, err := loadCerts(log, s.cert, s.key, s.clientCA)
	if err != nil {
		return err
	}
	cfg := &tls.Config{GetConfigForClient: c.forClient}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("--tls-addr: %w", err)
	}
	c.watchHUP(hup, stop)
	log.Info("listening for TLS", "addr", ln.Addr().String(), "mutual", s.clientCA != "")
	go func() {
		if err := srv.Serve(handshakeListener{tls.NewListener(ln, cfg)}); err != nil {
			log.Error("TLS listener failed", "error", err)
		}
	}()
	return nil
}

// handshakeListener hands out TLS connections whose handshake is bounded
// by handshakeTimeout.
type handshakeListener struct{ net.Listener }

func (l handshakeListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: nc.(*tls.Conn)}, nil
}

// handshakeConn makes its handshake, within handshakeTimeout, on the first
// read: the gateway's reader goroutine makes it, and a failure (a client
// without a valid certificate, say) is that read's error, which closes the
// connection.
type handshakeConn struct {
	*tls.Conn
	done bool // only the reader goroutine reads
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if !c.done {
		c.done = true
		_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
		if err := c.Handshake(); err != nil {
			return 0, err
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	return c.Conn.Read(p)
}
