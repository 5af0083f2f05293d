package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/repe-gw/repe-gw/gwapi"
)

// The plugins and stats commands ask a repe-gw about itself, at the root
// it reserves for that (/_gw), and show the answer as a table, or as the
// gateway's JSON with --json.

// runIntrospect asks the gateway at opts.addr for path under its reserved
// root and prints the reply.
func runIntrospect(name string, opts options, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	c, code := dial(ctx, opts, stderr)
	if c == nil {
		return code
	}
	defer c.Close()
	reply, err := c.Call(ctx, gwapi.Root+"/"+name, nil)
	if err != nil {
		code := reportError(stderr, err, reply, "get a reply from", opts)
		fmt.Fprintf(stderr, "repe: %s is answered by repe-gw only; is %s one?\n", name, opts.addr)
		return code
	}
	if opts.json {
		if err := writeBody(stdout, stderr, reply.BodyFormat, reply.Body, opts.raw); err != nil {
			fmt.Fprintf(stderr, "repe: writing the reply: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	switch name {
	case "plugins":
		var rows []gwapi.Plugin
		if err := json.Unmarshal(reply.Body, &rows); err != nil {
			fmt.Fprintf(stderr, "repe: the gateway's plugin list: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(tw, "NAME\tVERSION\tROOT\tMODE\tSTATE\tSHA256")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, r.Root, r.Mode, r.State, short(r.SHA256))
		}
	case "stats":
		var s gwapi.Stats
		if err := json.Unmarshal(reply.Body, &s); err != nil {
			fmt.Fprintf(stderr, "repe: the gateway's stats: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(tw, "connections\t%d open, %d accepted\n", s.Connections.Open, s.Connections.Accepted)
		fmt.Fprintf(tw, "bytes\t%d in, %d out\n", s.BytesIn, s.BytesOut)
		fmt.Fprintf(tw, "gateway replies\t%s\n\n", ecSummary(s.Replies))
		fmt.Fprintln(tw, "TRANSPORT\tOPEN\tACCEPTED\tREPLIES\tERRORS\tNOTIFIES\tBYTES IN\tBYTES OUT")
		for _, name := range slices.Sorted(maps.Keys(s.Transports)) {
			tr := s.Transports[name]
			total, errs := replyCounts(tr.Replies)
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", name, tr.Open, tr.Accepted, total, errs, tr.Notifies,
				tr.BytesIn, tr.BytesOut)
		}
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "PLUGIN\tROOT\tREPLIES\tERRORS\tNOTIFIES\tINLINE\tWORKER\tIN FLIGHT\tQUEUED\tTIMEOUTS\tREFUSED\tCIRCUIT")
		for _, p := range s.Plugins {
			total, errs := replyCounts(p.Replies)
			circuit := "closed"
			if p.CircuitOpen {
				circuit = "open"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.Root, total, errs, p.Notifies,
				p.InlineCalls, p.WorkerCalls, p.InFlight, p.Queued, p.Timeouts, p.Refused, circuit)
		}
	}
	if err := tw.Flush(); err != nil {
		return exitFailure
	}
	return exitOK
}

// replyCounts sums replies counted by ec: all of them, and those not ec 0.
func replyCounts(byEC map[string]uint64) (total, errs uint64) {
	for ec, n := range byEC {
		total += n
		if ec != "0" {
			errs += n
		}
	}
	return total, errs
}

// short abbreviates a digest for a table, as git abbreviates commits.
func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// ecSummary writes counts by ec as "ec 6: 3, ec 2: 1", lowest ec first.
func ecSummary(byEC map[string]uint64) string {
	if len(byEC) == 0 {
		return "none"
	}
	var ecs []int
	for ec := range byEC {
		n, _ := strconv.Atoi(ec)
		ecs = append(ecs, n)
	}
	slices.Sort(ecs)
	out := ""
	for i, ec := range ecs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("ec %d: %d", ec, byEC[strconv.Itoa(ec)])
	}
	return out
}
