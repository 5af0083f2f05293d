package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: no input panics, and Parse returns either a File or Errors
// with at least one problem, each naming the file.
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile(exampleFile); err == nil {
		f.Add(example)
	}
	for _, s := range []string{
		"", "listen: {addr: ':1'}\n", "plugins:\n  - a.so\n  - path: b.so\n    config: {a: [1, {b: c}]}\n",
		"a: &a [*a]\n", "plugins: [{path: x, config: &c {k: *c}}]\n", "limits:\n\tmax_conns: 1\n",
		"? [a]\n: b\n", "--- !!map\n...\n", "plugins:\n  - !!str a\n", "log: {level: *x}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("c.yaml", data)
		if err == nil {
			if file == nil {
				t.Fatal("no File and no error")
			}
			return
		}
		errs, ok := errors.AsType[Errors](err)
		if !ok || len(errs) == 0 || file != nil {
			t.Fatalf("want a nil File and Errors, got %v and %#v", file, err)
		}
		for _, e := range errs {
			if e.File != "c.yaml" || e.Line < 0 || e.Column < 0 {
				t.Fatalf("bad place: %#v", e)
			}
		}
	})
}
