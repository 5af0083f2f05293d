package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// increment adds one to the calculator's value and returns the new value.
func increment(ctx context.Context, addr string) (string, error) {
	c, err := client.Dial(ctx, addr, nil) // nil: the default Config
	if err != nil {
		return "", err
	}
	defer c.Close()
	reply, err := c.Call(ctx, "/calculator/increment", nil)
	if errors.Is(err, repe.MethodNotFound) {
		return "", fmt.Errorf("no calculator at %s: %w", addr, err)
	}
	if err != nil {
		return "", err // ec 7 when ctx ends first, ec 9 when the connection fails
	}
	return string(reply.Body), nil
}

// TestReadmeExample keeps the Go example of README.md's "Calling it"
// section true: the example is the function increment above, word for
// word, and it works against a real gateway.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile(plugintest.RepoPath("README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Calling it\n")
	require.True(t, ok, "README.md has no Calling it section")
	section, _, _ = strings.Cut(section, "\n## ")
	_, example, ok := strings.Cut(section, "```go\n")
	require.True(t, ok, "the section shows no Go")
	example, _, _ = strings.Cut(example, "```\n")
	source, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)
	require.True(t, strings.Contains(string(source), "\n"+example),
		"README.md's example is not the function increment of readme_test.go:\n%s", example)

	ctx := t.Context()
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	for _, want := range []string{"1", "2"} {
		got, err := increment(ctx, srv.Addr().String())
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}

	empty, _ := gatewaytest.Serve(t, gateway.Config{})
	_, err = increment(ctx, empty.Addr().String())
	assert.ErrorIs(t, err, repe.MethodNotFound)
	assert.EqualError(t, err, "no calculator at "+empty.Addr().String()+
		": client: /calculator/increment: method_not_found: No plugin registered for path")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = increment(ctx, closed)
	assert.ErrorIs(t, err, repe.ConnectionFailure)
	assert.EqualError(t, err, "client: connection_failure: dial tcp "+closed+": connect: connection refused")
}
