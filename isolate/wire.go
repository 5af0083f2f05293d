//go:build linux

package isolate

import (
	"encoding/binary"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// What travels over the socket between the gateway and a worker.
//
// Gateway to worker: bare REPE request frames, back to back, exactly as the
// gateway received them; each one's length field frames it.
//
// Worker to gateway: records, each an 8-byte header and a payload. Every
// request gets exactly one record, in order. The worker collects them in
// the area of the progress page and writes them in one write once it has
// run every request it has read, or when the area is full:
//
//	offset size field
//	     0    4  kind    little-endian uint32, one of the record kinds
//	     4    4  length  little-endian uint32, bytes of payload that follow
const (
	recordHeaderSize = 8
	offRecordKind    = 0 // uint32: the record kind
	offRecordLength  = 4 // uint32: payload bytes after the header
)

// protocolVersion is the version of this exchange, sent in the hello. A
// worker is normally the gateway's own binary, so it always matches; a
// mismatch means a misconfigured Config.Exe.
const protocolVersion = 1

// maxRecordSize bounds a record's payload: any reply the worker's
// pluginhost accepts fits, and a length beyond it means the worker is
// broken, not that the gateway should allocate it.
const maxRecordSize = pluginhost.DefaultMaxReplySize + 4096

// Record kinds.
const (
	// kindReply: the payload is the plugin's reply to the next request.
	kindReply uint32 = 1
	// kindEmpty: the next request has no reply, because it is a notify or
	// the plugin returned none. No payload.
	kindEmpty uint32 = 2
	// kindError: pluginhost refused the plugin's reply to the next request.
	// Payload: the REPE error code (uint32), then the message.
	kindError uint32 = 3
	// kindHello: the first record of a worker that loaded its plugin.
	// Payload: protocolVersion (uint32), then the plugin's file, name,
	// version and root, each a uint32 length and the bytes.
	kindHello uint32 = 4
	// kindRefused: the first and only record of a worker that could not
	// load its plugin. Payload: the index of the reason in loadReasons
	// (uint32), then the text of the *pluginhost.LoadError's Err.
	kindRefused uint32 = 5
)

// The worker's inherited file descriptors, after stdin, stdout and stderr.
const (
	fdSocket   = 3 // the worker's end of the socket pair
	fdLifeline = 4 // read end of a pipe whose write end only the gateway holds
	fdProgress = 5 // a memfd holding the progress page
)

// The progress page is shared memory (a memfd), mapped by the gateway and
// the worker, in which the worker keeps its count of requests begun and the
// records it has not yet written to the socket. So nothing the worker has
// done is lost when it dies: the gateway reads what the socket did not
// carry from the page, and knows which request was running, and which were
// never begun. The words are in the machine's byte order (both sides run
// on it) and only ever accessed atomically:
//
//	offset size field
//	     0    8  started      requests begun over the worker's life; plus
//	                          abortBit once the gateway has given up on the
//	                          worker, after which it begins no other
//	     8    8  pendingBase  the request index, over the worker's life,
//	                          of the first record in the area
//	    16    8  pendingLen   bytes of whole records in the area
//	    64    -  area         records not yet written to the socket
//
// The worker stores a request's record (in the area, or on the socket when
// the area is full) before it begins the next one, so that at most one
// request begun has no record: the one running. It begins a request with a
// compare-and-swap that fails once abortBit is set; the gateway sets it with
// an atomic or that returns the count at that instant, after which the
// worker runs nothing more, however long it takes to die.
const (
	offStarted     = 0
	offPendingBase = 8
	offPendingLen  = 16
	offArea        = 64
	progressSize   = 256 << 10 // the whole mapping
	abortBit       = 1 << 63
)

// appendRecordHeader appends a record header for a payload of n bytes.
func appendRecordHeader(dst []byte, kind uint32, n int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, kind)
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

// putRecordHeader fills in the header at the front of rec, whose payload is
// the rest of rec.
func putRecordHeader(rec []byte, kind uint32) {
	binary.LittleEndian.PutUint32(rec[offRecordKind:], kind)
	binary.LittleEndian.PutUint32(rec[offRecordLength:], uint32(len(rec)-recordHeaderSize))
}

// appendString appends s as a uint32 length and the bytes.
func appendString(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// readString reads a string written by appendString from the front of b and
// returns it and the rest, or false when b is too short.
func readString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}

// hello is what a worker reports about the plugin it loaded.
type hello struct {
	file, name, version, root string
}

func appendHello(dst []byte, h hello) []byte {
	start := len(dst)
	dst = appendRecordHeader(dst, kindHello, 0)
	dst = binary.LittleEndian.AppendUint32(dst, protocolVersion)
	for _, s := range [...]string{h.file, h.name, h.version, h.root} {
		dst = appendString(dst, s)
	}
	putRecordHeader(dst[start:], kindHello)
	return dst
}

// parseHello reads a hello's payload; the version is returned apart, so that
// a mismatch can be reported as such.
func parseHello(b []byte) (h hello, version uint32, ok bool) {
	if len(b) < 4 {
		return h, 0, false
	}
	version = binary.LittleEndian.Uint32(b)
	if version != protocolVersion {
		return h, version, true
	}
	b = b[4:]
	for _, s := range [...]*string{&h.file, &h.name, &h.version, &h.root} {
		if *s, b, ok = readString(b); !ok {
			return h, version, false
		}
	}
	return h, version, len(b) == 0
}

// checkReply reports why b, a reply record's payload, is not one well-formed
// REPE reply to request id, or "" when it is. The worker's pluginhost has
// checked the same already; this check is the gateway's, against a worker
// whose memory a plugin may have corrupted.
func checkReply(b []byte, id uint64) string {
	if len(b) < repe.HeaderSize {
		return "a reply shorter than a header"
	}
	m := repe.Message(b)
	n := uint64(len(b))
	switch {
	case m.Spec() != repe.Magic:
		return "a reply with a bad magic"
	case m.Version() != repe.Version:
		return "a reply with a bad version"
	case m.Length() != n:
		return "a reply whose length field disagrees with its record"
	case m.QueryLength() > n-repe.HeaderSize || m.BodyLength() != n-repe.HeaderSize-m.QueryLength():
		return "a reply whose lengths do not add up"
	case m.ID() != id:
		return "a reply with another request's id"
	}
	return ""
}
