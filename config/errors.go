package config

import (
	"fmt"
	"strings"
)

// Position is a place in a configuration file. Line and Column count from
// 1; the zero Position is no place at all, as for a plugin named by a flag.
type Position struct {
	File   string
	Line   int
	Column int
}

// String writes p as editors and compilers do: file:line:column, or less
// when less is known.
func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Error is one problem in a configuration file, at the place that causes
// it: the key for an unknown or repeated key, the value for a bad value.
type Error struct {
	Position
	Msg string
}

// Error writes e as file:line:column: message.
func (e *Error) Error() string {
	return e.Position.String() + ": " + e.Msg
}

// Errors is every problem found in one configuration file, in the order of
// their places. Load returns it, as its error, whenever there is at least
// one problem, so that an operator fixes them all in one pass instead of
// meeting them one run at a time.
type Errors []*Error

// Error writes one problem per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap gives errors.As access to each *Error.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}
