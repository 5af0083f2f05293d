// Command report turns the raw results of bench/run.sh into Markdown tables:
// the gateway against the echo floor round by round, the medians against the
// performance targets, latencies, idle connections and the in-process Go
// benchmarks.
//
//	report results/raw > results/bench.md
package main

import (
	"bufio"
	"cmp"
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

// summary holds the fields of a repe-bench JSON summary the report uses.
type summary struct {
	RequestsPerS          float64  `json:"requests_per_s"`
	Errors                int64    `json:"errors"`
	ReceivedBytesPerS     float64  `json:"received_bytes_per_s"`
	ServerCPUUSPerRequest *float64 `json:"server_cpu_us_per_request"`
	ServerCPUBusy         *float64 `json:"server_cpu_busy"`
	ClientCPUBusy         float64  `json:"client_cpu_busy"`
	OtherCPUBusy          *float64 `json:"other_cpu_busy"`
	StealCPU              *float64 `json:"steal_cpu"`
	LatencyUS             struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
	} `json:"latency_us"`
}

func (s summary) serverCPU() float64 { return deref(s.ServerCPUUSPerRequest) }

// disturbance is the CPU that neither side of the run used: other processes
// and the hypervisor. Above about 10 % of a CPU the run was disturbed.
func (s summary) disturbance() float64 { return deref(s.OtherCPUBusy) + deref(s.StealCPU) }

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// idleResult is what bench/idle -json prints.
type idleResult struct {
	Connections  int     `json:"connections"`
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"`
}

// runKey names one repe-bench run: <round>.<server>.<load>.json.
type runKey struct {
	round  int
	server string
	load   string
}

func run(dir string, w io.Writer) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	runs := map[runKey]summary{}
	idle := map[string]idleResult{}
	var rounds []int
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".json"), ".")
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if len(parts) == 2 && parts[0] == "idle" {
			var m idleResult
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			idle[parts[1]] = m
			continue
		}
		if len(parts) != 3 {
			return fmt.Errorf("%s: not <round>.<server>.<load>.json", f)
		}
		round, err := strconv.Atoi(parts[0])
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		var s summary
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		runs[runKey{round, parts[1], parts[2]}] = s
		if !slices.Contains(rounds, round) {
			rounds = append(rounds, round)
		}
	}
	if len(rounds) == 0 {
		return errors.New("no results in " + dir)
	}
	slices.Sort(rounds)

	fmt.Fprintln(w, "# Benchmark results")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Gateway (calculator) against the echo floor, round by round")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| round | load | echo req/s | gateway req/s | ratio | echo CPU µs/req | gateway CPU µs/req | CPU ratio | disturbance | errors |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	var rpsRatio, cpuRatio, body, bodyFloor []float64
	for _, r := range rounds {
		for _, load := range []string{"pipelined", "single"} {
			e, okE := runs[runKey{r, "echo", load}]
			g, okG := runs[runKey{r, "gateway", load}]
			if !okE || !okG {
				continue
			}
			rr, cr := g.RequestsPerS/e.RequestsPerS, g.serverCPU()/e.serverCPU()
			if load == "pipelined" {
				rpsRatio = append(rpsRatio, rr)
			} else {
				cpuRatio = append(cpuRatio, cr)
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %.0f | %.1f%% | %.3f | %.3f | %.3f | %.0f%% | %d |\n",
				r, loadName(load), e.RequestsPerS, g.RequestsPerS, 100*rr, e.serverCPU(), g.serverCPU(), cr,
				100*max(e.disturbance(), g.disturbance()), e.Errors+g.Errors)
		}
		if b, ok := runs[runKey{r, "gateway", "body16m"}]; ok {
			body = append(body, b.ReceivedBytesPerS/(1<<30))
		}
		if b, ok := runs[runKey{r, "echo", "body16m"}]; ok {
			bodyFloor = append(bodyFloor, b.ReceivedBytesPerS/(1<<30))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Disturbance is the CPU that neither the server nor repe-bench used during the run (other processes, steal);")
	fmt.Fprintln(w, "above about 10 % the round was disturbed.")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Targets (medians over the rounds)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | goal | met |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	target(w, "`-c 4 -P 32`: gateway req/s ÷ echo req/s", rpsRatio, "%.1f%%", 100, ">= 80%", func(v float64) bool { return v >= 0.80 })
	target(w, "`-c 64 -P 1`: gateway CPU/request ÷ echo CPU/request", cpuRatio, "%.3f", 1, "<= 1.10", func(v float64) bool { return v <= 1.10 })
	target(w, "16 MiB body through an echo plugin (`-c 1 -P 1`), GiB/s", body, "%.2f", 1, ">= 1", func(v float64) bool { return v >= 1 })
	target(w, "(for reference) 16 MiB body through the echo floor, GiB/s", bodyFloor, "%.2f", 1, "", nil)
	if g, ok := idle["gateway"]; ok {
		target(w, fmt.Sprintf("%d idle connections, KiB of RSS each", g.Connections), []float64{g.KiBPerConn}, "%.2f", 1, "<= 8", func(v float64) bool { return v <= 8 })
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Latency (µs), round by round")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| round | server | load | p50 | p99 | p99.9 | server busy | client busy |")
	fmt.Fprintln(w, "|---:|---|---|---:|---:|---:|---:|---:|")
	keys := make([]runKey, 0, len(runs))
	for k := range runs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b runKey) int {
		return cmp.Or(cmp.Compare(a.round, b.round), cmp.Compare(a.load, b.load), cmp.Compare(a.server, b.server))
	})
	for _, k := range keys {
		s := runs[k]
		fmt.Fprintf(w, "| %d | %s | %s | %.0f | %.0f | %.0f | %.0f%% | %.0f%% |\n", k.round, k.server, loadName(k.load),
			s.LatencyUS.P50, s.LatencyUS.P99, s.LatencyUS.P999, 100*deref(s.ServerCPUBusy), 100*s.ClientCPUBusy)
	}

	if len(idle) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Idle connections")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| server | connections | RSS before (KiB) | RSS after (KiB) | KiB per connection |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		for _, server := range slices.Sorted(maps.Keys(idle)) {
			m := idle[server]
			fmt.Fprintf(w, "| %s | %d | %d | %d | %.2f |\n", server, m.Connections, m.RSSBeforeKiB, m.RSSAfterKiB, m.KiBPerConn)
		}
	}
	return goBenchmarks(filepath.Join(dir, "gobench.txt"), w)
}

func loadName(load string) string {
	switch load {
	case "pipelined":
		return "`-c 4 -P 32`"
	case "single":
		return "`-c 64 -P 1`"
	case "body16m":
		return "16 MiB body, `-c 1 -P 1`"
	}
	return load
}

func target(w io.Writer, name string, vals []float64, format string, scale float64, goal string, ok func(float64) bool) {
	if len(vals) == 0 {
		fmt.Fprintf(w, "| %s | not measured | %s | |\n", name, goal)
		return
	}
	m := median(vals)
	met := "no"
	switch {
	case goal == "":
		met = ""
	case ok(m):
		met = "yes"
	}
	fmt.Fprintf(w, "| %s | "+format+" (of %d) | %s | %s |\n", name, m*scale, len(vals), goal, met)
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## In-process Go benchmarks")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| package | benchmark | ns/op | other |")
	fmt.Fprintln(w, "|---|---|---:|---|")
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
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", pkg, fields[0], fields[2], strings.Join(other, ", "))
		}
	}
	return sc.Err()
}
