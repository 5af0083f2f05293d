//go:build linux

package isolate

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// TestOutput: the worker's stdout and stderr reach the log, a record per
// line, tagged with the plugin's name.
func TestOutput(t *testing.T) {
	p, logs := startPlugin(t, crashSO, nil)
	out, err := p.Call(nil, request(1, "/crash/print", ""), deadline(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, repe.OK, frames(t, out)[0].EC())
	pid := strconv.Itoa(p.Stats().PID)
	require.Eventually(t, func() bool { return len(logs.find("plugin output")) == 2 }, 10*time.Second, 10*time.Millisecond)
	byStream := map[string]map[string]string{}
	for _, l := range logs.find("plugin output") {
		byStream[l.attrs["stream"]] = l.attrs
	}
	for stream, line := range map[string]string{"stdout": "to stdout", "stderr": "to stderr"} {
		attrs := byStream[stream]
		assert.Equal(t, line, attrs["line"], stream)
		assert.Equal(t, "crashplugin", attrs["plugin"], stream)
		assert.Equal(t, crashSO, attrs["file"], stream)
		assert.Equal(t, pid, attrs["pid"], stream)
	}
}

// TestOutputFlood: a plugin that floods its output gets maxLinesPerSecond
// lines a second logged, and the count of the others.
func TestOutputFlood(t *testing.T) {
	p, logs := startPlugin(t, crashSO, nil)
	start := time.Now()
	out, err := p.Call(nil, request(1, "/crash/flood", ""), deadline(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, repe.OK, frames(t, out)[0].EC())
	require.NoError(t, p.Close(context.Background())) // waits for the last of the output
	seconds := int(time.Since(start)/time.Second) + 1
	lines := len(logs.find("plugin output"))
	assert.LessOrEqual(t, lines, seconds*maxLinesPerSecond)
	suppressed := 0
	for _, l := range logs.find("plugin output suppressed") {
		n, err := strconv.Atoi(l.attrs["lines"])
		require.NoError(t, err)
		suppressed += n
	}
	assert.Equal(t, 1000, lines+suppressed)
}
