package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// The tests in this file run repe against the real gateway over TCP, with
// the calculator and the gateway's test plugin compiled from C for the test.

// TestMain runs the command itself when the test binary is started under
// the name repe (through the link that repeBinary makes), so that tests can
// run the real process, exit status included, without building it again.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "repe" {
		main()
	}
	os.Exit(m.Run())
}

// repeBinary returns the path of a "repe" in a fresh directory of t's that
// runs this package's main; the directory also suits as a working
// directory.
func repeBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "bin"), 0o755))
	path := filepath.Join(dir, "bin", "repe")
	require.NoError(t, os.Symlink(exe, path))
	return path
}

// serveGateway serves the calculator at /calculator and gwtest at /x and
// /slow, and returns the address.
func serveGateway(t *testing.T) string {
	t.Helper()
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/x"), gatewaytest.TestPlugin(t, "/slow"))
	return srv.Addr().String()
}

// TestGateway runs commands in order against one gateway, whose
// calculator keeps its value from one to the next.
func TestGateway(t *testing.T) {
	addr := serveGateway(t)
	t.Setenv("REPE_ADDR", addr)
	file := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(file, []byte("{\n  \"value\": 7\n}\n"), 0o600))

	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"set", "", []string{"set", "/calculator/value", "41.5"}, 0, "null\n", ""},
		{"call", "", []string{"call", "/calculator/increment"}, 0, "42.5\n", ""},
		{"get, pretty", "", []string{"get", "/calculator"}, 0, "{\n  \"value\": 42.5\n}\n", ""},
		{"get, raw", "", []string{"--raw", "get", "/calculator"}, 0, `{"value":42.5}` + "\n", ""},
		{"call, body from stdin", " 3.5\n", []string{"call", "/calculator/set_value", "-"}, 0, "null\n", ""},
		{"read it back", "", []string{"get", "/calculator/get_value"}, 0, "3.5\n", ""},
		{"call, body from a file", "", []string{"call", "/calculator", "@" + file}, 0, "null\n", ""},
		{"read it back again", "", []string{"get", "/calculator/value"}, 0, "7\n", ""},
		{"set a negative number", "", []string{"set", "/calculator/value", "-2.25E-9"}, 0, "null\n", ""},
		{"as Glaze writes it", "", []string{"get", "/calculator/value"}, 0, "-2.25E-9\n", ""},
		{"an id", "", []string{"--id", "18446744073709551615", "call", "/x/echo", "[1]"}, 0, "[\n  1\n]\n", ""},
		{"an empty reply", "", []string{"get", "/x/ping"}, 0, "", ""},

		// gwtest's echo answers with the request's body format: BEVE comes
		// back as BEVE and is shown as JSON.
		{"BEVE", "", []string{"--beve", "call", "/x/echo", `{"name":"sensor-7","count":42,"ratio":-3.5,"values":[1,2,3]}`}, 0,
			"{\n  \"name\": \"sensor-7\",\n  \"count\": 42,\n  \"ratio\": -3.5,\n  \"values\": [\n    1,\n    2,\n    3\n  ]\n}\n", ""},
		{"BEVE, raw", "", []string{"--beve", "--raw", "call", "/x/echo", `{"a":[true,null,"é"],"b":{"c":1e300}}`}, 0,
			`{"a":[true,null,"é"],"b":{"c":1e+300}}` + "\n", ""},
		{"BEVE scalar", "", []string{"--beve", "set", "/x/echo", "-7"}, 0, "-7\n", ""},

		{"the gateway's error", "", []string{"get", "/nothing"}, 2, "",
			"method_not_found (6): No plugin registered for path\n"},
		{"the plugin's error", "", []string{"get", "/calculator/nope"}, 2, "",
			"method_not_found (6): invalid_query: /calculator/nope\n"},
		{"the plugin's parse error", "", []string{"set", "/calculator/value", `"x"`}, 2, "",
			"parse_number_failure (14): 1:1: parse_number_failure\n   \"x\"\n   ^\n"},
		{"BEVE to a JSON endpoint", "", []string{"--beve", "call", "/calculator", `{"value":3}`}, 2, "",
			"expected_brace (15): 1:1: expected_brace\n   \\x03\\x04\\x14valuei\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\n   ^\n"},
		{"the value is unchanged", "", []string{"get", "/calculator/value"}, 0, "-2.25E-9\n", ""},
		{"invalid JSON is not sent", "", []string{"set", "/calculator/value", "[1,"}, 1, "",
			"repe: the body is not valid JSON: unexpected end of JSON input (line 1, column 4)\n  [1,\n     ^\n"},
		{"the value is still unchanged", "", []string{"get", "/calculator/value"}, 0, "-2.25E-9\n", ""},
		{"a path without its slash", "", []string{"get", "calculator/value"}, 2, "",
			"method_not_found (6): No plugin registered for path\n" +
				"repe: hint: a path is a JSON pointer and starts with /: did you mean /calculator/value?\n"},
		{"a path the plugin does not know", "", []string{"call", "/calculator/valeu"}, 2, "",
			"method_not_found (6): invalid_query: /calculator/valeu\n"},
		{"a usage error", "", []string{"get"}, 1, "", "repe: get takes PATH (see repe -h)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			assert.Equal(t, tt.code, r.code, "exit code; stderr %q", r.stderr)
			assert.Equal(t, tt.stdout, r.stdout)
			assert.Equal(t, tt.stderr, r.stderr)
		})
	}
}

