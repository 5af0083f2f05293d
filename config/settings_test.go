package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestFromEnv(t *testing.T) {
	t.Run("every variable", func(t *testing.T) {
		o, err := FromEnv(env(map[string]string{
			"REPE_GW_CONFIG":             "/etc/repe-gw.yaml",
			"REPE_GW_PLUGINS":            "/opt/a::/opt/b.so",
			"REPE_GW_ADDR":               ":6000",
			"REPE_GW_MAX_MESSAGE_SIZE":   "1MiB",
			"REPE_GW_MAX_CONNS":          "12",
			"REPE_GW_READ_TIMEOUT":       "0",
			"REPE_GW_SHUTDOWN_TIMEOUT":   "3s",
			"REPE_GW_PLUGIN_CONCURRENCY": "0",
			"REPE_GW_INLINE_BUDGET":      "-1s",
			"REPE_GW_LOG_LEVEL":          "warn",
			"REPE_GW_LOG_FORMAT":         "json",
			"REPE_GW_MAX_CONNS_PER_IP":   "5",
			"REPE_GW_MAX_PENDING_OUTPUT": "1KiB",
			"REPE_GW_MAX_PENDING_INPUT":  "2KiB",
			"REPE_GW_WRITE_TIMEOUT":      "4s",
			"REPE_GW_IDLE_TIMEOUT":       "5m",
			"REPE_GW_KEEPALIVE":          "0",
			"REPE_GW_DEADLINE":           "0",
			"REPE_GW_MAX_CONN":           "5", // no such variable
		}))
		require.NoError(t, err)
		assert.Equal(t, Overrides{
			Config:  "/etc/repe-gw.yaml",
			Listen:  Listen{Addr: ptr(":6000")},
			Plugins: []Plugin{{Path: "/opt/a", Enabled: true}, {Path: "/opt/b.so", Enabled: true}},
			Limits: Limits{
				MaxMessageSize:    ptr[uint64](1 << 20),
				MaxConns:          ptr(12),
				MaxConnsPerIP:     ptr(5),
				MaxPendingOutput:  ptr[uint64](1 << 10),
				MaxPendingInput:   ptr[uint64](2 << 10),
				ReadTimeout:       ptr[time.Duration](0),
				WriteTimeout:      ptr(4 * time.Second),
				IdleTimeout:       ptr(5 * time.Minute),
				KeepAlive:         ptr[time.Duration](0),
				ShutdownTimeout:   ptr(3 * time.Second),
				PluginConcurrency: ptr(0),
				InlineBudget:      ptr(-time.Second),
			},
			Log:      Log{Level: ptr(slog.LevelWarn), Format: ptr("json")},
			Defaults: Policy{Deadline: ptr[time.Duration](0)},
		}, o)
	})
	t.Run("empty is unset", func(t *testing.T) {
		o, err := FromEnv(env(map[string]string{"REPE_GW_ADDR": "", "REPE_GW_PLUGINS": ""}))
		require.NoError(t, err)
		assert.Equal(t, Overrides{}, o)
	})
	t.Run("every bad variable, one per line", func(t *testing.T) {
		_, err := FromEnv(env(map[string]string{
			"REPE_GW_ADDR":              "localhost",
			"REPE_GW_MAX_MESSAGE_SIZE":  "64MB",
			"REPE_GW_MAX_CONNS":         "0",
			"REPE_GW_READ_TIMEOUT":      "30",
			"REPE_GW_INLINE_BUDGET":     "2s",
			"REPE_GW_LOG_LEVEL":         "loud",
			"REPE_GW_DEADLINE":          "-1s",
			"REPE_GW_MAX_PENDING_INPUT": "2GiB",
		}))
		assert.EqualError(t, err, strings.Join([]string{
			`REPE_GW_DEADLINE="-1s": out of range: want 0 (none) or more`,
			`REPE_GW_ADDR="localhost": not an address HOST:PORT, such as 127.0.0.1:5099 or :5099`,
			`REPE_GW_MAX_MESSAGE_SIZE="64MB": not a size: decimal units such as MB are not read; use KiB, MiB, GiB or TiB: want 48B to 4GiB`,
			`REPE_GW_MAX_CONNS="0": out of range: want 1 to 2147483647`,
			`REPE_GW_MAX_PENDING_INPUT="2GiB": too large: want 1B to 1GiB`,
			`REPE_GW_READ_TIMEOUT="30": not a duration such as 30s or 500ms`,
			`REPE_GW_INLINE_BUDGET="2s": out of range: want more than 0 and at most 1s, or negative (never)`,
			`REPE_GW_LOG_LEVEL="loud": want debug, info, warn or error`,
		}, "\n"))
	})
}

