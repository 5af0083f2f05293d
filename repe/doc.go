// Package repe reads and writes REPE v1 frames exactly as Glaze does.
//
// A REPE frame is a 48-byte little-endian header, then the query, then the
// body, with no separators (REPE.md §1.1):
//
//	off size field          notes
//	  0    8 length         header + query + body
//	  8    2 spec           magic 0x1507, on the wire 07 15
//	 10    1 version        1
//	 11    1 notify         any non-zero value means "send no reply"
//	 12    4 reserved       0 in replies, never checked
//	 16    8 id             echoed in the reply
//	 24    8 query_length
//	 32    8 body_length
//	 40    2 query_format   0 raw, 1 JSON pointer
//	 42    2 body_format    0 raw, 1 BEVE, 2 JSON, 3 UTF-8
//	 44    4 ec             error code, 0 on success
//
// The package has three parts:
//
//   - [Message] is a view of a frame's bytes with an accessor per field. It
//     never copies; it is valid only as long as the bytes it points into.
//   - [Split] frames a TCP stream incrementally and [Parse] validates a whole
//     buffer. Both follow Glaze's validator: its order of checks, its error
//     codes and its texts (REPE.md §2.1–§2.2), reported as [*Error].
//   - [AppendMessage], [AppendResponse] and [AppendError] encode frames into
//     caller-owned buffers, laid out as Glaze's response builder does
//     (REPE.md §3.5).
//
// The package imports only the standard library, so that every other part of
// repe-gw, and any client, can build on it.
package repe
