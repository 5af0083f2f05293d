package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// flagSet is a flag.FlagSet that lists its flags in -h in the order they
// were defined, spelt --name as the README spells them, and that reports a
// refused value in its own words ("--max-conns 0: out of range: ...")
// rather than the flag package's ("invalid value "0" for flag -max-conns").
type flagSet struct {
	*flag.FlagSet
	order []string
	bad   error // the first value a setter refused
}

func newFlagSet(name string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	// The flag package prints the usage on every error; the caller prints
	// one line instead, and the usage only for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// value defines a flag whose text set parses. usage names the value's
// placeholder in backquotes, as flag.PrintDefaults expects; def is the
// default as -h shows it, "" for none.
func (fs *flagSet) value(name, def, usage string, set func(string) error) {
	fs.Func(name, usage, func(s string) error {
		if err := set(s); err != nil {
			err = fmt.Errorf("--%s %s: %w", name, s, err)
			fs.bad = cmp.Or(fs.bad, err)
			return err
		}
		return nil
	})
	fs.Lookup(name).DefValue = def
	fs.order = append(fs.order, name)
}

// boolValue defines a flag that takes no value, or true or false after an
// equals sign, whose text set parses.
func (fs *flagSet) boolValue(name, usage string, set func(string) error) {
	fs.BoolFunc(name, usage, func(s string) error {
		if err := set(s); err != nil {
			err = fmt.Errorf("--%s=%s: %w", name, s, err)
			fs.bad = cmp.Or(fs.bad, err)
			return err
		}
		return nil
	})
	fs.order = append(fs.order, name)
}

// boolean defines a flag that takes no value.
func (fs *flagSet) boolean(p *bool, name, usage string) {
	fs.BoolVar(p, name, false, usage)
	fs.order = append(fs.order, name)
}

// parse parses args, and returns a refused value in fs's words.
func (fs *flagSet) parse(args []string) error {
	err := fs.Parse(args)
	if err != nil && fs.bad != nil {
		return fs.bad
	}
	return err
}

// printUsage writes head, then one entry per flag: "--name PLACEHOLDER",
// its description and its default, wrapped to 80 columns. Flags defined
// other than through value and boolean come last, by name.
func (fs *flagSet) printUsage(w io.Writer, head string) {
	names := slices.Clone(fs.order)
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(fs.order, f.Name) {
			names = append(names, f.Name)
		}
	})
	type entry struct{ left, text string }
	var entries []entry
	width := 0
	for _, name := range names {
		f := fs.Lookup(name)
		placeholder, text := flag.UnquoteUsage(f)
		left := "--" + name
		if placeholder != "" {
			left += " " + placeholder
		}
		if def := f.DefValue; def != "" && def != "0" && def != "false" {
			text += " (default " + def + ")"
		}
		entries = append(entries, entry{left, text})
		width = max(width, len(left))
	}
	const indent, gap, columns = 2, 2, 80
	textWidth := columns - indent - width - gap
	fmt.Fprint(w, head)
	for _, e := range entries {
		lines := wrap(e.text, textWidth)
		fmt.Fprintf(w, "%*s%-*s%*s%s\n", indent, "", width, e.left, gap, "", lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "%*s%s\n", indent+width+gap, "", l)
		}
	}
}

// wrap breaks text into lines of at most width characters, between words.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}
