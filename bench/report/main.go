// Command report turns the raw results of bench/run.sh into Markdown: for
// each case, the gateway's CPU time per request against the echo floor's and
// against the echo floor plus the plugin's own call cost (the headline),
// requests/s marked where the load tool was the bottleneck, latency
// percentiles, the goals, then every round, idle connections and the
// in-process Go benchmarks.
//
//	report results/raw > results/bench.md
//
// The raw directory holds <round>.<server>.<case>.json from repe-bench
// (server echo or gateway), <round>.plugin.<call>.json from callfloor,
// idle.<server>.json from idle and gobench.txt from go test -bench.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: report RAWDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// benchCase is one load of the suite.
type benchCase struct {
	load  string // the <case> of the raw file names
	name  string
	call  string // the callfloor run that prices its plugin call
	goals []goal
}

// goal is a target for a case: a ratio that must stay at or below limit.
type goal struct {
	what  string
	ratio func(r roundFigures) (float64, bool)
	limit float64
}

// cases are the suite's loads, in the order of the tables, with the goals
// of the performance issue: CPU per request within a factor of what the
// floors allow, and the pipelined tail latency at the echo floor's.
var cases = []benchCase{
	{
		load: "pipelined", name: "pipelined, calculator `get_value` (`-c 4 -P 32`)", call: "get_value",
		goals: []goal{
			{"server CPU/request ÷ (echo floor + plugin call)", roundFigures.cpuToFloorAndCall, 1.15},
			{"p99.9 latency ÷ echo floor's", roundFigures.p999Ratio, 1.10},
		},
	},
	{
		load: "single", name: "not pipelined, calculator `get_value` (`-c 64 -P 1`)", call: "get_value",
		goals: []goal{
			{"server CPU/request ÷ (echo floor + plugin call)", roundFigures.cpuToFloorAndCall, 1.10},
		},
	},
	{
		load: "body16m", name: "16 MiB echo (`-c 1 -P 1`)", call: "echo16m",
		goals: []goal{
			{"server CPU/request ÷ echo floor", roundFigures.cpuToFloor, 1.30},
		},
	},
}

// summary holds the fields of a repe-bench JSON summary the report uses.
type summary struct {
	Requests              int64    `json:"requests"`
	RequestsPerS          float64  `json:"requests_per_s"`
	Errors                int64    `json:"errors"`
	ReceivedBytesPerS     float64  `json:"received_bytes_per_s"`
	ServerCPUUSPerRequest *float64 `json:"server_cpu_us_per_request"`
	ServerCPUBusy         *float64 `json:"server_cpu_busy"`
	ClientCPUBusy         float64  `json:"client_cpu_busy"`
	ClientBound           bool     `json:"client_bound"`
	OtherCPUBusy          *float64 `json:"other_cpu_busy"`
	StealCPU              *float64 `json:"steal_cpu"`
	LatencyUS             struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
	} `json:"latency_us"`
}

func (s *summary) serverCPU() float64 { return deref(s.ServerCPUUSPerRequest) }

// disturbance is the CPU that neither side of the run used: other processes
// and the hypervisor. Above about 10 % of a CPU the run was disturbed.
func (s *summary) disturbance() float64 { return deref(s.OtherCPUBusy) + deref(s.StealCPU) }

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// disturbed is the disturbance above which a round is flagged.
const disturbed = 0.10

// callFloor is what callfloor prints: one plugin call from C in a loop.
type callFloor struct {
	Query         string  `json:"query"`
	BodyBytes     int64   `json:"body_bytes"`
	Calls         int64   `json:"calls"`
	CPUNsPerCall  float64 `json:"cpu_ns_per_call"`
	WallNsPerCall float64 `json:"wall_ns_per_call"`
}

// idleResult is what bench/idle -json prints.
type idleResult struct {
	Connections  int     `json:"connections"`
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"`
}

// results are the raw files of one suite run.
type results struct {
	rounds []int
	runs   map[runKey]*summary   // by round, server, case
	calls  map[runKey]*callFloor // server "plugin", case the call's name
	idle   map[string]idleResult // by server
}

type runKey struct {
	round  int
	server string
	load   string
}

// roundFigures are one case's figures in one round.
type roundFigures struct {
	round   int
	echo    *summary
	gateway *summary
	call    *callFloor // nil when not measured
}

func (r roundFigures) callUS() float64 {
	if r.call == nil {
		return 0
	}
	return r.call.CPUNsPerCall / 1e3
}

func (r roundFigures) cpuToFloor() (float64, bool) {
	e, g := r.echo.serverCPU(), r.gateway.serverCPU()
	return g / e, e > 0 && g > 0
}

