package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
	"github.com/repe-gw/repe-gw/repe"
)

// owner is how the trust checks name the owner of the test's files: the
// user the test runs as.
func owner(t *testing.T) string {
	t.Helper()
	uid := strconv.Itoa(os.Geteuid())
	u, err := user.LookupId(uid)
	require.NoError(t, err)
	return u.Username + " (" + uid + ")"
}

// refusal is the log line of a plugin file refused as untrusted, with
// reason a regular expression.
func refusal(file, reason string) string {
	return `level=ERROR msg="plugin refused" file=` + regexp.QuoteMeta(file) + ` reason="untrusted: ` + reason + `"\n`
}

// TestUntrustedPlugins lays out a plugin directory with one plugin for each
// reason to refuse one, and a good one: each is refused with a line that
// names the file at fault, its mode and owner, and the fix, while the good
// one serves. The override loads those refused for their owner or mode,
// with a warning each, and never the others; fixed, they all load, without
// a word of warning.
func TestUntrustedPlugins(t *testing.T) {
	bin := buildGateway(t)
	top := filepath.Join(t.TempDir(), "plugins")
	good := gwPlugin(t, top, "/good")
	world := gwPlugin(t, filepath.Join(top, "world"), "/world")
	group := gwPlugin(t, filepath.Join(top, "group"), "/group")
	setuid := gwPlugin(t, filepath.Join(top, "setuid"), "/setuid")
	outside := gwPlugin(t, t.TempDir(), "/outside")
	link := filepath.Join(top, "outside.so")
	require.NoError(t, os.Symlink(outside, link))
	outsideReal, err := filepath.EvalSymlinks(outside)
	require.NoError(t, err)

	require.NoError(t, os.Chmod(world, 0o757))
	require.NoError(t, os.Chmod(filepath.Dir(group), 0o775))
	require.NoError(t, os.Chmod(setuid, os.ModeSetuid|0o755))
	// Another user's plugin needs root to give a file away: CI runs as
	// root.
	var other string
	const nobody = 65534
	if os.Geteuid() == 0 {
		other = gwPlugin(t, filepath.Join(top, "other"), "/other")
		require.NoError(t, os.Chown(other, nobody, nobody))
	}
	me := regexp.QuoteMeta(owner(t))

	refused := map[string]string{
		"/world": refusal(world, `plugin file `+regexp.QuoteMeta(world)+` \(mode 0757, owner `+me+`\) is writable by others, `+
			`who could replace the plugin: chmod go-w `+regexp.QuoteMeta(world)),
		"/group": refusal(group, `directory `+regexp.QuoteMeta(filepath.Dir(group))+` \(mode 0775, owner `+me+`\) is writable by its group, `+
			`who could replace the plugin: chmod go-w `+regexp.QuoteMeta(filepath.Dir(group))),
		"/setuid": refusal(setuid, `plugin file `+regexp.QuoteMeta(setuid)+` \(mode 4755, owner `+me+`\) is setuid, `+
			`which a plugin never needs: chmod ug-s `+regexp.QuoteMeta(setuid)),
		"/outside": refusal(link, regexp.QuoteMeta(link)+` is a symbolic link to `+regexp.QuoteMeta(outsideReal)+
			`, outside the plugin directories: name it with --plugin to load it`),
	}
	if other != "" {
		refused["/other"] = refusal(other, `plugin file `+regexp.QuoteMeta(other)+` \(mode 0755, owner (nobody \(65534\)|65534)\) belongs to a user other than root, `+
			`who could change it: chown root `+regexp.QuoteMeta(other))
	} else {
		t.Log("not root: no plugin of another user, since only root can give a file away")
	}
	serves := func(t *testing.T, g *process, root string) bool {
		t.Helper()
		c := g.dial(t)
		m := call(c, 1, root+"/ping", "")
		return m.EC() == repe.OK
	}

	t.Run("refused", func(t *testing.T) {
		g := startGateway(t, bin, "--plugins", top)
		for root, line := range refused {
			assert.Regexp(t, line, g.log(), root)
			assert.False(t, serves(t, g, root), root)
		}
		assert.True(t, serves(t, g, "/good"))
		assert.Equal(t, len(refused), strings.Count(g.log(), `msg="plugin refused"`), g.log())
		assert.NotContains(t, g.log(), "level=WARN msg=\"plugin untrusted")
	})

	t.Run("override", func(t *testing.T) {
		g := startGateway(t, bin, "--plugins", top, "--insecure-plugin-permissions")
		for root, line := range refused {
			switch root {
			case "/setuid", "/outside":
				assert.Regexp(t, line, g.log(), "refused whatever the override says")
				assert.False(t, serves(t, g, root), root)
			default:
				warning := strings.Replace(strings.Replace(line, `level=ERROR msg="plugin refused"`,
					`level=WARN msg="plugin untrusted, loaded anyway: security.insecure_plugin_permissions is set"`, 1),
					`reason="untrusted: `, `reason="`, 1)
				assert.Regexp(t, warning, g.log(), root)
				assert.True(t, serves(t, g, root), root)
			}
		}
		assert.True(t, serves(t, g, "/good"))
	})

	t.Run("override from the environment and the file", func(t *testing.T) {
		g := spawnGateway(t, bin, []string{"REPE_GW_INSECURE_PLUGIN_PERMISSIONS=true"}, "--plugins", top)
		assert.True(t, serves(t, g, "/world"))
		conf := writeConfig(t, t.TempDir(), "security:\n  insecure_plugin_permissions: true\nplugins:\n  - "+top+"\n")
		g = startGateway(t, bin, "--config", conf)
		assert.True(t, serves(t, g, "/world"))
	})

	t.Run("fixed", func(t *testing.T) {
		require.NoError(t, os.Chmod(world, 0o755))
		require.NoError(t, os.Chmod(filepath.Dir(group), 0o755))
		require.NoError(t, os.Chmod(setuid, 0o755))
		if other != "" {
			require.NoError(t, os.Chown(other, 0, 0))
		}
		// A link out of the plugin directories loads when named.
		g := startGateway(t, bin, "--plugins", top, "--plugin", link)
		assert.NotContains(t, g.log(), "untrusted")
		assert.NotContains(t, g.log(), "refused")
		for root := range refused {
			assert.True(t, serves(t, g, root), root)
		}
		assert.True(t, serves(t, g, "/good"))
		assert.Equal(t, len(refused)+1, strings.Count(g.log(), `msg="plugin loaded"`), g.log())
		assert.Regexp(t, `msg="plugin loaded" plugin=good version=1.0.0 root=/good file=`+regexp.QuoteMeta(good)+
			` sha256=`+fileSum(t, good)+`\n`, g.log(), "its digest, whether pinned or not")
	})
}

