package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name     string
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"tag", "v1.2.0", vcs("vcs.revision", rev), "v1.2.0"},
		{"pseudo-version", "v0.0.0-20250601100000-0123456789ab+dirty", vcs("vcs.revision", rev, "vcs.modified", "true"),
			"v0.0.0-20250601100000-0123456789ab+dirty"},
		{"clean commit", "(devel)", vcs("vcs", "git", "vcs.revision", rev, "vcs.time", "2025-06-01T10:00:00Z", "vcs.modified", "false"),
			"0123456789ab (2025-06-01T10:00:00Z)"},
		{"dirty commit", "(devel)", vcs("vcs.revision", rev, "vcs.time", "2025-06-01T12:00:00+02:00", "vcs.modified", "true"),
			"0123456789ab+dirty (2025-06-01T10:00:00Z)"},
		{"no version, no time", "", vcs("vcs.revision", rev), "0123456789ab"},
		{"short revision", "(devel)", vcs("vcs.revision", "abc123"), "abc123"},
		{"no version control", "(devel)", vcs("-buildvcs", "false"), "(devel)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/repe-gw/repe-gw", Version: tt.version}, Settings: tt.settings}
			assert.Equal(t, tt.want, fromBuildInfo(bi, true))
		})
	}
	assert.Equal(t, "unknown", fromBuildInfo(nil, false), "no build information")
}

// TestBuiltBinary builds a program that prints String in a fresh git
// repository (a module of the same path, since the package is internal),
// commits it, and checks what the binary reports before and after the tree
// is changed: the module version go build derives from the commit, with
// +dirty once a file differs.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	write("go.mod", "module github.com/repe-gw/repe-gw\n\ngo 1.24\n")
	write("internal/version/version.go", readFile(t, "version.go"))
	write("main.go", "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/repe-gw/repe-gw/internal/version\"\n)\n\nfunc main() { fmt.Println(version.String()) }\n")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null",
			"GOWORK=off")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v\n%s", name, args, out)
		return string(out)
	}
	build := func() string {
		t.Helper()
		run("go", "build", "-buildvcs=true", "-o", "v", ".") // whatever GOFLAGS says
		return run(filepath.Join(dir, "v"))
	}
	run("git", "init", "-q")
	write(".gitignore", "v\n")
	run("git", "add", ".")
	run("git", "commit", "-q", "-m", "v")
	rev := run("git", "rev-parse", "--short=12", "HEAD")[:12]

	assert.Regexp(t, `^v0\.0\.0-\d{14}-`+rev+`\n$`, build())
	write("main.go", "// changed\n"+readFile(t, filepath.Join(dir, "main.go")))
	assert.Regexp(t, `^v0\.0\.0-\d{14}-`+rev+`\+dirty\n$`, build())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// TestString checks the version of the test binary itself, which the
// toolchain builds without version control information.
func TestString(t *testing.T) {
	v := String()
	assert.NotEqual(t, "unknown", v)
	assert.NotEqual(t, "dev", v)
	assert.Regexp(t, regexp.MustCompile(`^\S`), v)
}
