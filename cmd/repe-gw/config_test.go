package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// gwPlugin builds the gateway's test plugin serving root into dir, named
// after the root ("/slow": slow.so), and returns its path. "/gw/nap" with
// a body of N sleeps N milliseconds.
func gwPlugin(t *testing.T, dir, root string) string {
	t.Helper()
	path := filepath.Join(dir, strings.TrimPrefix(root, "/")+".so")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Rename(gatewaytest.TestPlugin(t, root), path))
	return path
}

// writeConfig writes a configuration file into dir and returns its path.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "repe-gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// call sends one request on c and returns its reply.
func call(c *gatewaytest.Conn, id uint64, query, body string) repe.Message {
	c.Send(gatewaytest.Request(id, query, body))
	return c.Next()
}

// TestConfigPolicies serves two plugins from a file, each with its own
// policy: one takes the deadline of defaults and answers ec 7 past it, the
// other undoes it with deadline: 0 and answers however long it takes.
func TestConfigPolicies(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	gwPlugin(t, dir, "/gw")
	gwPlugin(t, dir, "/slow")
	conf := writeConfig(t, dir, `
defaults:
  deadline: 100ms
plugins:
  - path: gw.so
  - path: slow.so
    deadline: 0
    concurrency: 1
`)
	g := startGateway(t, bin, "--config", conf)
	assert.Contains(t, g.log(), `level=INFO msg="configuration read" file=`+conf)
	assert.Regexp(t, `msg="plugin loaded" plugin=gw version=1.0.0 root=/gw file=\S+/gw.so sha256=[0-9a-f]{64} deadline=100ms\n`, g.log())
	assert.Regexp(t, `msg="plugin loaded" plugin=slow version=1.0.0 root=/slow file=\S+/slow.so sha256=[0-9a-f]{64} concurrency=1\n`, g.log())

	c := g.dial(t)
	m := call(c, 1, "/gw/nap", "1000")
	assert.Equal(t, repe.Timeout, m.EC(), "%s", m.Body())
	assert.Contains(t, string(m.Body()), "deadline of 100ms")
	assert.Equal(t, repe.OK, call(c, 2, "/gw/ping", "").EC(), "the connection goes on")
	m = call(c, 3, "/slow/nap", "300")
	assert.Equal(t, repe.OK, m.EC(), "%s", m.Body())
}

// TestConfigMostSpecificEntry reaches files through a directory and
// through entries of their own: each loads once, with the policy of its
// own entry, and a disabled folder keeps its plugins from loading.
func TestConfigMostSpecificEntry(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	gwPlugin(t, filepath.Join(dir, "plugins"), "/gw")
	gwPlugin(t, filepath.Join(dir, "plugins"), "/slow")
	gwPlugin(t, filepath.Join(dir, "plugins", "off"), "/off")
	conf := writeConfig(t, dir, `
plugins:
  - path: plugins
    deadline: 100ms
  - path: plugins/slow.so
    deadline: 0
  - path: plugins/off
    enabled: false
`)
	g := startGateway(t, bin, "--config", conf)
	log := g.log()
	assert.Contains(t, log, `level=INFO msg="plugin entry disabled" entry="`+conf+`:7:5: plugins[2]" path=`+filepath.Join(dir, "plugins", "off")+"\n")
	assert.Equal(t, 1, strings.Count(log, `msg="plugin loaded" plugin=slow`), log)
	assert.NotContains(t, log, "plugin=off")
	assert.NotContains(t, log, "refused")

	c := g.dial(t)
	assert.Equal(t, repe.Timeout, call(c, 1, "/gw/nap", "500").EC(), "the directory's deadline")
	assert.Equal(t, repe.OK, call(c, 2, "/slow/nap", "300").EC(), "its own entry's: none")
	m := call(c, 3, "/off/ping", "")
	assert.Equal(t, repe.MethodNotFound, m.EC(), "disabled")
	assert.Equal(t, "No plugin registered for path", string(m.Body()))
}

