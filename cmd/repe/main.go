// Command repe calls a REPE server from the shell, the way grpcurl calls
// gRPC servers and redis-cli calls Redis:
//
//	repe [--addr HOST:PORT] get PATH
//	repe [--addr HOST:PORT] set PATH JSON
//	repe [--addr HOST:PORT] call PATH [JSON | - | @FILE]
//	repe [--addr HOST:PORT] notify PATH [JSON | - | @FILE]
//	repe record --listen HOST:PORT --upstream HOST:PORT --out DIR
//	repe replay DIR [--addr HOST:PORT] [--expect FILE]
//
// Run repe -h for every flag.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/repe-gw/repe-gw/beve"
	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/version"
	"github.com/repe-gw/repe-gw/repe"
)

// Exit codes, as the Rust REPE command-line client uses them.
const (
	exitOK          = 0
	exitFailure     = 1 // usage, connection, timeout or local error
	exitServerError = 2 // the server answered with a non-zero ec
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole program; main only wires it to the process. It returns
// the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, pos, err := parseArgs(args, os.Getenv("REPE_ADDR"), stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		return usageError(stderr, err.Error())
	}
	if opts.version {
		fmt.Fprintln(stdout, "repe", version.String())
		return exitOK
	}
	cmd, err := parseCommand(pos)
	if err == nil {
		err = checkFlags(cmd.name, opts)
	}
	if err != nil {
		return usageError(stderr, err.Error())
	}
	switch cmd.name {
	case "record":
		return runRecord(opts, stderr)
	case "replay":
		return runReplay(cmd.path, opts, stdout, stderr)
	case "plugins", "stats":
		return runIntrospect(cmd.name, opts, stdout, stderr)
	}

	body, err := readBody(cmd.source, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return exitFailure
	}
	if cmd.name == "set" && len(body) == 0 {
		return usageError(stderr, "set needs a JSON body")
	}
	if err := validateJSON(body); err != nil {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return exitFailure
	}
	var callOpts []client.CallOption
	if opts.beve && len(body) > 0 {
		if body, err = beve.AppendBEVE(nil, body); err != nil {
			fmt.Fprintf(stderr, "repe: %v\n", err)
			return exitFailure
		}
		callOpts = append(callOpts, client.WithBodyFormat(repe.BodyBEVE))
	}
	if opts.hasID {
		callOpts = append(callOpts, client.WithID(opts.id))
	}

	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	c, code := dial(ctx, opts, stderr)
	if c == nil {
		return code
	}
	defer c.Close()

	if cmd.notify {
		if err := c.Notify(ctx, cmd.path, body, callOpts...); err != nil {
			return reportError(stderr, err, client.Reply{}, "send to", opts)
		}
		return exitOK
	}
	reply, err := c.Call(ctx, cmd.path, body, callOpts...)
	if err != nil {
		code := reportError(stderr, err, reply, "get a reply from", opts)
		if code == exitServerError && cmd.path != "" && !strings.HasPrefix(cmd.path, "/") {
			// The server's text is Glaze's, and says nothing of why.
			fmt.Fprintf(stderr, "repe: hint: a path is a JSON pointer and starts with /: did you mean %s?\n", "/"+cmd.path)
		}
		return code
	}
	if err := writeBody(stdout, stderr, reply.BodyFormat, reply.Body, opts.raw); err != nil {
		fmt.Fprintf(stderr, "repe: writing the reply: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// dial connects to opts.addr as opts say, on one connection: one command
// needs no pool. On failure it reports why and returns the exit code.
func dial(ctx context.Context, opts options, stderr io.Writer) (*client.Client, int) {
	cfg, err := opts.clientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return nil, exitFailure
	}
	c, err := client.Dial(ctx, opts.addr, cfg)
	if err != nil {
		return nil, reportError(stderr, err, client.Reply{}, "connect to", opts)
	}
	return c, exitOK
}

// command is what the positional arguments ask for.
type command struct {
	name   string // get, set, call, notify, record, replay, plugins or stats
	path   string // the query; replay's directory
	source string // the body argument: JSON, "-" or "@FILE"; "" for none
	notify bool
}

func parseCommand(pos []string) (command, error) {
	if len(pos) == 0 {
		return command{}, errors.New("no command")
	}
	cmd, rest := command{name: pos[0]}, pos[1:]
	switch cmd.name {
	case "get":
		if len(rest) != 1 {
			return cmd, errors.New("get takes PATH")
		}
	case "set":
		if len(rest) != 2 {
			return cmd, errors.New("set takes PATH and a JSON body")
		}
		cmd.source = rest[1]
	case "call", "notify":
		if len(rest) < 1 || len(rest) > 2 {
			return cmd, errors.New(cmd.name + " takes PATH and an optional body")
		}
		if len(rest) == 2 {
			cmd.source = rest[1]
		}
		cmd.notify = cmd.name == "notify"
	case "record":
		if len(rest) != 0 {
			return cmd, errors.New("record takes no argument but its flags")
		}
		return cmd, nil
	case "replay":
		if len(rest) != 1 {
			return cmd, errors.New("replay takes DIR, the recording")
		}
	case "plugins", "stats":
		if len(rest) != 0 {
			return cmd, errors.New(cmd.name + " takes no argument but its flags")
		}
		return cmd, nil
	default:
		return cmd, fmt.Errorf("unknown command %q", cmd.name)
	}
	cmd.path = rest[0]
	return cmd, nil
}

func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "repe: %s (see repe -h)\n", msg)
	return exitFailure
}

