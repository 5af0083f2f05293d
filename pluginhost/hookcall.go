package pluginhost

import "unsafe"

// hookFrame is what hookTrampoline (hookcall_GOARCH.s) reads and writes: it
// calls fn(ud, &info) and stores the result register in r1. The offsets
// there follow this layout; info starts at 24.
//
// A hook's argument is a struct the C side reads through a pointer. Built
// on the caller's stack and handed over as a uintptr, it could move if the
// stack grew before the call began; built on the heap, it would cost an
// allocation per hook call. In the frame, its address is taken by the
// trampoline, on the system stack, where this goroutine's stack is pinned
// until C returns: so it stays on the stack and costs nothing.
type hookFrame[T any] struct {
	fn, ud, r1 uintptr
	info       T
}

// callHook calls f.fn(f.ud, &f.info) through runtime.cgocall, as ccall
// does, and returns the result register. The C function must not call back
// into Go (see "Calling C without cgo" in doc.go). Pointers stored as
// uintptrs in f.info must be kept alive by the caller until it returns.
func callHook[T any](f *hookFrame[T]) uintptr {
	runtimeCgocall(hookTrampolineABI0, unsafe.Pointer(f))
	return f.r1
}

// hookTrampolineABI0 is the address of the assembly trampoline.
var hookTrampolineABI0 uintptr

// The C structs of plugins/include/repe_gateway.h, field for field: Go lays
// them out as C does on amd64 and arm64 (abi_test.go checks the offsets
// against the header's).
type (
	cConnInfo struct {
		size                        uint32
		connID                      uint64
		remote, remoteLen           uintptr
		tlsIdentity, tlsIdentityLen uintptr
	}
	cRequestInfo struct {
		size              uint32
		connID, id        uint64
		query, queryLen   uintptr
		body, bodyLen     uintptr
		bodyFormat        uint16
		notify            uint8
		plugin, pluginLen uintptr
	}
	cResponseInfo struct {
		size                   uint32
		connID, id             uint64
		query, queryLen        uintptr
		ec                     uint32
		durationNs, replyBytes uint64
	}
	cHooks struct {
		size                                                uint32
		userData, onConnect, onRequest, onResponse, onClose uintptr
		errorMessage, onShutdown, destroy                   uintptr
	}
	cContext struct {
		size                      uint32
		name, dataDir             uintptr
		configJSON, configJSONLen uintptr
		host, log, shuttingDown   uintptr
	}
)

// stringData returns the address of s's bytes, 0 for "". The caller keeps s
// alive while C reads them.
func stringData(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }

// bytesData returns the address of b's bytes, 0 for none.
func bytesData(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