// TestConfigPrecedence lays the environment and then flags over a file:
// each wins over what is below it, for the listener and for the deadline
// every plugin takes.
func TestConfigPrecedence(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	gwPlugin(t, dir, "/gw")
	fileAddr := freeAddr(t)
	conf := writeConfig(t, dir, `
listen:
  addr: `+fileAddr+`
defaults:
  deadline: 100ms
plugins: [gw.so]
`)
	envAddr, flagAddr := freeAddr(t), freeAddr(t)
	tests := []struct {
		name     string
		env      []string
		args     []string
		addr     string
		deadline bool // whether a nap of 300 ms passes the deadline
	}{
		{"the file", nil, []string{"--config", conf}, fileAddr, true},
		{"the environment over the file",
			[]string{"REPE_GW_CONFIG=" + conf, "REPE_GW_ADDR=" + envAddr, "REPE_GW_DEADLINE=0"}, nil, envAddr, false},
		{"flags over the environment",
			[]string{"REPE_GW_ADDR=" + envAddr, "REPE_GW_DEADLINE=0"},
			[]string{"--config", conf, "--addr", flagAddr, "--deadline", "100ms"}, flagAddr, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := spawn(t, bin, tt.env, tt.addr, tt.args...)
			g.waitLog(t, "msg=listening addr="+tt.addr+"\n")
			m := call(g.dial(t), 1, "/gw/nap", "300")
			if tt.deadline {
				assert.Equal(t, repe.Timeout, m.EC(), "%s", m.Body())
			} else {
				assert.Equal(t, repe.OK, m.EC(), "%s", m.Body())
			}
		})
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestConfigPins loads a pinned plugin whose contents match its pin, and
// refuses one whose contents do not, logging both digests.
func TestConfigPins(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	gw := gwPlugin(t, dir, "/gw")
	slow := gwPlugin(t, dir, "/slow")
	wrong := strings.Repeat("0", 64)
	conf := writeConfig(t, dir, `
plugins:
  - path: gw.so
    sha256: `+strings.ToUpper(fileSum(t, gw))+`
  - path: slow.so
    sha256: `+wrong+`
`)
	g := startGateway(t, bin, "--config", conf)
	assert.Contains(t, g.log(), `msg="plugin loaded" plugin=gw version=1.0.0 root=/gw file=`+gw+` sha256=`+fileSum(t, gw)+"\n")
	assert.Contains(t, g.log(), `level=ERROR msg="plugin refused" file=`+slow+
		` reason="its SHA-256 is `+fileSum(t, slow)+`, but its entry pins `+wrong+`"`)
	c := g.dial(t)
	assert.Equal(t, repe.OK, call(c, 1, "/gw/ping", "").EC())
	assert.Equal(t, repe.MethodNotFound, call(c, 2, "/slow/ping", "").EC())
}

// TestConfigStartupFailures checks the configurations the gateway refuses
// to start with: one clear line for each problem on stderr, and exit 1;
// bad environment variables are bad usage, exit 2.
func TestConfigStartupFailures(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	gw := gwPlugin(t, dir, "/gw")
	other := gwPlugin(t, filepath.Join(dir, "other"), "/gw") // another file at the same root
	notes := filepath.Join(dir, "notes.so")
	require.NoError(t, os.WriteFile(notes, []byte("not a shared object"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))

	tests := []struct {
		name  string
		conf  string
		env   []string
		code  int
		lines []string // regular expressions; CONF stands for the file's path
	}{
		{"required plugin that is not one", "plugins:\n  - path: notes.so\n    required: true\n", nil, exitFailure, []string{
			`^repe-gw: CONF:2:5: plugins\[0\]: required plugin ` + regexp.QuoteMeta(notes) + ` refused: pluginhost: cannot open shared object`,
		}},
		{"required plugin whose root is taken", "plugins:\n  - gw.so\n  - path: other/gw.so\n    required: true\n", nil, exitFailure, []string{
			`^repe-gw: CONF:3:5: plugins\[1\]: required plugin ` + regexp.QuoteMeta(other) + ` refused: pluginhost: root path already claimed`,
		}},
		{"required plugin whose pin differs", "plugins:\n  - path: gw.so\n    required: true\n    sha256: " + strings.Repeat("a", 64) + "\n", nil, exitFailure, []string{
			`^repe-gw: CONF:2:5: plugins\[0\]: required plugin ` + regexp.QuoteMeta(gw) + ` refused: its SHA-256 is ` + fileSum(t, gw) + `, but its entry pins a{64}$`,
		}},
		{"required directory without plugins", "plugins:\n  - path: empty\n    required: true\n", nil, exitFailure, []string{
			`^repe-gw: CONF:2:5: plugins\[0\]\.path: no plugin \(\*\.so\) below \S+/empty, and the entry is required$`,
		}},
		{"missing path", "plugins:\n  - gw.so\n  - path: none.so\n", nil, exitFailure, []string{
			`^repe-gw: CONF:3:5: plugins\[1\]\.path: \S+/none.so: no such file or directory$`,
		}},
		{"pin on a directory", "plugins:\n  - path: other\n    sha256: " + strings.Repeat("a", 64) + "\n", nil, exitFailure, []string{
			`^repe-gw: CONF:2:5: plugins\[0\]\.sha256: \S+/other is a directory: a pin names one file`,
		}},
		{"bad file", "limits:\n  max_conns: 0\n  read_timout: 1s\n", nil, exitFailure, []string{
			`^repe-gw: CONF:2:14: limits.max_conns: out of range: want 1 to 2147483647$`,
			`^repe-gw: CONF:3:3: limits: unknown key "read_timout": did you mean read_timeout\?$`,
		}},
		{"bad environment", "", []string{"REPE_GW_MAX_CONNS=0", "REPE_GW_LOG_LEVEL=loud"}, exitUsage, []string{
			`^repe-gw: REPE_GW_MAX_CONNS="0": out of range: want 1 to 2147483647$`,
			`^repe-gw: REPE_GW_LOG_LEVEL="loud": want debug, info, warn or error$`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			require.NoError(t, os.WriteFile(conf, []byte(tt.conf), 0o644))
			ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--config", conf, "--addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, stderr.String())
			assert.Equal(t, tt.code, ee.ExitCode())
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			msgs := slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "repe-gw: ") })
			require.Len(t, msgs, len(tt.lines), "%s", stderr.String())
			for i, line := range tt.lines {
				assert.Regexp(t, strings.ReplaceAll(line, "CONF", regexp.QuoteMeta(conf)), msgs[i])
			}
		})
	}
}

