package plugintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuild(t *testing.T) {
	t.Parallel()
	so := Build(t, RepoPath("plugins/calculator/calculator.c"))
	assert.Equal(t, "calculator.so", filepath.Base(so))
	b, err := os.ReadFile(so)
	require.NoError(t, err)
	assert.Equal(t, "\x7fELF", string(b[:4]), "a shared object")
}

// TestBuildMode builds under a umask of 002, as many desktops set: the
// plugin still comes out writable by its owner only, as the gateway
// requires. Not parallel: the umask is the whole process's.
func TestBuildMode(t *testing.T) {
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)
	so := Build(t, RepoPath("plugins/calculator/calculator.c"))
	info, err := os.Stat(so)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), info.Mode().Perm())
}

func TestBuildToVariants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := RepoPath("plugins/calculator/calculator.c")
	plain, err := BuildTo(dir, src)
	require.NoError(t, err)
	a, err := BuildTo(dir, src, "-DX=1")
	require.NoError(t, err)
	b, err := BuildTo(dir, src, "-DX=2")
	require.NoError(t, err)
	assert.Len(t, map[string]bool{plain: true, a: true, b: true}, 3, "variants get files of their own")
	again, err := BuildTo(dir, src, "-DX=1")
	require.NoError(t, err)
	assert.Equal(t, a, again)
}

func TestBuildToReportsCompilerOutput(t *testing.T) {
	t.Parallel()
	_, err := BuildTo(t.TempDir(), "testdata/broken.c")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing_name", "the compiler's message")
	assert.Contains(t, err.Error(), "-fvisibility=hidden", "the command line")
}

func TestCheckMachine(t *testing.T) {
	t.Parallel()
	so := Build(t, RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, checkMachine(so, runtime.GOARCH), "built for this machine")
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other == "" {
		t.Skip("no trampoline for", runtime.GOARCH)
	}
	err := checkMachine(so, other)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set CC to a compiler for "+other)
}

func TestBuildHonoursCC(t *testing.T) {
	t.Setenv("CC", "no-such-compiler-xyz")
	_, err := BuildTo(t.TempDir(), RepoPath("plugins/calculator/calculator.c"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-compiler-xyz")
}

// TestMakePlugins runs the Makefile's plugins target on a plugins/ tree of
// its own: every folder with C sources becomes <name>/<name>.so, and a
// folder without any is skipped, such as a C++ plugin built by its own
// command as plugins/README.md shows, or a folder of notes.
func TestMakePlugins(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make:", err)
	}
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
	for _, h := range []string{"repe_plugin.h", "repe_frame.h"} {
		b, err := os.ReadFile(RepoPath("plugins/include/" + h))
		require.NoError(t, err)
		write("plugins/include/"+h, b)
	}
	calc, err := os.ReadFile(RepoPath("plugins/calculator/calculator.c"))
	require.NoError(t, err)
	write("plugins/calc/calc.c", calc)
	write("plugins/calculator-cpp/calculator.cpp", []byte("#error \"make plugins builds C only\"\n"))
	write("plugins/notes/README.md", []byte("not a plugin\n"))

	cmd := exec.Command("make", "-f", RepoPath("Makefile"), "-C", dir, "plugins")
	cmd.Env = append(os.Environ(), "MAKEFLAGS=") // not the flags of a make that runs the tests
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.FileExists(t, filepath.Join(dir, "plugins", "calc", "calc.so"))
	assert.NoFileExists(t, filepath.Join(dir, "plugins", "calculator-cpp", "calculator-cpp.so"))
	assert.NoFileExists(t, filepath.Join(dir, "plugins", "notes", "notes.so"))
	assert.NoFileExists(t, filepath.Join(dir, "plugins", "include", "include.so"))
}
