package main

import (
	"bufio"
	"bytes"
	"context"
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

// gatewayBin is the command, built once for the whole run by buildGateway
// into the directory TestMain made: linking it takes about two seconds,
// and most tests run it.
var gatewayBin struct {
	dir  string
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "repe-gw-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewayBin.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildGateway returns the command built without cgo, as `make build`
// builds it, so that these tests prove such a binary loads and serves
// plugins. It stamps the version from the repository when there is one,
// whatever GOFLAGS says.
func buildGateway(t *testing.T) string {
	t.Helper()
	gatewayBin.once.Do(func() {
		bin := filepath.Join(gatewayBin.dir, "repe-gw")
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			gatewayBin.err = fmt.Errorf("building repe-gw: %w\n%s", err, out)
			return
		}
		gatewayBin.path = bin
	})
	require.NoError(t, gatewayBin.err)
	return gatewayBin.path
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
	g := start(t, bin, args...)
	g.waitLog(t, "msg=listening")
	return g
}

// start runs bin with args plus a free loopback address.
func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	return spawn(t, bin, nil, addr, append(args, "--addr", addr)...)
}

// spawn runs bin with args, and with env added to the test's environment;
// addr is where the process is expected to listen.
func spawn(t *testing.T, bin string, env []string, addr string, args ...string) *process {
	t.Helper()
	g := &process{addr: addr, exited: make(chan struct{})}
	g.cmd = exec.Command(bin, args...)
	g.cmd.Env = append(os.Environ(), env...)
	pipe, err := g.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, g.cmd.Start())
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			g.mu.Lock()
			g.stderr.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
		}
		_ = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
	})
	return g
}

// waitLog waits until the process has logged text.
func (g *process) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(gatewaytest.Timeout)
	for !strings.Contains(g.log(), text) {
		select {
		case <-g.exited:
			if !strings.Contains(g.log(), text) {
				t.Fatalf("repe-gw exited without logging %q:\n%s", text, g.log())
			}
		case <-deadline:
			t.Fatalf("repe-gw did not log %q:\n%s", text, g.log())
		case <-time.After(time.Millisecond):
		}
	}
}

// signal sends sig to the process and waits until it has logged that it
// took it.
func (g *process) signal(t *testing.T, sig syscall.Signal, logged string) {
	t.Helper()
	require.NoError(t, g.cmd.Process.Signal(sig))
	g.waitLog(t, logged)
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

// waitExit returns the exit code once the process exits.
func (g *process) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-g.exited:
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(gatewaytest.Timeout):
		t.Fatalf("repe-gw did not exit:\n%s", g.log())
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

// pluginDir builds the calculator and a gate plugin at /gate into a fresh
// directory, beside a file that is not a plugin at all.
func pluginDir(t *testing.T, g gate) string {
	t.Helper()
	dir := t.TempDir()
	_, err := plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "gate"), 0o755))
	g.build(t, filepath.Join(dir, "gate"), "gate", "/gate", false)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.so"), []byte("not a shared object"), 0o644))
	return dir
}

func TestServesAndShutsDownOnSignal(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	g := startGateway(t, bin, "--plugins", pluginDir(t, gt))

	log := g.log()
	assert.Regexp(t, `level=INFO msg="plugin loaded" plugin=calculator version=\S* root=/calculator file=\S+calculator.so`, log)
	assert.Regexp(t, `level=INFO msg="plugin loaded" plugin=gate version=1.0.0 root=/gate file=\S+gate\S*.so`, log)
	assert.Regexp(t, `level=ERROR msg="plugin refused" file=\S+broken.so reason=`, log)
	assert.Contains(t, log, "msg=listening addr="+g.addr)

	c := g.dial(t)
	c.Send(append(gatewaytest.Request(1, "/calculator/set_value", "2.5"), gatewaytest.Request(2, "/calculator/increment", "")...))
	assert.Equal(t, "null", string(c.Next().Body()))
	assert.Equal(t, "3.5", string(c.Next().Body()))

	// A call is in the plugin when the signal comes: it is answered before
	// the connection closes, and the plugin is shut down after it returns.
	c.Send(gatewaytest.Request(3, "/gate/wait", ""))
	gt.waitEvent(t, "gate wait 3")
	g.signal(t, syscall.SIGTERM, `msg="shutting down" signal=terminated`)
	assert.NotContains(t, gt.events(t), "gate shutdown", "not while a call is in it")
	gt.open(t, "go")
	reply := c.Next()
	assert.Equal(t, uint64(3), reply.ID())
	assert.Equal(t, `"released"`, string(reply.Body()))
	c.ExpectClosed()
	assert.Equal(t, exitOK, g.waitExit(t), g.log())

	assert.Equal(t, "gate init\ngate wait 3\ngate shutdown\n", gt.events(t), "the plugin is shut down exactly once")
	assert.Contains(t, g.log(), "msg=stopped")
}

