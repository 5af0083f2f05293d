package repe

import (
	"errors"
	"strconv"
)

// Error is a REPE error: the code for a reply's ec field and the UTF-8 text
// for its body. Validation errors carry exactly the code and text Glaze's
// validator sends (REPE.md §2.2), so that AppendError(dst, id, e.Code,
// e.Message) answers a peer byte for byte as Glaze would.
type Error struct {
	Code    ErrorCode
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.Error()
	}
	return "repe: " + e.Code.String() + ": " + e.Message
}

// Is reports whether target is e's ErrorCode, or an *Error with the same
// code whose message is empty or equal to e's.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case ErrorCode:
		return e.Code == t
	case *Error:
		return e.Code == t.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// AsError returns err as an *Error: err itself or the first *Error in its
// chain, a bare ErrorCode with an empty message, or ParseError with err's
// text for anything else; nil for a nil err. It lets a server answer any
// failure with a REPE error frame.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var c ErrorCode
	if errors.As(err, &c) {
		return &Error{Code: c}
	}
	return &Error{Code: ParseError, Message: err.Error()}
}

// Texts of Glaze's validator (REPE.md §2.2). Keep them in this one place.
const (
	textInvalidHeader = "Invalid header"
	textTruncated     = "Failed to parse request"
	textTooLarge      = "REPE message exceeds maximum allowed size"
)

func errShort() *Error { return &Error{Code: InvalidHeader, Message: textInvalidHeader} }

func errMagic(got uint16) *Error {
	const hex = "0123456789abcdef"
	b := []byte("REPE magic number mismatch: expected 0x1507, got 0x0000")
	for i := range 4 {
		b[len(b)-1-i] = hex[got>>(4*i)&0xf]
	}
	return &Error{Code: InvalidHeader, Message: string(b)}
}

func errVersion(got uint8) *Error {
	return &Error{
		Code:    VersionMismatch,
		Message: "REPE version mismatch: expected 1, got " + strconv.FormatUint(uint64(got), 10),
	}
}

func errOverflow(ql, bl uint64) *Error {
	return &Error{
		Code: InvalidHeader,
		Message: "REPE length overflow: query_length " + strconv.FormatUint(ql, 10) +
			" + body_length " + strconv.FormatUint(bl, 10) + " exceed uint64_t",
	}
}

func errMismatch(expected, got uint64) *Error {
	return &Error{
		Code: InvalidHeader,
		Message: "REPE length mismatch: expected " + strconv.FormatUint(expected, 10) +
			", got " + strconv.FormatUint(got, 10),
	}
}

func errTruncated() *Error { return &Error{Code: InvalidBody, Message: textTruncated} }

// errTooLarge keeps Glaze's asio_server wording and adds the figures, which
// Glaze only logs.
func errTooLarge(length, limit uint64) *Error {
	return &Error{
		Code: InvalidHeader,
		Message: textTooLarge + ": length " + strconv.FormatUint(length, 10) +
			", limit " + strconv.FormatUint(limit, 10),
	}
}
