// Command repe-bench loads a REPE server and reports what it sustains, in
// the spirit of redis-benchmark and ghz.
//
// It opens -c connections and keeps up to -P requests in flight on each
// (pipelining), for -n requests or -z of time, optionally limited to -q
// requests/s overall and after a --warmup. It sends one request built from
// --query and --body, or replays the recorded frames of a directory, and
// checks every reply: its id must match a request in flight and its ec must
// be --expect-ec. The summary gives requests/s, latency percentiles from an
// HdrHistogram, errors by ec, bytes/s and the CPU time per request of the
// tool itself and, with --server-pid, of the server (from /proc/PID/stat).
// When the tool's own CPU is saturated it says so: requests/s then measure
// the tool, and the server's CPU time per request is the figure to compare.
//
// The tool is built not to be the bottleneck: each connection has one writer
// and one reader goroutine; a batch of requests is one write of copies of a
// request encoded once, with only the id patched; a read checks every reply
// it holds; send times live in a ring; nothing is allocated per request.
//
// Exit status: 0 when every request succeeded, 1 when any failed or the run
// could not start, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"golang.org/x/term"

	"github.com/repe-gw/repe-gw/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, with its environment passed in so tests can
// drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stdin)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "repe-bench:", err)
		return 2
	}
	if cfg.version {
		fmt.Fprintln(stdout, "repe-bench", version.String())
		return 0
	}
	templates, err := buildTemplates(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "repe-bench:", err)
		return 1
	}
	if !cfg.progressSet {
		f, ok := stdout.(*os.File)
		cfg.progress = ok && term.IsTerminal(int(f.Fd()))
	}
	var progress io.Writer
	if cfg.progress {
		progress = stdout
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "repe-bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "repe-bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	sum, err := bench(ctx, cfg, templates, progress)
	if err != nil {
		fmt.Fprintln(stderr, "repe-bench:", err)
		return 1
	}
	if cfg.format == "json" {
		err = sum.writeJSON(stdout)
	} else {
		err = sum.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "repe-bench:", err)
		return 1
	}
	if sum.failed() {
		return 1
	}
	return 0
}
