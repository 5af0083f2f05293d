package client

import "github.com/repe-gw/repe-gw/repe"

// CallOption changes one header field of a request. Options are small
// values rather than functions so that passing them costs no allocation.
type CallOption struct {
	kind  optionKind
	value uint64
}

type optionKind uint8

const (
	optBodyFormat optionKind = iota + 1
	optQueryFormat
	optID
	optIdempotent
)

// WithBodyFormat sets the request's body_format. The default is
// repe.BodyJSON when the body is not empty and repe.BodyRaw when it is, as
// Glaze's client does (REPE.md §4.4).
func WithBodyFormat(f repe.BodyFormat) CallOption {
	return CallOption{kind: optBodyFormat, value: uint64(f)}
}

// WithQueryFormat sets the request's query_format. The default is
// repe.QueryJSONPointer.
func WithQueryFormat(f repe.QueryFormat) CallOption {
	return CallOption{kind: optQueryFormat, value: uint64(f)}
}

// WithID sends the request with this id instead of one the client picks.
// A call fails with repe.SendError if a call with the same id is in flight
// on the chosen connection. The caller keeps ids unique: a late reply to an
// earlier call with the same id would be taken for the answer.
func WithID(id uint64) CallOption {
	return CallOption{kind: optID, value: id}
}

// Idempotent marks a call that may run twice with the same effect as once,
// a read say. When its connection ends after the request was written and
// before its reply came, the call is sent again on a new connection
// instead of failing with repe.ConnectionFailure, however the connection
// ended: a server that crashed may have run the request. Calls without it
// are sent again only when they were not written at all, or when the
// server ended the connection cleanly and Config.ResendUnanswered is set.
func Idempotent() CallOption {
	return CallOption{kind: optIdempotent}
}

// request is a request's header choices after applying options.
type request struct {
	header     repe.Header
	hasID      bool
	idempotent bool
}

func newRequest(body []byte, notify bool, opts []CallOption) request {
	r := request{header: repe.Header{Notify: notify, QueryFormat: repe.QueryJSONPointer}}
	if len(body) > 0 {
		r.header.BodyFormat = repe.BodyJSON
	}
	for _, o := range opts {
		switch o.kind {
		case optBodyFormat:
			r.header.BodyFormat = repe.BodyFormat(o.value)
		case optQueryFormat:
			r.header.QueryFormat = repe.QueryFormat(o.value)
		case optID:
			r.header.ID = o.value
			r.hasID = true
		case optIdempotent:
			r.idempotent = true
		}
	}
	return r
}
