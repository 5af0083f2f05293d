package gateway_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

var oneshotRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// TestDo: one-shot calls go through the core: the plugin's answers, its
// own errors and the gateway's are told apart by Origin, whichever path
// the call took (inline, worker, deadline).
func TestDo(t *testing.T) {
	bad := plugintest.Build(t, plugintest.RepoPath("pluginhost/testdata/testplugin.c"), fmt.Sprintf("-DTP_ROOT=%q", "/tp"))
	srv, _ := gatewaytest.Serve(t, gateway.Config{Deadline: 100 * time.Millisecond},
		gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/gw"), bad)
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()

	for _, tc := range []struct {
		name   string
		req    []byte
		ec     repe.ErrorCode
		body   string
		origin gateway.Origin
	}{
		{"write", gatewaytest.Request(1, "/calculator/set_value", "41.5"), repe.OK, "null", gateway.OriginPlugin},
		{"read", gatewaytest.Request(2, "/calculator/value", ""), repe.OK, "41.5", gateway.OriginPlugin},
		{"the plugin's unknown path", gatewaytest.Request(3, "/calculator/nope", ""), repe.MethodNotFound,
			"invalid_query: /calculator/nope", gateway.OriginPlugin},
		{"the plugin's parse error", gatewaytest.Request(4, "/calculator/value", `"ten"`), 14, "", gateway.OriginPlugin},
		{"no plugin", gatewaytest.Request(5, "/nothing", ""), repe.MethodNotFound, "No plugin registered for path", gateway.OriginGateway},
		{"an invalid plugin reply", gatewaytest.Request(6, "/tp/garbage", ""), repe.ParseError, "", gateway.OriginGateway},
		{"a deadline", gatewaytest.Request(7, "/gw/nap", "1000"), repe.Timeout, "", gateway.OriginGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, origin, err := srv.Do(ctx, gateway.TransportHTTP, oneshotRemote, tc.req, nil)
			require.NoError(t, err)
			m := repe.Message(out)
			require.GreaterOrEqual(t, len(out), repe.HeaderSize)
			require.Equal(t, uint64(len(out)), m.Length(), "one reply")
			assert.Equal(t, repe.Message(tc.req).ID(), m.ID())
			assert.Equal(t, tc.ec, m.EC())
			if tc.body != "" {
				assert.Equal(t, tc.body, string(m.Body()))
			}
			assert.Equal(t, tc.origin, origin)
		})
	}

	out, _, err := srv.Do(ctx, gateway.TransportHTTP, oneshotRemote, gatewaytest.Notify("/calculator/set_value", "1"), []byte("kept"))
	require.NoError(t, err)
	assert.Equal(t, "kept", string(out), "a notify gets no reply")

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	_, _, err = srv.Do(short, gateway.TransportHTTP, oneshotRemote, gatewaytest.Request(8, "/gw/nap", "50"), nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the caller gave up first")
}

// TestDoRefusedWhileDraining: a one-shot is a connection: refused once the
// server drains.
func TestDoRefusedWhileDraining(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	_, origin, err := srv.Do(ctx, gateway.TransportHTTP, oneshotRemote, gatewaytest.Request(1, "/calculator/value", ""), nil)
	assert.ErrorIs(t, err, gateway.ErrRefused)
	assert.Equal(t, gateway.OriginGateway, origin)
}
