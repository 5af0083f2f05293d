// Package glazeplugins finds, for tests, the example plugins of this
// directory that `make glaze-plugins` builds with Glaze and clang-19: the
// calculator of Glaze's plugin documentation and the shop example. README.md
// tells how to build and serve them.
package glazeplugins

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// DirEnv names the variable through which make test hands tests the
// directory it built the plugins into. When it is set, a plugin missing
// there fails the test instead of skipping it, so that a build that went
// wrong cannot pass as a machine without clang-19.
const DirEnv = "REPE_GLAZE_PLUGINS"

// machines maps GOARCH to the ELF machine of its shared objects.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// Plugin returns the path of a fresh copy of the Glaze-built plugin name
// (name.so), in a temporary directory of tb, so that each test gets a
// plugin instance, and state, of its own: loading the same file twice would
// share one. It skips tb, saying why, when the plugins are not built or are
// built for another machine (the arm64 pass of make test).
func Plugin(tb testing.TB, name string) string {
	tb.Helper()
	dir, required := os.LookupEnv(DirEnv)
	if !required {
		dir = plugintest.RepoPath("bin/glaze-plugins")
	}
	src := filepath.Join(dir, name+".so")
	f, err := elf.Open(src)
	switch {
	case err != nil && required:
		tb.Fatalf("glazeplugins: %s is set, but: %v", DirEnv, err)
	case err != nil:
		tb.Skipf("the Glaze plugins are not built (%v): make glaze-plugins builds them, "+
			"and make test does when clang++-19, cmake and GLAZE_DIR are there (see glazeplugins/README.md)", err)
	}
	machine := f.Machine
	f.Close()
	if want, ok := machines[runtime.GOARCH]; ok && machine != want {
		tb.Skipf("%s is built for %v, and this test runs on %s", src, machine, runtime.GOARCH)
	}
	dst := filepath.Join(tb.TempDir(), name+".so")
	if err := copyFile(dst, src); err != nil {
		tb.Fatal(err)
	}
	return dst
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("glazeplugins: copying %s: %w", src, err)
	}
	return out.Close()
}
