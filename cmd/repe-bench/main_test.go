package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/version"
	"github.com/repe-gw/repe-gw/repe"
)

// echoBin is the echo floor, built once by TestMain from ../../bench/echo, so
// that the tests load the real program the benchmarks use.
var echoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "repe-bench-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoBin = filepath.Join(dir, "echo")
	build := exec.Command("go", "build", "-o", echoBin, "../../bench/echo")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the echo floor: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		code = checkLeaks()
	}
	os.Exit(code)
}

// checkLeaks fails the run when goroutines of the tool outlive the tests.
func checkLeaks() int {
	var stacks string
	for range 50 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "main.(*conn)") && !strings.Contains(stacks, "main.bench") {
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s", stacks)
	return 1
}

// startEcho runs the echo floor on a free loopback port until the test ends
// and returns its address and process id.
func startEcho(t *testing.T) (string, int) {
	t.Helper()
	cmd := exec.Command(echoBin, "-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// Killed rather than interrupted: gnet takes half a second to stop
		// gracefully, and the echo package tests that path.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	require.True(t, ok, "echo said %q", line)
	return addr, cmd.Process.Pid
}

// result is one run of the command.
type result struct {
	code           int
	sum            summary
	stdout, stderr string
}

// runBench runs repe-bench with args, -format json added, and decodes the
// summary when there is one.
func runBench(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return runBenchCtx(t, context.Background(), stdin, args...)
}

func runBenchCtx(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	noenv := func(string) string { return "" }
	code := run(ctx, append([]string{"-format", "json"}, args...), noenv, stdin, &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	if out.Len() > 0 {
		require.NoError(t, json.Unmarshal(out.Bytes(), &r.sum), "stdout: %s", out.String())
	}
	return r
}

func TestEchoCounts(t *testing.T) {
	addr, _ := startEcho(t)
	tests := []struct {
		name              string
		args              []string
		replies, notifies int64
	}{
		{"one connection", []string{"-n", "1000"}, 1000, 0},
		{"pipelined", []string{"-c", "4", "-P", "32", "-n", "20000"}, 20000, 0},
		{"uneven split", []string{"-c", "3", "-P", "7", "-n", "1001"}, 1001, 0},
		{"pipelined notify mix", []string{"-c", "4", "-P", "32", "-n", "20000", "-notify-ratio", "0.25"}, 15000, 5000},
		{"notify only", []string{"-c", "2", "-P", "4", "-n", "5000", "-notify-ratio", "1"}, 0, 5000},
		{"more connections than requests", []string{"-c", "8", "-n", "5"}, 5, 0},
		{"body", []string{"-c", "2", "-P", "8", "-n", "2000", "-body", `{"x":1}`}, 2000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-addr", addr, "-query", "/calculator/get_value"}, tt.args...)
			r := runBench(t, nil, args...)
			require.Equal(t, 0, r.code, r.stderr)
			s := r.sum
			assert.Equal(t, tt.replies+tt.notifies, s.Requests)
			assert.Equal(t, tt.replies, s.Replies)
			assert.Equal(t, tt.replies, s.OK)
			assert.Equal(t, tt.notifies, s.Notifies)
			// The echo answers notifies too; the run does not wait for those
			// replies, since REPE servers send none.
			assert.LessOrEqual(t, s.NotifyReplies, tt.notifies)
			assert.Zero(t, s.Errors)
			assert.Empty(t, s.ErrorsByEC)
			frame := s.BytesSent / s.Requests
			assert.Equal(t, s.Requests*frame, s.BytesSent)
			assert.Equal(t, (s.Replies+s.NotifyReplies)*frame, s.BytesReceived)
			assert.Positive(t, s.RequestsPerS)
			if tt.replies > 0 {
				l := s.LatencyUS
				assert.Positive(t, l.P50)
				assert.LessOrEqual(t, l.P50, l.P90)
				assert.LessOrEqual(t, l.P90, l.P99)
				assert.LessOrEqual(t, l.P99, l.P999)
				assert.LessOrEqual(t, l.P999, l.Max*1.001)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	addr, pid := startEcho(t)
	r := runBench(t, nil, "-addr", addr, "-query", "/q", "-c", "2", "-P", "16", "-z", "300ms",
		"-warmup", "100ms", "-server-pid", fmt.Sprint(pid))
	require.Equal(t, 0, r.code, r.stderr)
	s := r.sum
	assert.Positive(t, s.Requests)
	assert.Positive(t, s.WarmupRequests)
	assert.Zero(t, s.Errors)
	assert.InDelta(t, 0.3, s.DurationS, 0.1)
	require.NotNil(t, s.ServerCPUUSPerRequest, s.ServerCPUError)
	// The echo floor answered every request of the window, so it used
	// CPU time: more than /proc's 10 ms tick over 300 ms of load.
	assert.Positive(t, *s.ServerCPUUSPerRequest)
	require.NotNil(t, s.ServerCPUBusy)
	assert.Positive(t, *s.ServerCPUBusy)
	assert.Positive(t, s.ClientCPUUSPerRequest)
	// Busy fractions are of one CPU: no process here can use more CPUs
	// than the machine has.
	assert.LessOrEqual(t, *s.ServerCPUBusy, float64(runtime.NumCPU())+0.1)
	assert.LessOrEqual(t, s.ClientCPUBusy, float64(runtime.NumCPU())+0.1)
	require.NotNil(t, s.OtherCPUBusy)
	assert.LessOrEqual(t, *s.OtherCPUBusy, float64(runtime.NumCPU())+0.1)
}

// TestClientBound checks the flag on the summary and its note: a tool that
// kept its CPU busy measures itself, not the server.
func TestClientBound(t *testing.T) {
	const window = time.Second
	for _, tt := range []struct {
		busy  float64
		bound bool
	}{{0.5, false}, {0.89, false}, {0.9, true}, {0.99, true}} {
		t.Run(fmt.Sprint(tt.busy), func(t *testing.T) {
			p := &plan{base: time.Now(), shards: []histShard{{h: newHistogram()}}}
			c := &conn{}
			c.r.st.replies, c.r.st.ok, c.r.st.last = 1000, 1000, int64(window)
			before := cpuSample{self: time.Second}
			after := cpuSample{self: time.Second + time.Duration(tt.busy*float64(window))}
			s := summarize(&config{conns: 1, pipeline: 1}, p, []*conn{c}, before, after, false)
			assert.InDelta(t, tt.busy, s.ClientCPUBusy, 1e-9)
			assert.Equal(t, tt.bound, s.ClientBound)
			var out strings.Builder
			require.NoError(t, s.writeText(&out))
			assert.Equal(t, tt.bound, strings.Contains(out.String(), "client-bound"), out.String())
		})
	}
}

func TestWarmupThenCount(t *testing.T) {
	addr, _ := startEcho(t)
	r := runBench(t, nil, "-addr", addr, "-query", "/q", "-c", "2", "-P", "4", "-n", "500", "-warmup", "100ms")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, int64(500), r.sum.Requests)
	assert.Positive(t, r.sum.WarmupRequests)
}

func TestRateLimit(t *testing.T) {
	addr, _ := startEcho(t)
	const rate, secs = 2000.0, 0.6
	r := runBench(t, nil, "-addr", addr, "-query", "/q", "-c", "4", "-P", "8", "-q", fmt.Sprint(rate), "-z", fmt.Sprintf("%gs", secs))
	require.Equal(t, 0, r.code, r.stderr)
	assert.InEpsilon(t, rate*secs, float64(r.sum.Requests), 0.1)
	assert.InEpsilon(t, rate, r.sum.RequestsPerS, 0.1)
}

func TestReplay(t *testing.T) {
	addr, _ := startEcho(t)
	dir := t.TempDir()
	write := func(name string, b []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	// Recorded frames reuse ids (Glaze's client sends 0); replay rewrites them.
	write("a_read.req.repe", repe.AppendMessage(nil, repe.Header{ID: 0, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil))
	write("b_write.req.repe", repe.AppendMessage(nil, repe.Header{ID: 0, QueryFormat: repe.QueryJSONPointer, BodyFormat: repe.BodyJSON}, "/calculator/set_value", []byte("42")))
	write("c_notify.req.repe", repe.AppendMessage(nil, repe.Header{ID: 7, Notify: true, QueryFormat: repe.QueryJSONPointer}, "/calculator/increment", nil))
	bad := repe.AppendMessage(nil, repe.Header{}, "/x", nil)
	bad[repe.OffsetSpec] = 0x34
	write("d_bad_magic.req.repe", bad)
	write("e_trailing.req.repe", append(repe.AppendMessage(nil, repe.Header{}, "/x", nil), 0xff))
	write("f_short.req.repe", []byte("not a frame"))
	write("a_read.res.repe", []byte("ignored: not a request file"))

	r := runBench(t, nil, "-addr", addr, "-replay", dir, "-c", "2", "-P", "8", "-n", "300")
	require.Equal(t, 0, r.code, r.stderr)
	s := r.sum
	assert.Equal(t, 3, s.ReplayFrames)
	assert.Equal(t, int64(300), s.Requests)
	assert.Equal(t, int64(100), s.Notifies, "one frame in three is a notify")
	assert.Equal(t, int64(200), s.Replies)
	assert.Zero(t, s.Errors)
	for _, name := range []string{"d_bad_magic", "e_trailing", "f_short"} {
		assert.Contains(t, r.stderr, "skipping "+name+".req.repe")
	}
	assert.NotContains(t, r.stderr, "a_read")

	empty := t.TempDir()
	r = runBench(t, nil, "-addr", addr, "-replay", empty)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no valid *.req.repe frame")
}

func TestLargeBody(t *testing.T) {
	addr, _ := startEcho(t)
	// Larger than both the copy threshold and the read buffer: sent with
	// writev from the template, replies skipped without buffering them whole.
	body := bytes.Repeat([]byte("x"), 300<<10)
	path := filepath.Join(t.TempDir(), "body")
	require.NoError(t, os.WriteFile(path, body, 0o644))
	const n = 40
	r := runBench(t, nil, "-addr", addr, "-query", "/echo", "-body-file", path, "-body-format", "raw", "-c", "2", "-P", "2", "-n", fmt.Sprint(n))
	require.Equal(t, 0, r.code, r.stderr)
	frame := int64(repe.HeaderSize + len("/echo") + len(body))
	assert.Equal(t, int64(n), r.sum.Replies)
	assert.Equal(t, n*frame, r.sum.BytesSent)
	assert.Equal(t, n*frame, r.sum.BytesReceived)
}

func TestBodyFromStdin(t *testing.T) {
	addr, _ := startEcho(t)
	r := runBench(t, strings.NewReader("[1,2]"), "-addr", addr, "-query", "/q", "-body-file", "-", "-n", "10")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, int64(10*(repe.HeaderSize+2+5)), r.sum.BytesSent)
}

func TestTextSummary(t *testing.T) {
	addr, _ := startEcho(t)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-addr", addr, "-query", "/q", "-n", "100", "-notify-ratio", "0.5"},
		func(string) string { return "" }, nil, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	for _, want := range []string{"requests   100 in", "(replies 50, notifies 50)", "errors     0", "latency    p50", "client cpu", "replies to notifies"} {
		assert.Contains(t, out.String(), want)
	}
}

func TestAddrFromEnvironment(t *testing.T) {
	addr, _ := startEcho(t)
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "REPE_ADDR" {
			return addr
		}
		return ""
	}
	code := run(context.Background(), []string{"-query", "/q", "-n", "10", "-format", "json"}, env, nil, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, out.String(), `"addr": "`+addr+`"`)
}

func TestInterrupt(t *testing.T) {
	addr, _ := startEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := runBenchCtx(t, ctx, nil, "-addr", addr, "-query", "/q", "-c", "2", "-P", "4", "-z", "30s")
	assert.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, r.sum.Interrupted)
	assert.Positive(t, r.sum.Requests)
	assert.Zero(t, r.sum.Errors)
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no query", nil, 2, "--query PATH is required"},
		{"no connections", []string{"-query", "/q", "-c", "0"}, 2, "-c 0"},
		{"no pipeline", []string{"-query", "/q", "-P", "0"}, 2, "-P 0"},
		{"notify ratio", []string{"-query", "/q", "-notify-ratio", "1.5"}, 2, "-notify-ratio"},
		{"format", []string{"-query", "/q", "-format", "xml"}, 2, "-format"},
		{"expect-ec", []string{"-query", "/q", "-expect-ec", "nope"}, 2, "-expect-ec"},
		{"body format", []string{"-query", "/q", "-body-format", "yaml"}, 2, "-body-format"},
		{"two bodies", []string{"-query", "/q", "-body", "1", "-body-file", "x"}, 2, "exclude each other"},
		{"replay and query", []string{"-replay", ".", "-query", "/q"}, 2, "-replay"},
		{"argument", []string{"-query", "/q", "extra"}, 2, "unexpected argument"},
		{"timeout", []string{"-query", "/q", "-timeout", "0s"}, 2, "-timeout"},
		{"missing body file", []string{"-query", "/q", "-body-file", "/nonexistent/body"}, 2, "nonexistent"},
		{"not loopback", []string{"-query", "/q", "-addr", "192.0.2.1:5099"}, 1, "not loopback"},
		{"nothing listening", []string{"-query", "/q", "-addr", "127.0.0.1:1"}, 1, "127.0.0.1:1"},
		{"no server process", []string{"-query", "/q", "-server-pid", "999999999"}, 1, "-server-pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBench(t, nil, tt.args...)
			assert.Equal(t, tt.code, r.code)
			assert.Contains(t, r.stderr, tt.want)
			assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			assert.Empty(t, r.stdout)
		})
	}
}

// TestUsage: -h prints the help on standard output and succeeds; a flag
// that does not exist is one line on standard error, without the help.
func TestUsage(t *testing.T) {
	noenv := func(string) string { return "" }
	for _, arg := range []string{"-h", "--help"} {
		var out, errb bytes.Buffer
		assert.Equal(t, 0, run(context.Background(), []string{arg}, noenv, nil, &out, &errb))
		assert.Equal(t, usage, out.String())
		assert.Empty(t, errb.String())
	}

	var out, errb bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), []string{"--bogus"}, noenv, nil, &out, &errb))
	assert.Equal(t, "repe-bench: flag provided but not defined: -bogus\n", errb.String())
	assert.Empty(t, out.String())
}