func (r roundFigures) cpuToFloorAndCall() (float64, bool) {
	e, g := r.echo.serverCPU(), r.gateway.serverCPU()
	return g / (e + r.callUS()), e > 0 && g > 0 && r.call != nil
}

func (r roundFigures) rpsRatio() (float64, bool) {
	return r.gateway.RequestsPerS / r.echo.RequestsPerS, r.echo.RequestsPerS > 0
}

func (r roundFigures) p999Ratio() (float64, bool) {
	return r.gateway.LatencyUS.P999 / r.echo.LatencyUS.P999, r.echo.LatencyUS.P999 > 0
}

// minQuiet is how many undisturbed rounds a case needs for its figures to
// come from those rounds only.
const minQuiet = 3

// figures returns the rounds of case c that its figures come from: the
// rounds where neither run was disturbed, when there are at least minQuiet
// of them, else every round; and a note that says which.
func (res *results) figures(c benchCase) ([]roundFigures, string) {
	var all, quiet []roundFigures
	for _, round := range res.rounds {
		e, g := res.runs[runKey{round, "echo", c.load}], res.runs[runKey{round, "gateway", c.load}]
		if e == nil || g == nil {
			continue
		}
		r := roundFigures{round, e, g, res.calls[runKey{round, "plugin", c.call}]}
		all = append(all, r)
		if e.disturbance() <= disturbed && g.disturbance() <= disturbed {
			quiet = append(quiet, r)
		}
	}
	switch {
	case len(quiet) == len(all):
		return all, fmt.Sprintf("%d", len(all))
	case len(quiet) >= minQuiet:
		return quiet, fmt.Sprintf("%d undisturbed of %d", len(quiet), len(all))
	}
	return all, fmt.Sprintf("%d, %d disturbed", len(all), len(all)-len(quiet))
}

func load(dir string) (*results, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	res := &results{runs: map[runKey]*summary{}, calls: map[runKey]*callFloor{}, idle: map[string]idleResult{}}
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".json"), ".")
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if len(parts) == 2 && parts[0] == "idle" {
			var m idleResult
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			res.idle[parts[1]] = m
			continue
		}
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s: not <round>.<server>.<case>.json", f)
		}
		round, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		key := runKey{round, parts[1], parts[2]}
		if key.server == "plugin" {
			var c callFloor
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			res.calls[key] = &c
		} else {
			var s summary
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			res.runs[key] = &s
		}
		if !slices.Contains(res.rounds, round) {
			res.rounds = append(res.rounds, round)
		}
	}
	if len(res.runs) == 0 {
		return nil, errors.New("no results in " + dir)
	}
	slices.Sort(res.rounds)
	return res, nil
}

