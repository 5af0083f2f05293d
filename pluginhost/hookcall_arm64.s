#include "textflag.h"

// hookTrampoline runs on the system stack, entered from runtime.cgocall with
// the AAPCS64 ABI: R0 holds a *hookFrame {fn, ud, r1, info...} (hookcall.go).
// It calls fn(ud, &frame.info): the info lives in the frame, on the
// goroutine's stack, and its address is taken here, where the stack can no
// longer move, so that a hook call allocates nothing. The frame record is
// laid out as in ccallTrampoline (ccall_arm64.s).
GLOBL ·hookTrampolineABI0(SB), NOPTR|RODATA, $8
DATA ·hookTrampolineABI0(SB)/8, $hookTrampoline(SB)

TEXT hookTrampoline(SB), NOSPLIT, $16
	MOVD R0, 8(RSP)  // the frame, across the call
	MOVD R0, R9
	MOVD 8(R9), R0   // ud
	ADD  $24, R9, R1 // &info
	MOVD 0(R9), R10  // fn
	SUB  $16, RSP    // keeps the saved FP out of the callee's reach
	BL   (R10)
	ADD  $16, RSP
	MOVD 8(RSP), R2
	MOVD R0, 16(R2)  // r1
	RET

