package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes a configuration file into a fresh directory and returns
// its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// problems loads text from a file and returns its problems, each without
// the file's path, so that tables can say "3:5: message", and with DIR for
// its directory.
func problems(t *testing.T, text string) []string {
	t.Helper()
	path := writeFile(t, "repe-gw.yaml", text)
	dir := filepath.Dir(path)
	f, err := Load(path)
	if err == nil {
		return nil
	}
	assert.Nil(t, f, "a File alongside errors")
	errs, ok := errors.AsType[Errors](err)
	require.True(t, ok, "not Errors: %v", err)
	var lines []string
	for _, e := range errs {
		assert.Equal(t, path, e.File)
		lines = append(lines, strings.ReplaceAll(strings.TrimPrefix(e.Error(), path+":"), dir, "DIR"))
	}
	return lines
}

func ptr[T any](v T) *T { return &v }

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		text string
		want func(t *testing.T, f *File, dir string)
	}{
		{
			name: "empty file",
			text: "",
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, File{Path: f.Path}, *f)
			},
		},
		{
			name: "comments only",
			text: "# nothing yet\n",
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, File{Path: f.Path}, *f)
			},
		},
		{
			name: "empty sections",
			text: "listen:\nlimits: {}\nlog:\ndefaults:\nplugins: []\n",
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, File{Path: f.Path}, *f)
			},
		},
		{
			name: "listener, limits and log",
			text: `
listen:
  addr: ":6000"
limits:
  max_message_size: 1MiB
  max_conns: 20
  max_conns_per_ip: 0
  max_pending_output: 65536
  max_pending_input: 128 KiB
  read_timeout: 0
  write_timeout: 0s
  idle_timeout: 5m
  keepalive: 15s
  shutdown_timeout: 2s
  plugin_concurrency: 3
  inline_budget: -1s
log:
  level: DEBUG
  format: json
`,
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, Listen{Addr: ptr(":6000")}, f.Listen)
				assert.Equal(t, Limits{
					MaxMessageSize:    ptr[uint64](1 << 20),
					MaxConns:          ptr(20),
					MaxConnsPerIP:     ptr(0),
					MaxPendingOutput:  ptr[uint64](65536),
					MaxPendingInput:   ptr[uint64](128 << 10),
					ReadTimeout:       ptr[time.Duration](0),
					WriteTimeout:      ptr[time.Duration](0),
					IdleTimeout:       ptr(5 * time.Minute),
					KeepAlive:         ptr(15 * time.Second),
					ShutdownTimeout:   ptr(2 * time.Second),
					PluginConcurrency: ptr(3),
					InlineBudget:      ptr(-time.Second),
				}, f.Limits)
				assert.Equal(t, Log{Level: ptr(slog.LevelDebug), Format: ptr("json")}, f.Log)
				assert.Equal(t, 2*time.Second, f.ShutdownTimeout())
				assert.Equal(t, slog.LevelDebug, f.LogLevel())
				assert.Equal(t, "json", f.LogFormat())
			},
		},
		{
			name: "admin listener, its token relative to the file",
			text: `
limits:
  shutdown_delay: 5s
admin:
  addr: 127.0.0.1:9099
  token_file: secrets/token
  insecure: false
  pprof: true
  ready_without_plugins: true
`,
			want: func(t *testing.T, f *File, dir string) {
				assert.Equal(t, Admin{
					Addr:                ptr("127.0.0.1:9099"),
					TokenFile:           ptr(filepath.Join(dir, "secrets", "token")),
					Insecure:            ptr(false),
					Pprof:               ptr(true),
					ReadyWithoutPlugins: ptr(true),
				}, f.Admin)
				assert.Equal(t, 5*time.Second, f.ShutdownDelay())
				assert.Equal(t, time.Duration(0), (&File{}).ShutdownDelay(), "none by default")
			},
		},
		{
			name: "plugins: paths relative to the file, defaults, policies",
			text: `
plugins:
  - plugins
  - path: /abs/one.so
    required: true
  - path: ./sub/../two.so
    enabled: false
    mode: isolated
    deadline: 250ms
    concurrency: 2
    queue: 0
    restart: {backoff_min: 1s, backoff_max: 1s, max_failures: 1, failure_window: 1h}
    memory_limit: 1GiB
    sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
`,
			want: func(t *testing.T, f *File, dir string) {
				require.Len(t, f.Plugins, 3)
				assert.Equal(t, Plugin{
					Pos: Position{f.Path, 3, 5}, Path: filepath.Join(dir, "plugins"), Enabled: true,
				}, f.Plugins[0])
				assert.Equal(t, Plugin{
					Pos: Position{f.Path, 4, 5}, Path: "/abs/one.so", Enabled: true, Required: true,
				}, f.Plugins[1])
				assert.Equal(t, Plugin{
					Pos:  Position{f.Path, 6, 5},
					Path: filepath.Join(dir, "two.so"),
					Policy: Policy{
						Mode:        ptr(ModeIsolated),
						Deadline:    ptr(250 * time.Millisecond),
						Concurrency: ptr(2),
						Queue:       ptr(0),
						Restart: Restart{
							BackoffMin:    ptr(time.Second),
							BackoffMax:    ptr(time.Second),
							MaxFailures:   ptr(1),
							FailureWindow: ptr(time.Hour),
						},
					},
					MemoryLimit: ptr[uint64](1 << 30),
					SHA256:      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				}, f.Plugins[2])
			},
		},
		{
			name: "defaults reach every plugin, entries override them key by key",
			text: `
limits: {plugin_concurrency: 7}
defaults:
  mode: isolated
  deadline: 1s
  queue: 10
  restart: {backoff_max: 5s}
plugins:
  - path: a.so
  - path: b.so
    mode: inprocess
    concurrency: 3
    restart: {max_failures: 9}
`,
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, Effective{
					Mode: ModeIsolated, Deadline: time.Second, Concurrency: 7, Queue: 10,
					BackoffMin: DefaultBackoffMin, BackoffMax: 5 * time.Second,
					MaxFailures: DefaultMaxFailures, FailureWindow: DefaultFailureWindow,
				}, f.Effective(&f.Plugins[0]))
				assert.Equal(t, Effective{
					Mode: ModeInProcess, Deadline: time.Second, Concurrency: 3, Queue: 10,
					BackoffMin: DefaultBackoffMin, BackoffMax: 5 * time.Second,
					MaxFailures: 9, FailureWindow: DefaultFailureWindow,
				}, f.Effective(&f.Plugins[1]))
			},
		},
		{
			name: "deadline 0 is none, and undoes defaults.deadline",
			text: `
defaults: {deadline: 2s}
plugins:
  - path: a.so
  - path: b.so
    deadline: 0
  - path: c.so
    deadline: 0s
`,
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, 2*time.Second, f.Effective(&f.Plugins[0]).Deadline)
				assert.Equal(t, time.Duration(0), f.Effective(&f.Plugins[1]).Deadline)
				assert.Equal(t, time.Duration(0), f.Effective(&f.Plugins[2]).Deadline)
			},
		},
		{
			name: "anchors and aliases",
			text: `
defaults:
  restart: &fast {backoff_min: 10ms, backoff_max: 20ms}
plugins:
  - path: a.so
    restart: *fast
    deadline: &d 3s
  - path: b.so
    deadline: *d
`,
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t, 20*time.Millisecond, *f.Plugins[0].Restart.BackoffMax)
				assert.Equal(t, 3*time.Second, *f.Plugins[1].Deadline)
			},
		},
		{
			name: "config is JSON, keys in the order written",
			text: `
plugins:
  - path: a.so
    config:
      zeta: 1
      alpha: [true, null, -2, 1.5, "x<y&z", 18446744073709551615]
      nested: {b: {}, a: []}
      text: |
        two
        lines
      empty:
      same: &s {k: v}
      again: *s
  - path: b.so
    config: {}
  - path: c.so
    config:
`,
			want: func(t *testing.T, f *File, _ string) {
				assert.Equal(t,
					`{"zeta":1,"alpha":[true,null,-2,1.5,"x<y&z",18446744073709551615],"nested":{"b":{},"a":[]},`+
						`"text":"two\nlines\n","empty":null,"same":{"k":"v"},"again":{"k":"v"}}`,
					string(f.Plugins[0].Config))
				assert.Equal(t, `{}`, string(f.Plugins[1].Config))
				assert.Nil(t, f.Plugins[2].Config)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "repe-gw.yaml", tt.text)
			f, err := Load(path)
			require.NoError(t, err)
			assert.Equal(t, path, f.Path)
			tt.want(t, f, filepath.Dir(path))
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"syntax", "limits:\n  max_conns: [1\n", []string{
			"2:14: sequence end token ']' not found",
		}},
		{"tab", "limits:\n\tmax_conns: 1\n", []string{
			"2:1: found character '\t' that cannot start any token",
		}},
		{"not a mapping", "- plugins\n", []string{
			"1:1: the file: want a mapping of listen, limits, log, admin, security, state, defaults, plugins, got a list",
		}},
		{"two documents", "log: {level: info}\n---\nlog: {level: warn}\n", []string{
			"3:1: a second YAML document: a configuration is one document",
		}},
		{"unknown key, near one", "limits:\n  max_con: 5\n", []string{
			`2:3: limits: unknown key "max_con": did you mean max_conns?`,
		}},
		{"unknown key, nothing near", "listen:\n  port: 5099\n", []string{
			`2:3: listen: unknown key "port": want one of addr, tls_addr, tls_cert, tls_key, tls_client_ca, http_addr, http_read_timeout, http_idle_timeout, http_max_header_size, reuse_port`,
		}},
		{"unknown top-level key", "tls: {}\n", []string{
			`1:1: the file: unknown key "tls": want one of listen, limits, log, admin, security, state, defaults, plugins`,
		}},
		{"admin values", "admin:\n  addr: 9099\n  token_file: \"\"\n  pprof: yes please\n  insecure: 1\nlimits:\n  shutdown_delay: -1s\n", []string{
			"2:9: admin.addr: want a string, got the number 9099",
			"3:15: admin.token_file: empty: want a file",
			`4:10: admin.pprof: want true or false, got "yes please"`,
			"5:13: admin.insecure: want true or false, got the number 1",
			"7:19: limits.shutdown_delay: out of range: want 0 (none) or more",
		}},
		{"security values", "security:\n  insecure_plugin_permissions: yes\n", []string{
			`2:32: security.insecure_plugin_permissions: want true or false, got "yes"`,
		}},
		{"repeated key", "log:\n  level: info\n  level: debug\n", []string{
			"3:3: log.level: repeated key, first at line 2",
		}},
		{"key not a string", "limits:\n  1: 2\n", []string{
			"2:3: limits: the key 1 is not a string: quote it",
		}},
		{"merge key", "a: &a {max_conns: 1}\n", []string{
			`1:1: the file: unknown key "a": want one of listen, limits, log, admin, security, state, defaults, plugins`,
		}},
		{"merge key in a section", "limits:\n  <<: {max_conns: 1}\n", []string{
			"2:3: limits: merge keys (<<) are not read: write the keys out",
		}},
		{"tag", "limits:\n  max_conns: !!str 5\n", []string{
			"2:14: limits.max_conns: tags such as !!str are not read: write the value plainly, quoted if it must be a string",
		}},
		{"alias without anchor", "limits:\n  max_conns: *n\n", []string{
			"2:14: limits.max_conns: no anchor &n before this alias",
		}},
		{"section of the wrong type", "limits: 5\n", []string{
			"1:9: limits: want a mapping of max_message_size, max_conns, max_conns_per_ip, max_pending_output, " +
				"max_pending_input, read_timeout, write_timeout, idle_timeout, keepalive, shutdown_timeout, shutdown_delay, " +
				"plugin_concurrency, inline_budget, got the number 5",
		}},
		{"bad address", "listen:\n  addr: localhost\n", []string{
			"2:9: listen.addr: not an address HOST:PORT, such as 127.0.0.1:5099 or :5099",
		}},
		{"address not a string", "listen:\n  addr: 5099\n", []string{
			"2:9: listen.addr: want a string, got the number 5099",
		}},
		{"negative count", "limits:\n  max_conns: -1\n", []string{
			"2:14: limits.max_conns: out of range: want 1 to 2147483647",
		}},
		{"count as a string", "limits:\n  max_conns: ten\n", []string{
			`2:14: limits.max_conns: want a whole number, got "ten"`,
		}},
		{"count with no value", "limits:\n  max_conns:\n", []string{
			"2:14: limits.max_conns: want a whole number, got nothing",
		}},
		{"count too large", "limits:\n  plugin_concurrency: 70000\n", []string{
			"2:23: limits.plugin_concurrency: out of range: want 0 (GOMAXPROCS) to 65536",
		}},
		{"size too small", "limits:\n  max_message_size: 47\n", []string{
			"2:21: limits.max_message_size: too small: want 48B to 4GiB",
		}},
		{"size too large", "limits:\n  max_message_size: 5GiB\n", []string{
			"2:21: limits.max_message_size: too large: want 48B to 4GiB",
		}},
		{"negative size", "limits:\n  max_pending_input: -5\n", []string{
			"2:22: limits.max_pending_input: too small: want 1B to 1GiB",
		}},
		{"decimal size", "limits:\n  max_pending_output: 4MB\n", []string{
			"2:23: limits.max_pending_output: not a size: decimal units such as MB are not read; use KiB, MiB, GiB or TiB: want 1B to 1GiB",
		}},
		{"bad size", "limits:\n  max_message_size: big\n", []string{
			"2:21: limits.max_message_size: not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB: want 48B to 4GiB",
		}},
		{"bad duration", "limits:\n  read_timeout: soon\n", []string{
			"2:17: limits.read_timeout: not a duration such as 30s or 500ms",
		}},
		{"duration without unit", "limits:\n  read_timeout: 30\n", []string{
			"2:17: limits.read_timeout: a duration needs a unit, such as 30s or 30ms",
		}},
		{"negative timeout", "limits:\n  idle_timeout: -1s\n", []string{
			"2:17: limits.idle_timeout: out of range: want 0 (never) or more",
		}},
		{"zero shutdown timeout", "limits:\n  shutdown_timeout: 0s\n", []string{
			"2:21: limits.shutdown_timeout: out of range: want more than 0",
		}},
		{"zero inline budget", "limits:\n  inline_budget: 0\n", []string{
			"2:18: limits.inline_budget: out of range: want more than 0 and at most 1s, or negative (never)",
		}},
		{"bad log level", "log:\n  level: verbose\n", []string{
			"2:10: log.level: want debug, info, warn or error",
		}},
		{"bad log format", "log:\n  format: xml\n", []string{
			"2:11: log.format: want text or json",
		}},
		{"plugins not a list", "plugins: plugins\n", []string{
			`1:10: plugins: want a list of plugin entries, got "plugins"`,
		}},
		{"plugin entry of the wrong type", "plugins:\n  - 5\n", []string{
			"2:5: plugins[0]: want a plugin entry (a path, or a mapping with path:), got the number 5",
		}},
		{"plugin without path", "plugins:\n  - mode: isolated\n", []string{
			"2:5: plugins[0]: no path: want the plugin file or directory",
		}},
		{"empty path", "plugins:\n  - path: ''\n", []string{
			"2:11: plugins[0].path: empty: want a plugin file or a directory of plugins",
		}},
		{"unknown mode", "plugins:\n  - path: a.so\n    mode: sandbox\n", []string{
			"3:11: plugins[0].mode: want inprocess or isolated",
		}},
		{"negative deadline", "plugins:\n  - path: a.so\n    deadline: -5s\n", []string{
			"3:15: plugins[0].deadline: out of range: want 0 (none) or more",
		}},
		{"zero concurrency", "plugins:\n  - path: a.so\n    concurrency: 0\n", []string{
			"3:18: plugins[0].concurrency: out of range: want 1 to 65536",
		}},
		{"negative queue", "defaults:\n  queue: -1\n", []string{
			"2:10: defaults.queue: out of range: want 0 (no limit) to 2147483647",
		}},
		{"enabled not a bool", "plugins:\n  - path: a.so\n    enabled: yes\n", []string{
			`3:14: plugins[0].enabled: want true or false, got "yes"`,
		}},
		{"zero max failures", "defaults:\n  restart:\n    max_failures: 0\n", []string{
			"3:19: defaults.restart.max_failures: out of range: want 1 to 2147483647",
		}},
		{"unknown restart key", "defaults:\n  restart:\n    backoff: 1s\n", []string{
			`3:5: defaults.restart: unknown key "backoff": want one of backoff_min, backoff_max, max_failures, failure_window`,
		}},
		{"backoff_min over backoff_max", "defaults:\n  restart:\n    backoff_min: 1m\n", []string{
			"3:18: defaults.restart: backoff_min 1m0s is longer than backoff_max 30s",
		}},
		{"backoff_max under the defaults' backoff_min", "defaults:\n  restart: {backoff_min: 2s}\nplugins:\n  - path: a.so\n    restart: {backoff_max: 1s}\n", []string{
			"5:28: plugins[0].restart: backoff_min 2s is longer than backoff_max 1s",
		}},
		{"short sha256", "plugins:\n  - path: a.so\n    sha256: abc\n", []string{
			"3:13: plugins[0].sha256: want 64 hexadecimal digits, got 3 characters",
		}},
		{"sha256 not hex", "plugins:\n  - path: a.so\n    sha256: " + strings.Repeat("0", 63) + "g\n", []string{
			`3:13: plugins[0].sha256: want 64 hexadecimal digits, got 'g' at 64`,
		}},
		{"memory limit in process", "plugins:\n  - path: a.so\n    memory_limit: 1GiB\n", []string{
			"3:19: plugins[0].memory_limit: only an isolated plugin has a memory limit of its own: add mode: isolated",
		}},
		{"memory limit in process by defaults", "defaults: {mode: inprocess}\nplugins:\n  - path: a.so\n    memory_limit: 1GiB\n", []string{
			"4:19: plugins[0].memory_limit: only an isolated plugin has a memory limit of its own: add mode: isolated",
		}},
		{"memory limit without unit", "plugins:\n  - path: a.so\n    mode: isolated\n    memory_limit: 512\n", []string{
			"4:19: plugins[0].memory_limit: too small: want 1MiB to 1024TiB",
		}},
		{"required but disabled", "plugins:\n  - path: a.so\n    required: true\n    enabled: false\n", []string{
			"3:15: plugins[0]: a required plugin cannot be disabled: drop required: true or enabled: false",
		}},
		{"duplicate paths", "plugins:\n  - a.so\n  - path: ./x/../a.so\n", []string{
			"3:11: plugins[1].path: " + "DIR/a.so is also plugins[0], at line 2: one entry per file or directory",
		}},
		{"config not a mapping", "plugins:\n  - path: a.so\n    config: [1, 2]\n", []string{
			"3:13: plugins[0].config: want a mapping, handed to the plugin as a JSON object, got a list",
		}},
		{"config without a JSON form", "plugins:\n  - path: a.so\n    config:\n      x: .inf\n      1: one\n      y: {z: .nan}\n      x: 2\n", []string{
			"4:10: plugins[0].config.x: the number .inf has no JSON form",
			"5:7: plugins[0].config: the key 1 is not a string: quote it",
			"6:14: plugins[0].config.y.z: the number .nan has no JSON form",
			"7:7: plugins[0].config.x: repeated key, first at line 4",
		}},
		{"config alias inside its own anchor", "plugins:\n  - path: a.so\n    config: &c {self: *c}\n", []string{
			"3:23: plugins[0].config" + strings.Repeat(".self", maxConfigDepth+1) + ": nested more than 64 deep (an alias inside its own anchor?)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, problems(t, tt.text))
		})
	}
}