func run(dir string, w io.Writer) error {
	res, err := load(dir)
	if err != nil {
		return err
	}
	p := &printer{w: w}
	p.line("# Benchmark results")
	p.line("")
	p.line("Server CPU time per request, from /proc, is the headline: at these rates the load tool")
	p.line("can saturate its own CPU, and requests/s then compare the clients, not the servers.")
	p.line("Figures are medians over the rounds, with the range in brackets; ratios are the medians")
	p.line("of each round's ratio. A case's figures come from its undisturbed rounds when there are")
	p.line("at least %d, else from all (the rounds column says which). The plugin call is the same", minQuiet)
	p.line("`repe_plugin_call` made from C in a loop (`bench/callfloor`): echo floor + plugin call")
	p.line("is the least CPU any gateway serving that plugin could use. The 16 MiB case's echo floor")
	p.line("is `bench/echo -frames`, which reads each frame past gnet's buffer and writes it back whole.")

	p.line("")
	p.line("## Server CPU per request")
	p.line("")
	p.line("| case | gateway | echo floor | plugin call (C) | gateway ÷ floor | gateway ÷ (floor + call) | rounds |")
	p.line("|---|---:|---:|---:|---:|---:|---|")
	for _, c := range cases {
		fs, rounds := res.figures(c)
		if len(fs) == 0 {
			continue
		}
		p.line("| %s | %s | %s | %s | %s | %s | %s |", c.name,
			spread(fs, func(r roundFigures) (float64, bool) { return r.gateway.serverCPU(), true }, fmtCPU),
			spread(fs, func(r roundFigures) (float64, bool) { return r.echo.serverCPU(), true }, fmtCPU),
			spread(fs, func(r roundFigures) (float64, bool) { return r.callUS(), r.call != nil }, fmtCPU),
			spread(fs, roundFigures.cpuToFloor, fmtRatio),
			spread(fs, roundFigures.cpuToFloorAndCall, fmtRatio), rounds)
	}

	p.line("")
	p.line("## Requests per second")
	p.line("")
	p.line("*client-bound*: in most rounds the load tool kept its CPU at least 90 %% busy, so the")
	p.line("figure measures repe-bench as much as the server.")
	p.line("")
	p.line("| case | gateway | echo floor | ratio | server busy (gateway / echo) | load tool busy (gateway / echo) |")
	p.line("|---|---:|---:|---:|---:|---:|")
	for _, c := range cases {
		fs, _ := res.figures(c)
		if len(fs) == 0 {
			continue
		}
		rps := func(get func(r roundFigures) *summary) string {
			v := spread(fs, func(r roundFigures) (float64, bool) { return get(r).RequestsPerS, true }, fmtRate)
			if c.load == "body16m" {
				v += ", " + spread(fs, func(r roundFigures) (float64, bool) { return get(r).ReceivedBytesPerS / (1 << 30), true }, fmtGiB)
			}
			if mostly(fs, func(r roundFigures) bool { return get(r).ClientBound }) {
				v += " *client-bound*"
			}
			return v
		}
		gw := func(r roundFigures) *summary { return r.gateway }
		echo := func(r roundFigures) *summary { return r.echo }
		p.line("| %s | %s | %s | %s | %s / %s | %s / %s |", c.name, rps(gw), rps(echo), spread(fs, roundFigures.rpsRatio, fmtRatio),
			medianOf(fs, func(r roundFigures) float64 { return deref(r.gateway.ServerCPUBusy) }, fmtPercent),
			medianOf(fs, func(r roundFigures) float64 { return deref(r.echo.ServerCPUBusy) }, fmtPercent),
			medianOf(fs, func(r roundFigures) float64 { return r.gateway.ClientCPUBusy }, fmtPercent),
			medianOf(fs, func(r roundFigures) float64 { return r.echo.ClientCPUBusy }, fmtPercent))
	}

	p.line("")
	p.line("## Latency under load (µs)")
	p.line("")
	p.line("| case | server | p50 | p99 | p99.9 |")
	p.line("|---|---|---:|---:|---:|")
	for _, c := range cases {
		fs, _ := res.figures(c)
		if len(fs) == 0 {
			continue
		}
		for _, side := range []struct {
			name string
			get  func(r roundFigures) *summary
		}{{"gateway", func(r roundFigures) *summary { return r.gateway }}, {"echo floor", func(r roundFigures) *summary { return r.echo }}} {
			lat := func(q func(s *summary) float64) string {
				return spread(fs, func(r roundFigures) (float64, bool) { return q(side.get(r)), true }, fmtUS)
			}
			p.line("| %s | %s | %s | %s | %s |", c.name, side.name,
				lat(func(s *summary) float64 { return s.LatencyUS.P50 }),
				lat(func(s *summary) float64 { return s.LatencyUS.P99 }),
				lat(func(s *summary) float64 { return s.LatencyUS.P999 }))
		}
	}

	p.line("")
	p.line("## Goals")
	p.line("")
	p.line("| case | target | measured | goal | met |")
	p.line("|---|---|---:|---:|---|")
	for _, c := range cases {
		fs, _ := res.figures(c)
		for _, g := range c.goals {
			vals := values(fs, g.ratio)
			if len(vals) == 0 {
				p.line("| %s | %s | not measured | ≤ %.2f | |", c.name, g.what, g.limit)
				continue
			}
			m, met := median(vals), "no"
			if m <= g.limit {
				met = "yes"
			}
			p.line("| %s | %s | %.3f (of %d) | ≤ %.2f | %s |", c.name, g.what, m, len(vals), g.limit, met)
		}
	}
	if g, ok := res.idle["gateway"]; ok {
		met := "no"
		if g.KiBPerConn <= 8 {
			met = "yes"
		}
		p.line("| %d idle connections | KiB of RSS each | %.2f | ≤ 8 | %s |", g.Connections, g.KiBPerConn, met)
	}

	p.line("")
	p.line("## Round by round")
	p.line("")
	p.line("Disturbance is the CPU that neither the server nor repe-bench used (other processes,")
	p.line("steal); a run above %.0f %% of a CPU is marked *disturbed*.", 100*disturbed)
	p.line("")
	p.line("| round | case | server | CPU/request | req/s | server busy | load tool busy | p50 µs | p99 µs | p99.9 µs | disturbance | errors |")
	p.line("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, round := range res.rounds {
		for _, c := range cases {
			for _, server := range []string{"echo", "gateway"} {
				s := res.runs[runKey{round, server, c.load}]
				if s == nil {
					continue
				}
				d := fmtPercent(s.disturbance())
				if s.disturbance() > disturbed {
					d += " *disturbed*"
				}
				rps := fmtRate(s.RequestsPerS)
				if s.ClientBound {
					rps += " *client-bound*"
				}
				p.line("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |", round, c.load, server,
					fmtCPU(s.serverCPU()), rps, fmtPercent(deref(s.ServerCPUBusy)), fmtPercent(s.ClientCPUBusy),
					fmtUS(s.LatencyUS.P50), fmtUS(s.LatencyUS.P99), fmtUS(s.LatencyUS.P999), d, s.Errors)
			}
		}
		for _, c := range cases {
			cf := res.calls[runKey{round, "plugin", c.call}]
			if cf == nil || (c.load != "pipelined" && c.load != "body16m") {
				continue // get_value prices both small cases: listed once
			}
			p.line("| %d | %s | plugin call (C) | %s | %s calls/s | | | | | | | |", round, c.load,
				fmtCPU(cf.CPUNsPerCall/1e3), fmtRate(1e9/cf.WallNsPerCall))
		}
	}

	if len(res.idle) > 0 {
		p.line("")
		p.line("## Idle connections")
		p.line("")
		p.line("| server | connections | RSS before (KiB) | RSS after (KiB) | KiB per connection |")
		p.line("|---|---:|---:|---:|---:|")
		for _, server := range slices.Sorted(maps.Keys(res.idle)) {
			m := res.idle[server]
			p.line("| %s | %d | %d | %d | %.2f |", server, m.Connections, m.RSSBeforeKiB, m.RSSAfterKiB, m.KiBPerConn)
		}
	}
	if p.err != nil {
		return p.err
	}
	return goBenchmarks(filepath.Join(dir, "gobench.txt"), w)
}

