package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/conformance/replay"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
	"github.com/repe-gw/repe-gw/repe"
)

// The tests in this file record sessions through repe record, run as a
// process of its own in front of a real gateway, and replay them with repe
// replay against fresh gateways.

// recorder is a repe record process.
type recorder struct {
	addr   string // where it listens
	cmd    *exec.Cmd
	stderr bytes.Buffer // what it wrote, whole once stop returns
	copied chan struct{}
}

// startRecorder runs repe record with args and returns once it listens. It
// is killed at cleanup if the test has not stopped it.
func startRecorder(t *testing.T, args ...string) *recorder {
	t.Helper()
	r := &recorder{cmd: exec.Command(repeBinary(t), args...), copied: make(chan struct{})}
	pipe, err := r.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.copied
			r.cmd.Wait()
		}
	})
	br := bufio.NewReader(pipe)
	line, err := br.ReadString('\n')
	if err != nil {
		close(r.copied)
		t.Fatalf("the recorder said nothing: %v", err)
	}
	_, rest, ok := strings.Cut(line, "listening on ")
	require.True(t, ok, "the recorder's first line: %s", line)
	r.addr, _, _ = strings.Cut(rest, ",")
	r.stderr.WriteString(line)
	// Drained as it comes, so that the recorder never blocks on a full pipe.
	go func() {
		defer close(r.copied)
		io.Copy(&r.stderr, br)
	}()
	return r
}

// stop interrupts the recorder, as Ctrl-C does, and requires a clean exit.
func (r *recorder) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(os.Interrupt))
	<-r.copied // the pipe's end: the process has exited
	require.NoError(t, r.cmd.Wait())
}

// TestRecordReplay records a session through the proxy, with calls that
// reply, a notify, an error, and requests pipelined on one connection; then
// replays it against a fresh gateway, where every case matches, and against
// a gateway whose calculator starts elsewhere, where the differing case is
// reported and the exit status is 1.
func TestRecordReplay(t *testing.T) {
	upstream, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	out := filepath.Join(t.TempDir(), "session")
	rec := startRecorder(t, "record", "--listen", "127.0.0.1:0", "--upstream", upstream.Addr().String(), "--out", out)
	proxy := rec.addr

	calls := [][]string{
		{"get", "/calculator/value"},
		{"set", "/calculator/value", "41.5"},
		{"call", "/calculator/increment"},
		{"set", "/calculator/value", `"ten"`},
	}
	for _, args := range calls {
		var stdout, stderr bytes.Buffer
		run(append([]string{"--addr", proxy}, args...), nil, &stdout, &stderr)
	}
	// A notify and two requests in one write: replies are matched to
	// requests in order. The notify shares the connection of the calls that
	// follow it, so that it takes effect before them, here and in the replay,
	// which waits for it to go unanswered.
	conn := gatewaytest.Dial(t, mustResolve(t, proxy))
	pipelined := gatewaytest.Notify("/calculator/increment", "")
	pipelined = append(pipelined, gatewaytest.Request(7, "/calculator/increment", "")...)
	conn.Send(append(pipelined, gatewaytest.Request(8, "/calculator", "")...))
	assert.Equal(t, "44.5", string(conn.Next().Body()))
	assert.Equal(t, `{"value":44.5}`, string(conn.Next().Body()))
	conn.Close()
	rec.stop(t)
	assert.Contains(t, rec.stderr.String(), "recorded 7 cases into "+out)

	recording, err := replay.Load(out)
	require.NoError(t, err)
	var names []string
	for _, c := range recording.Cases {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{
		"0001_calculator_value", "0002_calculator_value", "0003_calculator_increment",
		"0004_calculator_value", "0005_calculator_increment", "0006_calculator_increment", "0007_calculator",
	}, names)
	assert.Equal(t, uint32(repe.ParseNumberFailure), recording.Cases[3].Result.Responses[0].EC)
	assert.Equal(t, "0005_calculator_increment.nores", recording.Cases[4].ResponseFile, "a notify has no reply")

	fresh, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", out, "--addr", fresh.Addr().String()}, nil, &stdout, &stderr)
	assert.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	assert.Equal(t, "ok: 7 cases, all as recorded\n", stdout.String())
	assert.Empty(t, stderr.String())

	changed, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	var ignored bytes.Buffer
	require.Equal(t, exitOK, run([]string{"--addr", changed.Addr().String(), "set", "/calculator/value", "7"}, nil, &ignored, &ignored))
	stdout.Reset()
	code = run([]string{"replay", out, "--addr", changed.Addr().String()}, nil, &stdout, &stderr)
	assert.Equal(t, exitFailure, code)
	assert.Equal(t, `FAIL 0001_calculator_value: /calculator/value, id 1
  reply differs:
    body: got "7", want "0"
1 of 7 cases differ
`, stdout.String())
}

