package main

import (
	"bytes"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
)

// TestFlagBounds checks that the ends of every range are accepted, and
// mean what they say once laid over an empty file. Values beyond them are
// TestCommandLineErrors'.
func TestFlagBounds(t *testing.T) {
	tests := []struct {
		args  []string
		check func(*config.File, *commandLine)
	}{
		{nil, func(f *config.File, _ *commandLine) {
			assert.Equal(t, gateway.Config{}, f.Gateway(nil), "every field the gateway's default")
			assert.Zero(t, f.Effective(&config.Plugin{}).Deadline)
			assert.Equal(t, 15*time.Second, f.ShutdownTimeout())
			assert.Equal(t, slog.LevelInfo, f.LogLevel())
			assert.Equal(t, "text", f.LogFormat())
		}},
		{[]string{"--max-message-size", "4GiB"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, uint64(4<<30), f.Gateway(nil).MaxMessageSize)
		}},
		{[]string{"--max-message-size", "4294967296"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, uint64(4<<30), f.Gateway(nil).MaxMessageSize)
		}},
		{[]string{"--max-message-size", "48"}, func(f *config.File, _ *commandLine) { assert.Equal(t, uint64(48), f.Gateway(nil).MaxMessageSize) }},
		{[]string{"--max-message-size", "48B"}, func(f *config.File, _ *commandLine) { assert.Equal(t, uint64(48), f.Gateway(nil).MaxMessageSize) }},
		{[]string{"--max-message-size", "512KiB"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, uint64(512<<10), f.Gateway(nil).MaxMessageSize)
		}},
		{[]string{"--max-conns", "1"}, func(f *config.File, _ *commandLine) { assert.Equal(t, 1, f.Gateway(nil).MaxConns) }},
		{[]string{"--max-conns", "2147483647"}, func(f *config.File, _ *commandLine) { assert.Equal(t, math.MaxInt32, f.Gateway(nil).MaxConns) }},
		{[]string{"--plugin-concurrency", "65536"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, 65536, f.Gateway(nil).PluginConcurrency)
			assert.Equal(t, 65536, f.Effective(&config.Plugin{}).Concurrency, "every plugin's default")
		}},
		{[]string{"--max-conns-per-ip", "0"}, func(f *config.File, _ *commandLine) { assert.Zero(t, f.Gateway(nil).MaxConnsPerIP, "no limit") }},
		{[]string{"--max-pending-output", "1GiB", "--max-pending-input", "1"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, 1<<30, f.Gateway(nil).MaxPendingOutput)
			assert.Equal(t, 1, f.Gateway(nil).MaxPendingInput)
		}},
		{[]string{"--write-timeout", "0", "--keepalive", "0", "--idle-timeout", "0"}, func(f *config.File, _ *commandLine) {
			c := f.Gateway(nil)
			assert.Negative(t, c.WriteTimeout, "never")
			assert.Negative(t, c.KeepAlive, "never")
			assert.Zero(t, c.IdleTimeout, "never is the default")
		}},
		{[]string{"--deadline", "100ms", "--idle-timeout", "5m"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, 100*time.Millisecond, f.Effective(&config.Plugin{}).Deadline, "every plugin's default")
			assert.Equal(t, 5*time.Minute, f.Gateway(nil).IdleTimeout)
		}},
		{[]string{"--read-timeout", "0"}, func(f *config.File, _ *commandLine) {
			assert.Negative(t, f.Gateway(nil).ReadTimeout, "0 is never, which Config spells negative")
		}},
		{[]string{"--shutdown-timeout", "1ns"}, func(f *config.File, _ *commandLine) { assert.Equal(t, time.Nanosecond, f.ShutdownTimeout()) }},
		{[]string{"--inline-budget", "1s"}, func(f *config.File, _ *commandLine) { assert.Equal(t, time.Second, f.Gateway(nil).InlineBudget) }},
		{[]string{"--inline-budget", "-1ns"}, func(f *config.File, _ *commandLine) { assert.Equal(t, -time.Nanosecond, f.Gateway(nil).InlineBudget) }},
		{[]string{"--log-level", "debug", "--log-format", "json"}, func(f *config.File, _ *commandLine) {
			assert.Equal(t, slog.LevelDebug, f.LogLevel())
			assert.Equal(t, "json", f.LogFormat())
		}},
		{[]string{"--plugin", "a.so", "-plugin=b.so", "--plugins", "dir", "--config", "c.yaml"}, func(f *config.File, cl *commandLine) {
			assert.Equal(t, []string{"a.so", "b.so"}, cl.named)
			assert.Equal(t, []config.Plugin{{Path: "dir", Enabled: true}}, f.Plugins)
			assert.Equal(t, "c.yaml", cl.flags.Config)
		}},
	}
	for _, tt := range tests {
		var stdout bytes.Buffer
		cl, err := parseFlags(tt.args, &stdout)
		require.NoError(t, err, "%q", tt.args)
		assert.Empty(t, stdout.String())
		f := new(config.File)
		f.Apply(cl.flags)
		tt.check(f, cl)
	}
}