// TestEnvVars keeps the names the package documentation lists, and the
// rule that makes them, true.
func TestEnvVars(t *testing.T) {
	var names []string
	for _, v := range EnvVars() {
		names = append(names, v.Name)
		assert.Equal(t, envName(v.Flag), v.Name)
		var o Overrides
		if err := o.Set(v.Flag, "?"); err != nil {
			assert.NotContains(t, err.Error(), "no setting", "Set reads %s", v.Flag)
		}
	}
	assert.Equal(t, []string{
		"REPE_GW_CONFIG", "REPE_GW_PLUGINS", "REPE_GW_DEADLINE", "REPE_GW_ISOLATE", "REPE_GW_ADDR",
		"REPE_GW_TLS_ADDR", "REPE_GW_TLS_CERT", "REPE_GW_TLS_KEY", "REPE_GW_TLS_CLIENT_CA", "REPE_GW_HTTP_ADDR",
		"REPE_GW_HTTP_READ_TIMEOUT", "REPE_GW_HTTP_IDLE_TIMEOUT", "REPE_GW_HTTP_MAX_HEADER_SIZE", "REPE_GW_REUSE_PORT",
		"REPE_GW_MAX_MESSAGE_SIZE", "REPE_GW_MAX_CONNS", "REPE_GW_MAX_CONNS_PER_IP",
		"REPE_GW_MAX_PENDING_OUTPUT", "REPE_GW_MAX_PENDING_INPUT", "REPE_GW_READ_TIMEOUT",
		"REPE_GW_WRITE_TIMEOUT", "REPE_GW_IDLE_TIMEOUT", "REPE_GW_KEEPALIVE", "REPE_GW_SHUTDOWN_TIMEOUT",
		"REPE_GW_SHUTDOWN_DELAY", "REPE_GW_PLUGIN_CONCURRENCY", "REPE_GW_INLINE_BUDGET", "REPE_GW_LOG_LEVEL",
		"REPE_GW_LOG_FORMAT", "REPE_GW_ACCESS_LOG", "REPE_GW_ACCESS_LOG_SAMPLE", "REPE_GW_SLOW_CALL", "REPE_GW_ADMIN", "REPE_GW_ADMIN_TOKEN_FILE", "REPE_GW_ADMIN_INSECURE",
		"REPE_GW_ADMIN_PPROF", "REPE_GW_ADMIN_READY_WITHOUT_PLUGINS", "REPE_GW_INSECURE_PLUGIN_PERMISSIONS", "REPE_GW_DATA_DIR",
	}, names)
}

func TestSetIsolate(t *testing.T) {
	var o Overrides
	require.NoError(t, o.Set("isolate", "true"))
	assert.Equal(t, ModeIsolated, *o.Defaults.Mode)
	require.NoError(t, o.Set("isolate", "false"))
	assert.Equal(t, ModeInProcess, *o.Defaults.Mode)
	require.Error(t, o.Set("isolate", "maybe"))
}