// TestUsageListsEveryFlag keeps the hand-written help in step with the flags
// parseFlags defines: each is listed, spelled as the documentation spells
// it (one dash for one letter, two for words).
func TestUsageListsEveryFlag(t *testing.T) {
	names := []string{"addr", "allow-remote", "tls", "cacert", "cert", "key", "server-name", "c", "P", "n", "z", "q", "warmup", "timeout", "query", "body",
		"body-file", "body-format", "notify-ratio", "replay", "expect-ec", "max-reply", "server-pid",
		"format", "progress", "cpuprofile", "reconnect", "version"}
	for _, name := range names {
		// Every listed name is a flag: -h is the only other argument accepted.
		_, err := parseFlags([]string{"-" + name + "=x"}, func(string) string { return "" }, nil)
		if err != nil {
			assert.NotContains(t, err.Error(), "not defined", name)
		}
		spelled := "--" + name
		if len(name) == 1 {
			spelled = "-" + name
		}
		assert.Contains(t, usage, "\n  "+spelled+" ", name)
	}
	assert.Equal(t, len(names), strings.Count(usage, "\n  -")-1, "flags in usage; -h is the extra one")
}

// TestVersion prints the build's version, as internal/version reads it.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--version"}, func(string) string { return "" }, nil, &out, &errb)
	assert.Equal(t, 0, code)
	assert.Equal(t, "repe-bench "+version.String()+"\n", out.String())
	assert.NotEqual(t, "repe-bench \n", out.String())
	assert.Empty(t, errb.String())
}

