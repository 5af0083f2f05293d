//go:build linux

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/glazeplugins"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
)

// runCheck runs bin check with args, in dir, and returns its standard
// output and error and its exit code.
func runCheck(t *testing.T, bin, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"check"}, args...)...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		_, exited := errors.AsType[*exec.ExitError](err)
		require.True(t, exited, "repe-gw check: %v", err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// allChecks are the checks of a report, in order.
var allChecks = []string{
	checkSymbols, checkVersion, checkInfo, checkInit, checkUnknown, checkNotify,
	checkReplies, checkThreads, checkTime, checkExceptions, checkShutdown,
}

// TestCheckCalculator checks the example calculator: every check passes,
// with the default built-in call and with a --calls file, and the report
// names the file and its SHA-256.
func TestCheckCalculator(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	calc, err := plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	content, err := os.ReadFile(calc)
	require.NoError(t, err)
	sum := sha256.Sum256(content)

	for _, args := range [][]string{
		{calc},
		{"--calls", plugintest.RepoPath("cmd/repe-gw/testdata/calculator-calls.jsonl"), calc},
		{"--threads", "3", calc},
	} {
		t.Run(strings.Join(args[:len(args)-1], " "), func(t *testing.T) {
			out, errOut, code := runCheck(t, bin, dir, args...)
			assert.Equal(t, exitOK, code, "%s\n%s", out, errOut)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			require.Len(t, lines, 2+len(allChecks)+1, out)
			assert.Equal(t, calc, lines[0])
			assert.Equal(t, "sha256 "+hex.EncodeToString(sum[:]), lines[1])
			for i, name := range allChecks {
				assert.True(t, strings.HasPrefix(lines[2+i], "✓ "+name+": "), "line %d: %s", 2+i, lines[2+i])
			}
			assert.Equal(t, "all 11 checks passed", lines[len(lines)-1])
		})
	}
	out, _, _ := runCheck(t, bin, dir, "--calls", plugintest.RepoPath("cmd/repe-gw/testdata/calculator-calls.jsonl"), calc)
	assert.Contains(t, out, "✓ replies: 3 of 3 calls answered by one well-formed frame with the request's id\n")
	assert.Contains(t, out, "✓ threads: 8 threads × 200 calls at once")
	out, _, _ = runCheck(t, bin, dir, "--threads", "3", calc)
	assert.Contains(t, out, "✓ threads: 3 threads × 200 calls at once")
}

// TestCheckFindings checks each misbehaving build of checkplugin.c: the
// check for its fault fails, with the reason, and every check it does not
// affect passes.
func TestCheckFindings(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		cflags []string
		// failed maps each check that must fail to a part of its reason;
		// skipped lists the checks that must not run. Every other check
		// must pass.
		failed  map[string]string
		skipped []string
	}{
		{name: "well-behaved"},
		{
			name:    "no info function",
			cflags:  []string{"-DCP_NO_INFO"},
			failed:  map[string]string{checkSymbols: "repe_plugin_info not exported, and required"},
			skipped: []string{checkVersion, checkInfo, checkInit, checkUnknown, checkNotify, checkReplies, checkThreads, checkTime, checkExceptions, checkShutdown},
		},
		{
			name:   "crash on call",
			cflags: []string{"-DCP_CRASH"},
			failed: map[string]string{
				checkUnknown:    `the worker of plugin "checkplugin" died (signal SIGSEGV) while running this request`,
				checkNotify:     `the process died (signal SIGSEGV) while sending the notify "/check"`,
				checkReplies:    `the process died (signal SIGSEGV) while calling "/check"`,
				checkThreads:    "the process died (signal SIGSEGV) while calling from one thread",
				checkExceptions: "4 calls ended their process",
			},
			skipped: []string{checkTime},
		},
		{
			name:   "wrong id echoed",
			cflags: []string{"-DCP_WRONG_ID"},
			failed: map[string]string{
				checkUnknown: "got ec 5 (parse_error)",
				checkReplies: `"/check": plugin "checkplugin": invalid reply: id 4294967298 for request id 4294967297 (1 of 1 calls)`,
				checkThreads: "not run:",
			},
		},
		{
			name:   "shared reply buffer",
			cflags: []string{"-DCP_SHARED_BUFFER"},
			failed: map[string]string{checkThreads: "another request's: a reply buffer shared between threads?"},
		},
		{
			name:   "notify replies",
			cflags: []string{"-DCP_NOTIFY_REPLIES"},
			failed: map[string]string{checkNotify: `the notify of "/check" got a reply (3 of 3 notifies did)`},
		},
		{
			name:   "unknown path answers ec 0",
			cflags: []string{"-DCP_UNKNOWN_OK"},
			failed: map[string]string{checkUnknown: `"/check/repe-gw-check-no-such-path" got ec 0 (none) "null"; ` +
				`a Glaze registry answers ec 6 (method_not_found) "invalid_query: /check/repe-gw-check-no-such-path"`},
		},
		{
			name:   "root not normalised",
			cflags: []string{`-DCP_ROOT="/check/"`},
			failed: map[string]string{checkInfo: `root "/check/": the root is not in normal form; the gateway serves it as "/check"`},
		},
		{
			name:    "root without a slash",
			cflags:  []string{`-DCP_ROOT="check"`},
			failed:  map[string]string{checkInfo: `root_path "check" does not start with "/"`},
			skipped: []string{checkInit, checkUnknown, checkNotify, checkReplies, checkThreads, checkTime, checkExceptions, checkShutdown},
		},
		{
			name:    "init fails",
			cflags:  []string{"-DCP_INIT_FAILS"},
			failed:  map[string]string{checkInit: "repe_plugin_init returned 1 (REPE_ERROR_INIT_FAILED)"},
			skipped: []string{checkUnknown, checkNotify, checkReplies, checkThreads, checkTime, checkExceptions, checkShutdown},
		},
		{
			name:   "shutdown crashes",
			cflags: []string{"-DCP_SHUTDOWN_CRASH"},
			failed: map[string]string{checkShutdown: "the process died (signal SIGSEGV) while in repe_plugin_shutdown"},
		},
	} {
		so, err := plugintest.BuildTo(dir, "testdata/checkplugin.c", tc.cflags...)
		require.NoError(t, err)
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runCheck(t, bin, dir, "--json", so)
			var r checkReport
			require.NoError(t, json.Unmarshal([]byte(out), &r), "%s\n%s", out, errOut)
			want := exitOK
			if len(tc.failed)+len(tc.skipped) > 0 {
				want = exitFailure
			}
			assert.Equal(t, want, code, out)
			assert.Equal(t, want == exitOK, r.OK)
			assert.Equal(t, so, r.Plugin)
			assert.Len(t, r.SHA256, 64)
			var names []string
			for _, f := range r.Findings {
				names = append(names, f.Check)
				reason, failed := tc.failed[f.Check]
				switch {
				case failed:
					assert.Equal(t, statusFail, f.Status, "%s: %s", f.Check, f.Detail)
					assert.Contains(t, f.Detail, reason, f.Check)
				case slices.Contains(tc.skipped, f.Check):
					assert.Equal(t, statusSkip, f.Status, "%s: %s", f.Check, f.Detail)
				default:
					assert.Equal(t, statusPass, f.Status, "%s: %s", f.Check, f.Detail)
				}
			}
			assert.Equal(t, allChecks, names)
		})
	}
}

