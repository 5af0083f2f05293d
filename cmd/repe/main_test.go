package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/beve"
	"github.com/repe-gw/repe-gw/client/repetest"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/version"
	"github.com/repe-gw/repe-gw/repe"
)

// calculator answers as the calculator plugin behind a Glaze host does:
// /calculator/value reads with no body and writes (replying null) with one,
// unknown paths are method_not_found. A few extra paths give replies of
// every body format, and /held answers only once release is closed.
type calculator struct {
	mu       sync.Mutex
	value    float64
	notified []string
	lastID   uint64
	lastBF   repe.BodyFormat
	lastBody []byte
	beve     []byte        // the body for /beve
	release  chan struct{} // /held answers once it is closed
}

func (c *calculator) handle(dst []byte, req repe.Message) ([]byte, error) {
	if string(req.Query()) == "/held" {
		<-c.release
		return repe.AppendResponse(dst, req.ID(), repe.OK, repe.BodyJSON, []byte("1")), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastID, c.lastBF, c.lastBody = req.ID(), req.BodyFormat(), append([]byte(nil), req.Body()...)
	q := string(req.Query())
	if req.Notify() {
		c.notified = append(c.notified, q+" "+string(req.Body()))
		return dst, nil
	}
	id := req.ID()
	switch q {
	case "/calculator/value":
		if len(req.Body()) == 0 {
			return repe.AppendResponse(dst, id, repe.OK, repe.BodyJSON, strconv.AppendFloat(nil, c.value, 'g', -1, 64)), nil
		}
		v, err := strconv.ParseFloat(string(req.Body()), 64)
		if err != nil {
			return repe.AppendError(dst, id, repe.ExpectedComma, "expected_comma"), nil
		}
		c.value = v
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyJSON, []byte("null")), nil
	case "/echo":
		return repe.AppendResponse(dst, id, repe.OK, req.BodyFormat(), req.Body()), nil
	case "/object":
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyJSON, []byte(`{"a":[1,2],"b":"x"}`)), nil
	case "/text":
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyUTF8, []byte("hello")), nil
	case "/binary":
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyRaw, []byte{0, 1, 'A', 0xff}), nil
	case "/beve":
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyBEVE, c.beve), nil
	case "/badbeve":
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyBEVE, []byte{0x26, 0}), nil
	case "/badjson":
		return repe.AppendResponse(dst, id, repe.OK, repe.BodyJSON, []byte("{")), nil
	case "/appcode":
		return repe.AppendError(dst, id, 4096, "quota exceeded"), nil
	case "/jsonerror":
		return repe.AppendResponse(dst, id, repe.InvalidBody, repe.BodyJSON, []byte(`{ "why": "no" }`)), nil
	}
	return repe.AppendError(dst, id, repe.MethodNotFound, "No plugin registered for path"), nil
}

// newCalculator loads the BEVE body Glaze v8.0.0 wrote for repe-rs's
// beve_request_struct fixture, kept with the beve package's test data, for
// the /beve path.
func newCalculator(t *testing.T) *calculator {
	frame, err := os.ReadFile(filepath.Join("..", "..", "beve", "testdata", "beve_request_struct.repe"))
	require.NoError(t, err)
	m, err := repe.Parse(frame)
	require.NoError(t, err)
	return &calculator{beve: m.Body(), release: make(chan struct{})}
}

