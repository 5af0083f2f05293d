package pluginhost

import "unsafe"

// ccall calls the C function fn with two integer arguments and returns the
// two integer result registers: RAX:RDX on amd64 (System V), X0:X1 on arm64
// (AAPCS64). That is where a C function returns a 16-byte struct of two
// integer-class fields such as repe_buffer, so ccall serves every function
// of the plugin ABI (functions with fewer arguments ignore the extra ones,
// and a narrower result is the low bits of r1).
//
// It enters C the way cgo and purego do, through runtime.cgocall, which
// switches to the system stack and tells the scheduler the goroutine is in
// C. Unlike purego.SyscallN it needs no pooled 32-argument block and no
// variadic slice: SyscallN's //go:uintptrescapes makes that slice escape, one
// allocation per call, and its block costs a pool round trip (see
// BenchmarkCallPaths). The frame lives on this goroutine's stack, which
// cannot move while the goroutine is in C as long as C does not call back
// into Go (see "Calling C without cgo" in doc.go).
//
// The arguments are uintptrs; //go:uintptrescapes makes any pointer converted
// to one in the call expression live on the heap and stay alive until ccall
// returns.
//
//go:uintptrescapes
//go:noinline
func ccall(fn, a1, a2 uintptr) (r1, r2 uintptr) {
	f := cframe{fn: fn, a1: a1, a2: a2}
	runtimeCgocall(ccallTrampolineABI0, unsafe.Pointer(&f))
	return f.r1, f.r2
}

// cframe is what the trampoline (ccall_GOARCH.s) reads and writes: the
// offsets there follow this layout.
type cframe struct {
	fn, a1, a2 uintptr // in
	r1, r2     uintptr // out
}

// ccallTrampolineABI0 is the address of the assembly trampoline, which
// runtime.cgocall calls with the C ABI and a *cframe as its argument.
var ccallTrampolineABI0 uintptr

// runtimeCgocall is the runtime's entry into C, kept open to linkname for
// purego and cgo-free packages (go.dev/issue/67401). The frame does not
// escape: C reads it only during the call.
//
//go:linkname runtimeCgocall runtime.cgocall
//go:noescape
func runtimeCgocall(fn uintptr, arg unsafe.Pointer) int32
