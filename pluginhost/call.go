package pluginhost

import (
	"encoding/binary"
	"runtime"
	"strconv"
	"unsafe"

	"github.com/repe-gw/repe-gw/repe"
)

// Call passes one whole request frame (exactly its length bytes, already
// validated with repe.Split or repe.Parse) to the plugin and appends the
// plugin's reply to dst.
//
//   - No reply (size 0) returns dst unchanged and no error.
//   - A reply to a notify request is dropped (a client that sent a notify
//     reads no reply, and an extra frame would desynchronise it; REPE.md
//     §8.21) and counted by DroppedNotifyReplies.
//   - A reply that is not one well-formed frame for this request (NULL data
//     with a size, a bad magic or version, a length field that disagrees with
//     the size or with 48+query_length+body_length, another id, more than
//     Config.MaxReplySize bytes) returns dst unchanged and a *repe.Error
//     with code repe.ParseError whose message names the plugin and the
//     reason.
//   - After shutdown has begun, Call returns a *repe.Error with code
//     repe.MethodNotFound.
//
// Call is safe for concurrent use and allocates nothing beyond growing dst.
func (p *Plugin) Call(dst, req []byte) ([]byte, error) {
	return p.call(dst, req, 0, nil)
}

func (p *Plugin) call(dst, req []byte, atLeast int, sink ReplySink) ([]byte, error) {
	if len(req) < repe.HeaderSize {
		return dst, p.invalidRequest(len(req))
	}
	if !p.enter() {
		return dst, p.errShutdown
	}
	defer p.leave()
	if raceEnabled {
		p.checkEntered()
		defer p.inPlugin.Add(-1)
	}
	id := binary.LittleEndian.Uint64(req[repe.OffsetID:])
	notify := req[repe.OffsetNotify] != 0

	// The reply lives in the plugin's thread-local buffer, valid only until
	// the next repe_plugin_call on the same OS thread (REPE.md §5.3). Between
	// the C function's return and the copy, Go may preempt this goroutine or
	// resume it on another thread while the first thread runs a goroutine
	// that calls the plugin again and overwrites the buffer. Locking the
	// goroutine to its thread for the call and the copy (or the sink, in
	// CallTo) rules that out: no other goroutine runs on the thread until it
	// is unlocked. Locks nest, so a caller whose goroutine is already locked
	// (an event loop) keeps its lock.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	data, size := ccall(p.callFn, uintptr(unsafe.Pointer(unsafe.SliceData(req))), uintptr(len(req)))
	reply, err := p.checkReply(data, size, id, notify)
	if sink != nil && len(reply) > 0 && len(reply) >= atLeast {
		reply = sink.TakeReply(reply)
	}
	return append(dst, reply...), err
}

// A ReplySink takes large replies where the plugin left them, sparing the
// copy into dst: a gateway writes them to the socket from there.
type ReplySink interface {
	// TakeReply is given a valid reply while it is still in the plugin's
	// thread-local buffer, on the calling thread, which stays locked. It
	// must not keep reply, and returns the tail it did not take (all of it
	// to decline), which CallTo then appends to dst.
	TakeReply(reply []byte) (rest []byte)
}

// CallTo is Call, except that a valid reply of at least atLeast bytes is
// first offered to sink.
func (p *Plugin) CallTo(dst, req []byte, atLeast int, sink ReplySink) ([]byte, error) {
	return p.call(dst, req, atLeast, sink)
}

// DroppedNotifyReplies counts the replies the plugin returned to notify
// requests, which Call dropped.
func (p *Plugin) DroppedNotifyReplies() uint64 { return p.dropped.Load() }

// checkReply validates the reply at data, size bytes in C memory, and
// returns it in place: nil when there is none to pass on. It never reads
// outside [data, data+size), so a wrong size claimed by the plugin costs at
// most a REPE error.
func (p *Plugin) checkReply(data, size uintptr, id uint64, notify bool) (repe.Message, error) {
	switch {
	case size == 0:
		return nil, nil
	case notify:
		p.dropped.Add(1)
		return nil, nil
	case data == 0:
		return nil, p.invalidReply("NULL data with size " + strconv.FormatUint(uint64(size), 10))
	case size < repe.HeaderSize:
		return nil, p.invalidReply(strconv.FormatUint(uint64(size), 10) + " bytes, shorter than a header")
	case size > p.maxReply:
		return nil, p.invalidReply(strconv.FormatUint(uint64(size), 10) + " bytes, over the limit of " +
			strconv.FormatUint(uint64(p.maxReply), 10))
	}
	reply := repe.Message(unsafe.Slice((*byte)(cPointer(data)), size))
	n := uint64(size)
	if spec := reply.Spec(); spec != repe.Magic {
		return nil, p.invalidReply("magic 0x" + strconv.FormatUint(uint64(spec), 16))
	}
	if v := reply.Version(); v != repe.Version {
		return nil, p.invalidReply("version " + strconv.FormatUint(uint64(v), 10))
	}
	if length := reply.Length(); length != n {
		return nil, p.invalidReply("length field " + strconv.FormatUint(length, 10) +
			" for " + strconv.FormatUint(n, 10) + " bytes")
	}
	// Compared without an addition that could wrap.
	if ql, bl := reply.QueryLength(), reply.BodyLength(); ql > n-repe.HeaderSize || bl != n-repe.HeaderSize-ql {
		return nil, p.invalidReply("length " + strconv.FormatUint(n, 10) + " is not 48 + query_length " +
			strconv.FormatUint(ql, 10) + " + body_length " + strconv.FormatUint(bl, 10))
	}
	if rid := reply.ID(); rid != id {
		return nil, p.invalidReply("id " + strconv.FormatUint(rid, 10) + " for request id " + strconv.FormatUint(id, 10))
	}
	return reply, nil
}

func (p *Plugin) invalidReply(reason string) *repe.Error {
	return &repe.Error{Code: repe.ParseError, Message: p.errPrefix + "invalid reply: " + reason}
}

// invalidRequest reports a request too short to be a frame, which the caller
// should have refused before calling: it is answered as Glaze's validator
// answers one (REPE.md §2.2).
func (p *Plugin) invalidRequest(n int) *repe.Error {
	return &repe.Error{Code: repe.InvalidHeader, Message: p.errPrefix + "request of " + strconv.Itoa(n) + " bytes is shorter than a header"}
}
