package gateway_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// logBuffer collects JSON log lines written from any goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// records returns the logged records whose msg is msg.
func (l *logBuffer) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range bytes.SplitSeq(l.b.Bytes(), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestAccessLog: with the access log on, every request gets one line, from
// calls inline and on workers and from the gateway's own answers; with a
// sample of none, only the errors do; and calls over the slow-call
// threshold are logged as slow.
func TestAccessLog(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sample float64
		want   int
	}{{"every request", 0, 5}, {"errors only", -1, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			srv, _ := gatewaytest.Serve(t, gateway.Config{
				AccessLog: true, AccessLogSample: tc.sample, SlowCall: 100 * time.Millisecond,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))
			c := gatewaytest.Dial(t, srv.Addr())
			c.Send(bytes.Join([][]byte{
				gatewaytest.Request(1, "/gw/ping", ""),
				gatewaytest.Request(2, "/slow/sleep", ""),
				gatewaytest.Request(3, "/nowhere", ""),
				gatewaytest.Notify("/gw/ping", ""),
				gatewaytest.Request(4, "/gw/nope", ""),
			}, nil))
			for range 4 {
				c.Next()
			}
			require.Eventually(t, func() bool { return len(logs.records("request")) >= tc.want }, gatewaytest.Timeout, time.Millisecond)
			recs := logs.records("request")
			require.Len(t, recs, tc.want)
			byQuery := map[string]map[string]any{}
			for _, r := range recs {
				byQuery[r["query"].(string)] = r
			}
			assert.Equal(t, float64(repe.MethodNotFound), byQuery["/nowhere"]["ec"])
			assert.Equal(t, "", byQuery["/nowhere"]["plugin"])
			assert.Equal(t, "gw", byQuery["/gw/nope"]["plugin"])
			assert.Equal(t, c.LocalAddr().String(), byQuery["/gw/nope"]["remote"])
			if tc.sample == 0 {
				assert.Equal(t, float64(0), byQuery["/slow/sleep"]["ec"])
				assert.Equal(t, "slow", byQuery["/slow/sleep"]["plugin"])
				assert.GreaterOrEqual(t, byQuery["/slow/sleep"]["duration"], float64(200*time.Millisecond))
				assert.Equal(t, float64(-1), byQuery["/gw/ping"]["ec"], "the notify, logged last of the two pings")
			}
			slow := logs.records("slow plugin call")
			require.Len(t, slow, 1)
			assert.Equal(t, "/slow/sleep", slow[0]["query"])
		})
	}
}
