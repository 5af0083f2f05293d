package pluginhost

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestReadmeExample builds and calls the C plugin that plugins/README.md
// shows, so that the example stays true.
func TestReadmeExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(plugintest.RepoPath("plugins/README.md"))
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)```c\n(.*?)```").FindSubmatch(readme)
	require.NotNil(t, block, "README has a C example")
	src := filepath.Join(t.TempDir(), "hello.c")
	require.NoError(t, os.WriteFile(src, block[1], 0o644))

	p, err := Open(plugintest.Build(t, src, "-Werror"))
	require.NoError(t, err)
	assert.Equal(t, "hello", p.Name())
	assert.Equal(t, "/hello", p.Root())
	out, err := p.Call(nil, request(99, "/hello/anything", ""))
	require.NoError(t, err)
	assert.Equal(t, repe.AppendResponse(nil, 99, repe.OK, repe.BodyJSON, []byte("{}")), out)
	out, err = p.Call(nil, notifyRequest(99, "/hello/anything", ""))
	require.NoError(t, err)
	assert.Empty(t, out)

	// repe_read_request's checks, answered with their codes.
	badVersion := request(98, "/hello/anything", "")
	badVersion[repe.OffsetVersion] = 2
	out, err = p.Call(nil, badVersion)
	require.NoError(t, err)
	assert.Equal(t, repe.AppendError(nil, 98, repe.VersionMismatch, "bad frame"), out)
	truncated := request(97, "/hello/anything", "{}")
	out, err = p.Call(nil, truncated[:len(truncated)-1])
	require.NoError(t, err)
	assert.Equal(t, repe.AppendError(nil, 97, repe.InvalidBody, "bad frame"), out)
}
