package main

import (
	"bytes"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFlagBounds checks that the ends of every range are accepted, and
// mean what they say. Values beyond them are TestCommandLineErrors'.
func TestFlagBounds(t *testing.T) {
	tests := []struct {
		args  []string
		check func(*options)
	}{
		{nil, func(o *options) {
			assert.Equal(t, uint64(64<<20), o.maxMessageSize)
			assert.Equal(t, 10000, o.maxConns)
			assert.Equal(t, 30*time.Second, o.readTimeout)
			assert.Equal(t, 30*time.Second, o.writeTimeout)
			assert.Equal(t, time.Minute, o.keepAlive)
			assert.Equal(t, 4<<20, o.gateway(nil).MaxPendingOutput)
			assert.Zero(t, o.deadline)
			assert.Equal(t, 15*time.Second, o.shutdownTimeout)
			assert.Equal(t, 0, o.pluginConcurrency, "GOMAXPROCS")
			assert.Equal(t, 50*time.Microsecond, o.inlineBudget)
			assert.Equal(t, slog.LevelInfo, o.logLevel)
			assert.Equal(t, "text", o.logFormat)
		}},
		{[]string{"--max-message-size", "4GiB"}, func(o *options) { assert.Equal(t, uint64(4<<30), o.maxMessageSize) }},
		{[]string{"--max-message-size", "4294967296"}, func(o *options) { assert.Equal(t, uint64(4<<30), o.maxMessageSize) }},
		{[]string{"--max-message-size", "48"}, func(o *options) { assert.Equal(t, uint64(48), o.maxMessageSize) }},
		{[]string{"--max-message-size", "48B"}, func(o *options) { assert.Equal(t, uint64(48), o.maxMessageSize) }},
		{[]string{"--max-message-size", "512KiB"}, func(o *options) { assert.Equal(t, uint64(512<<10), o.maxMessageSize) }},
		{[]string{"--max-conns", "1"}, func(o *options) { assert.Equal(t, 1, o.maxConns) }},
		{[]string{"--max-conns", "2147483647"}, func(o *options) { assert.Equal(t, math.MaxInt32, o.maxConns) }},
		{[]string{"--plugin-concurrency", "65536"}, func(o *options) { assert.Equal(t, 65536, o.pluginConcurrency) }},
		{[]string{"--max-conns-per-ip", "0"}, func(o *options) { assert.Zero(t, o.gateway(nil).MaxConnsPerIP, "no limit") }},
		{[]string{"--max-pending-output", "1GiB", "--max-pending-input", "1"}, func(o *options) {
			assert.Equal(t, 1<<30, o.gateway(nil).MaxPendingOutput)
			assert.Equal(t, 1, o.gateway(nil).MaxPendingInput)
		}},
		{[]string{"--write-timeout", "0", "--keepalive", "0", "--idle-timeout", "0"}, func(o *options) {
			c := o.gateway(nil)
			assert.Negative(t, c.WriteTimeout, "never")
			assert.Negative(t, c.KeepAlive, "never")
			assert.Zero(t, c.IdleTimeout, "never is the default")
		}},
		{[]string{"--deadline", "100ms", "--idle-timeout", "5m"}, func(o *options) {
			assert.Equal(t, 100*time.Millisecond, o.gateway(nil).Deadline)
			assert.Equal(t, 5*time.Minute, o.gateway(nil).IdleTimeout)
		}},
		{[]string{"--read-timeout", "0"}, func(o *options) {
			assert.Equal(t, time.Duration(0), o.readTimeout)
			assert.Negative(t, o.gateway(nil).ReadTimeout, "0 is never, which Config spells negative")
		}},
		{[]string{"--shutdown-timeout", "1ns"}, func(o *options) { assert.Equal(t, time.Nanosecond, o.shutdownTimeout) }},
		{[]string{"--inline-budget", "1s"}, func(o *options) { assert.Equal(t, time.Second, o.inlineBudget) }},
		{[]string{"--inline-budget", "-1ns"}, func(o *options) { assert.Equal(t, -time.Nanosecond, o.inlineBudget) }},
		{[]string{"--log-level", "debug", "--log-format", "json"}, func(o *options) {
			assert.Equal(t, slog.LevelDebug, o.logLevel)
			assert.Equal(t, "json", o.logFormat)
		}},
		{[]string{"--plugin", "a.so", "-plugin=b.so", "--plugins", "dir"}, func(o *options) {
			assert.Equal(t, []string{"a.so", "b.so"}, o.files)
			assert.Equal(t, "dir", o.dir)
		}},
	}
	for _, tt := range tests {
		var stdout bytes.Buffer
		o, err := parseFlags(tt.args, &stdout)
		require.NoError(t, err, "%q", tt.args)
		assert.Empty(t, stdout.String())
		tt.check(o)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{48: "48B", 1 << 10: "1KiB", 1536: "1536B", 64 << 20: "64MiB", 4 << 30: "4GiB", 3 << 29: "1536MiB"} {
		assert.Equal(t, want, formatSize(n))
	}
}
