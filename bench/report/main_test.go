package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReport(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	summary := func(rps, cpu, other float64) map[string]any {
		return map[string]any{
			"requests_per_s": rps, "server_cpu_us_per_request": cpu, "other_cpu_busy": other,
			"received_bytes_per_s": 1.5 * (1 << 30), "latency_us": map[string]float64{"p50": 70},
		}
	}
	// Three rounds: the medians are the middle ratios, 90% and 1.05.
	write("1.echo.pipelined.json", summary(1000, 0.3, 0))
	write("1.gateway.pipelined.json", summary(900, 0.5, 0.2))
	write("2.echo.pipelined.json", summary(1000, 0.3, 0))
	write("2.gateway.pipelined.json", summary(700, 0.5, 0))
	write("3.echo.pipelined.json", summary(1000, 0.3, 0))
	write("3.gateway.pipelined.json", summary(950, 0.5, 0))
	for r, cpu := range []float64{5.25, 5.5, 6} {
		write(string(rune('1'+r))+".echo.single.json", summary(100, 5, 0))
		write(string(rune('1'+r))+".gateway.single.json", summary(100, cpu, 0))
	}
	write("1.gateway.body16m.json", summary(50, 20, 0))
	write("idle.gateway.json", map[string]any{"connections": 10000, "rss_before_kib": 7000, "rss_after_kib": 14000, "kib_per_conn": 0.7})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gobench.txt"),
		[]byte("pkg: github.com/repe-gw/repe-gw/repe\nBenchmarkParse-2   \t 1000\t 6.5 ns/op\t 0 B/op\t 0 allocs/op\n"), 0o644))

	var out strings.Builder
	require.NoError(t, run(dir, &out))
	md := out.String()
	assert.Contains(t, md, "| 1 | `-c 4 -P 32` | 1000 | 900 | 90.0% | 0.300 | 0.500 | 1.667 | 20% | 0 |")
	assert.Contains(t, md, "gateway req/s ÷ echo req/s | 90.0% (of 3) | >= 80% | yes |")
	assert.Contains(t, md, "gateway CPU/request ÷ echo CPU/request | 1.100 (of 3) | <= 1.10 | yes |")
	assert.Contains(t, md, "16 MiB body through an echo plugin (`-c 1 -P 1`), GiB/s | 1.50 (of 1) | >= 1 | yes |")
	assert.Contains(t, md, "10000 idle connections, KiB of RSS each | 0.70 (of 1) | <= 8 | yes |")
	assert.Contains(t, md, "| repe | BenchmarkParse-2 | 6.5 | 0 B/op, 0 allocs/op |")
}

func TestReportNeedsResults(t *testing.T) {
	assert.ErrorContains(t, run(t.TempDir(), &strings.Builder{}), "no results")
}
