package config

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// Overrides are settings from the command line or the environment. Like
// File's, a nil pointer is a setting not given; Apply lays them over a
// File. The command line fills one with Set, once per flag given; FromEnv
// fills another from the environment.
type Overrides struct {
	// Config is the configuration file to load: --config, REPE_GW_CONFIG.
	Config string

	Listen   Listen
	Limits   Limits
	Log      Log
	Admin    Admin
	Security Security
	State    State
	// Defaults override the file's defaults key by key. --deadline sets
	// Deadline, where 0 means none.
	Defaults Policy

	// Plugins, when not nil, replace the file's plugins: a list has no
	// merge that every reader would expect, and a command line that names
	// plugins says which to serve. The file's defaults still apply to
	// them.
	Plugins []Plugin
}

// sections are the parts of a File or Overrides that settings live in.
type sections struct {
	listen   *Listen
	limits   *Limits
	log      *Log
	admin    *Admin
	security *Security
	state    *State
}

func (f *File) sections() sections {
	return sections{&f.Listen, &f.Limits, &f.Log, &f.Admin, &f.Security, &f.State}
}

func (o *Overrides) sections() sections {
	return sections{&o.Listen, &o.Limits, &o.Log, &o.Admin, &o.Security, &o.State}
}

// setting is a key of listen, limits or log: one a flag or the environment
// may set too. One table drives the file, Set and FromEnv, so that a value
// is read and bounded the same way wherever it comes from.
type setting struct {
	key  string // in the file: "limits.max_conns"
	flag string // on the command line, without dashes: "max-conns"

	// node decodes the setting from the file into s.
	node func(d *decoder, n ast.Node, path string, s sections)
	// text reads it from a flag or the environment into s.
	text func(v string, s sections) error
	// copy copies it from src to dst when src sets it.
	copy func(dst, src sections)
}

// newSetting builds a setting whose field is a *T.
func newSetting[T any](key, flag string, field func(sections) **T,
	node func(d *decoder, n ast.Node, path string) (T, bool), text func(string) (T, error)) setting {
	return setting{
		key: key, flag: flag,
		node: func(d *decoder, n ast.Node, path string, s sections) {
			if v, ok := node(d, n, path); ok {
				*field(s) = &v
			}
		},
		text: func(v string, s sections) error {
			t, err := text(v)
			if err == nil {
				*field(s) = &t
			}
			return err
		},
		copy: func(dst, src sections) { over(field(dst), *field(src)) },
	}
}

func countSetting(key, flag string, field func(sections) **int, lo, hi int, note string) setting {
	return newSetting(key, flag, field,
		func(d *decoder, n ast.Node, path string) (int, bool) { return d.count(n, path, lo, hi, note) },
		func(s string) (int, error) { return parseCount(s, lo, hi, note) })
}

func sizeSetting(key, flag string, field func(sections) **uint64, lo, hi uint64) setting {
	return newSetting(key, flag, field,
		func(d *decoder, n ast.Node, path string) (uint64, bool) { return d.size(n, path, lo, hi) },
		func(s string) (uint64, error) { return parseSizeIn(s, lo, hi) })
}

func durationSetting(key, flag string, field func(sections) **time.Duration, check durationCheck) setting {
	return newSetting(key, flag, field,
		func(d *decoder, n ast.Node, path string) (time.Duration, bool) { return d.duration(n, path, check) },
		func(s string) (time.Duration, error) { return parseDuration(s, check) })
}

func textSetting[T any](key, flag string, field func(sections) **T, parse func(string) (T, error)) setting {
	return newSetting(key, flag, field,
		func(d *decoder, n ast.Node, path string) (T, bool) { return textAs(d, n, path, parse) },
		parse)
}

func boolSetting(key, flag string, field func(sections) **bool) setting {
	return newSetting(key, flag, field, (*decoder).boolean, parseBool)
}

// pathSetting is a setting that names a file: a relative path in the
// configuration file is resolved against its directory, as plugin paths
// are, so that a configuration and its files move together.
func pathSetting(key, flag string, field func(sections) **string) setting {
	return newSetting(key, flag, field,
		func(d *decoder, n ast.Node, path string) (string, bool) {
			v, ok := textAs(d, n, path, checkedFile)
			return d.resolve(v), ok
		},
		checkedFile)
}

// checked turns a check into a parse for strings.
func checked(check func(string) error) func(string) (string, error) {
	return func(s string) (string, error) { return s, check(s) }
}

