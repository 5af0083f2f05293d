package config

import (
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/repe-gw/repe-gw/gateway"
)

// File is a configuration file as written. A nil pointer is a key the file
// does not set, so that a flag or the environment overrides only what it
// sets, and a default applies only where nothing was set; the zero File
// sets nothing, and is valid. The key tags name the YAML keys.
type File struct {
	// Path is the file the settings were read from; plugin paths in it are
	// already resolved against its directory.
	Path string `key:"-"`

	Listen   Listen   `key:"listen"`
	Limits   Limits   `key:"limits"`
	Log      Log      `key:"log"`
	Admin    Admin    `key:"admin"`
	Security Security `key:"security"`
	State    State    `key:"state"`
	Defaults Policy   `key:"defaults"`
	Plugins  []Plugin `key:"plugins"`
}

// Listen is where the gateway serves REPE.
type Listen struct {
	// Addr is the TCP address, HOST:PORT. Default gateway.DefaultAddr.
	Addr *string `key:"addr"`
	// TLSAddr is a second address, HOST:PORT, that serves REPE over TLS
	// with TLSCert and TLSKey. Default: none.
	TLSAddr *string `key:"tls_addr"`
	// TLSCert and TLSKey are the PEM files of the TLS certificate (its
	// chain) and its private key; relative paths are relative to the
	// configuration file's directory. They are read again when they
	// change, and on SIGHUP. Default: none.
	TLSCert *string `key:"tls_cert"`
	TLSKey  *string `key:"tls_key"`
	// TLSClientCA is a PEM file of the certificates that sign client
	// certificates: with it, a TLS client without a valid certificate is
	// refused in the handshake (mutual TLS). Default: none, no client
	// certificate is asked for.
	TLSClientCA *string `key:"tls_client_ca"`
	// HTTPAddr is an address, HOST:PORT, that serves HTTP: REPE frames
	// over a WebSocket at GET /repe. Default: none.
	HTTPAddr *string `key:"http_addr"`
	// HTTPReadTimeout bounds the reading of one HTTP request, headers and
	// body; 0 is never. Default DefaultHTTPReadTimeout. A WebSocket, once
	// upgraded, has the REPE limits instead.
	HTTPReadTimeout *time.Duration `key:"http_read_timeout"`
	// HTTPIdleTimeout closes a keep-alive HTTP connection that waits this
	// long for its next request; 0 is never. Default DefaultHTTPIdleTimeout.
	HTTPIdleTimeout *time.Duration `key:"http_idle_timeout"`
	// HTTPMaxHeaderSize bounds an HTTP request's headers, in bytes: 1KiB
	// to 64MiB. Default DefaultHTTPMaxHeaderSize.
	HTTPMaxHeaderSize *uint64 `key:"http_max_header_size"`
	// ReusePort lets another process listen on Addr too (SO_REUSEPORT),
	// for an upgrade without downtime. Default false.
	ReusePort *bool `key:"reuse_port"`
}