// spawnGateway is startGateway with env added to the test's environment.
func spawnGateway(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	g := spawn(t, bin, env, addr, append(args, "--addr", addr)...)
	g.waitLog(t, "msg=listening")
	return g
}

// TestRequiredPluginUntrusted checks that a required plugin refused as
// untrusted stops the gateway with one line that says why.
func TestRequiredPluginUntrusted(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	gw := gwPlugin(t, dir, "/gw")
	require.NoError(t, os.Chmod(gw, 0o775))
	conf := writeConfig(t, dir, "plugins:\n  - path: gw.so\n    required: true\n")
	g := start(t, bin, "--config", conf)
	assert.Equal(t, exitFailure, g.waitExit(t))
	assert.Contains(t, g.log(), "repe-gw: "+conf+":2:5: plugins[0]: required plugin "+gw+" refused: untrusted: plugin file "+gw+
		" (mode 0775, owner "+owner(t)+") is writable by its group, who could replace the plugin: chmod go-w "+gw+"\n")
}

// TestConfigFileWritable checks that the gateway refuses a configuration
// file that group or others can write, with one line and exit status 1,
// and reads it once it is fixed.
func TestConfigFileWritable(t *testing.T) {
	bin := buildGateway(t)
	dir := t.TempDir()
	conf := writeConfig(t, dir, "limits:\n  max_conns: 10\n")
	for _, mode := range []os.FileMode{0o664, 0o646} {
		require.NoError(t, os.Chmod(conf, mode))
		for _, how := range [][]string{{"--config", conf}, {"REPE_GW_CONFIG=" + conf}} {
			ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
			defer cancel()
			args, env, name := how, []string(nil), "--config"
			if strings.HasPrefix(how[0], "REPE_GW_CONFIG=") {
				args, env, name = nil, how, "REPE_GW_CONFIG"
			}
			cmd := exec.CommandContext(ctx, bin, append(args, "--addr", "127.0.0.1:0")...)
			cmd.Env = append(os.Environ(), env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, stderr.String())
			assert.Equal(t, exitFailure, ee.ExitCode())
			assert.Equal(t, "repe-gw: "+name+" "+conf+": writable by group or others (mode 0"+strconv.FormatUint(uint64(mode), 8)+
				", owner uid "+strconv.Itoa(os.Geteuid())+"), who could choose the plugins it runs: chmod go-w "+conf+"\n", stderr.String())
		}
	}
	require.NoError(t, os.Chmod(conf, 0o644))
	g := startGateway(t, bin, "--config", conf)
	assert.Contains(t, g.log(), `msg="configuration read" file=`+conf)
}

