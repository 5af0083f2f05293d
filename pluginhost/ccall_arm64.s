#include "textflag.h"

// ccallTrampoline runs on the system stack, entered from runtime.cgocall with
// the AAPCS64 ABI: R0 holds a *cframe {fn, a1, a2, r1, r2} (ccall.go).
GLOBL ·ccallTrampolineABI0(SB), NOPTR|RODATA, $8
DATA ·ccallTrampolineABI0(SB)/8, $ccallTrampoline(SB)

// The frame is declared, 16 bytes of locals, and the assembler's prologue
// lays it out: LR at 0(RSP), the caller's FP at -8(RSP), and FP pointing at
// that pair, which is the AAPCS64 frame record through which C code (a
// profiler, a crash handler) walks back out of the plugin. The cframe pointer
// lives in the locals.
//
// Go saves FP below SP because a Go callee's frame has room reserved for it
// there; a C function stores its own frame record below SP instead. So the
// call is made with SP 16 bytes lower, as the runtime's libc trampolines do,
// and the saved FP is intact both during the call and when the epilogue
// restores it.
TEXT ccallTrampoline(SB), NOSPLIT, $16
	MOVD R0, 8(RSP)    // the frame, across the call
	MOVD R0, R9
	MOVD 8(R9), R0     // a1
	MOVD 16(R9), R1    // a2
	MOVD 0(R9), R10    // fn
	SUB  $16, RSP      // keeps the saved FP out of the callee's reach
	BL   (R10)
	ADD  $16, RSP
	MOVD 8(RSP), R2
	MOVD R0, 24(R2)    // r1
	MOVD R1, 32(R2)    // r2
	RET
