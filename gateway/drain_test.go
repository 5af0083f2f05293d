package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// eofSeen tells TestDrainEndsCleanly's writer that the reader saw the end.
const eofSeen = ^uint64(0)

// TestDrainEndsCleanly: a pipelining client that goes on writing while the
// gateway shuts down gets a reply for every request the gateway ran, in
// order, and then a clean end of stream, not a reset; and the requests it
// got no reply for provably did not run: the calculator's value is the
// number of increments answered. On both transports.
func TestDrainEndsCleanly(t *testing.T) {
	for _, transport := range []string{"gnet", "stream"} {
		t.Run(transport, func(t *testing.T) {
			host, errs := pluginhost.Load([]string{gatewaytest.Calculator(t)})
			require.Empty(t, errs)
			t.Cleanup(func() { _ = host.Close(context.Background()) })
			srv, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0"}, host.Plugins())
			require.NoError(t, err)
			var addr string
			if transport == "gnet" {
				require.NoError(t, srv.Start())
				addr = srv.Addr().String()
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				go func() { _ = srv.Serve(ln) }()
				addr = ln.Addr().String()
			}

			nc, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer nc.Close()
			written := make(chan uint64, 1)
			var answered atomic.Uint64
			go func() {
				// Batches of 64 increments, ids from 1, until a write fails,
				// with at most 1024 unanswered: more, behind a call on a
				// worker, is a flood the gateway closes the connection for.
				id := uint64(0)
				defer func() { written <- id }()
				var batch []byte
				for {
					for id >= answered.Load()+1024 {
						if done := answered.Load(); done == eofSeen {
							return
						}
						time.Sleep(100 * time.Microsecond)
					}
					batch = batch[:0]
					for i := uint64(1); i <= 64; i++ {
						batch = append(batch, gatewaytest.Request(id+i, "/calculator/increment", "")...)
					}
					if _, err := nc.Write(batch); err != nil {
						return
					}
					id += 64
				}
			}()

			var got uint64
			shutdown := make(chan error, 1)
			hdr := make([]byte, repe.HeaderSize)
			for {
				if _, err = io.ReadFull(nc, hdr); err != nil {
					break
				}
				m := repe.Message(hdr)
				body := make([]byte, m.Length()-repe.HeaderSize)
				_, err = io.ReadFull(nc, body)
				require.NoError(t, err, "a reply cut short")
				got++
				require.Equal(t, got, m.ID(), "replies in order, none missing")
				require.Equal(t, repe.OK, m.EC(), "%s", body)
				require.Equal(t, strconv.FormatUint(got, 10), string(bytes.TrimSpace(body[m.QueryLength():])))
				answered.Store(got)
				if got == 2000 {
					go func() { shutdown <- srv.Shutdown(context.Background()) }()
				}
			}
			require.ErrorIs(t, err, io.EOF, "a clean end of stream after the last reply, not a reset")
			require.GreaterOrEqual(t, got, uint64(2000))
			answered.Store(eofSeen) // the writer stops
			nc.Close()              // and the gateway's linger ends
			require.NoError(t, <-shutdown)
			sent := <-written
			t.Logf("%s: wrote %d increments whole, %d answered", transport, sent, got)
			assert.Greater(t, sent, got, "the client was still writing when the gateway ended the connection")

			reply, err := host.Plugins()[0].Call(nil, gatewaytest.Request(1, "/calculator/value", ""))
			require.NoError(t, err)
			value := repe.Message(reply)
			assert.Equal(t, strconv.FormatUint(got, 10), string(bytes.TrimSpace(value.Body())),
				"only the answered increments ran")
		})
	}
}

// TestDrainClosesListener: once the drain begins, the gateway's listener is
// closed, and a new connection to its port (no other process listens on
// it) is refused, while a connection accepted before gets the replies to
// the requests it had sent, and then a clean end.
func TestDrainClosesListener(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))
	busy := gatewaytest.Dial(t, srv.Addr())
	// A long call keeps the drain going while the test dials; the ping
	// behind it was received before the drain, so it is answered too.
	busy.Send(append(gatewaytest.Request(1, "/slow/nap", "2000"), gatewaytest.Request(2, "/gw/ping", "")...))
	waitInFlight(t, srv, "/slow")
	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(context.Background()) }()

	var last error
	require.Eventually(t, func() bool {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err == nil {
			nc.Close() // accepted before the listener closed
		}
		last = err
		return errors.Is(err, syscall.ECONNREFUSED)
	}, gatewaytest.Timeout, time.Millisecond, "a new connection is refused once the drain begins; last dial: %v", last)
	select {
	case err := <-shutdown:
		t.Fatalf("the drain ended (%v) before the long call was answered", err)
	default:
	}
	for id := uint64(1); id <= 2; id++ {
		m := busy.Next()
		assert.Equal(t, id, m.ID())
		assert.Equal(t, repe.OK, m.EC())
	}
	_, err := busy.NextWithin(gatewaytest.Timeout)
	require.ErrorIs(t, err, io.EOF, "a clean end after the last reply")
	require.NoError(t, <-shutdown)
}

// TestDrainHalfClosesNewConnections: a connection admitted while the
// gateway drains (one its listener accepted just before closing) is ended
// cleanly at once, its request unanswered and not run, rather than closed
// with the request unread, which would reset it.
func TestDrainHalfClosesNewConnections(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))
	busy := gatewaytest.Dial(t, srv.Addr())
	// A long call keeps the drain going while the new connection arrives.
	busy.Send(gatewaytest.Request(1, "/slow/nap", "2000"))
	waitInFlight(t, srv, "/slow")
	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err == nil {
			nc.Close()
		}
		return err != nil
	}, gatewaytest.Timeout, time.Millisecond, "the drain began")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	accepted, err := ln.Accept()
	require.NoError(t, err)
	_, err = nc.Write(gatewaytest.Request(7, "/gw/ping", ""))
	require.NoError(t, err)
	go srv.ServeConn(accepted, gateway.TransportTCP)
	_ = nc.SetDeadline(time.Now().Add(gatewaytest.Timeout)) // a hang fails the test
	n, err := io.ReadFull(nc, make([]byte, repe.HeaderSize))
	require.Zero(t, n, "part of a reply")
	require.ErrorIs(t, err, io.EOF, "ended cleanly, not reset")

	m := busy.Next()
	assert.Equal(t, uint64(1), m.ID())
	assert.Equal(t, repe.OK, m.EC())
	busy.ExpectClosed()
	require.NoError(t, <-shutdown)
}

// waitInFlight waits until a call to the plugin at root runs.
func waitInFlight(t *testing.T, srv *gateway.Server, root string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, p := range srv.PluginStats() {
			if p.Root == root && p.InFlight > 0 {
				return true
			}
		}
		return false
	}, gatewaytest.Timeout, time.Millisecond, "a call to %s runs", root)
}