// TestCheckUsage checks the command line: what is not a plugin, or not
// there, and bad flags.
func TestCheckUsage(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	require.NoError(t, os.WriteFile(calls, []byte(`{"query": "/x", "bdy": 1}`+"\n"), 0o644))

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, exitUsage, "repe-gw check: no plugin to check: want PLUGIN.so (see repe-gw check -h)\n"},
		{[]string{"a.so", "b.so"}, exitUsage, "repe-gw check: unexpected argument \"b.so\" (see repe-gw check -h)\n"},
		{[]string{"--threads", "1", "a.so"}, exitUsage,
			"repe-gw check: --threads 1: want a number of threads from 2 to 1024 (see repe-gw check -h)\n"},
		{[]string{"--calls", calls, "a.so"}, exitUsage,
			"repe-gw check: --calls: " + calls + ":1: json: unknown field \"bdy\"\n"},
		{[]string{"missing.so"}, exitFailure, "repe-gw check: open missing.so: no such file or directory\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCheck(t, bin, dir, tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Empty(t, out)
			assert.Equal(t, tc.stderr, errOut)
		})
	}

	t.Run("not a plugin", func(t *testing.T) {
		out, _, code := runCheck(t, bin, dir, calls)
		assert.Equal(t, exitFailure, code)
		assert.Regexp(t, regexp.MustCompile(`(?m)^✗ symbols: not an ELF shared object: .*\n`), out)
		assert.Contains(t, out, "- unknown path: not run: the plugin did not load\n")
	})

	t.Run("help", func(t *testing.T) {
		out, _, code := runCheck(t, bin, dir, "-h")
		assert.Equal(t, exitOK, code)
		assert.Contains(t, out, "Usage: repe-gw check [--calls FILE] [--json] [--threads N] PLUGIN.so\n")
		assert.Contains(t, out, "  --threads N")
	})
}