// TestProcCPUCountsChildren: a server's running child processes, such as
// the worker processes of isolated plugins, count as the server's CPU.
func TestProcCPUCountsChildren(t *testing.T) {
	child := exec.Command("sh", "-c", "while :; do :; done")
	require.NoError(t, child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	var childCPU time.Duration
	require.Eventually(t, func() bool {
		childCPU, _ = procCPU(child.Process.Pid)
		return childCPU >= 200*time.Millisecond
	}, 10*time.Second, 10*time.Millisecond)
	own := selfCPU()
	total, err := procCPU(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, total, childCPU+own-20*time.Millisecond, "the child's CPU is counted")
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n"
	got, err := parseProcStat([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 4*time.Second, got, "utime 250 + stime 150 ticks of 10 ms")

	_, err = parseProcStat([]byte("4242 (x) S 1 2"))
	assert.Error(t, err)

	// The children it has waited for count too: cutime and cstime.
	stat = "4242 (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 70 30 20 0 9 0 100 1000000 500 18446744073709551615\n"
	got, err = parseProcStat([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, got)

	// /proc and getrusage see the same CPU time of this process and the
	// children it has waited for, /proc in 10 ms ticks: burn some first, so
	// that there is something to see.
	for start := selfCPU(); selfCPU()-start < 50*time.Millisecond; {
	}
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru))
	fromRusage := selfCPU() + time.Duration(ru.Utime.Nano()+ru.Stime.Nano())
	fromProc, err := procCPU(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, fromProc)
	assert.InDelta(t, fromRusage.Seconds(), fromProc.Seconds(), 0.05)
}

func TestParseEC(t *testing.T) {
	tests := []struct {
		in    string
		ec    repe.ErrorCode
		anyEC bool
	}{
		{"0", repe.OK, false},
		{"6", repe.MethodNotFound, false},
		{"method_not_found", repe.MethodNotFound, false},
		{"unknown_key", repe.UnknownKey, false},
		{"4096", 4096, false},
		{"any", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ec, anyEC, err := parseEC(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.ec, ec)
			assert.Equal(t, tt.anyEC, anyEC)
		})
	}
}

