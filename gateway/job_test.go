package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// TestRunJobRefusesLengthsThatDoNotFrame: a job whose copied length field
// is 0, or runs past its bytes, fails instead of looping or reading beyond
// them. The event loop frames requests before copying them, so only a bug
// could get here; the worker must not rely on that.
func TestRunJobRefusesLengthsThatDoNotFrame(t *testing.T) {
	host, errs := pluginhost.Load([]string{plugintest.Build(t, plugintest.RepoPath("plugins/calculator/calculator.c"))})
	require.Empty(t, errs)
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	srv, err := New(Config{}, host.Plugins())
	require.NoError(t, err)
	l := srv.routes.Load().plugins[0]
	good := repe.AppendMessage(nil, repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil)
	for name, bad := range map[string][]byte{
		"zero length":  make([]byte, repe.HeaderSize),
		"past the end": append(bytes.Clone(good[:8]), make([]byte, 40)...),
	} {
		t.Run(name, func(t *testing.T) {
			if name == "past the end" {
				bad[0] = 200
			}
			j := newJob(&conn{srv: srv}, l)
			j.req.B = append(append(j.req.B, good...), bad...)
			assert.True(t, l.runJob(j, nil), "the job is still the worker's")
			assert.True(t, j.failed)
			assert.Equal(t, len(good), j.off, "the good request before it was answered")
			assert.Equal(t, uint64(1), repe.Message(j.reply.B).ID())
		})
	}
}

// TestLogsInJSON: in JSON logs a connection's remote address is a string,
// and a client's normal close is not logged as an error.
func TestLogsInJSON(t *testing.T) {
	var logs syncBuffer
	srv, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte(`"connection closed"`)) }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, srv.Shutdown(context.Background()))

	for line := range bytes.SplitSeq([]byte(logs.String()), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || (rec["msg"] != "connection opened" && rec["msg"] != "connection closed") {
			continue
		}
		assert.IsType(t, "", rec["remote"], "remote in %s", line)
		assert.Equal(t, c.LocalAddr().String(), rec["remote"])
		assert.NotContains(t, rec, "error", "a normal close is no error: %s", line)
	}
}