// TestRootWarning checks that the gateway warns when it runs as root, as
// CI runs it, and only then.
func TestRootWarning(t *testing.T) {
	g := startGateway(t, buildGateway(t), "--plugins", t.TempDir())
	const warning = `level=WARN msg="running as root: every plugin can do anything on this machine; ` +
		`run repe-gw as a user of its own (SECURITY.md)"`
	if os.Geteuid() == 0 {
		assert.Contains(t, g.log(), warning)
	} else {
		assert.NotContains(t, g.log(), warning)
	}
}

// TestReadmeTrustingPlugins runs the transcript of README.md's "Trusting
// plugins", with /srv/repe-gw in a temporary directory: each command
// runs, and each line shown under a gateway appears in its log, without
// its time, "…" standing for anything.
func TestReadmeTrustingPlugins(t *testing.T) {
	section := readmetest.Section(t, "## Trusting plugins")
	steps := readmetest.Transcript(section)
	require.Len(t, steps, 4)
	bin := buildGateway(t)
	srv := filepath.Join(t.TempDir(), "srv", "repe-gw")
	_, err := plugintest.BuildTo(mkdir(t, filepath.Join(srv, "plugins", "calculator")), plugintest.RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	local := func(s string) string {
		s = strings.ReplaceAll(s, "/srv/repe-gw", srv)
		// The transcript shows plugins installed by root; the test's
		// are its user's.
		return strings.ReplaceAll(s, "owner root (0)", "owner "+owner(t))
	}
	for _, s := range steps {
		command := local(s.Command)
		args := strings.Fields(command)
		if args[0] != "repe-gw" {
			require.Empty(t, s.Output, command)
			out, err := exec.Command("sh", "-c", command).CombinedOutput()
			require.NoError(t, err, "%s\n%s", command, out)
			continue
		}
		g := startGateway(t, bin, args[1:]...)
		for line := range strings.SplitSeq(strings.TrimSuffix(s.Output, "\n"), "\n") {
			parts := strings.Split(local(line), "…")
			for i := range parts {
				parts[i] = regexp.QuoteMeta(parts[i])
			}
			assert.Regexp(t, `(?m)^time=\S+ `+strings.Join(parts, `\S*`)+`$`, g.log(), command)
		}
		require.NoError(t, g.cmd.Process.Kill())
		g.waitExit(t)
	}
}
