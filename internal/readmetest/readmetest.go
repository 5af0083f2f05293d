// Package readmetest reads the examples of the project's README.md, so that
// the tests of each command can run them and keep the README true.
package readmetest

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// Section returns the section of README.md under heading ("## Quick
// start"), up to the next heading of level two.
func Section(t testing.TB, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(plugintest.RepoPath("README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	require.True(t, ok, "README.md has no %q", heading)
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}

// Step is one "$ command" line of a console block and the output shown
// under it.
type Step struct {
	Command string
	Output  string
}

// Transcript reads the console blocks of a README section.
func Transcript(section string) []Step {
	var steps []Step
	in := false
	for line := range strings.SplitSeq(section, "\n") {
		switch {
		case line == "```console":
			in = true
		case line == "```":
			in = false
		case in && strings.HasPrefix(line, "$ "):
			steps = append(steps, Step{Command: strings.TrimPrefix(line, "$ ")})
		case in && len(steps) > 0:
			steps[len(steps)-1].Output += line + "\n"
		}
	}
	return steps
}
