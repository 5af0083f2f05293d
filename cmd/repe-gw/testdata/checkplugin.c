/*
 * checkplugin: a plugin for the tests of repe-gw check. Built as it is, it
 * behaves as a Glaze registry does: it serves a read of /check ({"ok":true}),
 * answers every other path with ec 6 "invalid_query: <query>", answers no
 * notify, and builds its replies in a buffer of each thread's own.
 *
 * One build flag gives it one fault, so that each test sees one ✗:
 *   -DCP_CRASH            every call writes through NULL (SIGSEGV), as an
 *                         escaping C++ exception ends a process (abort)
 *   -DCP_WRONG_ID         replies carry the request's id plus one
 *   -DCP_SHARED_BUFFER    one static reply buffer for every thread, so that
 *                         concurrent calls overwrite each other's replies
 *   -DCP_NOTIFY_REPLIES   a notify gets a reply too
 *   -DCP_UNKNOWN_OK       an unknown path gets ec 0 and null
 *   -DCP_ROOT='"/check/"' the root path it declares (default "/check")
 *   -DCP_INIT_FAILS       init returns REPE_ERROR_INIT_FAILED
 *   -DCP_SHUTDOWN_CRASH   shutdown writes through NULL
 *   -DCP_NO_INFO          no repe_plugin_info
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repe_frame.h"
#include "repe_plugin.h"

#ifndef CP_ROOT
#define CP_ROOT "/check"
#endif
#define CP_PATH "/check" /* the path it serves, whatever root it declares */

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

#ifndef CP_NO_INFO
static const repe_plugin_data info = {"checkplugin", "0.1.0", CP_ROOT};

const repe_plugin_data* repe_plugin_info(void) { return &info; }
#endif

repe_result repe_plugin_init(void) {
#ifdef CP_INIT_FAILS
    return REPE_ERROR_INIT_FAILED;
#else
    return REPE_OK;
#endif
}

void repe_plugin_shutdown(void) {
#ifdef CP_SHUTDOWN_CRASH
    *(volatile int*)0 = 1;
#endif
}

#ifdef CP_SHARED_BUFFER
/* The fault: one buffer for all threads. Replies longer than it are cut. */
static char shared[4096];

static char* reserve(size_t n) { return n <= sizeof shared ? shared : NULL; }
#else
static _Thread_local char* buf;
static _Thread_local size_t buf_cap;

/* Returns room for n bytes in this thread's buffer, or NULL. The buffer
 * lives as long as the thread: enough for a test plugin. */
static char* reserve(size_t n) {
    if (n > buf_cap) {
        char* p = realloc(buf, n);
        if (p == NULL) return NULL;
        buf = p;
        buf_cap = n;
    }
    return buf;
}
#endif

static repe_buffer reply(uint64_t id, uint32_t ec, uint16_t bf, const char* a, size_t an, const char* b,
                         size_t bn) {
    char* out = reserve(REPE_HEADER_SIZE + an + bn);
    if (out == NULL) return (repe_buffer){NULL, 0};
#ifdef CP_WRONG_ID
    id++;
#endif
    repe_write_reply_header(out, id, ec, bf, an + bn);
    memcpy(out + REPE_HEADER_SIZE, a, an);
    memcpy(out + REPE_HEADER_SIZE + an, b, bn);
    return (repe_buffer){out, REPE_HEADER_SIZE + an + bn};
}

repe_buffer repe_plugin_call(const char* request, uint64_t request_size) {
#ifdef CP_CRASH
    *(volatile int*)0 = 1;
#endif
    repe_request r;
    uint32_t ec = repe_read_request(&r, request, request_size);
    if (ec != REPE_EC_OK) {
        static const char msg[] = "Invalid header";
        return reply(r.header.id, ec, REPE_BODY_UTF8, msg, sizeof msg - 1, "", 0);
    }
#ifndef CP_NOTIFY_REPLIES
    if (r.header.notify) return (repe_buffer){request, 0};
#endif
    size_t ql = (size_t)r.header.query_length;
    if (ql == strlen(CP_PATH) && memcmp(r.query, CP_PATH, ql) == 0) {
        static const char body[] = "{\"ok\":true}";
        return reply(r.header.id, REPE_EC_OK, REPE_BODY_JSON, body, sizeof body - 1, "", 0);
    }
#ifdef CP_UNKNOWN_OK
    return reply(r.header.id, REPE_EC_OK, REPE_BODY_JSON, "null", 4, "", 0);
#else
    static const char prefix[] = "invalid_query: ";
    return reply(r.header.id, REPE_EC_METHOD_NOT_FOUND, REPE_BODY_UTF8, prefix, sizeof prefix - 1, r.query, ql);
#endif
}
