package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/client"
)

// defaultAddr is where repe-gw listens by default (make run).
const defaultAddr = "127.0.0.1:5099"

const usageText = `Usage: repe [flags] COMMAND PATH [BODY]
       repe record --listen HOST:PORT --upstream HOST:PORT --out DIR
       repe replay DIR [--addr HOST:PORT] [--expect FILE]
       repe plugins|stats [--json] [--addr HOST:PORT]

Calls a REPE server (repe-gw, a Glaze asio_server, ...) and prints the reply;
records the traffic to a server, and replays a recording as a golden test.

Commands:
  get PATH                      call PATH with no body
  set PATH JSON                 call PATH with a JSON body (Glaze replies null)
  call PATH [JSON | - | @FILE]  call PATH with a body from the argument,
                                standard input (-) or a file (@FILE)
  notify PATH [JSON | - | @FILE]
                                send without waiting; the server sends no reply
  record                        forward connections from --listen to --upstream
                                and write each request and its reply into
                                --out, until interrupted
  replay DIR                    replay a recording in order against --addr;
                                exit 1 if any reply differs
  plugins                       list the plugins a repe-gw serves
  stats                         show a repe-gw's counts, by plugin

Flags (before or after the command):
  --addr HOST:PORT  server address (default $REPE_ADDR, else ` + defaultAddr + `)
  --timeout D       give up after D, connecting included (default 5s); for
                    replay, each wait for a reply; for record, each dial
  --tls             connect with TLS (1.2 or later); implied by the four below
  --cacert FILE     trust the CA certificates in FILE (PEM), not the system's
  --cert FILE, --key FILE
                    present this client certificate and key (PEM), for a
                    server that requires one (mutual TLS)
  --server-name NAME
                    the name the server's certificate must carry (default:
                    the host of --addr)
  --raw             print JSON compact rather than indented, binary as plain hex
  --beve            send the JSON body encoded as BEVE (body_format 1)
  --id N            request id (default: chosen by the client, from 1)
  --version         print the version and exit
  --listen HOST:PORT, --upstream HOST:PORT, --out DIR
                    record: where to listen, the server to forward to, and
                    the directory to write (which must hold no recording)
  --expect FILE     replay: cases a server deliberately answers otherwise,
                    with the error it gives instead (JSON, as in
                    conformance/testdata/expectations.json)
  --json            plugins, stats: print the gateway's JSON, not a table

JSON and BEVE replies are printed as JSON, UTF-8 replies as text, other
bodies as hex. An error reply prints "<ec name> (<ec>): <message>" on
standard error. Exit status: 0 success, 1 usage or connection error, 2 the
server answered with an error.

Examples:
  repe get /calculator/value
  repe set /calculator/value 42
  echo '{"value": 2.5}' | repe call /calculator -
  repe --addr 10.0.0.7:5099 --timeout 2s call /calculator/increment
  repe record --listen 127.0.0.1:5098 --upstream 127.0.0.1:5099 --out session
  repe replay session --addr 127.0.0.1:5099
`

// options are the parsed flags.
type options struct {
	addr    string
	timeout time.Duration
	raw     bool
	beve    bool
	id      uint64
	hasID   bool
	version bool
	// tls and its files: --tls, --cacert, --cert, --key, --server-name.
	tls      bool
	tlsFiles client.TLSFiles

	// record and replay
	listen   string
	upstream string
	out      string
	expect   string

	json bool // plugins and stats

	set map[string]bool // the flags given, by name
}

var errHelp = errors.New("help requested")