func TestProgressLine(t *testing.T) {
	c1, c2 := &conn{}, &conn{}
	c1.progReplies.Store(300)
	c1.progNotifies.Store(100)
	c2.progReplies.Store(600)
	c2.progErrors.Store(2)
	var out bytes.Buffer
	base := time.Now()
	p := progressState{out: &out, conns: []*conn{c1, c2}, base: base}
	p.show(base.Add(time.Second))
	assert.Equal(t, "\r\033[K   1s        1000 req/s          1000 requests  2 errors", out.String())
	out.Reset()
	c2.progReplies.Store(2600)
	p.show(base.Add(3 * time.Second))
	assert.Equal(t, "\r\033[K   3s        1000 req/s          3000 requests  2 errors", out.String())
	out.Reset()
	p.clear()
	assert.Equal(t, "\r\033[K", out.String())
}

func TestParseMachineStat(t *testing.T) {
	stat := "cpu  100 5 40 9000 7 3 2 11 0 0\ncpu0 50 2 20 4500 3 1 1 5 0 0\n"
	busy, steal, err := parseMachineStat([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 1500*time.Millisecond, busy, "user+nice+system+irq+softirq ticks")
	assert.Equal(t, 110*time.Millisecond, steal)

	_, _, err = parseMachineStat([]byte("intr 1 2 3\n"))
	assert.Error(t, err)

	busy, _, err = machineCPU()
	require.NoError(t, err)
	assert.Positive(t, busy)
}
