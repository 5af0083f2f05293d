package repe

import (
	"encoding/binary"
	"math"
)

// DefaultMaxMessageSize is Glaze's asio_server default limit on a frame's
// length field: 64 MiB (REPE.md §4.1).
const DefaultMaxMessageSize = 64 << 20

// Split finds the first frame in data, the bytes buffered so far from a
// stream, in the spirit of bufio.SplitFunc. It decides as early as the bytes
// allow and never needs more than one frame's bytes to do so:
//
//   - n == 0, err == nil: data holds no complete frame yet; read more. This
//     is not an error.
//   - n > 0, err == nil: Message(data[:n]) is a valid frame.
//   - n > 0, err != nil: data[:n] is a whole frame, framed by its length
//     field, whose header is inconsistent (length overflow or mismatch). Answer
//     err, skip n bytes and go on: the stream is still in sync.
//   - n == 0, err != nil: the stream cannot be framed: length < HeaderSize,
//     length > maxSize, bad magic or an unsupported version. Answer err and
//     close. These are found as soon as the bytes holding the length (8),
//     magic (10) and version (11) are there, so a peer cannot make the caller
//     buffer a body it has announced but not yet sent.
//
// The checks run in the order of Glaze's asio_server (REPE.md §4.1): the
// length first, then magic and version, then the length rule of Parse.
//
// maxSize limits the length field; 0 means no limit beyond what an int can
// index (math.MaxInt), which also caps any larger maxSize. Errors are *Error
// with Glaze's codes and texts; reply to them with the id PeekID(data) finds,
// which is 0 while fewer than HeaderSize bytes are buffered, as in Glaze.
func Split(data []byte, maxSize uint64) (n int, err error) {
	if len(data) < OffsetSpec {
		return 0, nil
	}
	length := binary.LittleEndian.Uint64(data[OffsetLength:])
	if length < HeaderSize {
		return 0, errShort()
	}
	// The limit quoted in the error is the one applied: with maxSize 0 that
	// is what an int can index, not "0".
	limit := uint64(math.MaxInt)
	if maxSize > 0 && maxSize < limit {
		limit = maxSize
	}
	if length > limit {
		return 0, errTooLarge(length, limit)
	}
	if len(data) < OffsetVersion {
		return 0, nil
	}
	if spec := binary.LittleEndian.Uint16(data[OffsetSpec:]); spec != Magic {
		return 0, errMagic(spec)
	}
	if len(data) <= OffsetVersion {
		return 0, nil
	}
	if v := data[OffsetVersion]; v != Version {
		return 0, errVersion(v)
	}
	if uint64(len(data)) < length {
		return 0, nil
	}
	n = int(length)
	if err := checkLengths(data); err != nil {
		return n, err
	}
	return n, nil
}

// Parse validates b as one whole request the way Glaze's parse_request does
// (REPE.md §2.1), in the same order and with the same codes and texts:
// too short for a header, magic, version, length overflow, length mismatch,
// truncation. Bytes after the declared length are ignored, as in Glaze; the
// returned Message excludes them.
func Parse(b []byte) (Message, error) {
	if err := CheckHeader(b); err != nil {
		return nil, err
	}
	length := binary.LittleEndian.Uint64(b[OffsetLength:])
	if uint64(len(b)) < length {
		return nil, errTruncated()
	}
	return Message(b[:length:length]), nil
}

// CheckHeader validates the header at the start of h as Parse does, with
// the same codes and texts, for a frame whose query and body have not all
// arrived: too short for a header, magic, version, length overflow, length
// mismatch. It lets a reader act on a large frame (route it, size a buffer
// within the bytes actually sent) before the frame is whole.
func CheckHeader(h []byte) error {
	if len(h) < HeaderSize {
		return errShort()
	}
	if spec := binary.LittleEndian.Uint16(h[OffsetSpec:]); spec != Magic {
		return errMagic(spec)
	}
	if v := h[OffsetVersion]; v != Version {
		return errVersion(v)
	}
	if err := checkLengths(h); err != nil {
		return err
	}
	return nil
}

// checkLengths applies Glaze's overflow-safe length rule to a header:
// length == HeaderSize + query_length + body_length, computed without
// wrapping (Glaze's checked_message_length, REPE.md §2.1 step 4–5).
func checkLengths(h []byte) *Error {
	ql := binary.LittleEndian.Uint64(h[OffsetQueryLength:])
	bl := binary.LittleEndian.Uint64(h[OffsetBodyLength:])
	if ql > math.MaxUint64-HeaderSize || bl > math.MaxUint64-HeaderSize-ql {
		return errOverflow(ql, bl)
	}
	length := binary.LittleEndian.Uint64(h[OffsetLength:])
	if want := HeaderSize + ql + bl; length != want {
		return errMismatch(want, length)
	}
	return nil
}
