#include "textflag.h"

// ccallTrampoline runs on the system stack, entered from runtime.cgocall with
// the System V ABI: DI holds a *cframe {fn, a1, a2, r1, r2} (ccall.go).
GLOBL ·ccallTrampolineABI0(SB), NOPTR|RODATA, $8
DATA ·ccallTrampolineABI0(SB)/8, $ccallTrampoline(SB)

TEXT ccallTrampoline(SB), NOSPLIT|NOFRAME, $0
	PUSHQ BX        // callee-saved: keeps the frame across the call, and realigns SP to 16
	MOVQ  DI, BX
	MOVQ  8(BX), DI // a1
	MOVQ  16(BX), SI // a2
	MOVQ  0(BX), AX // fn
	CALL  AX
	MOVQ  AX, 24(BX) // r1
	MOVQ  DX, 32(BX) // r2
	POPQ  BX
	RET
