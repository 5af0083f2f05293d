package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
)

// listenerStartTimeout bounds the shutdown of a server whose other
// listeners failed to start: nothing has been served yet.
const listenerStartTimeout = 5 * time.Second

// startListeners starts the listeners that feed srv besides its TCP one,
// those f asks for: TLS and HTTP. They close when srv shuts down. When one
// cannot start, srv is shut down and the reason returned. hups gives the
// SIGHUPs that reload the TLS certificate.
func startListeners(log *slog.Logger, f *config.File, srv *gateway.Server, stop <-chan struct{}, hups *hangups) error {
	err := func() error {
		ts, err := tlsSettingsOf(f)
		if err != nil {
			return err
		}
		if ts != nil {
			if err := startTLS(log, ts, srv, stop, hups.subscribe()); err != nil {
				return err
			}
		}
		if f.Listen.HTTPAddr != nil {
			return startHTTP(log, httpSettingsOf(f), srv, f.Gateway(log))
		}
		return nil
	}()
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), listenerStartTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return err
}
