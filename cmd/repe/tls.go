package main

import "github.com/repe-gw/repe-gw/client"

// clientConfig is the client's configuration: one connection, since one
// call needs no pool, over TLS when a TLS flag asks for it.
func (opts options) clientConfig() (*client.Config, error) {
	cfg := &client.Config{Conns: 1}
	if opts.tls || opts.tlsFiles != (client.TLSFiles{}) {
		tc, err := client.TLSConfig(opts.tlsFiles)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}
