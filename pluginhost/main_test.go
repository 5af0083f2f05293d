package pluginhost

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// Built once by TestMain; tests load copies (see fresh), since each file
// loads as its own library with its own state.
var calculatorSO, testPluginSO string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Warnings are errors here, so that the example stays clean.
	calculatorSO, err = plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"), "-Wpedantic", "-Werror")
	if err == nil {
		testPluginSO, err = plugintest.BuildTo(dir, testPluginSrc, "-Wpedantic", "-Werror")
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// fresh copies the shared object so into a file of its own under t's
// temporary directory: loading it gives a new instance of the library.
func fresh(tb testing.TB, so string) string {
	tb.Helper()
	in, err := os.Open(so)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	path := filepath.Join(tb.TempDir(), filepath.Base(so))
	out, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}
