package gateway

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// startBare starts a server without plugins on a free loopback port.
func startBare(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := New(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() { require.NoError(t, srv.Shutdown(context.Background())) })
	return srv
}

// dialN opens n connections to srv and waits until it has admitted them all.
func dialN(t *testing.T, srv *Server, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", srv.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	require.Eventually(t, func() bool { return srv.connCount() == n }, 10*time.Second, time.Millisecond)
	return conns
}

// TestEnrolledSockets: the connections the gateway's listener accepts are
// spread evenly over gnet's event loops, and their sockets are set as
// gnet's own accept set them: no Nagle delay, and keep-alive probes after
// KeepAlive, or none.
func TestEnrolledSockets(t *testing.T) {
	for _, keepAlive := range []time.Duration{7 * time.Second, -1} {
		t.Run("keepalive="+keepAlive.String(), func(t *testing.T) {
			srv := startBare(t, Config{EventLoops: 4, KeepAlive: keepAlive})
			conns := dialN(t, srv, 8)
			locals := make(map[string]bool)
			for _, c := range conns {
				locals[c.LocalAddr().String()] = true
			}
			perLoop := make(map[*loop]int)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for cs := range srv.conns {
				perLoop[cs.loop]++
				assert.True(t, locals[cs.remote], "remote %s is a client's address", cs.remote)
				fd := cs.w.(*gnetWire).Fd()
				opt := func(level, name int) int {
					v, err := unix.GetsockoptInt(fd, level, name)
					require.NoError(t, err)
					return v
				}
				assert.Equal(t, 1, opt(unix.IPPROTO_TCP, unix.TCP_NODELAY), "TCP_NODELAY")
				if keepAlive > 0 {
					assert.Equal(t, 1, opt(unix.SOL_SOCKET, unix.SO_KEEPALIVE), "SO_KEEPALIVE")
					assert.Equal(t, 7, opt(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE), "TCP_KEEPIDLE")
					assert.Equal(t, 7, opt(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL), "TCP_KEEPINTVL")
				} else {
					assert.Equal(t, 0, opt(unix.SOL_SOCKET, unix.SO_KEEPALIVE), "SO_KEEPALIVE")
				}
			}
			assert.Len(t, perLoop, 4, "every event loop serves connections")
			for _, n := range perLoop {
				assert.Equal(t, 2, n, "connections per event loop")
			}
		})
	}
}

// TestEnrollLeavesNoDescriptor: gnet serves a duplicate of each accepted
// connection's descriptor, so the accepted one must be closed: while the
// connections are open the process holds one descriptor for each end, and
// once they close, none.
func TestEnrollLeavesNoDescriptor(t *testing.T) {
	srv := startBare(t, Config{})
	openFDs := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(fds)
	}
	// At most: a descriptor an earlier test left to close may close now.
	before := openFDs()
	const n = 50
	conns := dialN(t, srv, n)
	require.Eventually(t, func() bool { return openFDs() <= before+2*n }, 10*time.Second, time.Millisecond,
		"%d descriptors open, want at most %d: one per end of each connection", openFDs(), before+2*n)
	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	require.Eventually(t, func() bool { return openFDs() <= before }, 10*time.Second, time.Millisecond,
		"%d descriptors open once the connections closed, want at most %d", openFDs(), before)
}
