package pluginhost

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{
		"z.so", "a.so", "b/c.so", "b/d/e.so", "notes.txt", "lib.so.1", "b/.git/x.so", ".cache/y.so", ".top.so",
	} {
		path := filepath.Join(dir, filepath.FromSlash(f))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, nil, 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dir.so"), 0o755))

	got, err := Find(dir)
	require.NoError(t, err)
	var want []string
	for _, f := range []string{".top.so", "a.so", "b/c.so", "b/d/e.so", "z.so"} {
		want = append(want, filepath.Join(dir, filepath.FromSlash(f)))
	}
	assert.Equal(t, want, got, "sorted, recursive, hidden directories skipped")

	again, err := Find(dir)
	require.NoError(t, err)
	assert.Equal(t, got, again)
}

func TestFindErrors(t *testing.T) {
	t.Parallel()
	_, err := Find(filepath.Join(t.TempDir(), "missing"))
	assert.Error(t, err)

	file := filepath.Join(t.TempDir(), "file.so")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = Find(file)
	assert.Error(t, err, "a file is not a directory")

	empty, err := Find(t.TempDir())
	require.NoError(t, err)
	assert.Empty(t, empty)
}