type result struct {
	code   int
	stdout string
	stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestRun(t *testing.T) {
	calc := newCalculator(t)
	srv := repetest.Start(t, calc.handle, repetest.Config{})
	t.Setenv("REPE_ADDR", srv.Addr)
	file := filepath.Join(t.TempDir(), "body.json")
	require.NoError(t, os.WriteFile(file, []byte("{\n  \"from\": \"file\"\n}\n"), 0o600))

	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string // substring; "" means stderr must be empty
	}{
		{"get", "", []string{"get", "/calculator/value"}, 0, "0\n", ""},
		{"set", "", []string{"set", "/calculator/value", "42"}, 0, "null\n", ""},
		{"get after set", "", []string{"get", "/calculator/value"}, 0, "42\n", ""},
		{"set negative number", "", []string{"set", "/calculator/value", "-5"}, 0, "null\n", ""},
		{"set negative after --", "", []string{"set", "--", "/calculator/value", "-6"}, 0, "null\n", ""},
		{"get negative", "", []string{"get", "/calculator/value"}, 0, "-6\n", ""},
		{"pretty JSON", "", []string{"get", "/object"}, 0, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"x\"\n}\n", ""},
		{"raw JSON", "", []string{"--raw", "get", "/object"}, 0, `{"a":[1,2],"b":"x"}` + "\n", ""},
		{"flag after the command", "", []string{"get", "/object", "--raw"}, 0, `{"a":[1,2],"b":"x"}` + "\n", ""},
		{"call with argument", "", []string{"call", "/echo", `{"x": [1, 2]}`, "--raw"}, 0, `{"x":[1,2]}` + "\n", ""},
		{"call with stdin", " [true] \n", []string{"call", "/echo", "-", "--raw"}, 0, "[true]\n", ""},
		{"call with file", "", []string{"call", "/echo", "@" + file, "--raw"}, 0, `{"from":"file"}` + "\n", ""},
		{"call without body", "", []string{"call", "/echo"}, 0, "", ""},
		{"text", "", []string{"get", "/text"}, 0, "hello\n", ""},
		{"binary", "", []string{"get", "/binary"}, 0, "00000000  00 01 41 ff                                       |..A.|\n", ""},
		{"binary raw", "", []string{"--raw", "get", "/binary"}, 0, "000141ff\n", ""},
		{"BEVE reply", "", []string{"--raw", "get", "/beve"}, 0,
			`{"name":"sensor-7","count":42,"ratio":-3.5,"active":true,"values":[1,2,3]}` + "\n", ""},
		{"BEVE reply pretty", "", []string{"get", "/beve"}, 0,
			"{\n  \"name\": \"sensor-7\",\n  \"count\": 42,\n  \"ratio\": -3.5,\n  \"active\": true,\n  \"values\": [\n    1,\n    2,\n    3\n  ]\n}\n", ""},
		{"BEVE request", "", []string{"--beve", "--raw", "call", "/echo", `{"name":"sensor-7","values":[1,2,3]}`}, 0,
			`{"name":"sensor-7","values":[1,2,3]}` + "\n", ""},
		{"undecodable BEVE", "", []string{"get", "/badbeve"}, 0, "00000000  26 00                                             |&.|\n",
			"repe: the BEVE reply could not be decoded (beve: unknown extension 4 at offset 0); shown as hex"},
		{"unparsable JSON", "", []string{"--raw", "get", "/badjson"}, 0, "7b\n", "the JSON reply does not parse"},
		{"notify", "", []string{"notify", "/log", `"hi"`}, 0, "", ""},

		{"method not found", "", []string{"get", "/calculator/nope"}, 2, "",
			"method_not_found (6): No plugin registered for path\n"},
		{"server parse error", "", []string{"set", "/calculator/value", `"x"`}, 2, "", "expected_comma (18): expected_comma\n"},
		{"application code", "", []string{"get", "/appcode"}, 2, "", "error (4096): quota exceeded\n"},
		{"JSON error body", "", []string{"get", "/jsonerror"}, 2, "", `invalid_body (4): {"why":"no"}` + "\n"},

		{"invalid JSON", "", []string{"set", "/calculator/value", `{"a":}`}, 1, "",
			"repe: the body is not valid JSON: invalid character '}' looking for beginning of value (line 1, column 6)\n  {\"a\":}\n       ^\n"},
		{"invalid JSON on line 2", "{\n\t\"a\": tru\n}", []string{"call", "/echo", "-"}, 1, "",
			"invalid character '\\n' in literal true (expecting 'e') (line 2, column 10)\n  \t\"a\": tru\n  \t        ^\n"},
		{"truncated JSON", "", []string{"call", "/echo", `[1,`}, 1, "", "unexpected end of JSON input (line 1, column 4)"},
		{"trailing data", "", []string{"call", "/echo", `1 2`}, 1, "", "after top-level value (line 1, column 3)"},
		{"no command", "", nil, 1, "", "repe: no command (see repe -h)\n"},
		{"unknown command", "", []string{"put", "/x"}, 1, "", `repe: unknown command "put"`},
		{"get with a body", "", []string{"get", "/x", "1"}, 1, "", "repe: get takes PATH"},
		{"set without body", "", []string{"set", "/x"}, 1, "", "repe: set takes PATH and a JSON body"},
		{"set with empty body", "", []string{"set", "/x", " "}, 1, "", "repe: set needs a JSON body"},
		{"unknown flag", "", []string{"--bogus", "get", "/x"}, 1, "", "flag provided but not defined: -bogus"},
		{"bad id", "", []string{"--id", "x", "get", "/x"}, 1, "", `invalid value "x" for flag -id`},
		{"bad timeout", "", []string{"--timeout", "0s", "get", "/x"}, 1, "", "--timeout must be positive"},
		{"missing file", "", []string{"call", "/echo", "@/nonexistent/body.json"}, 1, "", "no such file"},
		{"help", "", []string{"-h"}, 0, usageText, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			assert.Equal(t, tt.code, r.code, "exit code; stderr %q", r.stderr)
			assert.Equal(t, tt.stdout, r.stdout)
			if tt.stderr == "" {
				assert.Empty(t, r.stderr)
			} else {
				assert.Contains(t, r.stderr, tt.stderr)
			}
		})
	}
	calc.mu.Lock()
	defer calc.mu.Unlock()
	assert.Equal(t, []string{`/log "hi"`}, calc.notified)
}

