package gateway_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// TestSwapHooksMovesIdleConnections: a Swap that changes the hooks moves
// a connection that sends nothing, so that Retired.Wait returns without
// it: the old instance sees it close, the new one sees it connect and is
// asked about its next request. A Swap to no hooks moves it again, after
// which no hook is called.
func TestSwapHooksMovesIdleConnections(t *testing.T) {
	src := plugintest.RepoPath("cmd/repe-gw/testdata/hookrec.c")
	hookA, err := plugintest.BuildTo(t.TempDir(), src)
	require.NoError(t, err)
	hookB, err := plugintest.BuildTo(t.TempDir(), src, `-DHOOKREC_BUILD="2"`)
	require.NoError(t, err)
	events := filepath.Join(t.TempDir(), "events")
	h := serveHooked(t, gateway.Config{}, []hookFile{{path: hookA, config: `{"file":"` + events + `","tag":"a"}`}},
		gatewaytest.TestPlugin(t, "/gw"))
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(events)
		require.NoError(t, err)
		return string(b)
	}
	c := gatewaytest.Dial(t, h.srv.Addr())
	c.Send(gatewaytest.Request(1, "/gw/ping", ""))
	assertReply(t, c.Next(), 1, repe.OK, "")
	require.Contains(t, read(), "a request 1 1\n")

	host := pluginhost.Config{DataDir: t.TempDir()}.NewHost()
	t.Cleanup(func() { assert.NoError(t, host.Close(context.Background())) })
	_, b, err := host.AddFile(hookB, []byte(`{"file":"`+events+`","tag":"b"}`))
	require.NoError(t, err)
	a := h.host.Hooks()[0]
	swap := func(hooks []*pluginhost.Hooks) {
		t.Helper()
		retired, err := h.srv.Swap(gateway.Routes{Plugins: h.host.Plugins(), Hooks: hooks})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
		defer cancel()
		require.NoError(t, retired.Wait(ctx), "the idle connection was not moved")
	}

	swap([]*pluginhost.Hooks{b})
	a.Destroy()
	assert.Equal(t, "a init\na connect 1\na request 1 1\na response 1 1\nb2 init\nb2 connect 1\na close 1\na shutdown\na destroy\n",
		read(), "b connects the connection before a sees it close, and a is destroyed after")
	c.Send(gatewaytest.Request(2, "/gw/ping", ""))
	assertReply(t, c.Next(), 2, repe.OK, "")
	assert.True(t, strings.HasSuffix(read(), "b2 request 1 2\nb2 response 1 2\n"), read())

	swap(nil)
	b.Destroy()
	before := read()
	assert.True(t, strings.HasSuffix(before, "b2 close 1\nb2 shutdown\nb2 destroy\n"), before)
	c.Send(gatewaytest.Request(3, "/gw/ping", ""))
	assertReply(t, c.Next(), 3, repe.OK, "")
	assert.Equal(t, before, read(), "a hook was called after the swap to none")
}
