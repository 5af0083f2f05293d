package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
)

// checkCommand is the first argument of repe-gw check, the doctor for
// plugin authors.
const checkCommand = "check"

// defaultCheckThreads is how many threads call the plugin at once in the
// threads check, unless --threads says otherwise: enough that, even on two
// cores, threads are preempted in the middle of calls.
const defaultCheckThreads = 8

const checkUsageHead = `Usage: repe-gw check [--calls FILE] [--json] [--threads N] PLUGIN.so

Checks a plugin as the gateway will use it, in worker processes, so that a
plugin that crashes is a finding, not a crash of the check. Prints the
plugin's SHA-256 and one line per check, ✓ or ✗ with the reason, and exits 0
when every check passes, 1 otherwise (2 for bad usage). Linux only.

--calls FILE holds the calls to check replies with, one JSON object per line:
{"query": "/calculator/value", "body": 41.5}, the body any JSON value, sent as
a JSON body, or absent for none. Without it, the one call is a read of the
plugin's root path.

Flags:
`

// checkOptions is what the command line of repe-gw check asks for.
type checkOptions struct {
	plugin  string
	calls   string // the --calls file, "" for the built-in call
	json    bool
	threads int
}

// parseCheckFlags parses the arguments of repe-gw check.
func parseCheckFlags(args []string, stdout io.Writer) (checkOptions, error) {
	o := checkOptions{threads: defaultCheckThreads}
	fs := newFlagSet("repe-gw check")
	fs.value("calls", "", "check replies to the calls of `FILE`, one JSON object per line; default: a read of the root path",
		func(s string) error {
			o.calls = s
			return nil
		})
	fs.boolean(&o.json, "json", "print the report as one JSON object, for CI")
	fs.value("threads", strconv.Itoa(defaultCheckThreads), "call the plugin from `N` threads at once in the threads check",
		func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil || n < 2 || n > 1024 {
				return errors.New("want a number of threads from 2 to 1024")
			}
			o.threads = n
			return nil
		})
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage(stdout, checkUsageHead)
		}
		return o, err
	}
	switch fs.NArg() {
	case 0:
		return o, errors.New("no plugin to check: want PLUGIN.so")
	case 1:
		o.plugin = fs.Arg(0)
	default:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(1))
	}
	return o, nil
}

// checkCall is one call of a --calls file.
type checkCall struct {
	Query string          `json:"query"`
	Body  json.RawMessage `json:"body"` // nil: no body
}

// readCalls reads a --calls file: one JSON object per line, with "query"
// and an optional "body"; blank lines are skipped. Unknown keys are errors,
// as a misspelt "body" that is ignored would send a call the author did not
// mean.
func readCalls(path string) ([]checkCall, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var calls []checkCall
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(text))
		d.DisallowUnknownFields()
		var c struct {
			Query *string         `json:"query"`
			Body  json.RawMessage `json:"body"`
		}
		if err := d.Decode(&c); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if d.More() {
			return nil, fmt.Errorf("%s:%d: more than one JSON object", path, line)
		}
		if c.Query == nil {
			return nil, fmt.Errorf("%s:%d: no \"query\"", path, line)
		}
		call := checkCall{Query: *c.Query}
		if len(c.Body) > 0 {
			var body bytes.Buffer
			if err := json.Compact(&body, c.Body); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			call.Body = body.Bytes()
		}
		calls = append(calls, call)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("%s: no call", path)
	}
	return calls, nil
}

// Statuses of a finding.
const (
	statusPass = "pass"
	statusFail = "fail"
	statusSkip = "skip" // not run, because an earlier check failed
)

// finding is the outcome of one check: one line of the report.
type finding struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

func pass(check, format string, a ...any) finding {
	return finding{check, statusPass, fmt.Sprintf(format, a...)}
}

func fail(check, format string, a ...any) finding {
	return finding{check, statusFail, fmt.Sprintf(format, a...)}
}

func skip(check, why string) finding { return finding{check, statusSkip, why} }

// checkReport is what repe-gw check prints, as text or, with --json, as
// this JSON object.
type checkReport struct {
	Plugin   string    `json:"plugin"`
	SHA256   string    `json:"sha256"`
	OK       bool      `json:"ok"`
	Findings []finding `json:"checks"`
}

// check is repe-gw check: it checks a plugin, prints the report and returns
// the exit code.
func check(args []string, stdout, stderr io.Writer) int {
	o, err := parseCheckFlags(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw check: %v (see repe-gw check -h)\n", err)
		return exitUsage
	}
	var calls []checkCall
	if o.calls != "" {
		if calls, err = readCalls(o.calls); err != nil {
			fmt.Fprintf(stderr, "repe-gw check: --calls: %v\n", err)
			return exitUsage
		}
	}
	content, err := os.ReadFile(o.plugin)
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw check: %v\n", err)
		return exitFailure
	}
	sum := sha256.Sum256(content)
	r := checkReport{Plugin: o.plugin, SHA256: hex.EncodeToString(sum[:])}
	r.Findings, err = runChecks(context.Background(), o, calls)
	if err != nil {
		fmt.Fprintf(stderr, "repe-gw check: %v\n", err)
		return exitFailure
	}
	r.OK = true
	for _, f := range r.Findings {
		r.OK = r.OK && f.Status == statusPass
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r)
	} else {
		printReport(stdout, r)
	}
	if !r.OK {
		return exitFailure
	}
	return exitOK
}

// printReport writes the report as text: the file and its digest, a line
// per check, and a summary.
func printReport(w io.Writer, r checkReport) {
	fmt.Fprintf(w, "%s\nsha256 %s\n", r.Plugin, r.SHA256)
	failed, skipped := 0, 0
	for _, f := range r.Findings {
		mark := "✓"
		switch f.Status {
		case statusFail:
			mark = "✗"
			failed++
		case statusSkip:
			mark = "-"
			skipped++
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, f.Check, f.Detail)
	}
	switch {
	case failed+skipped == 0:
		fmt.Fprintf(w, "all %d checks passed\n", len(r.Findings))
	case skipped == 0:
		fmt.Fprintf(w, "%d of %d checks failed\n", failed, len(r.Findings))
	default:
		fmt.Fprintf(w, "%d of %d checks failed, %d not run\n", failed, len(r.Findings), skipped)
	}
}

// quoteBody shows a reply's body in a finding: quoted, and cut after 80
// bytes, so that one finding stays one readable line.
func quoteBody(b []byte) string {
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

// Every check, in the order of the report.
const (
	checkSymbols    = "symbols"
	checkVersion    = "interface version"
	checkInfo       = "info"
	checkInit       = "init"
	checkUnknown    = "unknown path"
	checkNotify     = "notify"
	checkReplies    = "replies"
	checkThreads    = "threads"
	checkTime       = "time per call"
	checkExceptions = "exceptions"
	checkShutdown   = "shutdown"
)
