package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// buildGateway builds the command without cgo, as `make build` does, so that
// these tests prove such a binary loads and serves plugins. It stamps the
// version from the repository when there is one, whatever GOFLAGS says.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "repe-gw")
	cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// process is a repe-gw process under test.
type process struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
}

// startGateway runs bin with args plus a free loopback address and waits
// until it listens.
func startGateway(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	g := &process{addr: addr, exited: make(chan struct{})}
	g.cmd = exec.Command(bin, append(args, "--addr", addr)...)
	pipe, err := g.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, g.cmd.Start())
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			g.mu.Lock()
			g.stderr.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
			if strings.Contains(sc.Text(), "msg=listening") {
				close(listening)
			}
		}
		_ = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
	})
	select {
	case <-listening:
	case <-g.exited:
		t.Fatalf("repe-gw exited before listening:\n%s", g.log())
	case <-time.After(gatewaytest.Timeout):
		t.Fatalf("repe-gw did not listen:\n%s", g.log())
	}
	return g
}

func (g *process) dial(t *testing.T) *gatewaytest.Conn {
	addr, err := net.ResolveTCPAddr("tcp", g.addr)
	require.NoError(t, err)
	return gatewaytest.Dial(t, addr)
}

func (g *process) log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// wait returns the exit code once the process exits.
func (g *process) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-g.exited:
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("repe-gw did not exit within %v:\n%s", within, g.log())
		return -1
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// pluginDir builds the calculator and the gateway test plugin (which logs
// init and shutdown to events) into a fresh directory, beside a file that is
// not a plugin at all.
func pluginDir(t *testing.T, events string) string {
	t.Helper()
	dir := t.TempDir()
	_, err := plugintest.BuildTo(filepath.Join(dir), plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "slow"), 0o755))
	_, err = plugintest.BuildTo(filepath.Join(dir, "slow"), plugintest.RepoPath("gateway/testdata/gwtest.c"),
		`-DGW_NAME="slow"`, `-DGW_ROOT="/slow"`, fmt.Sprintf(`-DGW_LOG="%s"`, events))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.so"), []byte("not a shared object"), 0o644))
	return dir
}

func TestServesAndShutsDownOnSignal(t *testing.T) {
	bin := buildGateway(t)
	events := filepath.Join(t.TempDir(), "events")
	g := startGateway(t, bin, "--plugins", pluginDir(t, events))

	log := g.log()
	assert.Regexp(t, `level=INFO msg="plugin loaded" plugin=calculator version=\S* root=/calculator file=\S+calculator.so`, log)
	assert.Regexp(t, `level=INFO msg="plugin loaded" plugin=slow version=1.0.0 root=/slow file=\S+gwtest\S*.so`, log)
	assert.Regexp(t, `level=ERROR msg="plugin refused" file=\S+broken.so reason=`, log)
	assert.Contains(t, log, "msg=listening addr="+g.addr)

	c := g.dial(t)
	c.Send(append(gatewaytest.Request(1, "/calculator/set_value", "2.5"), gatewaytest.Request(2, "/calculator/increment", "")...))
	assert.Equal(t, "null", string(c.Next().Body()))
	assert.Equal(t, "3.5", string(c.Next().Body()))

	// A slow call is in flight when the signal comes: it is answered first.
	c.Send(gatewaytest.Request(3, "/slow/sleep", ""))
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, uint64(3), c.Next().ID())
	c.ExpectClosed()
	assert.Equal(t, exitOK, g.wait(t, gatewaytest.Timeout), g.log())

	got, err := os.ReadFile(events)
	require.NoError(t, err)
	assert.Equal(t, "slow init\nslow shutdown\n", string(got), "the plugin is shut down exactly once")
	assert.Contains(t, g.log(), "msg=stopped")
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	bin := buildGateway(t)
	g := startGateway(t, bin, "--plugins", pluginDir(t, filepath.Join(t.TempDir(), "events")))
	var batch []byte
	for i := range uint64(20) { // 4 s of calls, one after another
		batch = append(batch, gatewaytest.Request(i, "/slow/sleep", "")...)
	}
	g.dial(t).Send(batch)
	time.Sleep(50 * time.Millisecond)

	require.NoError(t, g.cmd.Process.Signal(syscall.SIGINT))
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, exitFailure, g.wait(t, 2*time.Second))
	assert.Less(t, time.Since(start), time.Second)
	assert.Contains(t, g.log(), "second signal: exiting now")
}

