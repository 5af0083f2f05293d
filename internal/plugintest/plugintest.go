// Package plugintest compiles REPE plugins from C sources during tests, with
// the flags `make plugins` uses, so that tests load real shared objects.
//
// The compiler is $CC, or cc. A test binary built for another architecture
// (GOARCH=arm64 go test -exec qemu-aarch64, as make test-arm64 runs it)
// needs a compiler for that architecture, such as CC=aarch64-linux-gnu-gcc;
// a shared object built for another machine is refused with an error that
// says so, rather than left for dlopen to reject.
package plugintest

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// flags are the compiler flags of the Makefile's plugins target, minus the
// include path, which Build points at the repository's plugins/include.
var flags = []string{
	"-O2", "-g", "-Wall", "-Wextra", "-std=c11",
	"-fPIC", "-fvisibility=hidden", "-shared", "-pthread",
}

// Build compiles the C source src (relative to the test's working directory,
// or absolute) into a shared object in a fresh temporary directory of tb and
// returns its path. Extra cflags (such as -DNAME=value) follow the standard
// flags. The compiler is $CC, or cc. On failure tb fails with the compiler's
// output.
func Build(tb testing.TB, src string, cflags ...string) string {
	tb.Helper()
	so, err := BuildTo(tb.TempDir(), src, cflags...)
	if err != nil {
		tb.Fatal(err)
	}
	return so
}

// BuildTo is Build for callers without a testing.TB, such as TestMain or a
// benchmark's setup: it writes the shared object into dir, with mode 0755
// whatever the umask, and returns its path, or an error carrying the
// compiler's output. The file is named after
// the source, plus a hash of cflags when there are any, so that variants of
// one source built into one directory do not overwrite each other.
func BuildTo(dir, src string, cflags ...string) (string, error) {
	src, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	include, err := includeDir()
	if err != nil {
		return "", err
	}
	name := strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	if len(cflags) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(cflags, "\x00")))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	so := filepath.Join(dir, name+".so")

	cc := strings.Fields(os.Getenv("CC"))
	if len(cc) == 0 {
		cc = []string{"cc"}
	}
	args := append(cc[1:len(cc):len(cc)], flags...)
	args = append(args, "-I"+include)
	args = append(args, cflags...)
	args = append(args, "-o", so, src)
	cmd := exec.Command(cc[0], args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("plugintest: %s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if err := checkMachine(so, runtime.GOARCH); err != nil {
		return "", fmt.Errorf("plugintest: %s: %w", strings.Join(cc, " "), err)
	}
	// The compiler's output takes the umask's mode, group-writable under
	// a umask of 002, which the gateway refuses to load; a plugin is
	// installed writable by its owner only.
	if err := os.Chmod(so, 0o755); err != nil {
		return "", fmt.Errorf("plugintest: %w", err)
	}
	return so, nil
}

// machines maps GOARCH to the ELF machine of its shared objects, for the
// architectures whose call trampoline pluginhost has.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkMachine reports an error when the shared object so is built for
// another machine than goarch, naming both and the fix.
func checkMachine(so, goarch string) error {
	want, ok := machines[goarch]
	if !ok {
		return nil
	}
	f, err := elf.Open(so)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("built %s for %v, but this test runs on %s (%v): set CC to a compiler for %s",
			filepath.Base(so), f.Machine, goarch, want, goarch)
	}
	return nil
}

// RepoPath returns the absolute path of rel, a slash-separated path relative
// to the repository root, such as "plugins/calculator/calculator.c", so that
// tests in any package name the repository's files the same way.
func RepoPath(rel string) string {
	// This file is internal/plugintest/plugintest.go in the repository.
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(rel))
}

// includeDir is the repository's plugins/include.
func includeDir() (string, error) {
	dir := RepoPath("plugins/include")
	if _, err := os.Stat(filepath.Join(dir, "repe_plugin.h")); err != nil {
		return "", fmt.Errorf("plugintest: %w", err)
	}
	return dir, nil
}
