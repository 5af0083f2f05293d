package plugintest

import (
	"os"
	"path/filepath"
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

func TestBuildHonoursCC(t *testing.T) {
	t.Setenv("CC", "no-such-compiler-xyz")
	_, err := BuildTo(t.TempDir(), RepoPath("plugins/calculator/calculator.c"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-compiler-xyz")
}
