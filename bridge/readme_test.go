package bridge_test

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/bridge"
	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// dialWebSocket returns a client of the gateway's WebSocket at url, such
// as ws://127.0.0.1:8080/repe.
func dialWebSocket(ctx context.Context, url string) (*client.Client, error) {
	return client.Dial(ctx, "", &client.Config{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return bridge.DialWebSocket(ctx, url, 0) // 0: the default largest message
	}})
}

// TestReadmeWebSocket keeps the Go example of README.md's WebSocket
// section true: it is dialWebSocket above, word for word, and it works.
func TestReadmeWebSocket(t *testing.T) {
	readme, err := os.ReadFile(plugintest.RepoPath("README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n### WebSocket\n")
	require.True(t, ok, "README.md has no WebSocket section")
	_, example, ok := strings.Cut(section, "```go\n")
	require.True(t, ok, "the section shows no Go")
	example, _, _ = strings.Cut(example, "```\n")
	source, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)
	require.Contains(t, string(source), "\n"+example, "README.md's example is not dialWebSocket of readme_test.go")

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	hs := httptest.NewServer(bridge.New(srv, bridge.Config{}))
	t.Cleanup(hs.Close)
	c, err := dialWebSocket(t.Context(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/repe")
	require.NoError(t, err)
	defer c.Close()
	r, err := c.Call(t.Context(), "/calculator/increment", nil)
	require.NoError(t, err)
	assert.Equal(t, "1", string(r.Body))
}
