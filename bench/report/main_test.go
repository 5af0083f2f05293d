package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// benchJSON is a summary as repe-bench writes it, with the fields the report
// reads.
func benchJSON(rps, cpu, clientBusy, other, p999 float64) map[string]any {
	return map[string]any{
		"requests_per_s": rps, "server_cpu_us_per_request": cpu, "server_cpu_busy": 0.5,
		"client_cpu_busy": clientBusy, "client_bound": clientBusy >= 0.9, "other_cpu_busy": other,
		"received_bytes_per_s": 1.5 * (1 << 30), "latency_us": map[string]float64{"p50": 70, "p99": 200, "p99_9": p999},
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	// Three rounds. Pipelined: the gateway uses 0.5 µs against a floor of
	// 0.3 µs and a plugin call of 0.1 µs; the round ratios to floor + call
	// are 1.25, 1.0 and 1.5: median 1.25.
	for r, gw := range []float64{0.5, 0.4, 0.6} {
		round := fmt.Sprint(r + 1)
		write(round+".echo.pipelined.json", benchJSON(1000, 0.3, 0.8, 0, 900))
		write(round+".gateway.pipelined.json", benchJSON(900, gw, 0.95, 0.2, 1000))
		write(round+".plugin.get_value.json", map[string]any{"query": "/calculator/get_value", "calls": 1000, "cpu_ns_per_call": 100, "wall_ns_per_call": 110})
		// Not pipelined: 5.25, 5.5, 6 µs against 5 + 0.1: median 5.5 / 5.1.
		write(round+".echo.single.json", benchJSON(100, 5, 0.97, 0, 900))
		write(round+".gateway.single.json", benchJSON(100, []float64{5.25, 5.5, 6}[r], 0.97, 0, 900))
	}
	// 16 MiB: one round, 12 ms against 8 ms.
	write("1.echo.body16m.json", benchJSON(50, 8000, 0.5, 0, 20000))
	write("1.gateway.body16m.json", benchJSON(40, 12000, 0.5, 0, 25000))
	write("1.plugin.echo16m.json", map[string]any{"query": "/echo/echo", "calls": 100, "cpu_ns_per_call": 2e6, "wall_ns_per_call": 2e6})
	write("idle.gateway.json", map[string]any{"connections": 10000, "rss_before_kib": 7000, "rss_after_kib": 14000, "kib_per_conn": 0.7})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gobench.txt"),
		[]byte("pkg: github.com/repe-gw/repe-gw/repe\nBenchmarkParse-2   \t 1000\t 6.5 ns/op\t 0 B/op\t 0 allocs/op\n"), 0o644))

	var out strings.Builder
	require.NoError(t, run(dir, &out))
	md := out.String()
	for _, want := range []string{
		// The headline: CPU per request, floors and ratios, medians (ranges).
		// Every pipelined round was disturbed: all three count, and the
		// rounds column says so.
		"| pipelined, calculator `get_value` (`-c 4 -P 32`) | **0.500 µs** (0.400 µs–0.600 µs) | **0.300 µs** (0.300 µs–0.300 µs) | **0.100 µs** (0.100 µs–0.100 µs) | **1.67** (1.33–2.00) | **1.25** (1.00–1.50) | 3, 3 disturbed |",
		"| **1.10** (1.05–1.20) | **1.08** (1.03–1.18) | 3 |",
		"| 16 MiB echo (`-c 1 -P 1`) | 12.00 ms | 8.00 ms | 2.00 ms | 1.50 | 1.20 |",
		// req/s: the gateway's tool was saturated in every round, the
		// echo's in none; both tools at -c 64 -P 1.
		"| pipelined, calculator `get_value` (`-c 4 -P 32`) | **900** (900–900) *client-bound* | **1 k** (1 k–1 k) | **0.90** (0.90–0.90) |",
		"| not pipelined, calculator `get_value` (`-c 64 -P 1`) | **100** (100–100) *client-bound* | **100** (100–100) *client-bound* |",
		"| 16 MiB echo (`-c 1 -P 1`) | 40, 1.50 GiB/s | 50, 1.50 GiB/s | 0.80 |",
		// Latency for each case and server.
		"| pipelined, calculator `get_value` (`-c 4 -P 32`) | gateway | **70** (70–70) | **200** (200–200) | **1000** (1000–1000) |",
		"| 16 MiB echo (`-c 1 -P 1`) | echo floor | 70 | 200 | 20000 |",
		// Goals, from the medians of the round ratios.
		"| server CPU/request ÷ (echo floor + plugin call) | 1.250 (of 3) | ≤ 1.15 | no |",
		"| p99.9 latency ÷ echo floor's | 1.111 (of 3) | ≤ 1.10 | no |",
		"| not pipelined, calculator `get_value` (`-c 64 -P 1`) | server CPU/request ÷ (echo floor + plugin call) | 1.078 (of 3) | ≤ 1.10 | yes |",
		"| 16 MiB echo (`-c 1 -P 1`) | server CPU/request ÷ echo floor | 1.500 (of 1) | ≤ 1.30 | no |",
		"| 10000 idle connections | KiB of RSS each | 0.70 | ≤ 8 | yes |",
		// Every round, disturbed runs marked.
		"| 1 | pipelined | gateway | 0.500 µs | 900 *client-bound* | 50 % | 95 % | 70 | 200 | 1000 | 20 % *disturbed* | 0 |",
		"| 1 | body16m | plugin call (C) | 2.00 ms | 500 calls/s |",
		"| repe | BenchmarkParse-2 | 6.5 | 0 B/op, 0 allocs/op |",
	} {
		assert.True(t, strings.Contains(md, want), "missing: %s", want)
	}
	if t.Failed() {
		t.Log(md)
	}
	assert.NotContains(t, md, "%!", "a format verb went wrong")
}

