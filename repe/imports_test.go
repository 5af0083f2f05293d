package repe_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStandardLibraryOnly enforces that repe, the package every other part
// of repe-gw and any client builds on, imports only the standard library
// (STYLE.md §1). Standard library import paths have no dot in their first
// element; everything else (this module included) does.
func TestStandardLibraryOnly(t *testing.T) {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	fset := token.NewFileSet()
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			first, _, _ := strings.Cut(path, "/")
			assert.NotContains(t, first, ".", "%s imports %q, which is not in the standard library", name, path)
			assert.NotEqual(t, "C", path, "%s uses cgo", name)
		}
	}
	assert.GreaterOrEqual(t, checked, 5)
}