// Limits bound what clients can make the gateway hold or wait for. The
// defaults are those of gateway.Config; so are the meanings, except where
// a field says otherwise.
type Limits struct {
	// MaxMessageSize limits the length field of a request, in bytes:
	// repe.HeaderSize to MaxMessageSize. Default 64MiB, as Glaze.
	MaxMessageSize *uint64 `key:"max_message_size"`
	// MaxConns limits the connections open at once: 1 to MaxCount.
	MaxConns *int `key:"max_conns"`
	// MaxConnsPerIP limits the connections from one IP address; 0, the
	// default, is no limit.
	MaxConnsPerIP *int `key:"max_conns_per_ip"`
	// MaxPendingOutput bounds the replies a connection has not read, in
	// bytes: 1B to MaxPending.
	MaxPendingOutput *uint64 `key:"max_pending_output"`
	// MaxPendingInput bounds what a connection may send ahead of requests
	// that cannot be served yet, in bytes: 1B to MaxPending.
	MaxPendingInput *uint64 `key:"max_pending_input"`
	// ReadTimeout closes a connection stalled inside a frame; 0 is never.
	ReadTimeout *time.Duration `key:"read_timeout"`
	// WriteTimeout closes a connection that reads none of its replies; 0
	// is never.
	WriteTimeout *time.Duration `key:"write_timeout"`
	// IdleTimeout closes a connection with nothing in flight; 0, the
	// default, is never.
	IdleTimeout *time.Duration `key:"idle_timeout"`
	// KeepAlive is the idle time before TCP keep-alive probes; 0 is none.
	KeepAlive *time.Duration `key:"keepalive"`
	// ShutdownTimeout is how long a SIGINT or SIGTERM waits for requests
	// in flight: more than 0. Default DefaultShutdownTimeout.
	ShutdownTimeout *time.Duration `key:"shutdown_timeout"`
	// ShutdownDelay is how long a SIGINT or SIGTERM waits, with readiness
	// turned off, before the gateway stops accepting connections, so that
	// load balancers notice first; 0, the default, is none.
	ShutdownDelay *time.Duration `key:"shutdown_delay"`
	// PluginConcurrency is the default of every plugin's concurrency: 0,
	// the default, is GOMAXPROCS; at most gateway.MaxPluginConcurrency.
	PluginConcurrency *int `key:"plugin_concurrency"`
	// InlineBudget is how long a plugin's calls may average and still run
	// on the event loop: more than 0 and at most MaxInlineBudget, or
	// negative to keep every call off the event loop.
	InlineBudget *time.Duration `key:"inline_budget"`
}

// Log is how the gateway logs, on standard error.
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error.
	// Default info.
	Level *slog.Level `key:"level"`
	// Format is text or json. Default text.
	Format *string `key:"format"`
	// AccessLog logs one line per request, at info level. Default off.
	AccessLog *bool `key:"access_log"`
	// AccessLogSample is the fraction of successful requests the access
	// log keeps, from 0 to 1; errors are always logged. Default 1.
	AccessLogSample *float64 `key:"access_log_sample"`
	// SlowCall logs plugin calls slower than it, rate-limited. Default 0,
	// off.
	SlowCall *time.Duration `key:"slow_call"`
}

// Admin is the admin listener (package admin): metrics, probes and the
// status page, over HTTP.
type Admin struct {
	// Addr is its TCP address, HOST:PORT. Default: none, no admin
	// listener.
	Addr *string `key:"addr"`
	// TokenFile names a file holding the bearer token every path but the
	// probes requires; a relative path is relative to the configuration
	// file's directory. Default: none.
	TokenFile *string `key:"token_file"`
	// Insecure allows an address that is not loopback without a token.
	// Default false.
	Insecure *bool `key:"insecure"`
	// Pprof serves /debug/pprof/. Default false.
	Pprof *bool `key:"pprof"`
	// ReadyWithoutPlugins makes readiness true with no plugin loaded.
	// Default false.
	ReadyWithoutPlugins *bool `key:"ready_without_plugins"`
}

// Security is what the gateway accepts that it would otherwise refuse as
// unsafe.
type Security struct {
	// InsecurePluginPermissions true loads a plugin file that someone
	// other than root or the gateway's user could have written (the file,
	// or a directory from it up to its plugin directory, is theirs or is
	// writable by group or others), with a warning at every load, instead
	// of refusing it. Setuid files and links out of the plugin directories
	// are refused whatever it says. Default false.
	InsecurePluginPermissions *bool `key:"insecure_plugin_permissions"`
}

// State is where the gateway keeps what outlives it.
type State struct {
	// DataDir holds a directory of its own, <data_dir>/<plugin name> made
	// with mode 0700, for each plugin that takes a context
	// (repe_plugin_init_ex, hook plugins). Default pluginhost's
	// DefaultDataDir: $STATE_DIRECTORY (systemd), else
	// $XDG_STATE_HOME/repe-gw, else ~/.local/state/repe-gw.
	DataDir *string `key:"data_dir"`
}

