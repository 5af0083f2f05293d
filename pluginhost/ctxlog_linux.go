package pluginhost

import "golang.org/x/sys/unix"

// ctxLogABI0 is the address of ctxLog (ctxlog_linux_GOARCH.s), the context's
// log function.
var ctxLogABI0 uintptr

// logSocket returns the two ends of a context's log socket: SOCK_DGRAM
// keeps each message whole and apart from the others, and lets the log
// function send with MSG_NOSIGNAL, where a pipe could raise SIGPIPE on a
// plugin's thread.
func logSocket() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
}
