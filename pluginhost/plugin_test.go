package pluginhost

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	notELF := filepath.Join(t.TempDir(), "notes.so")
	require.NoError(t, os.WriteFile(notELF, []byte("not a shared object\n"), 0o644))
	empty := filepath.Join(t.TempDir(), "empty.so")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))

	tests := []struct {
		name   string
		file   string   // a prepared file, or
		cflags []string // testplugin.c built with these
		want   error
		text   []string // in the error's message
	}{
		{name: "not a shared object", file: notELF, want: ErrOpen},
		{name: "empty file", file: empty, want: ErrOpen},
		{name: "missing file", file: filepath.Join(t.TempDir(), "nope.so"), want: ErrOpen},
		{name: "no interface version", cflags: []string{"-DTP_NO_VERSION_FN"}, want: ErrMissingSymbol,
			text: []string{"repe_plugin_interface_version"}},
		{name: "no info", cflags: []string{"-DTP_NO_INFO_FN"}, want: ErrMissingSymbol,
			text: []string{"repe_plugin_info"}},
		{name: "no call", cflags: []string{"-DTP_NO_CALL_FN"}, want: ErrMissingSymbol,
			text: []string{"repe_plugin_call"}},
		{name: "interface version 2", cflags: []string{"-DTP_VERSION=2"}, want: ErrInterfaceVersion,
			text: []string{"version 2", "version 3"}},
		{name: "interface version 4", cflags: []string{"-DTP_VERSION=4"}, want: ErrInterfaceVersion,
			text: []string{"version 4", "version 3"}},
		// The version is checked before the info is read: a NULL info does
		// not matter for a plugin of another version.
		{name: "version before info", cflags: []string{"-DTP_VERSION=2", "-DTP_INFO_NULL"}, want: ErrInterfaceVersion},
		{name: "NULL info", cflags: []string{"-DTP_INFO_NULL"}, want: ErrInfo, text: []string{"NULL"}},
		{name: "NULL name", cflags: []string{"-DTP_NAME=NULL"}, want: ErrInfo, text: []string{"name is NULL"}},
		{name: "NULL root", cflags: []string{"-DTP_ROOT=NULL"}, want: ErrInfo, text: []string{"root_path is NULL"}},
		{name: "relative root", cflags: []string{`-DTP_ROOT="calc"`}, want: ErrInfo, text: []string{`"calc"`, `"/"`}},
		{name: "init fails", cflags: []string{"-DTP_INIT_RESULT=1"}, want: ErrInit,
			text: []string{"returned 1", "REPE_ERROR_INIT_FAILED"}},
		{name: "init already initialized", cflags: []string{"-DTP_INIT_RESULT=2"}, want: ErrInit,
			text: []string{"returned 2", "REPE_ERROR_ALREADY_INITIALIZED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := tt.file
			if file == "" {
				file = plugintest.Build(t, testPluginSrc, tt.cflags...)
			}
			p, err := Open(file)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, tt.want)
			var le *LoadError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, file, le.File, "the error names the file")
			assert.Contains(t, err.Error(), file)
			for _, s := range tt.text {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestOpenReadsInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		cflags              []string
		wantName, wantVer   string
		wantRoot            string
		wantInit, wantShuts int32
	}{
		{name: "defaults", wantName: "testplugin", wantVer: "0.1.0", wantRoot: "/test", wantInit: 1},
		{name: "NULL version", cflags: []string{"-DTP_VERSION_STR=NULL"}, wantName: "testplugin", wantRoot: "/test", wantInit: 1},
		{name: "no init", cflags: []string{"-DTP_NO_INIT"}, wantName: "testplugin", wantVer: "0.1.0", wantRoot: "/test"},
		{name: "slash root is the catch-all", cflags: []string{`-DTP_ROOT="/"`}, wantName: "testplugin", wantVer: "0.1.0", wantInit: 1},
		{name: "empty root is the catch-all", cflags: []string{`-DTP_ROOT=""`}, wantName: "testplugin", wantVer: "0.1.0", wantInit: 1},
		{name: "trailing slashes go", cflags: []string{`-DTP_ROOT="/a/b//"`}, wantName: "testplugin", wantVer: "0.1.0", wantRoot: "/a/b", wantInit: 1},
		{name: "UTF-8 name", cflags: []string{`-DTP_NAME="rechner-π"`}, wantName: "rechner-π", wantVer: "0.1.0", wantRoot: "/test", wantInit: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := plugintest.Build(t, testPluginSrc, tt.cflags...)
			p, err := Open(file)
			require.NoError(t, err)
			assert.Equal(t, tt.wantName, p.Name())
			assert.Equal(t, tt.wantVer, p.Version())
			assert.Equal(t, tt.wantRoot, p.Root())
			assert.Equal(t, file, p.File())
			assert.Equal(t, tt.wantInit, counter(t, file, "tp_init_calls"))
			assert.Zero(t, counter(t, file, "tp_shutdown_calls"))
		})
	}
}