func TestSet(t *testing.T) {
	var o Overrides
	require.NoError(t, o.Set("config", "a.yaml"))
	require.NoError(t, o.Set("plugins", "dir"))
	require.NoError(t, o.Set("plugins", "x.so:y.so"))
	require.NoError(t, o.Set("max-pending-output", "1KiB"))
	require.NoError(t, o.Set("keepalive", "0"))
	require.NoError(t, o.Set("shutdown-delay", "3s"))
	require.NoError(t, o.Set("admin", "127.0.0.1:9099"))
	require.NoError(t, o.Set("admin-token-file", "token"))
	require.NoError(t, o.Set("admin-pprof", "true"))
	require.NoError(t, o.Set("admin-insecure", "1"))
	require.NoError(t, o.Set("admin-ready-without-plugins", "false"))
	require.NoError(t, o.Set("insecure-plugin-permissions", "true"))

	assert.Equal(t, Overrides{
		Config:  "a.yaml",
		Plugins: []Plugin{{Path: "dir", Enabled: true}, {Path: "x.so", Enabled: true}, {Path: "y.so", Enabled: true}},
		Limits:  Limits{MaxPendingOutput: ptr[uint64](1024), KeepAlive: ptr[time.Duration](0), ShutdownDelay: ptr(3 * time.Second)},
		Admin: Admin{Addr: ptr("127.0.0.1:9099"), TokenFile: ptr("token"), Pprof: ptr(true), Insecure: ptr(true),
			ReadyWithoutPlugins: ptr(false)},
		Security: Security{InsecurePluginPermissions: ptr(true)},
	}, o)
	assert.EqualError(t, o.Set("admin-pprof", "maybe"), "want true or false")
	assert.EqualError(t, o.Set("admin", "9099"), "not an address HOST:PORT, such as 127.0.0.1:5099 or :5099")

	assert.EqualError(t, o.Set("max-conns", "many"), "not a whole number: want 1 to 2147483647")
	assert.EqualError(t, o.Set("shutdown-timeout", "-1s"), "out of range: want more than 0")
	assert.EqualError(t, o.Set("log-format", "xml"), "want text or json")
	assert.EqualError(t, o.Set("max_conns", "1"), `config: no setting is named "max_conns"`)
	assert.Nil(t, o.Limits.MaxConns, "a bad value sets nothing")
}

// TestPrecedence lays the environment and then flags over a file: flags
// win over the environment, the environment over the file, the file over
// the defaults.
func TestPrecedence(t *testing.T) {
	path := writeFile(t, "repe-gw.yaml", `
listen: {addr: "127.0.0.1:7000"}
limits: {max_conns: 50, read_timeout: 10s}
log: {level: debug}
defaults: {deadline: 1s}
plugins: [file.so]
`)
	f, err := Load(path)
	require.NoError(t, err)
	envs, err := FromEnv(env(map[string]string{
		"REPE_GW_ADDR": "127.0.0.1:8000", "REPE_GW_MAX_CONNS": "60", "REPE_GW_PLUGINS": "env.so",
	}))
	require.NoError(t, err)
	var flags Overrides
	require.NoError(t, flags.Set("addr", "127.0.0.1:9000"))
	require.NoError(t, flags.Set("deadline", "0"))
	flags.Plugins = append(flags.Plugins, Plugin{Path: "flag.so", Enabled: true, Required: true})

	f.Apply(envs)
	f.Apply(flags)
	assert.Equal(t, "127.0.0.1:9000", *f.Listen.Addr, "flag over environment over file")
	assert.Equal(t, 60, *f.Limits.MaxConns, "environment over file")
	assert.Equal(t, 10*time.Second, *f.Limits.ReadTimeout, "file over default")
	assert.Equal(t, slog.LevelDebug, f.LogLevel(), "file over default")
	assert.Equal(t, DefaultLogFormat, f.LogFormat(), "default")
	assert.Equal(t, DefaultShutdownTimeout, f.ShutdownTimeout(), "default")
	assert.Equal(t, []Plugin{{Path: "flag.so", Enabled: true, Required: true}}, f.Plugins, "flags' plugins replace the others")
	assert.Equal(t, time.Duration(0), f.Effective(&f.Plugins[0]).Deadline, "--deadline 0 is none, over the file's")
	assert.Equal(t, time.Duration(0), f.Gateway(nil).Deadline, "deadlines reach plugins through Effective only")

	flags.Plugins[0].Path = "changed.so"
	assert.Equal(t, "flag.so", f.Plugins[0].Path, "Apply copies the list")
}