// printer writes lines and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// values returns f of every round where it is defined.
func values(fs []roundFigures, f func(roundFigures) (float64, bool)) []float64 {
	var out []float64
	for _, r := range fs {
		if v, ok := f(r); ok {
			out = append(out, v)
		}
	}
	return out
}

// spread formats the median of f over the rounds and its range.
func spread(fs []roundFigures, f func(roundFigures) (float64, bool), format func(float64) string) string {
	vals := values(fs, f)
	switch len(vals) {
	case 0:
		return "–"
	case 1:
		return format(vals[0])
	}
	return fmt.Sprintf("**%s** (%s–%s)", format(median(vals)), format(slices.Min(vals)), format(slices.Max(vals)))
}

func medianOf(fs []roundFigures, f func(roundFigures) float64, format func(float64) string) string {
	return format(median(values(fs, func(r roundFigures) (float64, bool) { return f(r), true })))
}

// mostly reports whether f holds in more than half of the rounds.
func mostly(fs []roundFigures, f func(roundFigures) bool) bool {
	n := 0
	for _, r := range fs {
		if f(r) {
			n++
		}
	}
	return 2*n > len(fs)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fmtCPU prints a CPU time given in µs: in ms from 1 ms up.
func fmtCPU(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2f ms", us/1e3)
	}
	return fmt.Sprintf("%.3f µs", us)
}

// fmtUS prints a latency in µs with three significant digits at most.
func fmtUS(us float64) string {
	if us >= 100 {
		return fmt.Sprintf("%.0f", us)
	}
	return strconv.FormatFloat(us, 'g', 3, 64)
}

func fmtRatio(v float64) string   { return fmt.Sprintf("%.2f", v) }
func fmtPercent(v float64) string { return fmt.Sprintf("%.0f %%", 100*v) }
func fmtGiB(v float64) string     { return fmt.Sprintf("%.2f GiB/s", v) }

// fmtRate prints a rate with a k or M suffix.
func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// goBenchmarks copies the benchmark lines of `go test -bench` output into a
// table.
func goBenchmarks(path string, w io.Writer) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	p := &printer{w: w}
	p.line("")
	p.line("## In-process Go benchmarks")
	p.line("")
	p.line("| package | benchmark | ns/op | other |")
	p.line("|---|---|---:|---|")
	pkg := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 2 && fields[0] == "pkg:":
			pkg = strings.TrimPrefix(fields[1], "github.com/repe-gw/repe-gw/")
		case len(fields) >= 4 && strings.HasPrefix(fields[0], "Benchmark") && fields[3] == "ns/op":
			var other []string
			for i := 4; i+1 < len(fields); i += 2 {
				other = append(other, fields[i]+" "+fields[i+1])
			}
			p.line("| %s | %s | %s | %s |", pkg, fields[0], fields[2], strings.Join(other, ", "))
		}
	}
	if p.err != nil {
		return p.err
	}
	return sc.Err()
}