// TestRequiredPluginRefused checks that a required plugin refused stops
// the loading there: the plugins loaded before it are shut down, and the
// ones after it are never loaded.
func TestRequiredPluginRefused(t *testing.T) {
	bin := buildGateway(t)
	gt := newGate(t)
	dir := t.TempDir()
	for _, name := range []string{"before", "after"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, name), 0o755))
		gt.build(t, filepath.Join(dir, name), name, "/"+name, false)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.so"), []byte("notes"), 0o644))
	conf := writeConfig(t, dir, `
plugins:
  - before
  - path: notes.so
    required: true
  - after
`)
	g := start(t, bin, "--config", conf)
	assert.Equal(t, exitFailure, g.waitExit(t))
	assert.Contains(t, g.log(), "repe-gw: "+conf+":4:5: plugins[1]: required plugin "+filepath.Join(dir, "notes.so")+" refused: ")
	assert.Equal(t, "before init\nbefore shutdown\n", gt.events(t))
}

// runValidate runs repe-gw validate in this process, with env as the
// environment, and returns its exit code, stdout and stderr.
func runValidate(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"validate"}, args...), func(name string) string { return env[name] }, &stdout, &stderr, nil)
	return code, stdout.String(), stderr.String()
}

func TestValidate(t *testing.T) {
	t.Run("every problem of a broken file, with its place", func(t *testing.T) {
		broken := plugintest.RepoPath("cmd/repe-gw/testdata/broken.yaml")
		code, stdout, stderr := runValidate(t, nil, "--config", broken)
		assert.Equal(t, exitFailure, code)
		assert.Empty(t, stdout)
		assert.Equal(t, strings.ReplaceAll(`FILE:3:9: listen.addr: not an address HOST:PORT, such as 127.0.0.1:5099 or :5099
FILE:5:14: limits.max_conns: out of range: want 1 to 2147483647
FILE:6:3: limits: unknown key "read_timout": did you mean read_timeout?
FILE:7:21: limits.max_message_size: not a size: decimal units such as MB are not read; use KiB, MiB, GiB or TiB: want 48B to 4GiB
FILE:9:13: defaults.deadline: not a duration such as 30s or 500ms
FILE:12:11: plugins[0].mode: want inprocess or isolated
`, "FILE", broken), stderr)
	})

	t.Run("the example file", func(t *testing.T) {
		code, stdout, stderr := runValidate(t, nil, "--config", plugintest.RepoPath("repe-gw.example.yaml"))
		assert.Equal(t, exitOK, code, stderr)
		assert.Empty(t, stdout)
		assert.Empty(t, stderr)
	})

	t.Run("the plugin entries of a file that reads", func(t *testing.T) {
		dir := t.TempDir()
		gwPlugin(t, dir, "/gw")
		require.NoError(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
		conf := writeConfig(t, dir, `
plugins:
  - path: none.so
  - path: empty
    required: true
  - path: .
    sha256: `+strings.Repeat("a", 64)+`
  - path: elsewhere/later.so
    enabled: false
`)
		code, stdout, stderr := runValidate(t, map[string]string{"REPE_GW_CONFIG": conf})
		assert.Equal(t, exitFailure, code)
		assert.Empty(t, stdout)
		assert.Equal(t, strings.ReplaceAll(`FILE:3:5: plugins[0].path: DIR/none.so: no such file or directory
FILE:4:5: plugins[1].path: no plugin (*.so) below DIR/empty, and the entry is required
FILE:6:5: plugins[2].sha256: DIR is a directory: a pin names one file; give each file an entry of its own
`, "FILE", "DIR/repe-gw.yaml"), strings.ReplaceAll(stderr, dir, "DIR"))
	})

	t.Run("usage", func(t *testing.T) {
		code, _, stderr := runValidate(t, nil)
		assert.Equal(t, exitUsage, code)
		assert.Equal(t, "repe-gw validate: no file to check: want --config FILE (see repe-gw validate -h)\n", stderr)

		missing := filepath.Join(t.TempDir(), "none.yaml")
		code, _, stderr = runValidate(t, nil, "--config", missing)
		assert.Equal(t, exitFailure, code)
		assert.Equal(t, missing+": no such file or directory\n", stderr)

		code, stdout, _ := runValidate(t, nil, "-h")
		assert.Equal(t, exitOK, code)
		assert.True(t, strings.HasPrefix(stdout, "Usage: repe-gw validate --config FILE\n"), stdout)
	})
}
