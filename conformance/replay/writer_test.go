package replay

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// TestWriterLoad writes a recording and reads it back: names, files and
// the decoded frames of the manifest.
func TestWriterLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, "test", "notes")
	require.NoError(t, err)

	get := repe.AppendMessage(nil, repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil)
	got := repe.AppendResponse(nil, 1, 0, repe.BodyJSON, []byte("41.5"))
	notify := repe.AppendMessage(nil, repe.Header{Notify: true, QueryFormat: repe.QueryJSONPointer, BodyFormat: repe.BodyJSON},
		"/calculator/set_value", []byte("5"))
	odd := repe.AppendMessage(nil, repe.Header{ID: 3}, "/a b/ü?", nil)
	require.NoError(t, w.Add(get, got, false))
	require.NoError(t, w.Add(notify, nil, false))
	require.NoError(t, w.Add(odd, nil, true))
	assert.Equal(t, 3, w.Len())

	rec, err := Load(dir)
	require.NoError(t, err)
	assert.Equal(t, "test", rec.Generator)
	require.Len(t, rec.Cases, 3)

	c := rec.Cases[0]
	assert.Equal(t, "0001_calculator_value", c.Name)
	assert.Equal(t, "/calculator/value, id 1", c.Description)
	assert.Equal(t, "0001_calculator_value.res.repe", c.ResponseFile)
	assert.Equal(t, "41.5", c.Result.Responses[0].Body)
	b, err := rec.ReadFile(c.RequestFile)
	require.NoError(t, err)
	assert.Equal(t, get, b)
	b, err = rec.ReadFile(c.ResponseFile)
	require.NoError(t, err)
	assert.Equal(t, got, b)

	c = rec.Cases[1]
	assert.Equal(t, "notify: /calculator/set_value, id 0, json body \"5\"", c.Description)
	assert.Equal(t, "0002_calculator_set_value.nores", c.ResponseFile)
	assert.False(t, c.Result.ConnectionClosed)
	assert.Equal(t, uint8(1), c.RequestFrames[0].Notify)

	c = rec.Cases[2]
	assert.Equal(t, "0003_a_b", c.Name)
	assert.True(t, c.Result.ConnectionClosed)
	assert.Equal(t, "connection closed, no response", c.Result.Happened)

	_, err = Create(dir, "test", "")
	assert.ErrorContains(t, err, "holds a recording already")
}

// TestLoadChecks refuses a manifest that names missing files, and
// expectations for cases the recording lacks.
func TestLoadChecks(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "test", "")
	require.NoError(t, err)
	req := repe.AppendMessage(nil, repe.Header{ID: 1}, "/x", nil)
	require.NoError(t, w.Add(req, repe.AppendResponse(nil, 1, 0, repe.BodyJSON, []byte("1")), false))

	rec, err := Load(dir)
	require.NoError(t, err)
	exp := filepath.Join(dir, "expect.json")
	require.NoError(t, os.WriteFile(exp, []byte(`{"0001_x": {"mode": "silent"}, "nope": {"mode": "error"}, "0001_x ": {"mode": "loud"}}`), 0o644))
	_, err = rec.LoadExpectations(exp)
	assert.ErrorContains(t, err, "nope is no case of")
	assert.ErrorContains(t, err, `unknown mode "loud"`)

	require.NoError(t, os.Remove(filepath.Join(dir, "0001_x.res.repe")))
	_, err = Load(dir)
	assert.ErrorContains(t, err, "case 0001_x")
}