// Mode is where a plugin's code runs.
type Mode string

// The modes.
const (
	// ModeInProcess loads the plugin into the gateway: the fastest calls,
	// but a crash in the plugin is a crash of the gateway.
	ModeInProcess Mode = "inprocess"
	// ModeIsolated runs the plugin in a process of its own, so that its
	// crash or leak costs only its own calls.
	ModeIsolated Mode = "isolated"
)

// Policy is how the gateway treats a plugin's calls, as written: in
// defaults, for every plugin, or in one plugin's entry, where it overrides
// defaults key by key.
type Policy struct {
	// Mode is where the plugin runs. Default ModeInProcess.
	Mode *Mode `key:"mode"`
	// Deadline is how long one call may take before its caller is
	// answered with a timeout; 0 is none, so that a plugin's entry can
	// undo a deadline of defaults. Default: none.
	Deadline *time.Duration `key:"deadline"`
	// Concurrency is how many calls may be in the plugin at once: 1 to
	// gateway.MaxPluginConcurrency. Default limits.plugin_concurrency.
	Concurrency *int `key:"concurrency"`
	// Queue is how many calls may wait for one of those slots before
	// further ones are refused: 0, the default, is no limit.
	Queue *int `key:"queue"`
	// Restart is how a plugin that failed is brought back.
	Restart Restart `key:"restart"`
}

// Restart is how a failed plugin is brought back, as written.
type Restart struct {
	// BackoffMin is the wait before the first restart; each failure soon
	// after doubles it, up to BackoffMax. Default DefaultBackoffMin.
	BackoffMin *time.Duration `key:"backoff_min"`
	// BackoffMax bounds the wait. Default DefaultBackoffMax.
	BackoffMax *time.Duration `key:"backoff_max"`
	// MaxFailures failures within FailureWindow stop the restarts: the
	// plugin stays down, and a required one turns readiness false.
	// Default DefaultMaxFailures.
	MaxFailures *int `key:"max_failures"`
	// FailureWindow is the span in which failures count. Default
	// DefaultFailureWindow.
	FailureWindow *time.Duration `key:"failure_window"`
}

// Plugin is one entry of plugins: a plugin file, or a directory whose
// plugins (every *.so below it, as --plugins finds them) share the entry.
type Plugin struct {
	// Pos is where the entry begins in the file: the zero Position for an
	// entry from a flag or the environment.
	Pos Position `key:"-"`

	// Path is the file or directory. A relative path in a file is
	// resolved against the file's directory, so that a configuration and
	// its plugins move together.
	Path string `key:"path"`
	// Enabled false keeps the entry in the file, checked, but loads
	// nothing. Default true.
	Enabled bool `key:"enabled"`
	// Required true means the gateway must not run without it: if it is
	// refused at start-up (for a directory: any plugin in it, or finding
	// none), start-up fails; if it fails later, readiness turns false.
	// Default false: a refused plugin is logged, and the others serve.
	Required bool `key:"required"`

	// Policy overrides File.Defaults for this plugin, key by key.
	Policy

	// MemoryLimit caps the memory of an isolated plugin's process, in
	// bytes: MinMemoryLimit to MaxMemoryLimit. Only with mode isolated: a plugin in
	// the gateway's own process cannot be given a limit of its own.
	MemoryLimit *uint64 `key:"memory_limit"`
	// SHA256 pins the plugin file's contents: 64 hexadecimal digits, kept
	// in lower case; the file is refused when its digest differs. Empty:
	// not pinned. A pin names one file, so a directory entry with a pin is
	// refused when plugins load.
	SHA256 string `key:"sha256"`
	// Config is handed to the plugin, as JSON: the entry's config mapping,
	// its keys in the order written. Nil when the entry has none.
	Config json.RawMessage `key:"config"`
}