// TestConfigBudget: a config mapping of a few lines whose aliases stand for
// 10^7 values is refused once the budget of values is spent. The test's
// budget is small, to be quick; the check is the same.
func TestConfigBudget(t *testing.T) {
	text := "plugins:\n  - path: a.so\n    config:\n      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for c := 'b'; c <= 'g'; c++ {
		p := string(c - 1)
		text += fmt.Sprintf("      %c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", c, c, p, p, p, p, p, p, p, p, p, p)
	}
	d := newDecoder("c.yaml")
	d.budget = 1000
	d.decode([]byte(text))
	assert.Equal(t, "c.yaml:4:41: plugins[0].config.c[7][8][9]: too many values in config mappings, aliases expanded", d.errs.Error())

	d = newDecoder("c.yaml")
	d.budget = 11
	f := d.decode([]byte("plugins:\n  - path: a.so\n    config: {a: &a [x, x, x, x, x, x, x, x, x]}\n"))
	assert.Empty(t, d.errs, "the budget counts every value, the mapping too")
	assert.Equal(t, `{"a":["x","x","x","x","x","x","x","x","x"]}`, string(f.Plugins[0].Config))
}

// TestLoadListsEveryError holds one file with problems in every section:
// all are reported, in the order of the file, each at its line.
func TestLoadListsEveryError(t *testing.T) {
	text := `listen:
  addr: nowhere
limits:
  max_conns: 0
  max_message_size: 64MB
  read_timout: 5s
log:
  level: loud
defaults:
  mode: sandbox
plugins:
  - path: a.so
    deadline: -1ms
    sha256: 1234
  - path: a.so
    memory_limit: 1GiB
  - enabled: false
    bogus: 1
`
	assert.Equal(t, []string{
		"2:9: listen.addr: not an address HOST:PORT, such as 127.0.0.1:5099 or :5099",
		"4:14: limits.max_conns: out of range: want 1 to 2147483647",
		"5:21: limits.max_message_size: not a size: decimal units such as MB are not read; use KiB, MiB, GiB or TiB: want 48B to 4GiB",
		`6:3: limits: unknown key "read_timout": did you mean read_timeout?`,
		"8:10: log.level: want debug, info, warn or error",
		"10:9: defaults.mode: want inprocess or isolated",
		"13:15: plugins[0].deadline: out of range: want 0 (none) or more",
		"14:13: plugins[0].sha256: want 64 hexadecimal digits, got 4 characters",
		"15:11: plugins[1].path: DIR/a.so is also plugins[0], at line 12: one entry per file or directory",
		"16:19: plugins[1].memory_limit: only an isolated plugin has a memory limit of its own: add mode: isolated",
		"17:5: plugins[2]: no path: want the plugin file or directory",
		`18:5: plugins[2]: unknown key "bogus": want one of path, enabled, required, mode, deadline, concurrency, queue, restart, memory_limit, sha256, config`,
	}, problems(t, text))
}

func TestLoadFileErrors(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("too large", func(t *testing.T) {
		path := writeFile(t, "core", strings.Repeat("#", MaxFileSize+1))
		_, err := Load(path)
		assert.EqualError(t, err, path+": larger than 1MiB: not a configuration file")
	})
}

func TestErrors(t *testing.T) {
	_, err := Parse("c.yaml", []byte("limits: {max_conns: 0}\nlog: {level: x}\n"))
	assert.EqualError(t, err, "c.yaml:1:21: limits.max_conns: out of range: want 1 to 2147483647\n"+
		"c.yaml:2:14: log.level: want debug, info, warn or error")
	e, ok := errors.AsType[*Error](err)
	require.True(t, ok, "errors.As finds each *Error")
	assert.Equal(t, Position{"c.yaml", 1, 21}, e.Position)

	assert.Equal(t, "", Position{}.String())
	assert.Equal(t, "c.yaml:3", Position{"c.yaml", 3, 0}.String())
}
