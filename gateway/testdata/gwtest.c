/*
 * gwtest: a plugin for the gateway's end-to-end tests.
 *
 * Built with -DGW_ROOT='"/slow"' (default "/gw") and -DGW_NAME. It answers by
 * the query's last segment:
 *   ping     an empty JSON reply at once
 *   echo     the request's body back, any size, with the request's body format
 *   sleep    sleeps 200 ms, then replies like ping; counted as count is
 *   notify   replies like ping even to a notify (which the host must drop)
 *   count    spins briefly while counting the calls inside the plugin at
 *            once, then replies like ping; any body is ignored
 *   inside   replies with the most calls ever inside count at once
 *   fill     replies with as many bytes 'x' as its JSON body says
 *   nap      sleeps as many milliseconds as its JSON body says, then replies
 *            like ping; counted as count is
 *   name     its GW_NAME, as UTF-8: which build answered, across a reload
 *   other    ec 6 "invalid_query: <query>", as a Glaze registry does
 * Built with -DGW_LOG='"/path"', init and shutdown each append a line to
 * that file, so tests can count them across a whole process's life (a path
 * compiled in, not an environment variable: without cgo, Go's Setenv does not
 * reach C's getenv).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repe_plugin.h"

#ifndef GW_ROOT
#define GW_ROOT "/gw"
#endif
#ifndef GW_NAME
#define GW_NAME "gwtest"
#endif

static const repe_plugin_data info = {GW_NAME, "1.0.0", GW_ROOT};

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info(void) { return &info; }

static void record(const char* event) {
#ifdef GW_LOG
    FILE* f = fopen(GW_LOG, "a");
    if (f == NULL) return;
    fprintf(f, "%s %s\n", GW_NAME, event);
    fclose(f);
#else
    (void)event;
#endif
}

repe_result repe_plugin_init(void) {
    record("init");
    return REPE_OK;
}

void repe_plugin_shutdown(void) { record("shutdown"); }

/* The reply buffer: per thread, grown as needed and never shrunk, as Glaze's is. */
static _Thread_local char* out;
static _Thread_local size_t out_cap;

static uint64_t load_u64(const char* p) {
    uint64_t v;
    memcpy(&v, p, 8); /* little-endian hosts only, as the tests run on */
    return v;
}

static char* reply(uint64_t id, uint32_t ec, uint16_t bf, const char* body, uint64_t bl) {
    if (out_cap < 48 + bl) {
        free(out);
        out_cap = 48 + bl;
        out = malloc(out_cap);
        if (out == NULL) abort();
    }
    uint64_t length = 48 + bl;
    uint16_t magic = 0x1507;
    memset(out, 0, 48);
    memcpy(out, &length, 8);
    memcpy(out + 8, &magic, 2);
    out[10] = 1;
    memcpy(out + 16, &id, 8);
    memcpy(out + 32, &bl, 8);
    memcpy(out + 42, &bf, 2);
    memcpy(out + 44, &ec, 4);
    memcpy(out + 48, body, bl);
    return out;
}

static atomic_int inside, most_inside;

static void enter(void) {
    int now = atomic_fetch_add(&inside, 1) + 1;
    int most = atomic_load(&most_inside);
    while (now > most && !atomic_compare_exchange_weak(&most_inside, &most, now)) {
    }
}

static void count_call(void) {
    enter();
    /* Stay inside long enough for an overlapping call to be seen, and short
       enough that the gateway runs these calls inline. */
    for (volatile int i = 0; i < 2000; i++) {
    }
    atomic_fetch_sub(&inside, 1);
}

/* nap sleeps ms milliseconds in full. A signal to the process (the Go
   runtime's preemption signal, SIGCHLD from a worker process) ends a
   nanosleep early, and no SA_RESTART restarts one. */
static void nap(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000 * 1000};
    while (ms > 0 && nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
}

static int last_segment_is(const char* q, uint64_t ql, const char* want) {
    size_t n = strlen(want);
    return ql > n && q[ql - n - 1] == '/' && memcmp(q + ql - n, want, n) == 0;
}

repe_buffer repe_plugin_call(const char* req, uint64_t size) {
    if (size < 48) return (repe_buffer){NULL, 0};
    uint64_t id = load_u64(req + 16), ql = load_u64(req + 24), bl = load_u64(req + 32);
    uint16_t bf;
    memcpy(&bf, req + 42, 2);
    const char* q = req + 48;
    int notify = req[11] != 0;

    if (last_segment_is(q, ql, "notify")) {
        return (repe_buffer){reply(id, 0, 2, "", 0), 48};
    }
    if (last_segment_is(q, ql, "count")) {
        count_call();
    } else if (last_segment_is(q, ql, "inside")) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "%d", atomic_load(&most_inside));
        reply(id, 0, 2, msg, (uint64_t)n);
        return (repe_buffer){out, notify ? 0 : 48 + (uint64_t)n};
    } else if (last_segment_is(q, ql, "fill")) {
        char num[32] = {0};
        memcpy(num, q + ql, bl < sizeof num - 1 ? bl : sizeof num - 1);
        uint64_t n = strtoull(num, NULL, 10);
        char* body = malloc(n ? n : 1);
        if (body == NULL) abort();
        memset(body, 'x', n);
        reply(id, 0, 1, body, n);
        free(body);
        return (repe_buffer){out, notify ? 0 : 48 + n};
    } else if (last_segment_is(q, ql, "nap")) {
        char num[32] = {0};
        memcpy(num, q + ql, bl < sizeof num - 1 ? bl : sizeof num - 1);
        enter();
        nap(strtol(num, NULL, 10));
        atomic_fetch_sub(&inside, 1);
    } else if (last_segment_is(q, ql, "sleep")) {
        enter();
        nap(200);
        atomic_fetch_sub(&inside, 1);
    } else if (last_segment_is(q, ql, "name")) {
        reply(id, 0, 3, GW_NAME, strlen(GW_NAME));
        return (repe_buffer){out, notify ? 0 : 48 + strlen(GW_NAME)};
    } else if (last_segment_is(q, ql, "echo")) {
        reply(id, 0, bf, q + ql, bl);
        return (repe_buffer){out, notify ? 0 : 48 + bl};
    } else if (!last_segment_is(q, ql, "ping")) {
        char msg[256];
        int n = snprintf(msg, sizeof msg, "invalid_query: %.*s", (int)(ql < 200 ? ql : 200), q);
        reply(id, 6, 3, msg, (uint64_t)n);
        return (repe_buffer){out, notify ? 0 : 48 + (uint64_t)n};
    }
    reply(id, 0, 2, "", 0);
    return (repe_buffer){out, notify ? 0 : 48};
}
