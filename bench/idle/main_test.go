package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// TestIdle opens idle connections to a real gateway (in this process, so
// that its own RSS is read) and checks what idle reports.
func TestIdle(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	for _, partial := range []bool{false, true} {
		var out strings.Builder
		args := []string{"-addr", srv.Addr().String(), "-pid", strconv.Itoa(os.Getpid()), "-n", "200", "-settle", "10ms", "-json"}
		if partial {
			args = append(args, "-partial")
		}
		require.NoError(t, run(args, &out))
		var got idleResult
		require.NoError(t, json.Unmarshal([]byte(out.String()), &got))
		assert.Equal(t, 200, got.Connections)
		assert.Equal(t, partial, got.Partial)
		assert.Positive(t, got.RSSBeforeKiB)
		assert.InDelta(t, float64(got.RSSAfterKiB-got.RSSBeforeKiB)/200, got.KiBPerConn, 0.01)
	}
}

func TestIdleNeedsPID(t *testing.T) {
	assert.ErrorContains(t, run([]string{"-n", "1"}, &strings.Builder{}), "-pid is required")
}

type idleResult struct {
	Connections  int     `json:"connections"`
	Partial      bool    `json:"partial"`
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"`
}