// TestReportQuietRounds: with enough undisturbed rounds, a disturbed one
// does not count.
func TestReportQuietRounds(t *testing.T) {
	dir := t.TempDir()
	for r, other := range []float64{0, 0.5, 0, 0} {
		round := fmt.Sprint(r + 1)
		for name, v := range map[string]any{
			"echo.pipelined":    benchJSON(1000, 0.3, 0.5, 0, 900),
			"gateway.pipelined": benchJSON(1000, []float64{0.33, 3, 0.36, 0.39}[r], 0.5, other, 900),
		} {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, round+"."+name+".json"), b, 0o644))
		}
	}
	var out strings.Builder
	require.NoError(t, run(dir, &out))
	assert.Contains(t, out.String(), "| **0.360 µs** (0.330 µs–0.390 µs) | **0.300 µs** (0.300 µs–0.300 µs) | – | **1.20** (1.10–1.30) | – | 3 undisturbed of 4 |")
	assert.Contains(t, out.String(), "| server CPU/request ÷ (echo floor + plugin call) | not measured | ≤ 1.15 | |")
}

func TestReportNeedsResults(t *testing.T) {
	assert.ErrorContains(t, run(t.TempDir(), &strings.Builder{}), "no results")
}

// TestCallFloor builds bench/callfloor with $CC, as bench/run.sh does, runs
// it on the calculator plugin and reads its output the way the report does.
func TestCallFloor(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	bin := filepath.Join(t.TempDir(), "callfloor")
	build := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-I"+plugintest.RepoPath("plugins/include"),
		"-o", bin, plugintest.RepoPath("bench/callfloor/callfloor.c"), "-ldl")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	calculator := plugintest.Build(t, plugintest.RepoPath("plugins/calculator/calculator.c"))

	out, err = exec.Command(bin, calculator, "/calculator/get_value", "", "0.05").Output()
	require.NoError(t, err)
	var c callFloor
	require.NoError(t, json.Unmarshal(out, &c), "%s", out)
	assert.Equal(t, "/calculator/get_value", c.Query)
	assert.Positive(t, c.Calls)
	// A call of a few hundred instructions: well under 10 µs, however
	// loaded the machine.
	assert.Positive(t, c.CPUNsPerCall)
	assert.Less(t, c.CPUNsPerCall, 10e3)
	assert.GreaterOrEqual(t, c.WallNsPerCall, c.CPUNsPerCall*0.9)

	// A body is sent raw; the echo test plugin returns it.
	body := filepath.Join(t.TempDir(), "body")
	require.NoError(t, os.WriteFile(body, make([]byte, 1<<20), 0o644))
	echo := plugintest.Build(t, plugintest.RepoPath("gateway/testdata/gwtest.c"), `-DGW_ROOT="/echo"`)
	out, err = exec.Command(bin, echo, "/echo/echo", body, "0.05").Output()
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(out, &c), "%s", out)
	assert.Equal(t, int64(1<<20), c.BodyBytes)
	assert.Positive(t, c.Calls)

	// A reply with an error fails the run, with the reason on one line.
	cmd := exec.Command(bin, calculator, "/calculator/nope", "", "0.05")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	assert.Error(t, cmd.Run())
	assert.Equal(t, "callfloor: the plugin answered an error: ec 6\n", stderr.String())
}

// TestIPCFloor builds bench/ipcfloor with $CC, as bench/isolated.sh does,
// and runs it briefly: it makes round trips between its two processes and
// reports them as the script reads them.
func TestIPCFloor(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	bin := filepath.Join(t.TempDir(), "ipcfloor")
	build := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11",
		"-o", bin, plugintest.RepoPath("bench/ipcfloor/ipcfloor.c"))
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	out, err = exec.Command(bin, "0.05").Output()
	require.NoError(t, err)
	var floor struct {
		RoundTrips int64   `json:"round_trips"`
		WallUs     float64 `json:"wall_us"`
		CPUUs      float64 `json:"cpu_us"`
	}
	require.NoError(t, json.Unmarshal(out, &floor), "%s", out)
	assert.GreaterOrEqual(t, floor.RoundTrips, int64(1000), "it counts in thousands")
	assert.Positive(t, floor.WallUs)
	assert.Positive(t, floor.CPUUs)

	cmd := exec.Command(bin, "nonsense")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	assert.Error(t, cmd.Run())
	assert.Equal(t, "ipcfloor: usage: ipcfloor [SECONDS]\n", stderr.String())
}
