package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the PEM files a TLS connection to a server uses, as the
// --cacert, --cert, --key and --server-name flags of repe and repe-bench
// give them.
type TLSFiles struct {
	// CACert holds the certificates that may sign the server's; empty
	// trusts the system's roots.
	CACert string
	// Cert and Key are the client's certificate and its private key, for a
	// server that asks for one (mutual TLS); both or neither.
	Cert, Key string
	// ServerName is the name the server's certificate must carry; empty
	// takes the host of the address dialled.
	ServerName string
}

// TLSConfig reads the files of f into a tls.Config for Config.TLS. It
// allows TLS 1.2 and later, as repe-gw does.
func TLSConfig(f TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CACert != "" {
		pem, err := os.ReadFile(f.CACert)
		if err != nil {
			return nil, fmt.Errorf("client: CA certificates: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: CA certificates: no PEM certificate in %s", f.CACert)
		}
	}
	switch {
	case f.Cert != "" && f.Key != "":
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("client: certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case f.Cert != "" || f.Key != "":
		return nil, errors.New("client: a client certificate needs both its certificate and its key")
	}
	return cfg, nil
}