// parseArgs reads flags wherever they appear among the positional
// arguments, so that "repe get /x --raw" works as "repe --raw get /x". A
// negative number is a positional argument (a JSON body), and "--" ends the
// flags. envAddr is $REPE_ADDR.
func parseArgs(args []string, envAddr string, stdout io.Writer) (options, []string, error) {
	opts := options{addr: envAddr, timeout: 5 * time.Second}
	if opts.addr == "" {
		opts.addr = defaultAddr
	}
	fs := flag.NewFlagSet("repe", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run
	fs.StringVar(&opts.addr, "addr", opts.addr, "server address")
	fs.DurationVar(&opts.timeout, "timeout", opts.timeout, "give up after this long")
	fs.BoolVar(&opts.raw, "raw", false, "compact JSON, plain hex")
	fs.BoolVar(&opts.beve, "beve", false, "send the body as BEVE")
	fs.BoolVar(&opts.tls, "tls", false, "connect with TLS")
	fs.StringVar(&opts.tlsFiles.CACert, "cacert", "", "TLS: CA certificates")
	fs.StringVar(&opts.tlsFiles.Cert, "cert", "", "TLS: client certificate")
	fs.StringVar(&opts.tlsFiles.Key, "key", "", "TLS: client key")
	fs.StringVar(&opts.tlsFiles.ServerName, "server-name", "", "TLS: server name")
	fs.BoolVar(&opts.version, "version", false, "print the version")
	fs.StringVar(&opts.listen, "listen", "", "record: listen address")
	fs.StringVar(&opts.upstream, "upstream", "", "record: server address")
	fs.StringVar(&opts.out, "out", "", "record: recording directory")
	fs.StringVar(&opts.expect, "expect", "", "replay: expectations file")
	fs.BoolVar(&opts.json, "json", false, "plugins, stats: JSON")
	fs.Func("id", "request id", func(s string) error {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return errors.New("not an unsigned 64-bit integer")
		}
		opts.id, opts.hasID = id, true
		return nil
	})

	var pos []string
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			pos = append(pos, args[1:]...)
			args = nil
		case len(a) > 1 && a[0] == '-' && !startsNumber(a[1:]):
			n := flagArgs(fs, a, len(args))
			if err := fs.Parse(args[:n]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					fmt.Fprint(stdout, usageText)
					return opts, nil, errHelp
				}
				return opts, nil, err
			}
			args = args[n:]
		default:
			pos = append(pos, a)
			args = args[1:]
		}
	}
	if opts.timeout <= 0 {
		return opts, nil, errors.New("--timeout must be positive")
	}
	opts.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { opts.set[f.Name] = true })
	return opts, pos, nil
}

// flagArgs returns how many arguments the flag a takes up: two for a
// flag that needs a value given separately, otherwise one.
func flagArgs(fs *flag.FlagSet, a string, left int) int {
	name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
	f := fs.Lookup(name)
	if f == nil || hasValue || left < 2 {
		return 1
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return 1
	}
	return 2
}

// startsNumber reports whether s (an argument after its '-') is a number,
// as in "repe set /x -5".
func startsNumber(s string) bool {
	return s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == '.')
}

// commandFlags lists the flags that only some commands take; any other flag
// goes with every command.
var commandFlags = map[string][]string{
	"listen":   {"record"},
	"upstream": {"record"},
	"out":      {"record"},
	"expect":   {"replay"},
	"json":     {"plugins", "stats"},
	"raw":      {"get", "set", "call", "plugins", "stats"},
	"beve":     {"get", "set", "call", "notify"},
	"id":       {"get", "set", "call", "notify"},
	"addr":     {"get", "set", "call", "notify", "replay", "plugins", "stats"},
	// TLS is for the commands that dial with the client package.
	"tls":         {"get", "set", "call", "notify", "plugins", "stats"},
	"cacert":      {"get", "set", "call", "notify", "plugins", "stats"},
	"cert":        {"get", "set", "call", "notify", "plugins", "stats"},
	"key":         {"get", "set", "call", "notify", "plugins", "stats"},
	"server-name": {"get", "set", "call", "notify", "plugins", "stats"},
}

// checkFlags returns an error for a flag given to a command that does not
// take it, so that a misplaced flag is not silently ignored, and for a
// flag that record needs and lacks.
func checkFlags(command string, opts options) error {
	for _, name := range slices.Sorted(maps.Keys(opts.set)) {
		if cmds, ok := commandFlags[name]; ok && !slices.Contains(cmds, command) {
			return fmt.Errorf("--%s is not a flag of %s", name, command)
		}
	}
	if command == "record" && (opts.listen == "" || opts.upstream == "" || opts.out == "") {
		return errors.New("record needs --listen, --upstream and --out")
	}
	return nil
}