// settings lists every setting of listen, limits, log, admin and security,
// in the order of the example file. Each has a flag, and so a variable.
var settings = []setting{
	textSetting("listen.addr", "addr", func(s sections) **string { return &s.listen.Addr }, checked(checkAddr)),
	textSetting("listen.tls_addr", "tls-addr", func(s sections) **string { return &s.listen.TLSAddr }, checked(checkAddr)),
	pathSetting("listen.tls_cert", "tls-cert", func(s sections) **string { return &s.listen.TLSCert }),
	pathSetting("listen.tls_key", "tls-key", func(s sections) **string { return &s.listen.TLSKey }),
	pathSetting("listen.tls_client_ca", "tls-client-ca", func(s sections) **string { return &s.listen.TLSClientCA }),
	textSetting("listen.http_addr", "http-addr", func(s sections) **string { return &s.listen.HTTPAddr }, checked(checkAddr)),
	durationSetting("listen.http_read_timeout", "http-read-timeout",
		func(s sections) **time.Duration { return &s.listen.HTTPReadTimeout }, atLeastZero("never")),
	durationSetting("listen.http_idle_timeout", "http-idle-timeout",
		func(s sections) **time.Duration { return &s.listen.HTTPIdleTimeout }, atLeastZero("never")),
	sizeSetting("listen.http_max_header_size", "http-max-header-size",
		func(s sections) **uint64 { return &s.listen.HTTPMaxHeaderSize }, 1<<10, repe.DefaultMaxMessageSize),
	boolSetting("listen.reuse_port", "reuse-port", func(s sections) **bool { return &s.listen.ReusePort }),

	sizeSetting("limits.max_message_size", "max-message-size",
		func(s sections) **uint64 { return &s.limits.MaxMessageSize }, repe.HeaderSize, MaxMessageSize),
	countSetting("limits.max_conns", "max-conns",
		func(s sections) **int { return &s.limits.MaxConns }, 1, MaxCount, ""),
	countSetting("limits.max_conns_per_ip", "max-conns-per-ip",
		func(s sections) **int { return &s.limits.MaxConnsPerIP }, 0, MaxCount, " (no limit)"),
	sizeSetting("limits.max_pending_output", "max-pending-output",
		func(s sections) **uint64 { return &s.limits.MaxPendingOutput }, 1, MaxPending),
	sizeSetting("limits.max_pending_input", "max-pending-input",
		func(s sections) **uint64 { return &s.limits.MaxPendingInput }, 1, MaxPending),
	durationSetting("limits.read_timeout", "read-timeout",
		func(s sections) **time.Duration { return &s.limits.ReadTimeout }, atLeastZero("never")),
	durationSetting("limits.write_timeout", "write-timeout",
		func(s sections) **time.Duration { return &s.limits.WriteTimeout }, atLeastZero("never")),
	durationSetting("limits.idle_timeout", "idle-timeout",
		func(s sections) **time.Duration { return &s.limits.IdleTimeout }, atLeastZero("never")),
	durationSetting("limits.keepalive", "keepalive",
		func(s sections) **time.Duration { return &s.limits.KeepAlive }, atLeastZero("none")),
	durationSetting("limits.shutdown_timeout", "shutdown-timeout",
		func(s sections) **time.Duration { return &s.limits.ShutdownTimeout }, positive),
	durationSetting("limits.shutdown_delay", "shutdown-delay",
		func(s sections) **time.Duration { return &s.limits.ShutdownDelay }, atLeastZero("none")),
	countSetting("limits.plugin_concurrency", "plugin-concurrency",
		func(s sections) **int { return &s.limits.PluginConcurrency }, 0, gateway.MaxPluginConcurrency, " (GOMAXPROCS)"),
	durationSetting("limits.inline_budget", "inline-budget",
		func(s sections) **time.Duration { return &s.limits.InlineBudget }, inlineBudget),

	textSetting("log.level", "log-level", func(s sections) **slog.Level { return &s.log.Level }, parseLevel),
	textSetting("log.format", "log-format", func(s sections) **string { return &s.log.Format }, checked(checkFormat)),
	boolSetting("log.access_log", "access-log", func(s sections) **bool { return &s.log.AccessLog }),
	newSetting("log.access_log_sample", "access-log-sample",
		func(s sections) **float64 { return &s.log.AccessLogSample }, (*decoder).fraction, parseFraction),
	durationSetting("log.slow_call", "slow-call", func(s sections) **time.Duration { return &s.log.SlowCall }, atLeastZero("off")),

	textSetting("admin.addr", "admin", func(s sections) **string { return &s.admin.Addr }, checked(checkAddr)),
	pathSetting("admin.token_file", "admin-token-file", func(s sections) **string { return &s.admin.TokenFile }),
	boolSetting("admin.insecure", "admin-insecure", func(s sections) **bool { return &s.admin.Insecure }),
	boolSetting("admin.pprof", "admin-pprof", func(s sections) **bool { return &s.admin.Pprof }),
	boolSetting("admin.ready_without_plugins", "admin-ready-without-plugins",
		func(s sections) **bool { return &s.admin.ReadyWithoutPlugins }),

	boolSetting("security.insecure_plugin_permissions", "insecure-plugin-permissions",
		func(s sections) **bool { return &s.security.InsecurePluginPermissions }),

	pathSetting("state.data_dir", "data-dir", func(s sections) **string { return &s.state.DataDir }),
}