func TestOpenRelativePath(t *testing.T) {
	// A path without a slash must not send dlopen searching the library path.
	dir := t.TempDir()
	so, err := plugintest.BuildTo(dir, testPluginSrc)
	require.NoError(t, err)
	t.Chdir(dir)
	p, err := Open(filepath.Base(so))
	require.NoError(t, err)
	assert.Equal(t, so, p.File())
}

func TestInitFailureShutsDown(t *testing.T) {
	t.Parallel()
	file := plugintest.Build(t, testPluginSrc, "-DTP_INIT_RESULT=1")
	_, err := Open(file)
	require.ErrorIs(t, err, ErrInit)
	assert.Equal(t, int32(1), counter(t, file, "tp_init_calls"))
	assert.Equal(t, int32(1), counter(t, file, "tp_shutdown_calls"), "shutdown undoes a partial init")
}

func TestRefusedBeforeInitIsNotShutDown(t *testing.T) {
	t.Parallel()
	file := plugintest.Build(t, testPluginSrc, `-DTP_ROOT="calc"`)
	_, err := Open(file)
	require.ErrorIs(t, err, ErrInfo)
	assert.Zero(t, counter(t, file, "tp_init_calls"))
	assert.Zero(t, counter(t, file, "tp_shutdown_calls"))
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	build := func(cflags ...string) string {
		so, err := plugintest.BuildTo(dir, testPluginSrc, cflags...)
		require.NoError(t, err)
		return so
	}
	a := build(`-DTP_NAME="a"`, `-DTP_ROOT="/a"`)
	dupA := build(`-DTP_NAME="a2"`, `-DTP_ROOT="/a/"`) // the same root once normalised
	b := build(`-DTP_NAME="b"`, `-DTP_ROOT="/b"`)
	v2 := build(`-DTP_NAME="v2"`, "-DTP_VERSION=2")
	catchAll := build(`-DTP_NAME="all"`, `-DTP_ROOT="/"`)
	dupAll := build(`-DTP_NAME="all2"`, `-DTP_ROOT=""`)
	notELF := filepath.Join(dir, "bogus.so")
	require.NoError(t, os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755))

	h, errs := Load([]string{a, notELF, dupA, b, v2, catchAll, dupAll, a})
	var names []string
	for _, p := range h.Plugins() {
		names = append(names, p.Name())
	}
	assert.Equal(t, []string{"a", "b", "all"}, names, "the others load, in order")

	wantRefused := []struct {
		file string
		err  error
	}{
		{notELF, ErrOpen}, {dupA, ErrDuplicateRoot}, {v2, ErrInterfaceVersion},
		{dupAll, ErrDuplicateRoot}, {a, ErrDuplicateRoot},
	}
	require.Len(t, errs, len(wantRefused))
	for i, w := range wantRefused {
		var le *LoadError
		require.ErrorAs(t, errs[i], &le)
		assert.Equal(t, w.file, le.File)
		assert.ErrorIs(t, errs[i], w.err)
	}
	assert.Contains(t, errs[1].Error(), a, "a duplicate root names the plugin that has it")
	assert.Contains(t, errs[1].Error(), dupA)
	assert.Contains(t, errs[3].Error(), catchAll)
	assert.Zero(t, counter(t, dupA, "tp_init_calls"), "a duplicate is refused before init")
	assert.Equal(t, int32(1), counter(t, a, "tp_init_calls"), "loading a file twice inits it once")

	require.NoError(t, h.Close(t.Context()))
}

func TestLoadNothing(t *testing.T) {
	t.Parallel()
	h, errs := Load(nil)
	assert.Empty(t, errs)
	assert.Empty(t, h.Plugins())
	assert.NoError(t, h.Close(t.Context()))
}

func TestLoadErrorUnwraps(t *testing.T) {
	t.Parallel()
	err := error(&LoadError{File: "x.so", Err: ErrInit})
	assert.ErrorIs(t, err, ErrInit)
	assert.Equal(t, "x.so: "+ErrInit.Error(), err.Error())
	assert.False(t, errors.Is(err, ErrOpen))
}
