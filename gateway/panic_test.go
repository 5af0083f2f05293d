package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPanicClosesOnlyItsConnection: a Go panic while serving one
// connection closes that connection, is logged with its stack, and the
// server goes on serving the others.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	host, errs := pluginhost.Load([]string{plugintest.Build(t, plugintest.RepoPath("plugins/calculator/calculator.c"))})
	require.Empty(t, errs)
	var logs syncBuffer
	cfg := Config{
		Addr:   "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		testHook: func(query []byte) {
			if string(query) == "/calculator/panic" {
				panic("injected for the test")
			}
		},
	}
	srv, err := New(cfg, host.Plugins())
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
		assert.NoError(t, host.Close(ctx))
	})

	request := func(id uint64, query string) []byte {
		return repe.AppendMessage(nil, repe.Header{ID: id, QueryFormat: repe.QueryJSONPointer}, query, nil)
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		return c
	}
	healthy, doomed := dial(), dial()

	_, err = doomed.Write(request(1, "/calculator/panic"))
	require.NoError(t, err)
	n, err := io.ReadAll(doomed)
	assert.NoError(t, err, "the connection is closed, not reset")
	assert.Empty(t, n, "nothing is sent before the close")

	_, err = healthy.Write(request(2, "/calculator/value"))
	require.NoError(t, err)
	reply := make([]byte, repe.HeaderSize+1)
	_, err = io.ReadFull(healthy, reply)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), repe.Message(reply).ID())
	assert.Equal(t, repe.OK, repe.Message(reply).EC())

	assert.Contains(t, logs.String(), `msg="panic while serving a connection; closing it"`)
	assert.Contains(t, logs.String(), "panic=\"injected for the test\"")
	assert.Contains(t, logs.String(), "panic_test.go", "the stack is logged")
}
