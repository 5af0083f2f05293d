package gateway

import (
	"time"

	"golang.org/x/sys/unix"
)

// keepAliveInherited: on Linux an accepted connection inherits the
// listener's keep-alive settings.
const keepAliveInherited = true

// setKeepAlive turns keep-alive probes on for the socket fd: after ka
// idle, ka apart, as gnet's SetKeepAlivePeriod did (whole seconds, at
// least one).
func setKeepAlive(fd int, ka time.Duration) error {
	secs := max(1, int((ka+time.Second-1)/time.Second))
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs); err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
}