// reportError prints a failed call as "<ec name> (<ec>): <message>" and
// returns exit code 2 when the server sent the error (reply), 1 otherwise.
// doing says what timed out ("connect to").
func reportError(stderr io.Writer, err error, reply client.Reply, doing string, opts options) int {
	var ce *client.Error
	if !errors.As(err, &ce) {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return exitFailure
	}
	code, msg := ce.Err.Code, ce.Err.Message
	switch {
	case ce.Remote:
		msg = errorMessage(reply)
	case errors.Is(err, context.DeadlineExceeded):
		msg = "could not " + doing + " " + opts.addr + " within " + opts.timeout.String() + " (--timeout)"
	}
	name := code.Name()
	if name == "" {
		name = "error" // an application code (>= 4096) or one Glaze has not named
	}
	fmt.Fprintf(stderr, "%s (%d): %s\n", name, uint32(code), msg)
	if ce.Remote {
		return exitServerError
	}
	return exitFailure
}

// errorMessage is the message of an error reply. Glaze sends UTF-8 text,
// kept as it is but for control characters: its parse errors take three
// lines, the last a caret under the fault. A JSON or BEVE body is shown as
// compact JSON on one line, and bytes that are not text as hex.
func errorMessage(reply client.Reply) string {
	body := reply.Body
	switch reply.BodyFormat {
	case repe.BodyBEVE:
		if js, err := beve.AppendJSON(nil, body); err == nil {
			return string(bytes.ReplaceAll(js, []byte("\n"), []byte(" ")))
		}
	case repe.BodyJSON:
		var b bytes.Buffer
		if json.Compact(&b, body) == nil {
			return b.String()
		}
	}
	if utf8.Valid(body) {
		return printable(string(bytes.TrimRight(body, "\r\n")))
	}
	return hex.EncodeToString(body)
}

// printable returns s with its control characters other than newline and
// tab written as \xNN or \uNNNN escapes. Glaze quotes the request body in
// its parse errors, so an error message can hold any bytes the request
// held (a BEVE body sent to a JSON endpoint, say), and the server's text
// must not move the cursor or recolour the terminal it is shown on.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !isControl(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }

// readBody returns the body an argument names: the argument itself, "-"
// for standard input or "@FILE" for a file's contents, trimmed of
// surrounding white space.
func readBody(source string, stdin io.Reader) ([]byte, error) {
	var body []byte
	var err error
	switch {
	case source == "-":
		body, err = io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
	case len(source) > 1 && source[0] == '@':
		body, err = os.ReadFile(source[1:])
		if err != nil {
			return nil, err
		}
	default:
		body = []byte(source)
	}
	return bytes.TrimSpace(body), nil
}