// Set reads the setting a flag names, without its dashes, from value, as
// the file would read it, and records it in o. The names are the last part
// of each key of listen, limits and log, with - for _ ("addr",
// "max-message-size", "log-level"), "admin" for admin.addr and "admin-" and
// the last part of the other keys of admin ("admin-token-file"), the last
// part of each key of security ("insecure-plugin-permissions"), and:
//
//   - "config": the file to load;
//   - "plugins": a list of files or directories, separated as in PATH
//     (':' on Unix), each appended to o.Plugins with the default policy;
//   - "deadline": defaults.deadline, where 0 means none, as in the file.
//
// Its error says what is wrong with value, without naming the flag.
func (o *Overrides) Set(name, value string) error {
	switch name {
	case "config":
		o.Config = value
		return nil
	case "deadline":
		d, err := parseDuration(value, atLeastZero("none"))
		if err == nil {
			o.Defaults.Deadline = &d
		}
		return err
	case "isolate":
		on, err := strconv.ParseBool(value)
		if err != nil {
			return errors.New("want true or false")
		}
		m := ModeInProcess
		if on {
			m = ModeIsolated
		}
		o.Defaults.Mode = &m
		return nil
	case "plugins":
		for _, path := range filepath.SplitList(value) {
			if path != "" {
				o.Plugins = append(o.Plugins, Plugin{Path: path, Enabled: true})
			}
		}
		return nil
	}
	for _, s := range settings {
		if s.flag == name {
			return s.text(value, o.sections())
		}
	}
	return fmt.Errorf("config: no setting is named %q", name)
}

// EnvVar is an environment variable that FromEnv reads.
type EnvVar struct {
	// Name is the variable: REPE_GW_ and the flag's name in capitals, with
	// _ for -.
	Name string
	// Flag is the flag it stands for, and the name Set reads it under.
	Flag string
	// Key is the key of the configuration file it overrides; "" for
	// REPE_GW_CONFIG, which names the file.
	Key string
}

// EnvVars returns the variables FromEnv reads, one for each name Set
// reads: REPE_GW_CONFIG, REPE_GW_PLUGINS, REPE_GW_DEADLINE, REPE_GW_ISOLATE,
// and one for each key of listen, limits, log, admin and security.
func EnvVars() []EnvVar {
	vars := []EnvVar{
		{"REPE_GW_CONFIG", "config", ""},
		{"REPE_GW_PLUGINS", "plugins", "plugins"},
		{"REPE_GW_DEADLINE", "deadline", "defaults.deadline"},
		{"REPE_GW_ISOLATE", "isolate", "defaults.mode"},
	}
	for _, s := range settings {
		vars = append(vars, EnvVar{envName(s.flag), s.flag, s.key})
	}
	return vars
}

func envName(flag string) string {
	return "REPE_GW_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// FromEnv reads the variables of EnvVars through getenv (os.Getenv in
// production, a map in tests). An empty variable is unset, as in most
// programs, so that VAR= in a unit file or a shell clears it. Its error
// lists every variable that holds a bad value, one per line.
func FromEnv(getenv func(string) string) (Overrides, error) {
	var o Overrides
	var errs []error
	for _, v := range EnvVars() {
		value := getenv(v.Name)
		if value == "" {
			continue
		}
		if err := o.Set(v.Flag, value); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", v.Name, value, err))
		}
	}
	return o, errors.Join(errs...)
}

// Apply lays o over f: every setting o gives replaces f's, and so does
// every key of o's defaults; o's plugins, when it names any, replace f's. Applying the environment and then the
// flags gives the documented precedence: flags, then the environment, then
// the file, then the defaults.
func (f *File) Apply(o Overrides) {
	dst, src := f.sections(), o.sections()
	for _, s := range settings {
		s.copy(dst, src)
	}
	d, od := &f.Defaults, &o.Defaults
	over(&d.Mode, od.Mode)
	over(&d.Deadline, od.Deadline)
	over(&d.Concurrency, od.Concurrency)
	over(&d.Queue, od.Queue)
	over(&d.Restart.BackoffMin, od.Restart.BackoffMin)
	over(&d.Restart.BackoffMax, od.Restart.BackoffMax)
	over(&d.Restart.MaxFailures, od.Restart.MaxFailures)
	over(&d.Restart.FailureWindow, od.Restart.FailureWindow)
	if o.Plugins != nil {
		f.Plugins = slices.Clone(o.Plugins)
	}
}

// over sets *dst to src when src is set.
func over[T any](dst **T, src *T) {
	if src != nil {
		*dst = src
	}
}