// Defaults of what the file may leave unset, beyond those of
// gateway.Config.
const (
	DefaultShutdownTimeout = 15 * time.Second
	// DefaultHTTPReadTimeout gives a request of the REPE maximum, 64MiB,
	// about 9 Mbit/s; a client slower than that, or one that stalls, is cut
	// off rather than holding its connection.
	DefaultHTTPReadTimeout = time.Minute
	DefaultHTTPIdleTimeout = 2 * time.Minute
	// DefaultHTTPMaxHeaderSize is net/http's own default.
	DefaultHTTPMaxHeaderSize = 1 << 20
	DefaultLogLevel          = slog.LevelInfo
	DefaultLogFormat         = "text"
	DefaultMode              = ModeInProcess
	DefaultBackoffMin        = 100 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultMaxFailures       = 5
	DefaultFailureWindow     = time.Minute
)

// Bounds of the values, the same whether they come from the file, a flag or
// the environment.
const (
	// MaxMessageSize is the largest max_message_size. The gateway holds a
	// frame whole in memory, per connection, so a limit in the terabytes
	// would promise what no machine has; 4 GiB is 64 times Glaze's
	// default.
	MaxMessageSize = 4 << 30
	// MaxPending is the largest max_pending_output and max_pending_input:
	// what one connection may make the gateway hold.
	MaxPending = 1 << 30
	// MaxCount bounds counts: connections, queues, failures. The gateway
	// counts a plugin's calls in 32 bits.
	MaxCount = math.MaxInt32
	// MaxInlineBudget is the largest inline_budget. A plugin inside it
	// holds the event loop, and every connection on it, for that long per
	// call; beyond a second that is no longer what running inline is for.
	MaxInlineBudget = time.Second
	// MinMemoryLimit is the smallest memory_limit: no process runs in
	// less, so a smaller one is a unit left out ("512" is bytes).
	MinMemoryLimit = 1 << 20
	// MaxMemoryLimit is the largest memory_limit, 1024TiB: far beyond any
	// machine, but within what a process limit can hold.
	MaxMemoryLimit = 1 << 50
	// MaxFileSize bounds a configuration file, so that a wrong path (a log,
	// a core dump) fails at once instead of being parsed.
	MaxFileSize = 1 << 20
)

// Effective is a plugin's policy with every default applied: the entry's
// own keys, then those of defaults, then the built-in defaults.
type Effective struct {
	Mode Mode
	// Deadline is 0 when none is set.
	Deadline time.Duration
	// Concurrency is 0 when neither the entry, defaults nor
	// limits.plugin_concurrency sets it: the gateway's default, GOMAXPROCS.
	Concurrency int
	// Queue is 0 for no limit.
	Queue         int
	BackoffMin    time.Duration
	BackoffMax    time.Duration
	MaxFailures   int
	FailureWindow time.Duration
	// MemoryLimit is 0 when none is set.
	MemoryLimit uint64
}

// Effective returns p's policy with every default applied. p need not be one
// of f.Plugins: an entry from a flag takes f's defaults too.
func (f *File) Effective(p *Plugin) Effective {
	d := &f.Defaults
	return Effective{
		Mode:          pick(p.Mode, d.Mode, DefaultMode),
		Deadline:      pick(p.Deadline, d.Deadline, 0),
		Concurrency:   pick(p.Concurrency, d.Concurrency, pick(f.Limits.PluginConcurrency, nil, 0)),
		Queue:         pick(p.Queue, d.Queue, 0),
		BackoffMin:    pick(p.Restart.BackoffMin, d.Restart.BackoffMin, DefaultBackoffMin),
		BackoffMax:    pick(p.Restart.BackoffMax, d.Restart.BackoffMax, DefaultBackoffMax),
		MaxFailures:   pick(p.Restart.MaxFailures, d.Restart.MaxFailures, DefaultMaxFailures),
		FailureWindow: pick(p.Restart.FailureWindow, d.Restart.FailureWindow, DefaultFailureWindow),
		MemoryLimit:   pick(p.MemoryLimit, nil, 0),
	}
}

