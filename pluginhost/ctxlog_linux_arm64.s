#include "textflag.h"

// ctxLog is repe_host_context.log (context.go), called by plugin code on any
// thread with the AAPCS64 ABI: R0 host (a *logSink: fd at 0, dropped at 8),
// R1 level, R2 msg, R3 msg_len. It never enters Go: it sends one datagram,
// {level int32, flags uint32} then the message, with sendmsg(MSG_DONTWAIT |
// MSG_NOSIGNAL) on the sink's socket, so it neither blocks nor raises
// SIGPIPE. A message longer than maxLogMessage is cut there and flagged; a
// datagram the socket has no room for is counted in dropped.
//
// Stack, 112 bytes (SP stays 16-aligned): header 0-7, iovec[2] 8-39,
// msghdr 40-95.
GLOBL ·ctxLogABI0(SB), NOPTR|RODATA, $8
DATA ·ctxLogABI0(SB)/8, $ctxLog(SB)

TEXT ctxLog(SB), NOSPLIT|NOFRAME, $0
	SUB   $112, RSP
	MOVW  R1, 0(RSP)      // level
	MOVW  ZR, 4(RSP)      // flags
	MOVD  $4088, R4       // maxLogMessage
	CMP   R4, R3
	BLS   fits
	MOVD  R4, R3
	MOVD  $1, R5
	MOVW  R5, 4(RSP)      // logTruncated
fits:
	MOVD  RSP, R5
	MOVD  R5, 8(RSP)      // iov[0].base: the header
	MOVD  $8, R5
	MOVD  R5, 16(RSP)     // iov[0].len
	MOVD  R2, 24(RSP)     // iov[1].base: the message
	MOVD  R3, 32(RSP)     // iov[1].len
	MOVD  ZR, 40(RSP)     // msg_name
	MOVD  ZR, 48(RSP)     // msg_namelen
	ADD   $8, RSP, R5
	MOVD  R5, 56(RSP)     // msg_iov
	MOVD  $2, R5
	MOVD  R5, 64(RSP)     // msg_iovlen
	MOVD  ZR, 72(RSP)     // msg_control
	MOVD  ZR, 80(RSP)     // msg_controllen
	MOVD  ZR, 88(RSP)     // msg_flags
	MOVD  R0, R9          // host
	MOVD  0(R9), R0       // fd
	ADD   $40, RSP, R1
	MOVD  $0x4040, R2     // MSG_DONTWAIT|MSG_NOSIGNAL
	MOVD  $211, R8        // SYS_sendmsg
	SVC   $0
	TBZ   $63, R0, sent
	ADD   $8, R9, R10     // dropped
again:
	LDAXR (R10), R11
	ADD   $1, R11
	STLXR R11, (R10), R12
	CBNZ  R12, again
sent:
	ADD   $112, RSP
	RET
