package beve

import "strconv"

// SyntaxError reports input that is not BEVE this package can read: a value
// cut short, a size larger than the bytes that remain, a header with an
// unknown type or an extension it does not know. Offset is the position in
// the input where the problem was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return "beve: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}
