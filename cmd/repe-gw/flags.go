package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// errHelp reports that -h was asked for and the usage printed.
var errHelp = flag.ErrHelp

const usageHead = `Usage: repe-gw [--config FILE] [--plugins DIR] [--plugin FILE]... [flags]
       repe-gw validate --config FILE
       repe-gw check [--calls FILE] [--json] [--threads N] PLUGIN.so

Serves REPE plugins over TCP (and TLS, HTTP and WebSocket when asked);
validate checks a configuration file; check examines a plugin file.

Flags:
`

const usageTail = `
Each flag but --plugin, --watch and --version may also be set in the
environment, as REPE_GW_ and its name in capitals with _ for -:
REPE_GW_MAX_CONNS=500. Flags win over the environment, and both over the
file.
`

// commandLine is what the command line asks for.
type commandLine struct {
	// flags are the settings given as flags, read by the config package
	// exactly as it reads the file and the environment: one parser, one
	// wording, one set of bounds.
	flags config.Overrides
	// named are the files of --plugin, in order, loaded besides the
	// plugins of the file, of --plugins or of REPE_GW_PLUGINS.
	named   []string
	isolate bool
	version bool
	// watch reloads the plugins when their files or the configuration
	// file change.
	watch bool
}

// parseFlags parses args with a flag set of its own, so that nothing is
// bound to package state. The usage goes to stdout when -h asks for it, and
// only then; any other error is returned for the caller to report in one
// line.
func parseFlags(args []string, stdout io.Writer) (*commandLine, error) {
	cl := &commandLine{}
	fs := newFlagSet("repe-gw")
	// set defines a flag that config.Overrides.Set reads under its name.
	set := func(name, def, usage string) {
		fs.value(name, def, usage, func(s string) error { return cl.flags.Set(name, s) })
	}
	set("config", "", "read settings from the YAML `FILE`; flags override it")
	set("plugins", "", "load every *.so below `DIR`, recursively, skipping hidden folders, instead of the file's plugins")
	fs.value("plugin", "", "also load `FILE`; repeatable", func(s string) error {
		cl.named = append(cl.named, s)
		return nil
	})
	set("addr", gateway.DefaultAddr, "listen on `HOST:PORT`")
	set("tls-addr", "", "also serve REPE over TLS on `HOST:PORT`, with --tls-cert and --tls-key")
	set("tls-cert", "", "the TLS certificate chain, PEM `FILE`; read again when it changes and on SIGHUP")
	set("tls-key", "", "the TLS private key, PEM `FILE`")
	set("tls-client-ca", "", "require TLS clients to present a certificate signed by a CA in the PEM `FILE`")
	set("http-addr", "", "serve REPE over a WebSocket at GET /repe on `HOST:PORT`")
	set("http-read-timeout", config.DefaultHTTPReadTimeout.String(), "cut off an HTTP client that takes over `D` to send a request, headers and body; 0: never")
	set("http-idle-timeout", config.DefaultHTTPIdleTimeout.String(), "close a keep-alive HTTP connection idle for `D`; 0: never")
	set("http-max-header-size", config.FormatSize(config.DefaultHTTPMaxHeaderSize), "refuse HTTP requests whose headers are over `SIZE`")
	fs.boolValue("reuse-port", "let another process listen on --addr too, for an upgrade without downtime",
		func(s string) error { return cl.flags.Set("reuse-port", s) })
	set("max-message-size", config.FormatSize(repe.DefaultMaxMessageSize),
		"refuse frames longer than `SIZE`: bytes, or with KiB, MiB or GiB; at most "+config.FormatSize(config.MaxMessageSize))
	set("max-conns", strconv.Itoa(gateway.DefaultMaxConns), "close connections beyond `N` at once")
	set("max-conns-per-ip", "0", "close connections from one IP address beyond `N` at once; 0: no limit")
	set("max-pending-output", config.FormatSize(gateway.DefaultMaxPendingOutput),
		"serve none of a connection's requests while `SIZE` of its replies are unread")
	set("max-pending-input", config.FormatSize(gateway.DefaultMaxPendingInput),
		"let a connection whose requests wait send one frame and `SIZE` more")
	set("read-timeout", gateway.DefaultReadTimeout.String(), "close a connection stalled inside a frame for `D`; 0: never")
	set("write-timeout", gateway.DefaultWriteTimeout.String(),
		"close a connection whose unread replies stay over the bound for `D`; 0: never")
	set("idle-timeout", "0", "close a connection with no request in flight for `D`; 0: never")
	set("keepalive", gateway.DefaultKeepAlive.String(), "send TCP keep-alive probes after `D` of silence; 0: never")
	set("deadline", "0", "answer ec 7 to a plugin call still running after `D`, unless the plugin's entry sets a deadline; 0: none")
	fs.boolean(&cl.isolate, "isolate", "run every plugin in a worker process of its own, unless its entry sets a mode")
	set("shutdown-timeout", config.DefaultShutdownTimeout.String(), "on SIGINT/SIGTERM, wait at most `D` for requests in flight")
	set("shutdown-delay", "0", "on SIGINT/SIGTERM, serve on for `D` with readiness off before closing the listener")
	set("plugin-concurrency", "GOMAXPROCS", "run at most `N` calls into one plugin at once, unless the file sets its concurrency")
	set("inline-budget", gateway.DefaultInlineBudget.String(),
		"run a plugin's calls on the event loop while they average under `D`; negative: never")
	set("log-level", "info", "log at `LEVEL`: debug, info, warn or error")
	set("log-format", config.DefaultLogFormat, "log as `FORMAT`: text or json")
	set("admin", "", "serve metrics, probes and a status page over HTTP on `HOST:PORT`; loopback unless a token is set")
	set("admin-token-file", "", "require the bearer token in `FILE` on the admin listener, but for /healthz and /readyz")
	setBool := func(name, usage string) {
		fs.boolValue(name, usage, func(s string) error { return cl.flags.Set(name, s) })
	}
	setBool("admin-insecure", "allow an admin address that is not loopback without a token")
	setBool("admin-pprof", "serve /debug/pprof/ on the admin listener")
	setBool("admin-ready-without-plugins", "answer /readyz 200 while no plugin is loaded")
	setBool("insecure-plugin-permissions",
		"load plugins that someone other than root or this user could have written, warning each time")
	set("data-dir", "", "give each plugin that takes a context the directory `DIR`/<its name>; default $STATE_DIRECTORY, else $XDG_STATE_HOME/repe-gw, else ~/.local/state/repe-gw")
	setBool("access-log", "log one line per request: remote, id, query, plugin, ec, bytes and duration")
	set("access-log-sample", "1", "keep this `FRACTION` of successful requests in the access log; errors are always kept")
	set("slow-call", "0", "log plugin calls slower than `D`, rate-limited; 0: off")
	fs.boolean(&cl.watch, "watch", "reload the plugins when a plugin file or folder, or the configuration file, changes")
	fs.boolean(&cl.version, "version", "print the version and exit")

	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage(stdout, usageHead)
			fmt.Fprint(stdout, usageTail)
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cl.isolate {
		if err := cl.flags.Set("isolate", "true"); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

const validateUsageHead = `Usage: repe-gw validate --config FILE

Checks a configuration file, and the plugin entries it enables, without
loading any plugin. Prints every problem, one per line, as
FILE:LINE:COLUMN: message, and exits 1; prints nothing and exits 0 when there
is none.

Flags:
`

// parseValidateFlags parses the arguments of repe-gw validate, and returns
// the file that --config names, if any.
func parseValidateFlags(args []string, stdout io.Writer) (string, error) {
	var path string
	fs := newFlagSet("repe-gw validate")
	fs.value("config", "", "check `FILE`; default $REPE_GW_CONFIG", func(s string) error {
		path = s
		return nil
	})
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage(stdout, validateUsageHead)
		}
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return path, nil
}
