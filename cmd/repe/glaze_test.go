package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/glazeplugins"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/internal/readmetest"
)

// The tests in this file serve plugins built with Glaze and clang-19: the
// examples of glazeplugins/, which make glaze-plugins builds, and the
// template of templates/glaze-plugin/, which the test builds itself as its
// README says.

// TestReadmeGlazePlugins runs the console session of glazeplugins/README.md
// against one gateway serving both Glaze-built plugins, the calculator and
// the shop, and checks each command's output.
func TestReadmeGlazePlugins(t *testing.T) {
	readme := readRepoFile(t, "glazeplugins/README.md")
	require.Contains(t, readme, "bin/repe-gw --plugins bin/glaze-plugins", "the README serves another folder than the one tests load")
	steps := readmetest.Transcript(readme)
	require.GreaterOrEqual(t, len(steps), 5, "glazeplugins/README.md shows no session")

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, glazeplugins.Plugin(t, "calculator"), glazeplugins.Plugin(t, "shop"))
	runSteps(t, steps, filepath.Dir(filepath.Dir(repeBinary(t))), "REPE_ADDR="+srv.Addr().String())
}

// TestTemplateReadme follows templates/glaze-plugin/README.md: it copies the
// template, builds it with the README's commands, checks its exports with
// the README's nm, then serves the plugin and runs the README's session
// against it. The build fetches nothing: GLAZE_DIR names the Glaze tree,
// as the README allows, and make test sets it when it builds the Glaze
// plugins.
func TestTemplateReadme(t *testing.T) {
	glazeDir := os.Getenv("GLAZE_DIR")
	var missing []string
	if glazeDir == "" {
		missing = append(missing, "GLAZE_DIR")
	}
	for _, tool := range []string{"clang++-19", "cmake", "nm"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := "building the Glaze template needs " + strings.Join(missing, ", ") + " (see templates/glaze-plugin/README.md)"
		if os.Getenv(glazeplugins.DirEnv) != "" {
			t.Fatalf("%s is set, so this machine should build Glaze plugins, but %s", glazeplugins.DirEnv, msg)
		}
		t.Skip(msg)
	}

	readme := readRepoFile(t, "templates/glaze-plugin/README.md")
	build := codeBlocks(readme, "sh")
	require.Len(t, build, 1, "the template's README gives one block of build steps")
	steps := readmetest.Transcript(readme)
	require.GreaterOrEqual(t, len(steps), 5, "the template's README shows no session")

	// The README's steps start at the root of a repe-gw checkout; the
	// template's files are all it reads there.
	work := t.TempDir()
	template := filepath.Join(work, "templates", "glaze-plugin")
	require.NoError(t, os.MkdirAll(template, 0o755))
	entries, err := os.ReadDir(plugintest.RepoPath("templates/glaze-plugin"))
	require.NoError(t, err)
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(plugintest.RepoPath("templates/glaze-plugin/" + e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(template, e.Name()), b, 0o644))
		}
	}
	cmd := exec.Command("sh", "-ec", build[0])
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GLAZE_DIR="+glazeDir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", build[0], out)

	plugin := filepath.Join(work, "hello", "build", "hello.so")
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, plugin)
	bin := filepath.Dir(repeBinary(t))
	runSteps(t, steps, filepath.Join(work, "hello"),
		"REPE_ADDR="+srv.Addr().String(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// runSteps runs each step in a shell in dir, with env added to the
// environment, and requires the output the README shows, standard output
// and error together.
func runSteps(t *testing.T, steps []readmetest.Step, dir string, env ...string) {
	t.Helper()
	for _, s := range steps {
		cmd := exec.Command("sh", "-c", s.Command)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", s.Command, out)
		assert.Equal(t, s.Output, string(out), s.Command)
	}
}

// codeBlocks returns the contents of the fenced blocks of a Markdown text
// whose language is lang.
func codeBlocks(text, lang string) []string {
	var blocks []string
	var cur *strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		switch {
		case cur == nil && line == "```"+lang:
			cur = new(strings.Builder)
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(plugintest.RepoPath(rel))
	require.NoError(t, err)
	return string(b)
}