// TestSecondSignalExitsAtOnce holds a call in a plugin that never returns
// it, and checks that a second signal ends the process while the first
// still waits for that call: exit status 1, no reply, and no shutdown of
// the plugin, which is still busy.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	g := startGateway(t, bin, "--plugins", pluginDir(t, gt))
	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/gate/wait", ""))
	gt.waitEvent(t, "gate wait 1")

	g.signal(t, syscall.SIGINT, `msg="shutting down" signal=interrupt`)
	g.signal(t, syscall.SIGINT, `msg="second signal: exiting now" signal=interrupt`)
	assert.Equal(t, exitFailure, g.waitExit(t))
	c.ExpectClosed()
	assert.Equal(t, "gate init\ngate wait 1\n", gt.events(t), "the call never returned, and the plugin was not shut down")
	assert.NotContains(t, g.log(), "msg=stopped")
}

// loadingGateway starts the gateway on two gate plugins, "first" and
// "second", loaded in that order, and returns once first's init, which
// waits for init-go, has begun.
func loadingGateway(t *testing.T) (*process, gate) {
	t.Helper()
	bin := buildGateway(t)
	gt := newGate(t)
	dir := t.TempDir()
	gt.build(t, dir, "first", "/first", true)
	second := gt.build(t, t.TempDir(), "second", "/second", false)
	g := start(t, bin, "--plugins", dir, "--plugin", second)
	gt.waitEvent(t, "first init")
	return g, gt
}

// TestSignalWhileLoading sends a signal while a plugin's init runs: the
// gateway takes it at once, lets that init finish (it cannot be cut short),
// loads no further plugin, shuts the loaded one down, never listens, and
// exits 0.
func TestSignalWhileLoading(t *testing.T) {
	g, gt := loadingGateway(t)
	g.signal(t, syscall.SIGTERM, `msg="shutting down" signal=terminated`)
	assert.Equal(t, "first init\n", gt.events(t), "the signal is taken while init still runs")

	gt.open(t, "init-go")
	assert.Equal(t, exitOK, g.waitExit(t), g.log())
	assert.Equal(t, "first init\nfirst init done\nfirst shutdown\n", gt.events(t), "second is never loaded")
	assert.Contains(t, g.log(), `msg="startup stopped: plugins not loaded" count=1`)
	assert.Contains(t, g.log(), "msg=stopped")
	assert.NotContains(t, g.log(), "msg=listening")
}