// TestGatewayNotify checks a notify reaches the calculator. The read that
// sees it comes on another connection, which the gateway may serve first,
// hence the wait.
func TestGatewayNotify(t *testing.T) {
	t.Setenv("REPE_ADDR", serveGateway(t))
	r := runCLI(t, "", "set", "/calculator/value", "1")
	require.Equal(t, 0, r.code, r.stderr)

	r = runCLI(t, "", "notify", "/calculator/increment")
	assert.Equal(t, result{0, "", ""}, r)
	r = runCLI(t, "", "notify", "/nothing")
	assert.Equal(t, result{0, "", ""}, r, "no reply, so no error either")
	assert.Eventually(t, func() bool {
		return runCLI(t, "", "get", "/calculator/value").stdout == "2\n"
	}, gatewaytest.Timeout, 10*time.Millisecond)
}

// TestGatewayTimeout calls into a plugin that holds the call until the
// test lets it go: repe gives up at its --timeout while the plugin still
// holds it, and gets the reply once the plugin answers in time.
func TestGatewayTimeout(t *testing.T) {
	so, release := gatePlugin(t)
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, so)
	defer release() // before the gateway's cleanup waits for the call
	addr := srv.Addr().String()

	r := runWithin(t, "--addr", addr, "--timeout", "500ms", "get", "/gate/wait")
	assert.Equal(t, result{1, "", "timeout (7): could not get a reply from " + addr + " within 500ms (--timeout)\n"}, r)

	release()
	r = runWithin(t, "--addr", addr, "--timeout", "5s", "get", "/gate/wait")
	assert.Equal(t, result{0, `"released"` + "\n", ""}, r, "answered in time")
}

// gatePlugin builds the gate test plugin (cmd/repe-gw/testdata/gate.c) at
// /gate. A call to /gate/wait is held until release, which may be called
// more than once, lets every such call go.
func gatePlugin(t *testing.T) (so string, release func()) {
	t.Helper()
	dir := t.TempDir()
	so = plugintest.Build(t, plugintest.RepoPath("cmd/repe-gw/testdata/gate.c"), fmt.Sprintf("-DGATE_DIR=%q", dir))
	return so, func() {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
	}
}

func TestGatewayAddress(t *testing.T) {
	addr := serveGateway(t)
	closed := closedAddr(t)

	t.Setenv("REPE_ADDR", closed)
	r := runCLI(t, "", "get", "/x/ping")
	assert.Equal(t, result{1, "", "connection_failure (9): dial tcp " + closed + ": connect: connection refused\n"}, r)
	r = runCLI(t, "", "--addr", addr, "call", "/x/echo", `"via --addr"`)
	assert.Equal(t, result{0, `"via --addr"` + "\n", ""}, r, "--addr wins over REPE_ADDR")

	t.Setenv("REPE_ADDR", addr)
	r = runCLI(t, "", "call", "/x/echo", `"via REPE_ADDR"`)
	assert.Equal(t, result{0, `"via REPE_ADDR"` + "\n", ""}, r)
}

// TestGatewayProcess runs repe as its own process, to check what a shell
// sees: the exit status, standard input, and REPE_ADDR from the
// environment.
func TestGatewayProcess(t *testing.T) {
	addr := serveGateway(t)
	repe := repeBinary(t)
	closed := closedAddr(t)
	tests := []struct {
		name   string
		env    string // REPE_ADDR
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"success", addr, "41", []string{"call", "/calculator/set_value", "-"}, 0, "null\n", ""},
		{"read", addr, "", []string{"get", "/calculator/increment"}, 0, "42\n", ""},
		{"server error", addr, "", []string{"get", "/calculator/nope"}, 2, "",
			"method_not_found (6): invalid_query: /calculator/nope\n"},
		{"connection refused", closed, "", []string{"get", "/calculator/value"}, 1, "",
			"connection_failure (9): dial tcp " + closed + ": connect: connection refused\n"},
		{"usage", addr, "", []string{"fetch", "/calculator"}, 1, "", "repe: unknown command \"fetch\" (see repe -h)\n"},
		{"help", addr, "", []string{"--help"}, 0, usageText, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(repe, tt.args...)
			cmd.Env = append(os.Environ(), "REPE_ADDR="+tt.env)
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.code, code, "exit status; stderr %q", stderr.String())
			assert.Equal(t, tt.stdout, stdout.String())
			assert.Equal(t, tt.stderr, stderr.String())
		})
	}
}