// pick returns the first of own and fallback that is set, or def.
func pick[T any](own, fallback *T, def T) T {
	switch {
	case own != nil:
		return *own
	case fallback != nil:
		return *fallback
	}
	return def
}

// Gateway returns the server configuration of f's listener and limits,
// with log as the logger. What f leaves unset stays zero, which
// gateway.Config reads as its default; a 0 that the file means as "never"
// becomes the negative value that says so to gateway.Config.
//
// It leaves Deadline 0: defaults.deadline reaches each plugin through
// Effective, as the Policy the caller gives it, because gateway.Config
// would read a plugin's deadline of 0, none, as its own Deadline.
func (f *File) Gateway(log *slog.Logger) gateway.Config {
	l := &f.Limits
	return gateway.Config{
		Addr:              pick(f.Listen.Addr, nil, ""),
		ReusePort:         pick(f.Listen.ReusePort, nil, false),
		MaxMessageSize:    pick(l.MaxMessageSize, nil, 0),
		MaxConns:          pick(l.MaxConns, nil, 0),
		MaxConnsPerIP:     pick(l.MaxConnsPerIP, nil, 0),
		MaxPendingOutput:  int(pick(l.MaxPendingOutput, nil, 0)),
		MaxPendingInput:   int(pick(l.MaxPendingInput, nil, 0)),
		ReadTimeout:       never(l.ReadTimeout),
		WriteTimeout:      never(l.WriteTimeout),
		IdleTimeout:       pick(l.IdleTimeout, nil, 0), // 0 is never there too
		KeepAlive:         never(l.KeepAlive),
		PluginConcurrency: pick(l.PluginConcurrency, nil, 0),
		InlineBudget:      pick(l.InlineBudget, nil, 0),
		Logger:            log,
		AccessLog:         pick(f.Log.AccessLog, nil, false),
		AccessLogSample:   sample(f.Log.AccessLogSample),
		SlowCall:          pick(f.Log.SlowCall, nil, 0),
	}
}

// sample maps the file's access-log sample, where 0 keeps no success, to
// gateway.Config's, where 0 is the default (every one) and negative none.
func sample(f *float64) float64 {
	switch {
	case f == nil:
		return 0
	case *f == 0:
		return -1
	}
	return *f
}

// never maps a duration whose 0 means never, as in the file, to
// gateway.Config's: 0 the default, negative never.
func never(d *time.Duration) time.Duration {
	switch {
	case d == nil:
		return 0
	case *d == 0:
		return -1
	}
	return *d
}

// ShutdownTimeout returns limits.shutdown_timeout, or its default.
func (f *File) ShutdownTimeout() time.Duration {
	return pick(f.Limits.ShutdownTimeout, nil, DefaultShutdownTimeout)
}

// ShutdownDelay returns limits.shutdown_delay, or its default, none.
func (f *File) ShutdownDelay() time.Duration {
	return pick(f.Limits.ShutdownDelay, nil, 0)
}

// InsecurePluginPermissions returns security.insecure_plugin_permissions,
// or its default, false.
func (f *File) InsecurePluginPermissions() bool {
	return pick(f.Security.InsecurePluginPermissions, nil, false)
}

// DataDir returns state.data_dir, or "" for pluginhost's default.
func (f *File) DataDir() string {
	return pick(f.State.DataDir, nil, "")
}

// LogLevel returns log.level, or its default.
func (f *File) LogLevel() slog.Level {
	return pick(f.Log.Level, nil, DefaultLogLevel)
}

// LogFormat returns log.format, or its default.
func (f *File) LogFormat() string {
	return pick(f.Log.Format, nil, DefaultLogFormat)
}
