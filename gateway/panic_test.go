package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
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
// connection, on its event loop or on a worker, closes that connection, is
// logged with its stack, gives back the plugin's slot, and the server goes
// on serving the others. The connection is reset rather than ended.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	for _, where := range []string{"event loop", "worker"} {
		t.Run(where, func(t *testing.T) { testPanic(t, where == "worker") })
	}
}

func testPanic(t *testing.T, onWorker bool) {
	host, errs := pluginhost.Load([]string{plugintest.Build(t, plugintest.RepoPath("plugins/calculator/calculator.c"))})
	require.Empty(t, errs)
	var logs syncBuffer
	cfg := Config{
		Addr:   "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		// One slot: had a panic kept it, nothing would be answered after.
		PluginConcurrency: 1,
		testHook: func(query []byte, worker bool) {
			if bytes.HasSuffix(query, []byte("/panic")) && worker == onWorker {
				panic("injected for the test")
			}
		},
	}
	// On the event loop, a query no plugin owns: the loop always looks at
	// it itself, wherever the calculator's calls run. When they run inline,
	// the run before it still holds the calculator's one slot.
	panicQuery := "/elsewhere/panic"
	if onWorker {
		cfg.InlineBudget = -1 // every call on a worker
		panicQuery = "/calculator/panic"
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

	// A run of fast calls first, so that on the event loop the panic comes
	// in the middle of an inline run that holds the plugin's slot.
	var batch []byte
	for id := range uint64(200) {
		batch = append(batch, request(id+1, "/calculator/value")...)
	}
	_, err = doomed.Write(batch)
	require.NoError(t, err)
	_, err = io.ReadFull(doomed, make([]byte, 200*(repe.HeaderSize+1)))
	require.NoError(t, err)
	_, err = doomed.Write(append(bytes.Clone(batch[:10*(repe.HeaderSize+len("/calculator/value"))]), request(1, panicQuery)...))
	require.NoError(t, err)
	// Reset, not ended cleanly: the request that panicked may have run, and
	// a clean end would tell the client that it did not (drain.go).
	n, err := io.ReadAll(doomed)
	assert.ErrorIs(t, err, syscall.ECONNRESET, "the connection is reset")
	assert.LessOrEqual(t, len(n), 10*(repe.HeaderSize+1), "no reply from the panic on")

	_, err = healthy.Write(request(2, "/calculator/value"))
	require.NoError(t, err)
	reply := make([]byte, repe.HeaderSize+1)
	_, err = io.ReadFull(healthy, reply)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), repe.Message(reply).ID())
	assert.Equal(t, repe.OK, repe.Message(reply).EC())

	want := `msg="panic while serving a connection; closing it"`
	if onWorker {
		want = `msg="panic while calling plugin; closing the connection"`
	}
	assert.Contains(t, logs.String(), want)
	assert.Contains(t, logs.String(), "panic=\"injected for the test\"")
	assert.Contains(t, logs.String(), "panic_test.go", "the stack is logged")
}