func TestStartsWithoutPlugins(t *testing.T) {
	g := startGateway(t, buildGateway(t), "--plugins", t.TempDir())
	assert.Contains(t, g.log(), `level=WARN msg="no plugin loaded`)
	c := g.dial(t)
	c.Send(gatewaytest.Request(4, "/calculator/value", ""))
	m := c.Next()
	assert.Equal(t, repe.MethodNotFound, m.EC())
	assert.Equal(t, "No plugin registered for path", string(m.Body()))
}

func TestCommandLineErrors(t *testing.T) {
	bin := buildGateway(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	tests := []struct {
		name string
		args []string
		code int
		line string // a regular expression for the one line on stderr
	}{
		{"unknown flag", []string{"--bogus"}, exitUsage, `^repe-gw: flag provided but not defined: -bogus \(see repe-gw -h\)$`},
		{"missing value", []string{"--addr"}, exitUsage, `^repe-gw: flag needs an argument: -addr \(see repe-gw -h\)$`},
		{"stray argument", []string{"plugins"}, exitUsage, `^repe-gw: unexpected argument "plugins"`},

		{"bad size", []string{"--max-message-size", "lots"}, exitUsage,
			`^repe-gw: --max-message-size lots: not a size: want 48B to 4GiB, in bytes or a number with KiB, MiB or GiB \(see repe-gw -h\)$`},
		{"size below header", []string{"--max-message-size", "10"}, exitUsage, `^repe-gw: --max-message-size 10: too small: want 48B to 4GiB \(`},
		{"size over 4GiB", []string{"--max-message-size", "4097MiB"}, exitUsage, `^repe-gw: --max-message-size 4097MiB: too large: want 48B to 4GiB \(`},
		{"size over 64 bits", []string{"--max-message-size=18446744073709551616"}, exitUsage, `: too large: want 48B to 4GiB \(`},
		{"size that overflows when scaled", []string{"--max-message-size", "17179869184GiB"}, exitUsage, `: too large: want 48B to 4GiB \(`},
		{"negative size", []string{"--max-message-size", "-1"}, exitUsage, `^repe-gw: --max-message-size -1: not a size: want 48B to 4GiB`},
		{"no connections", []string{"--max-conns", "0"}, exitUsage, `^repe-gw: --max-conns 0: out of range: want 1 to 2147483647 \(`},
		{"connections over 32 bits", []string{"--max-conns", "2147483648"}, exitUsage, `^repe-gw: --max-conns 2147483648: out of range: want 1 to 2147483647 \(`},
		{"connections over 64 bits", []string{"--max-conns", "99999999999999999999"}, exitUsage, `: out of range: want 1 to 2147483647 \(`},
		{"bad count", []string{"--max-conns", "many"}, exitUsage, `^repe-gw: --max-conns many: not a whole number: want 1 to 2147483647 \(`},
		{"negative concurrency", []string{"--plugin-concurrency", "-1"}, exitUsage,
			`^repe-gw: --plugin-concurrency -1: out of range: want 0 \(0: GOMAXPROCS\) to 2147483647 \(`},
		{"concurrency over 32 bits", []string{"--plugin-concurrency", "4294967296"}, exitUsage, `^repe-gw: --plugin-concurrency 4294967296: out of range`},
		{"bad duration", []string{"--read-timeout", "soon"}, exitUsage,
			`^repe-gw: --read-timeout soon: not a duration such as 30s or 500ms: want 0 \(never\) or more \(`},
		{"negative read timeout", []string{"--read-timeout", "-1s"}, exitUsage, `^repe-gw: --read-timeout -1s: out of range: want 0 \(never\) or more \(`},
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0"}, exitUsage, `^repe-gw: --shutdown-timeout 0: out of range: want more than 0 \(`},
		{"negative shutdown timeout", []string{"--shutdown-timeout", "-5s"}, exitUsage, `^repe-gw: --shutdown-timeout -5s: out of range: want more than 0 \(`},
		{"zero inline budget", []string{"--inline-budget", "0"}, exitUsage,
			`^repe-gw: --inline-budget 0: out of range: want more than 0 and at most 1s, or negative \(never\) \(`},
		{"inline budget over a second", []string{"--inline-budget", "1.5s"}, exitUsage, `^repe-gw: --inline-budget 1.5s: out of range: want more than 0 and at most 1s`},
		{"bad log level", []string{"--log-level", "loud"}, exitUsage, `^repe-gw: --log-level loud: want debug, info, warn or error \(`},
		{"bad log format", []string{"--log-format", "xml"}, exitUsage, `^repe-gw: --log-format xml: want text or json \(`},

		{"missing plugin dir", []string{"--plugins", filepath.Join(t.TempDir(), "none")}, exitFailure, `^repe-gw: .*none.*no such file or directory$`},
		{"port in use", []string{"--addr", busy.Addr().String()}, exitFailure, `^repe-gw: .*` + regexp.QuoteMeta(busy.Addr().String()) + `.*address already in use$`},
		{"bad address", []string{"--addr", "nowhere"}, exitFailure, `^repe-gw: gateway: address "nowhere"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.code, ee.ExitCode())
			assert.Empty(t, stdout.String(), "no usage unless asked for")
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			msgs := slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "repe-gw: ") })
			require.Len(t, msgs, 1, "one clear line, got:\n%s", stderr.String())
			assert.Regexp(t, tt.line, msgs[0])
			if tt.code == exitUsage {
				assert.Equal(t, []string{msgs[0]}, lines, "nothing but that line")
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	bin := buildGateway(t)
	for _, h := range []string{"-h", "--help"} {
		cmd := exec.Command(bin, h)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err)
		assert.Empty(t, stderr.String())
		assert.True(t, strings.HasPrefix(string(out), "Usage: repe-gw --plugins DIR [--plugin FILE]... [flags]\n"), "%s", out)
		for _, flag := range []string{"plugins DIR", "plugin FILE", "addr HOST:PORT", "max-message-size SIZE", "max-conns N",
			"read-timeout D", "shutdown-timeout D", "plugin-concurrency N", "inline-budget D", "log-level LEVEL",
			"log-format FORMAT", "version"} {
			assert.Regexp(t, `(?m)^  --`+regexp.QuoteMeta(flag)+`( |$)`, string(out))
		}
		for line := range strings.SplitSeq(string(out), "\n") {
			assert.LessOrEqual(t, utf8.RuneCountInString(line), 80, "%q", line)
		}
	}

	cmd := exec.Command(bin, "--version")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Empty(t, stderr.String())
	assert.Regexp(t, `^repe-gw \S`, string(out))
	assert.NotContains(t, string(out), "dev\n")
	assert.NotContains(t, string(out), "unknown")
	if rev, err := exec.Command("git", "-C", plugintest.RepoPath(""), "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		// go build stamps the commit's tag, or a pseudo-version naming the
		// commit, with +dirty when the tree has changes.
		assert.Regexp(t, `^repe-gw (v\d+\.\d+\.\d+|v\d+\.\d+\.\d+-\S*`+strings.TrimSpace(string(rev))+`(\+dirty)?)\n$`, string(out))
	}
}
