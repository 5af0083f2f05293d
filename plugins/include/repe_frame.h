/*
 * repe_frame.h: the REPE frame header, for plugins written in C. Optional: a
 * plugin needs only repe_plugin.h, and may read and write the header bytes
 * itself (plugins/README.md has the table).
 *
 * A REPE frame is a 48-byte little-endian header, then query_length bytes of
 * query, then body_length bytes of body, with no separators (REPE.md §1.1).
 * repe_header is that header, field for field, at the offsets the static
 * assertions below check; the helpers copy it in and out with memcpy, so the
 * frame needs no alignment.
 *
 *   repe_read_request        reads and checks a request, as Glaze does
 *   repe_frame_length        48 + query_length + body_length, unless it overflows
 *   repe_write_reply_header  writes a reply's header, as Glaze lays it out
 *
 * plugins/calculator/calculator.c uses all three.
 */
#ifndef REPE_FRAME_H
#define REPE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "repe_frame.h: repe_header is the wire layout on little-endian targets only"
#endif

#define REPE_HEADER_SIZE 48u
#define REPE_MAGIC 0x1507u /* the spec field; on the wire 07 15 */
#define REPE_VERSION 1u

/* query_format values. */
enum { REPE_QUERY_RAW = 0, REPE_QUERY_JSON_POINTER = 1 };

/* body_format values. */
enum { REPE_BODY_RAW = 0, REPE_BODY_BEVE = 1, REPE_BODY_JSON = 2, REPE_BODY_UTF8 = 3 };

/*
 * The REPE error codes, 0-9 (REPE.md §1.2). Glaze numbers its own errors on
 * from there (14 parse_number_failure, ...); its clients can name codes up to
 * 72 only.
 */
enum {
    REPE_EC_OK = 0,
    REPE_EC_VERSION_MISMATCH = 1,
    REPE_EC_INVALID_HEADER = 2,
    REPE_EC_INVALID_QUERY = 3,
    REPE_EC_INVALID_BODY = 4,
    REPE_EC_PARSE_ERROR = 5,
    REPE_EC_METHOD_NOT_FOUND = 6,
    REPE_EC_TIMEOUT = 7,
    REPE_EC_SEND_ERROR = 8,
    REPE_EC_CONNECTION_FAILURE = 9
};

/* The 48-byte header. Every field is little-endian on the wire. */
typedef struct repe_header {
    uint64_t length;       /*  0: 48 + query_length + body_length */
    uint16_t spec;         /*  8: REPE_MAGIC */
    uint8_t version;       /* 10: REPE_VERSION */
    uint8_t notify;        /* 11: non-zero: the sender wants no reply */
    uint32_t reserved;     /* 12: 0 when written, ignored when read */
    uint64_t id;           /* 16: request id, echoed in the reply */
    uint64_t query_length; /* 24 */
    uint64_t body_length;  /* 32 */
    uint16_t query_format; /* 40: REPE_QUERY_* */
    uint16_t body_format;  /* 42: REPE_BODY_* */
    uint32_t ec;           /* 44: error code, 0 on success */
} repe_header;

#if defined(__cplusplus)
#define REPE_FRAME_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define REPE_FRAME_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
#error "repe_frame.h needs C11 or C++11"
#endif
REPE_FRAME_STATIC_ASSERT(sizeof(repe_header) == 48, "repe_header must be 48 bytes");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, length) == 0, "length at 0");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, spec) == 8, "spec at 8");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, version) == 10, "version at 10");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, notify) == 11, "notify at 11");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, reserved) == 12, "reserved at 12");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, id) == 16, "id at 16");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, query_length) == 24, "query_length at 24");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, body_length) == 32, "body_length at 32");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, query_format) == 40, "query_format at 40");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, body_format) == 42, "body_format at 42");
REPE_FRAME_STATIC_ASSERT(offsetof(repe_header, ec) == 44, "ec at 44");
#undef REPE_FRAME_STATIC_ASSERT

/* A request frame read by repe_read_request. */
typedef struct repe_request {
    repe_header header;
    const char* query; /* header.query_length bytes inside the frame, not NUL-terminated */
    const char* body;  /* header.body_length bytes inside the frame */
} repe_request;

/*
 * Sets *length to 48 + query_length + body_length and returns 1, or returns
 * 0 when that sum does not fit in 64 bits (which Glaze refuses, REPE.md §2.1).
 */
static inline int repe_frame_length(const repe_header* h, uint64_t* length) {
    if (h->query_length > UINT64_MAX - REPE_HEADER_SIZE ||
        h->body_length > UINT64_MAX - REPE_HEADER_SIZE - h->query_length)
        return 0;
    *length = REPE_HEADER_SIZE + h->query_length + h->body_length;
    return 1;
}

/*
 * Reads the size bytes at frame as a request and checks it as Glaze's
 * parse_request does, in its order (REPE.md §2.1). Returns REPE_EC_OK, or
 * the code to answer with:
 *
 *   REPE_EC_INVALID_HEADER    shorter than a header, a bad magic, lengths
 *                             that overflow or that disagree with length
 *   REPE_EC_VERSION_MISMATCH  a version other than 1
 *   REPE_EC_INVALID_BODY      fewer than length bytes
 *
 * r->header is the frame's header whenever size >= 48, and all zero before
 * that, so that an error reply carries the request's id, or 0 as Glaze's
 * does. r->query and r->body are set only on success; bytes after length are
 * ignored, as by Glaze. Answer a malformed frame even when its notify byte is
 * set: that byte cannot be trusted.
 */
static inline uint32_t repe_read_request(repe_request* r, const void* frame, uint64_t size) {
    uint64_t length;
    memset(r, 0, sizeof *r);
    if (frame == NULL || size < REPE_HEADER_SIZE) return REPE_EC_INVALID_HEADER;
    memcpy(&r->header, frame, REPE_HEADER_SIZE);
    if (r->header.spec != REPE_MAGIC) return REPE_EC_INVALID_HEADER;
    if (r->header.version != REPE_VERSION) return REPE_EC_VERSION_MISMATCH;
    if (!repe_frame_length(&r->header, &length) || r->header.length != length) return REPE_EC_INVALID_HEADER;
    if (size < length) return REPE_EC_INVALID_BODY;
    r->query = (const char*)frame + REPE_HEADER_SIZE;
    r->body = r->query + r->header.query_length;
    return REPE_EC_OK;
}

/*
 * Writes the 48-byte header of a reply with a body of body_length bytes to
 * dst, which the body then follows. It is laid out as Glaze's response
 * builder does (REPE.md §3.5): version 1, the request's id, notify 0, no
 * query, length = 48 + body_length. A success has ec REPE_EC_OK and the
 * body's format; an error has its code and REPE_BODY_UTF8, with a message
 * as the body.
 */
static inline void repe_write_reply_header(void* dst, uint64_t id, uint32_t ec, uint16_t body_format,
                                           uint64_t body_length) {
    repe_header h;
    memset(&h, 0, sizeof h);
    h.length = REPE_HEADER_SIZE + body_length;
    h.spec = REPE_MAGIC;
    h.version = REPE_VERSION;
    h.id = id;
    h.body_length = body_length;
    h.body_format = body_format;
    h.ec = ec;
    memcpy(dst, &h, REPE_HEADER_SIZE);
}

#ifdef __cplusplus
}
#endif

#endif /* REPE_FRAME_H */
