package repe

import "encoding/binary"

// HeaderSize is the size of a REPE header in bytes.
const HeaderSize = 48

// Magic is the value of the spec field of every REPE frame.
const Magic uint16 = 0x1507

// Version is the only REPE version this package reads and writes.
const Version uint8 = 1

// Offsets of the header fields (REPE.md §1.1). Every multi-byte field is
// little-endian.
const (
	OffsetLength      = 0  // u64: total frame size, header included
	OffsetSpec        = 8  // u16: Magic
	OffsetVersion     = 10 // u8: Version
	OffsetNotify      = 11 // u8: non-zero means the sender wants no reply
	OffsetReserved    = 12 // u32: 0 when written, ignored when read
	OffsetID          = 16 // u64: request id, echoed in the reply
	OffsetQueryLength = 24 // u64: bytes of query after the header
	OffsetBodyLength  = 32 // u64: bytes of body after the query
	OffsetQueryFormat = 40 // u16: QueryFormat
	OffsetBodyFormat  = 42 // u16: BodyFormat
	OffsetEC          = 44 // u32: ErrorCode
)

// Message is a view of one REPE frame: its header, query and body, in the
// bytes it was made from. It never copies them.
//
// A Message is only valid as long as those bytes are: when it is made from a
// network read buffer (gnet's Peek), it must not be used after the buffer is
// discarded or the read callback returns. Copy the bytes to keep them.
//
// The header accessors need at least HeaderSize bytes. Query and Body also
// need the lengths to be consistent, which holds for every Message returned
// by Parse or framed by Split without error.
type Message []byte

// Length returns the length field: the frame size the sender declared.
func (m Message) Length() uint64 { return binary.LittleEndian.Uint64(m[OffsetLength:]) }

// Spec returns the spec field, which must equal Magic.
func (m Message) Spec() uint16 { return binary.LittleEndian.Uint16(m[OffsetSpec:]) }

// Version returns the version field.
func (m Message) Version() uint8 { return m[OffsetVersion] }

// Notify reports whether the sender wants no reply. Like Glaze, any non-zero
// notify byte counts, not only 1 (REPE.md §1.1).
func (m Message) Notify() bool { return m[OffsetNotify] != 0 }

// NotifyByte returns the raw notify byte.
func (m Message) NotifyByte() uint8 { return m[OffsetNotify] }

// Reserved returns the reserved field, which receivers ignore.
func (m Message) Reserved() uint32 { return binary.LittleEndian.Uint32(m[OffsetReserved:]) }

// ID returns the request id.
func (m Message) ID() uint64 { return binary.LittleEndian.Uint64(m[OffsetID:]) }

// QueryLength returns the query_length field.
func (m Message) QueryLength() uint64 { return binary.LittleEndian.Uint64(m[OffsetQueryLength:]) }

// BodyLength returns the body_length field.
func (m Message) BodyLength() uint64 { return binary.LittleEndian.Uint64(m[OffsetBodyLength:]) }

// QueryFormat returns the query_format field.
func (m Message) QueryFormat() QueryFormat {
	return QueryFormat(binary.LittleEndian.Uint16(m[OffsetQueryFormat:]))
}

// BodyFormat returns the body_format field.
func (m Message) BodyFormat() BodyFormat {
	return BodyFormat(binary.LittleEndian.Uint16(m[OffsetBodyFormat:]))
}

// EC returns the error code field.
func (m Message) EC() ErrorCode { return ErrorCode(binary.LittleEndian.Uint32(m[OffsetEC:])) }

// Query returns the query bytes, a sub-slice of m.
func (m Message) Query() []byte {
	end := HeaderSize + m.QueryLength()
	return m[HeaderSize:end:end]
}

// Body returns the body bytes, a sub-slice of m.
func (m Message) Body() []byte {
	start := HeaderSize + m.QueryLength()
	end := start + m.BodyLength()
	return m[start:end:end]
}

// PeekID returns the id field of a possibly incomplete or invalid frame, or 0
// when b holds less than a whole header. Replies to frames that fail
// validation carry this id, as Glaze's do (REPE.md §2.2): Glaze reads the id
// only from a complete 48-byte header (extract_id, parse_request), so a
// shorter buffer is answered with id 0 even when it reaches offset 16.
func PeekID(b []byte) uint64 {
	if len(b) < HeaderSize {
		return 0
	}
	return binary.LittleEndian.Uint64(b[OffsetID:])
}
