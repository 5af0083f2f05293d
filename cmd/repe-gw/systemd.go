package main

import (
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notify tells systemd how far the gateway has come, when systemd started
// it as a Type=notify service: READY=1 once every listener is open, so
// that units ordered after it start only then, and STOPPING=1 when the
// drain begins, so that systemctl shows it stopping rather than running.
// Without NOTIFY_SOCKET, as anywhere but under systemd, it does nothing.
// go-systemd writes the datagram as sd_notify(3) does (abstract sockets
// included), which is why the gateway does not speak the protocol itself.
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		// The service manager is gone or refuses us: serving matters more.
		log.Warn("systemd notification not sent", "state", state, "error", err)
	}
}