// TestCheckReadme runs the examples of README.md's "Checking a plugin", in a
// directory laid out as the repository is after make plugins. Digests and
// times differ from one build and run to the next, so each is compared as
// a placeholder.
func TestCheckReadme(t *testing.T) {
	section := readmetest.Section(t, "## Checking a plugin")
	steps := readmetest.Transcript(section)
	require.Len(t, steps, 2)
	bin := buildGateway(t)
	dir := t.TempDir()
	_, err := plugintest.BuildTo(mkdir(t, filepath.Join(dir, "plugins", "calculator")), plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	calls, err := os.ReadFile(plugintest.RepoPath("cmd/repe-gw/testdata/calculator-calls.jsonl"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mkdir(t, filepath.Join(dir, "cmd", "repe-gw", "testdata")), "calculator-calls.jsonl"), calls, 0o644))

	varying := regexp.MustCompile(`\b[0-9a-f]{64}\b|\b[0-9]+(\.[0-9]+)?(ns|µs|ms|s)\b`)
	for _, s := range steps {
		require.True(t, strings.HasPrefix(s.Command, "bin/repe-gw check "), s.Command)
		cmd := exec.Command("sh", "-c", bin+strings.TrimPrefix(s.Command, "bin/repe-gw"))
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", s.Command, out)
		assert.Equal(t, varying.ReplaceAllString(s.Output, "…"), varying.ReplaceAllString(string(out), "…"), s.Command)
	}
}

// TestCheckGlazePlugins checks plugins built with Glaze itself: its
// registry passes every check, and check finds the one trap it sets, a
// reply to a notify whose function throws (REPE.md §3.1).
func TestCheckGlazePlugins(t *testing.T) {
	calc := glazeplugins.Plugin(t, "calculator")
	shop := glazeplugins.Plugin(t, "shop")
	bin := buildGateway(t)
	dir := t.TempDir()
	calls := filepath.Join(dir, "shop-calls.jsonl")
	require.NoError(t, os.WriteFile(calls, []byte(`{"query": "/shop/find", "body": "tea-01"}
{"query": "/shop/find", "body": "no-such-sku"}
`), 0o644))

	for _, tc := range []struct {
		name   string
		args   []string
		failed map[string]string
	}{
		{name: "calculator", args: []string{calc}},
		{name: "shop", args: []string{shop}},
		{
			name: "shop, a function that throws",
			args: []string{"--calls", calls, shop},
			failed: map[string]string{checkNotify: `the notify of "/shop/find" with the body "\"no-such-sku\"" got a reply ` +
				"(1 of 4 notifies did)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCheck(t, bin, dir, append([]string{"--json"}, tc.args...)...)
			var r checkReport
			require.NoError(t, json.Unmarshal([]byte(out), &r), "%s\n%s", out, errOut)
			if len(tc.failed) == 0 {
				assert.Equal(t, exitOK, code, out)
			} else {
				assert.Equal(t, exitFailure, code, out)
			}
			for _, f := range r.Findings {
				if reason, failed := tc.failed[f.Check]; failed {
					assert.Equal(t, statusFail, f.Status, "%s: %s", f.Check, f.Detail)
					assert.Contains(t, f.Detail, reason, f.Check)
				} else {
					assert.Equal(t, statusPass, f.Status, "%s: %s", f.Check, f.Detail)
				}
			}
			assert.Len(t, r.Findings, len(allChecks))
		})
	}
}
