package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/repe-gw/repe-gw/conformance/replay"
)

// runReplay is repe replay: it replays the recording in dir, case by case
// in order, against the server at --addr, prints each case that differs
// with its differences, and returns exitOK when none does.
func runReplay(dir string, opts options, stdout, stderr io.Writer) int {
	rec, err := replay.Load(dir)
	if err != nil {
		fmt.Fprintf(stderr, "repe: %v\n", err)
		return exitFailure
	}
	ropts := replay.Options{Timeout: opts.timeout}
	if opts.expect != "" {
		if ropts.Expect, err = rec.LoadExpectations(opts.expect); err != nil {
			fmt.Fprintf(stderr, "repe: %v\n", err)
			return exitFailure
		}
	}
	differ := 0
	for _, c := range rec.Cases {
		err := rec.Replay(opts.addr, c, ropts)
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			// Every later case would fail alike.
			fmt.Fprintf(stderr, "repe: %v\n", err)
			return exitFailure
		}
		if err != nil {
			differ++
			fmt.Fprintf(stdout, "FAIL %s: %s\n  %s\n", c.Name, c.Description, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		}
	}
	if differ > 0 {
		fmt.Fprintf(stdout, "%d of %d cases differ\n", differ, len(rec.Cases))
		return exitFailure
	}
	if n := len(ropts.Expect); n > 0 {
		fmt.Fprintf(stdout, "ok: %d cases, %d as recorded and %d as %s expects\n", len(rec.Cases), len(rec.Cases)-n, n, opts.expect)
	} else {
		fmt.Fprintf(stdout, "ok: %d cases, all as recorded\n", len(rec.Cases))
	}
	return exitOK
}