func TestGateway(t *testing.T) {
	t.Run("unset is the gateway's default", func(t *testing.T) {
		log := slog.New(slog.DiscardHandler)
		assert.Equal(t, gateway.Config{Logger: log}, new(File).Gateway(log))
	})
	t.Run("0 is never", func(t *testing.T) {
		f, err := Parse("c.yaml", []byte(`
limits:
  read_timeout: 0
  write_timeout: 0s
  idle_timeout: 0s
  keepalive: 0s
`))
		require.NoError(t, err)
		cfg := f.Gateway(nil)
		assert.Equal(t, time.Duration(-1), cfg.ReadTimeout)
		assert.Equal(t, time.Duration(-1), cfg.WriteTimeout)
		assert.Equal(t, time.Duration(0), cfg.IdleTimeout, "gateway.Config's 0 is never already")
		assert.Equal(t, time.Duration(-1), cfg.KeepAlive)
	})
	t.Run("values", func(t *testing.T) {
		f, err := Parse("c.yaml", []byte(`
listen: {addr: ":1"}
limits:
  max_message_size: 1KiB
  max_conns: 2
  max_conns_per_ip: 3
  max_pending_output: 4KiB
  max_pending_input: 5KiB
  read_timeout: 6s
  write_timeout: 7s
  idle_timeout: 8s
  keepalive: 9s
  plugin_concurrency: 10
  inline_budget: 11us
defaults:
  deadline: 12s
`))
		require.NoError(t, err)
		assert.Equal(t, gateway.Config{
			Addr: ":1", MaxMessageSize: 1 << 10, MaxConns: 2, MaxConnsPerIP: 3,
			MaxPendingOutput: 4 << 10, MaxPendingInput: 5 << 10,
			ReadTimeout: 6 * time.Second, WriteTimeout: 7 * time.Second,
			IdleTimeout: 8 * time.Second, KeepAlive: 9 * time.Second,
			PluginConcurrency: 10, InlineBudget: 11 * time.Microsecond,
		}, f.Gateway(nil), "no Deadline: the gateway would give it to a plugin whose own is 0, none")
	})
}

// TestAccessLogSettings: the access log's keys read from flags and from the
// file, and a sample outside 0 to 1 is refused with its line.
func TestAccessLogSettings(t *testing.T) {
	var o Overrides
	require.NoError(t, o.Set("access-log", "true"))
	require.NoError(t, o.Set("access-log-sample", "0.25"))
	require.NoError(t, o.Set("slow-call", "20ms"))
	var f File
	f.Apply(o)
	cfg := f.Gateway(nil)
	assert.True(t, cfg.AccessLog)
	assert.Equal(t, 0.25, cfg.AccessLogSample)
	assert.Equal(t, 20*time.Millisecond, cfg.SlowCall)

	require.NoError(t, o.Set("access-log-sample", "0"))
	f.Apply(o)
	assert.Negative(t, f.Gateway(nil).AccessLogSample, "0 keeps no success")
	assert.ErrorContains(t, o.Set("access-log-sample", "1.5"), "want a number from 0 to 1")

	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte("log:\n  access_log_sample: 2\n"), 0o600))
	_, err := Load(path)
	assert.ErrorContains(t, err, "gw.yaml:2:22: log.access_log_sample: want a number from 0 to 1, got 2")
}
