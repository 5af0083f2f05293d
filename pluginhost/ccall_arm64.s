#include "textflag.h"

// ccallTrampoline runs on the system stack, entered from runtime.cgocall with
// the AAPCS64 ABI: R0 holds a *cframe {fn, a1, a2, r1, r2} (ccall.go).
GLOBL ·ccallTrampolineABI0(SB), NOPTR|RODATA, $8
DATA ·ccallTrampolineABI0(SB)/8, $ccallTrampoline(SB)

TEXT ccallTrampoline(SB), NOSPLIT, $0
	SUB  $16, RSP      // keeps SP 16-byte aligned for the call
	MOVD R0, 8(RSP)    // the frame, across the call
	MOVD R0, R9
	MOVD 8(R9), R0     // a1
	MOVD 16(R9), R1    // a2
	MOVD 0(R9), R10    // fn
	BL   (R10)
	MOVD 8(RSP), R2
	ADD  $16, RSP
	MOVD R0, 24(R2)    // r1
	MOVD R1, 32(R2)    // r2
	RET