func TestRunRequestHeader(t *testing.T) {
	calc := newCalculator(t)
	srv := repetest.Start(t, calc.handle, repetest.Config{})

	r := runCLI(t, "", "--addr", srv.Addr, "--id", "18446744073709551615", "call", "/echo", `{"a":1}`)
	require.Equal(t, 0, r.code, r.stderr)
	calc.mu.Lock()
	assert.Equal(t, uint64(18446744073709551615), calc.lastID)
	assert.Equal(t, repe.BodyJSON, calc.lastBF)
	assert.Equal(t, `{"a":1}`, string(calc.lastBody))
	calc.mu.Unlock()

	r = runCLI(t, "", "--addr="+srv.Addr, "--beve", "call", "/echo", `{"a":1}`)
	require.Equal(t, 0, r.code, r.stderr)
	calc.mu.Lock()
	assert.Equal(t, uint64(1), calc.lastID, "the client's first id")
	assert.Equal(t, repe.BodyBEVE, calc.lastBF)
	want, err := beve.AppendBEVE(nil, []byte(`{"a":1}`))
	require.NoError(t, err)
	assert.Equal(t, want, calc.lastBody)
	calc.mu.Unlock()
}

func TestRunAddress(t *testing.T) {
	calc := newCalculator(t)
	srv := repetest.Start(t, calc.handle, repetest.Config{})
	closed := closedAddr(t)

	t.Setenv("REPE_ADDR", closed)
	r := runCLI(t, "", "get", "/text")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "connection_failure (9): dial tcp "+closed+": connect: connection refused\n", r.stderr)

	r = runCLI(t, "", "--addr", srv.Addr, "get", "/text")
	assert.Equal(t, 0, r.code, "--addr wins over REPE_ADDR")
	assert.Equal(t, "hello\n", r.stdout)

	t.Setenv("REPE_ADDR", srv.Addr)
	r = runCLI(t, "", "get", "/text")
	assert.Equal(t, 0, r.code, "REPE_ADDR sets the address")

	opts, _, err := parseArgs(nil, "", &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, defaultAddr, opts.addr, "without REPE_ADDR")
}

// TestRunTimeout calls a path the server holds until the test ends: repe
// gives up at its --timeout, while the server still holds the call.
func TestRunTimeout(t *testing.T) {
	calc := newCalculator(t)
	srv := repetest.Start(t, calc.handle, repetest.Config{})
	defer close(calc.release) // before the server's cleanup waits for its handlers
	r := runWithin(t, "--addr", srv.Addr, "--timeout", "500ms", "get", "/held")
	assert.Equal(t, result{1, "", "timeout (7): could not get a reply from " + srv.Addr + " within 500ms (--timeout)\n"}, r)
}

// runWithin runs the command, and fails the test if it has not returned
// well after any --timeout it was given.
func runWithin(t *testing.T, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- runCLI(t, "", args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(gatewaytest.Timeout):
		t.Fatalf("repe %v did not return", args)
		return result{}
	}
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestValidateJSON(t *testing.T) {
	assert.NoError(t, validateJSON(nil))
	assert.NoError(t, validateJSON([]byte(`{"a":[1,2,{"b":null}]}`)))
	err := validateJSON([]byte(`{"é":x}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(line 1, column 6)", "columns count characters")
	long := `[` + strings.Repeat(`1,`, 100) + `]`
	err = validateJSON([]byte(long))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n", "no excerpt of a long line")
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain é text", "plain é text"},
		{"lines\n\tand tabs", "lines\n\tand tabs"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"bell\a, CR\r, NUL\x00, DEL\x7f", `bell\x07, CR\x0d, NUL\x00, DEL\x7f`},
		{"C1 \u0085 \u009b", `C1 \u0085 \u009b`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, printable(tt.in), "%q", tt.in)
	}
}

// TestVersion checks --version, in this test binary and in a binary built
// as make build builds it, whose version names the commit it was built
// from.
func TestVersion(t *testing.T) {
	want := result{0, "repe " + version.String() + "\n", ""}
	assert.Equal(t, want, runCLI(t, "", "--version"))
	assert.Equal(t, want, runCLI(t, "", "get", "/nowhere", "--version", "--addr", closedAddr(t)), "nothing is called")

	bin := filepath.Join(t.TempDir(), "repe")
	out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	cmd := exec.Command(bin, "--version")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	require.NoError(t, err)
	assert.Empty(t, stderr.String())
	assert.Regexp(t, `^repe \S`, string(out))
	assert.NotContains(t, string(out), "unknown")
	if rev, err := exec.Command("git", "-C", plugintest.RepoPath(""), "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		// go build stamps the commit's tag, or a pseudo-version naming the
		// commit, with +dirty when the tree has changes.
		assert.Regexp(t, `^repe (v\d+\.\d+\.\d+|v\d+\.\d+\.\d+-\S*`+strings.TrimSpace(string(rev))+`(\+dirty)?)\n$`, string(out))
	}
}