// TestRecordUnframed records a connection whose requests stop being REPE
// frames: the frames before are recorded, the rest is forwarded, not
// recorded, and the recorder says so.
func TestRecordUnframed(t *testing.T) {
	upstream, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	out := filepath.Join(t.TempDir(), "session")
	rec := startRecorder(t, "record", "--listen", "127.0.0.1:0", "--upstream", upstream.Addr().String(), "--out", out)
	proxy := rec.addr

	conn := gatewaytest.Dial(t, mustResolve(t, proxy))
	conn.Send(gatewaytest.Request(1, "/calculator/value", ""))
	assert.Equal(t, "0", string(conn.Next().Body()))
	bad := gatewaytest.Request(2, "/calculator/value", "")
	bad[repe.OffsetSpec] = 0x34 // a bad magic: the gateway says so and closes
	conn.Send(bad)
	assert.Equal(t, repe.InvalidHeader, conn.Next().EC())
	conn.ExpectClosed()
	rec.stop(t)

	assert.Contains(t, rec.stderr.String(), "the requests cannot be framed (repe: invalid_header: REPE magic number mismatch")
	assert.Contains(t, rec.stderr.String(), "recorded 1 cases into")
	recording, err := replay.Load(out)
	require.NoError(t, err)
	require.Len(t, recording.Cases, 1)
}

// TestRecordReplayUsage covers the command lines that record and replay
// refuse.
func TestRecordReplayUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"record without its flags", []string{"record", "--listen", "127.0.0.1:0"}, "repe: record needs --listen, --upstream and --out (see repe -h)\n"},
		{"a record flag elsewhere", []string{"get", "/x", "--out", dir}, "repe: --out is not a flag of get (see repe -h)\n"},
		{"a call flag on replay", []string{"replay", dir, "--raw"}, "repe: --raw is not a flag of replay (see repe -h)\n"},
		{"replay without a directory", []string{"replay"}, "repe: replay takes DIR, the recording (see repe -h)\n"},
		{"no recording there", []string{"replay", dir}, "repe: replay: open " + filepath.Join(dir, "manifest.json") + ": no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			assert.Equal(t, exitFailure, run(tt.args, nil, &stdout, &stderr))
			assert.Equal(t, tt.stderr, stderr.String())
			assert.Empty(t, stdout.String())
		})
	}

	// A directory that holds a recording is not written over.
	w, err := replay.Create(dir, "test", "")
	require.NoError(t, err)
	require.NoError(t, w.Add(gatewaytest.Request(1, "/x", ""), nil, false))
	var stdout, stderr bytes.Buffer
	code := run([]string{"record", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--out", dir}, nil, &stdout, &stderr)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr.String(), "holds a recording already")
}

// TestReadmeGoldenTests runs README.md's "Golden tests" section: the
// recorder as its sh block starts it, the first session through it against
// a gateway serving the calculator as make run does, then the replays
// against a fresh one. The README's addresses are replaced by the test's:
// a free port for the recorder and its gateways' for 127.0.0.1:5099.
func TestReadmeGoldenTests(t *testing.T) {
	section := readmetest.Section(t, "## Golden tests")
	start := codeBlocks(section, "sh")
	require.Len(t, start, 1, "the section starts the recorder in one sh block")
	sessions := codeBlocks(section, "console")
	require.Len(t, sessions, 2, "the section shows a recorded session, then replays")

	upstream, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := free.Addr().String()
	require.NoError(t, free.Close())
	addrs := strings.NewReplacer("127.0.0.1:5098", listen, "127.0.0.1:5099", upstream.Addr().String())

	bin := repeBinary(t)
	dir := filepath.Dir(filepath.Dir(bin))
	args := strings.Fields(addrs.Replace(strings.TrimSpace(start[0])))
	require.Equal(t, "bin/repe", args[0])
	args[len(args)-1] = filepath.Join(dir, args[len(args)-1]) // --out, relative to where the README runs
	rec := startRecorder(t, args[1:]...)
	steps := readmetest.Transcript("```console\n" + sessions[0] + "```\n")
	for i := range steps {
		steps[i].Command = addrs.Replace(steps[i].Command)
	}
	runSteps(t, steps, dir)
	rec.stop(t)

	fresh, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	runSteps(t, readmetest.Transcript("```console\n"+sessions[1]+"```\n"), dir, "REPE_ADDR="+fresh.Addr().String())

	makefile, err := os.ReadFile(plugintest.RepoPath("Makefile"))
	require.NoError(t, err)
	require.Contains(t, string(makefile), "--addr $(ADDR)", "make run no longer serves on ADDR")
	require.Contains(t, string(makefile), "ADDR    ?= 127.0.0.1:5099", "make run serves elsewhere than the README's upstream")
}

func mustResolve(t *testing.T, addr string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	require.NoError(t, err)
	return a
}

// TestReplayConformance runs the replay of Glaze's recording that README.md's
// "Golden tests" section gives, from the repository's root, against a
// gateway serving the C calculator.
func TestReplayConformance(t *testing.T) {
	const command = "bin/repe replay conformance/testdata/glaze --expect conformance/testdata/expectations.json"
	section := strings.Join(strings.Fields(readmetest.Section(t, "## Golden tests")), " ")
	require.Contains(t, section, "`"+command+"`")

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	cmd := exec.Command(repeBinary(t), strings.Fields(command)[1:]...)
	cmd.Dir = plugintest.RepoPath("")
	cmd.Env = append(os.Environ(), "REPE_ADDR="+srv.Addr().String())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "ok: 59 cases, 45 as recorded and 14 as conformance/testdata/expectations.json expects\n", string(out))
}
