package client

import (
	"context"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/repe-gw/repe-gw/repe"
)

// ErrClosed is the cause of the errors of calls made on, or cut short by, a
// closed Client.
var ErrClosed = errors.New("client: closed")

// Error is a failed call. Err holds the REPE error code and message: the
// server's, when Remote is set, or the client's own (repe.Timeout,
// repe.ConnectionFailure, repe.SendError), whose underlying cause is Cause.
//
// Error unwraps to Err and Cause, so errors.Is(err, repe.MethodNotFound),
// errors.As(err, &repeErr) and errors.Is(err, context.DeadlineExceeded) all
// work.
type Error struct {
	Query  string      // the query of the call
	Remote bool        // the server answered with this error
	Err    *repe.Error // code and message
	Cause  error       // local cause (context, network); nil when Remote
}

// Error implements error: "client: <query>: <code name>: <message>", each
// field left out, with its colon, when it is empty. Dial has no query, a
// server may send an error without a message, and an Error built by hand
// may lack Err.
func (e *Error) Error() string {
	s := "client"
	add := func(field string) {
		if field != "" {
			s += ": " + field
		}
	}
	add(e.Query)
	switch {
	case e.Err != nil:
		add(e.Err.Code.String())
		add(e.Err.Message)
	case e.Cause != nil:
		add(e.Cause.Error())
	}
	if s == "client" {
		return "client: error"
	}
	return s
}

// Unwrap returns Err and, when set, Cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// localError is a failure found by the client rather than the server.
func localError(query string, code repe.ErrorCode, cause error) *Error {
	return &Error{Query: query, Err: &repe.Error{Code: code, Message: cause.Error()}, Cause: cause}
}

// remoteError is the error a reply with a non-zero ec stands for. Glaze
// sends its messages as UTF-8 bodies (REPE.md §2.2); a body that is not text
// is described rather than copied.
func remoteError(query string, r Reply) *Error {
	msg := string(r.Body)
	if !utf8.Valid(r.Body) {
		msg = strconv.Itoa(len(r.Body)) + "-byte " + r.BodyFormat.String() + " body"
	}
	return &Error{Query: query, Remote: true, Err: &repe.Error{Code: r.EC, Message: msg}}
}

// contextError reports a call abandoned because its context ended. Both a
// deadline and a cancellation report repe.Timeout; the wrapped context error
// tells them apart.
func contextError(query string, ctx context.Context) *Error {
	err := ctx.Err()
	if err == nil {
		// A write deadline taken from ctx can fire a moment before ctx
		// itself reports it.
		err = context.DeadlineExceeded
	}
	return localError(query, repe.Timeout, err)
}