// TestSecondSignalWhileLoading sends two signals while a plugin's init
// runs and never lets it finish: the second ends the process anyway.
func TestSecondSignalWhileLoading(t *testing.T) {
	g, gt := loadingGateway(t)
	g.signal(t, syscall.SIGINT, `msg="shutting down" signal=interrupt`)
	g.signal(t, syscall.SIGINT, `msg="second signal: exiting now" signal=interrupt`)
	assert.Equal(t, exitFailure, g.waitExit(t))
	assert.Equal(t, "first init\n", gt.events(t), "init was still running when the process ended")
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

// TestPluginNamedTwice names one file through --plugins and --plugin, by
// other paths and through a link: it loads once, and is not refused as a
// clash with itself.
func TestPluginNamedTwice(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	calc, err := plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	link := filepath.Join(t.TempDir(), "calc.so")
	require.NoError(t, os.Symlink(calc, link))
	other := filepath.Join(dir, "..", filepath.Base(dir), ".", "calculator.so")

	g := startGateway(t, bin, "--plugins", dir, "--plugin", link, "--plugin", other, "--plugin", calc)
	assert.Equal(t, 1, strings.Count(g.log(), `msg="plugin loaded" plugin=calculator`), g.log())
	assert.NotContains(t, g.log(), "refused")

	// A file named by --plugin that is a plugin but cannot be served is
	// refused as in a directory: here, a second calculator at the same root.
	calc2, err := plugintest.BuildTo(t.TempDir(), plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	g = startGateway(t, bin, "--plugins", dir, "--plugin", calc2)
	assert.Regexp(t, `level=ERROR msg="plugin refused" file=\S+ reason="pluginhost: root path already claimed`, g.log())
	c := g.dial(t)
	c.Send(gatewaytest.Request(1, "/calculator/value", ""))
	assert.Equal(t, repe.OK, c.Next().EC(), "the first calculator serves")
}

func TestCommandLineErrors(t *testing.T) {
	bin := buildGateway(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	notShared := filepath.Join(dir, "notes.so")
	require.NoError(t, os.WriteFile(notShared, []byte("not a shared object"), 0o644))
	src := filepath.Join(dir, "lib.c")
	require.NoError(t, os.WriteFile(src, []byte("int answer(void) { return 42; }\n"), 0o644))
	noABI := plugintest.Build(t, src)
	calc := plugintest.Build(t, plugintest.RepoPath("plugins/calculator/calculator.c"))

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
			`^repe-gw: --max-message-size lots: not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB: want 48B to 4GiB \(see repe-gw -h\)$`},
		{"size below header", []string{"--max-message-size", "10"}, exitUsage, `^repe-gw: --max-message-size 10: too small: want 48B to 4GiB \(`},
		{"size over 4GiB", []string{"--max-message-size", "4097MiB"}, exitUsage, `^repe-gw: --max-message-size 4097MiB: too large: want 48B to 4GiB \(`},
		{"size over 64 bits", []string{"--max-message-size=18446744073709551616"}, exitUsage, `: too large: want 48B to 4GiB \(`},
		{"size that overflows when scaled", []string{"--max-message-size", "17179869184GiB"}, exitUsage, `: too large: want 48B to 4GiB \(`},
		{"negative size", []string{"--max-message-size", "-1"}, exitUsage, `^repe-gw: --max-message-size -1: not a size: .*: want 48B to 4GiB`},
		{"no connections", []string{"--max-conns", "0"}, exitUsage, `^repe-gw: --max-conns 0: out of range: want 1 to 2147483647 \(`},
		{"connections over 32 bits", []string{"--max-conns", "2147483648"}, exitUsage, `^repe-gw: --max-conns 2147483648: out of range: want 1 to 2147483647 \(`},
		{"connections over 64 bits", []string{"--max-conns", "99999999999999999999"}, exitUsage, `: out of range: want 1 to 2147483647 \(`},
		{"bad count", []string{"--max-conns", "many"}, exitUsage, `^repe-gw: --max-conns many: not a whole number: want 1 to 2147483647 \(`},
		{"negative concurrency", []string{"--plugin-concurrency", "-1"}, exitUsage,
			`^repe-gw: --plugin-concurrency -1: out of range: want 0 \(GOMAXPROCS\) to 65536 \(`},
		{"concurrency over the limit", []string{"--plugin-concurrency", "65537"}, exitUsage, `^repe-gw: --plugin-concurrency 65537: out of range`},
		{"pending output of 0", []string{"--max-pending-output", "0"}, exitUsage, `^repe-gw: --max-pending-output 0: too small`},
		{"pending input over 1GiB", []string{"--max-pending-input", "2GiB"}, exitUsage, `^repe-gw: --max-pending-input 2GiB: too large`},
		{"negative deadline", []string{"--deadline", "-1s"}, exitUsage, `^repe-gw: --deadline -1s: out of range`},
		{"bad duration", []string{"--read-timeout", "soon"}, exitUsage,
			`^repe-gw: --read-timeout soon: not a duration such as 30s or 500ms \(`},
		{"negative read timeout", []string{"--read-timeout", "-1s"}, exitUsage, `^repe-gw: --read-timeout -1s: out of range: want 0 \(never\) or more \(`},
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0"}, exitUsage, `^repe-gw: --shutdown-timeout 0: out of range: want more than 0 \(`},
		{"negative shutdown timeout", []string{"--shutdown-timeout", "-5s"}, exitUsage, `^repe-gw: --shutdown-timeout -5s: out of range: want more than 0 \(`},
		{"zero inline budget", []string{"--inline-budget", "0"}, exitUsage,
			`^repe-gw: --inline-budget 0: out of range: want more than 0 and at most 1s, or negative \(never\) \(`},
		{"inline budget over a second", []string{"--inline-budget", "1.5s"}, exitUsage, `^repe-gw: --inline-budget 1.5s: out of range: want more than 0 and at most 1s`},
		{"bad log level", []string{"--log-level", "loud"}, exitUsage, `^repe-gw: --log-level loud: want debug, info, warn or error \(`},
		{"bad log format", []string{"--log-format", "xml"}, exitUsage, `^repe-gw: --log-format xml: want text or json \(`},

		{"missing plugin dir", []string{"--plugins", filepath.Join(dir, "none")}, exitFailure, `^repe-gw: .*none.*no such file or directory$`},
		{"missing plugin file", []string{"--plugin", filepath.Join(dir, "none.so"), "--addr", "127.0.0.1:0"}, exitFailure,
			`^repe-gw: --plugin ` + regexp.QuoteMeta(filepath.Join(dir, "none.so")) + `: no such file or directory$`},
		{"plugin file is a directory", []string{"--plugin", dir, "--addr", "127.0.0.1:0"}, exitFailure,
			`^repe-gw: --plugin ` + regexp.QuoteMeta(dir) + ` is a directory: to load the plugins in it, use --plugins ` + regexp.QuoteMeta(dir) + `$`},
		{"plugin file is not a shared object", []string{"--plugin", notShared, "--addr", "127.0.0.1:0"}, exitFailure,
			`^repe-gw: --plugin ` + regexp.QuoteMeta(notShared) + `: pluginhost: cannot open shared object: `},
		{"plugin file has no plugin ABI", []string{"--plugin", calc, "--plugin", noABI, "--addr", "127.0.0.1:0"}, exitFailure,
			`^repe-gw: --plugin ` + regexp.QuoteMeta(noABI) + `: pluginhost: missing required symbol repe_plugin_interface_version$`},
		{"port in use", []string{"--addr", busy.Addr().String()}, exitFailure, `^repe-gw: .*` + regexp.QuoteMeta(busy.Addr().String()) + `.*address already in use$`},
		{"bad address", []string{"--addr", "nowhere"}, exitUsage, `^repe-gw: --addr nowhere: not an address HOST:PORT, such as 127.0.0.1:5099 or :5099 \(`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The deadline fails a gateway that serves instead of exiting.
			ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
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

// TestPluginNotAPluginStopsLoading checks that a --plugin that is no plugin
// stops the loading there: the plugins loaded before it are shut down,
// and the ones after it are never loaded.
func TestPluginNotAPluginStopsLoading(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	before := gt.build(t, t.TempDir(), "before", "/before", false)
	after := gt.build(t, t.TempDir(), "after", "/after", false)
	notes := filepath.Join(t.TempDir(), "notes.so")
	require.NoError(t, os.WriteFile(notes, []byte("notes"), 0o644))

	g := start(t, bin, "--plugin", before, "--plugin", notes, "--plugin", after)
	assert.Equal(t, exitFailure, g.waitExit(t))
	assert.Contains(t, g.log(), "repe-gw: --plugin "+notes+": pluginhost: cannot open shared object")
	assert.Equal(t, "before init\nbefore shutdown\n", gt.events(t))
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
		assert.True(t, strings.HasPrefix(string(out), "Usage: repe-gw [--config FILE] [--plugins DIR] [--plugin FILE]... [flags]\n"), "%s", out)
		for _, flag := range []string{"config FILE", "plugins DIR", "plugin FILE", "addr HOST:PORT", "max-message-size SIZE", "max-conns N",
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
