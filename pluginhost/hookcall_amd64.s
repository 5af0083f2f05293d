#include "textflag.h"

// hookTrampoline runs on the system stack, entered from runtime.cgocall with
// the System V ABI: DI holds a *hookFrame {fn, ud, r1, info...} (hookcall.go).
// It calls fn(ud, &frame.info): the info lives in the frame, on the
// goroutine's stack, and its address is taken here, where the stack can no
// longer move, so that a hook call allocates nothing.
GLOBL ·hookTrampolineABI0(SB), NOPTR|RODATA, $8
DATA ·hookTrampolineABI0(SB)/8, $hookTrampoline(SB)

TEXT hookTrampoline(SB), NOSPLIT|NOFRAME, $0
	PUSHQ BX         // callee-saved: keeps the frame across the call, and realigns SP to 16
	MOVQ  DI, BX
	MOVQ  8(BX), DI  // ud
	LEAQ  24(BX), SI // &info
	MOVQ  0(BX), AX  // fn
	CALL  AX
	MOVQ  AX, 16(BX) // r1
	POPQ  BX
	RET

