package repe

import (
	"encoding/binary"
	"slices"
)

// Header holds the header fields a sender chooses. The spec, version and
// length fields are derived when encoding.
type Header struct {
	ID          uint64
	Notify      bool
	Reserved    uint32
	QueryFormat QueryFormat
	BodyFormat  BodyFormat
	EC          ErrorCode
}

// AppendHeader appends a 48-byte header for a frame whose query and body
// have the given lengths, for callers that write query and body from
// buffers of their own.
func AppendHeader(dst []byte, h Header, queryLength, bodyLength int) []byte {
	start := len(dst)
	dst = slices.Grow(dst, HeaderSize)[:start+HeaderSize]
	b := dst[start:]
	ql, bl := uint64(queryLength), uint64(bodyLength)
	binary.LittleEndian.PutUint64(b[OffsetLength:], HeaderSize+ql+bl)
	binary.LittleEndian.PutUint16(b[OffsetSpec:], Magic)
	b[OffsetVersion] = Version
	b[OffsetNotify] = 0
	if h.Notify {
		b[OffsetNotify] = 1
	}
	binary.LittleEndian.PutUint32(b[OffsetReserved:], h.Reserved)
	binary.LittleEndian.PutUint64(b[OffsetID:], h.ID)
	binary.LittleEndian.PutUint64(b[OffsetQueryLength:], ql)
	binary.LittleEndian.PutUint64(b[OffsetBodyLength:], bl)
	binary.LittleEndian.PutUint16(b[OffsetQueryFormat:], uint16(h.QueryFormat))
	binary.LittleEndian.PutUint16(b[OffsetBodyFormat:], uint16(h.BodyFormat))
	binary.LittleEndian.PutUint32(b[OffsetEC:], uint32(h.EC))
	return dst
}

// AppendMessage appends a whole frame: a header built from h, the query and
// the body. It is the request encoder; Glaze's clients send JSON-pointer
// queries (h.QueryFormat = QueryJSONPointer).
func AppendMessage(dst []byte, h Header, query string, body []byte) []byte {
	dst = AppendHeader(dst, h, len(query), len(body))
	dst = append(dst, query...)
	return append(dst, body...)
}

// AppendResponse appends a reply laid out as Glaze's response builder writes
// it (REPE.md §3.5): the request's id, notify 0, reserved 0, query_format 0,
// no query (Glaze never echoes it), so length = 48 + len(body).
func AppendResponse(dst []byte, id uint64, ec ErrorCode, bf BodyFormat, body []byte) []byte {
	dst = AppendHeader(dst, Header{ID: id, BodyFormat: bf, EC: ec}, 0, len(body))
	return append(dst, body...)
}

// AppendError appends an error reply as Glaze's set_error and
// encode_error_buffer write it: a response with ec, body_format UTF-8 and the
// message as body.
func AppendError(dst []byte, id uint64, ec ErrorCode, msg string) []byte {
	dst = AppendHeader(dst, Header{ID: id, BodyFormat: BodyUTF8, EC: ec}, 0, len(msg))
	return append(dst, msg...)
}
