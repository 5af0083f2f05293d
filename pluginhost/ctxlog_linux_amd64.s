#include "textflag.h"

// ctxLog is repe_host_context.log (context.go), called by plugin code on any
// thread with the System V ABI: DI host (a *logSink: fd at 0, dropped at 8),
// SI level, DX msg, CX msg_len. It never enters Go: it sends one datagram,
// {level int32, flags uint32} then the message, with sendmsg(MSG_DONTWAIT |
// MSG_NOSIGNAL) on the sink's socket, so it neither blocks nor raises
// SIGPIPE. A message longer than maxLogMessage is cut there and flagged; a
// datagram the socket has no room for is counted in dropped.
//
// Stack, 104 bytes: header 0-7, iovec[2] 8-39, msghdr 40-95.
GLOBL ·ctxLogABI0(SB), NOPTR|RODATA, $8
DATA ·ctxLogABI0(SB)/8, $ctxLog(SB)

TEXT ctxLog(SB), NOSPLIT|NOFRAME, $0
	SUBQ  $104, SP
	MOVL  SI, 0(SP)    // level
	MOVL  $0, 4(SP)    // flags
	CMPQ  CX, $4088    // maxLogMessage
	JLS   fits
	MOVQ  $4088, CX
	MOVL  $1, 4(SP)    // logTruncated
fits:
	LEAQ  0(SP), AX
	MOVQ  AX, 8(SP)    // iov[0].base: the header
	MOVQ  $8, 16(SP)   // iov[0].len
	MOVQ  DX, 24(SP)   // iov[1].base: the message
	MOVQ  CX, 32(SP)   // iov[1].len
	MOVQ  $0, 40(SP)   // msg_name
	MOVQ  $0, 48(SP)   // msg_namelen
	LEAQ  8(SP), AX
	MOVQ  AX, 56(SP)   // msg_iov
	MOVQ  $2, 64(SP)   // msg_iovlen
	MOVQ  $0, 72(SP)   // msg_control
	MOVQ  $0, 80(SP)   // msg_controllen
	MOVQ  $0, 88(SP)   // msg_flags
	MOVQ  DI, R8       // host; SYSCALL keeps R8
	MOVQ  0(R8), DI    // fd
	LEAQ  40(SP), SI
	MOVQ  $0x4040, DX  // MSG_DONTWAIT|MSG_NOSIGNAL
	MOVQ  $46, AX      // SYS_sendmsg
	SYSCALL
	TESTQ AX, AX
	JGE   sent
	LOCK
	INCQ  8(R8)        // dropped
sent:
	ADDQ  $104, SP
	RET
