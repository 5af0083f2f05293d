/*
 * crashplugin: a plugin that fails, on request, in every way that takes a
 * process down, for isolate's tests.
 *
 * It answers by the query's last segment (<root>/<behaviour>):
 *   ping    a 48-byte reply with no body
 *   echo    the request's body back, with the request's body format
 *   pid     the worker's process id, as a JSON number
 *   segv    writes through a NULL pointer (SIGSEGV)
 *   abort   calls abort() (SIGABRT)
 *   exit    calls exit(3)
 *   hang    sleeps forever
 *   nap     sleeps 2 s, then replies like ping
 *   hog     allocates and touches 16 MiB blocks until malloc fails, then
 *           says so on stderr and aborts
 *   print   writes "to stdout" to stdout and "to stderr" to stderr, then
 *           replies like ping
 *   flood   writes 1000 lines to stderr, then replies like ping
 *   other   ec 6, as a Glaze registry answers an unknown path
 *
 * Built with -DCP_NAME and -DCP_ROOT (default "crashplugin", "/crash"),
 * -DCP_INIT_RESULT=n (what init returns), -DCP_INIT_SEGV (init faults) or
 * -DCP_INIT_HANG (init sleeps forever).
 * When the environment has CRASHPLUGIN_EVENTS, init and shutdown append
 * "init <pid>" and "shutdown <pid>" lines to the file it names, so that
 * tests can count them across workers.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repe_plugin.h"

#ifndef CP_NAME
#define CP_NAME "crashplugin"
#endif
#ifndef CP_ROOT
#define CP_ROOT "/crash"
#endif
#ifndef CP_INIT_RESULT
#define CP_INIT_RESULT REPE_OK
#endif

static const repe_plugin_data info = {CP_NAME, "2.0.0", CP_ROOT};

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info(void) { return &info; }

static void record(const char* event) {
    const char* path = getenv("CRASHPLUGIN_EVENTS");
    if (path == NULL) return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%s %ld\n", event, (long)getpid());
    if (write(fd, line, (size_t)n) != n) { /* a test will notice */ }
    close(fd);
}

static void nap(time_t s) {
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

repe_result repe_plugin_init(void) {
#ifdef CP_INIT_SEGV
    *(volatile int*)0 = 1;
#endif
#ifdef CP_INIT_HANG
    for (;;) nap(1000);
#endif
    record("init");
    return CP_INIT_RESULT;
}

void repe_plugin_shutdown(void) { record("shutdown"); }

/* The reply: one buffer per thread, grown as needed; the host copies it
 * before this thread calls again. */
static _Thread_local unsigned char* out;
static _Thread_local size_t out_cap;

static uint64_t get_u64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_u64(unsigned char* p, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8) p[i] = (unsigned char)v;
}

static repe_buffer reply(uint64_t id, uint32_t ec, uint16_t format, const void* body, uint64_t bl) {
    if (out_cap < 48 + bl) {
        free(out);
        out_cap = 48 + bl;
        out = malloc(out_cap);
        if (out == NULL) abort();
    }
    memset(out, 0, 48);
    put_u64(out, 48 + bl);
    out[8] = 0x07, out[9] = 0x15, out[10] = 1;
    put_u64(out + 16, id);
    put_u64(out + 32, bl);
    out[42] = (unsigned char)format, out[43] = (unsigned char)(format >> 8);
    for (int i = 0; i < 4; i++) out[44 + i] = (unsigned char)(ec >> (8 * i));
    if (bl) memcpy(out + 48, body, bl);
    return (repe_buffer){(const char*)out, 48 + bl};
}

static int is(const char* seg, size_t n, const char* want) { return strlen(want) == n && memcmp(seg, want, n) == 0; }

repe_buffer repe_plugin_call(const char* request, uint64_t size) {
    const unsigned char* r = (const unsigned char*)request;
    uint64_t id = get_u64(r + 16), ql = get_u64(r + 24), bl = get_u64(r + 32);
    uint16_t bf = (uint16_t)(r[42] | r[43] << 8);
    const char* q = request + 48;
    (void)size;
    size_t i = ql;
    while (i > 0 && q[i - 1] != '/') i--;
    const char* seg = q + i;
    size_t n = ql - i;

    if (is(seg, n, "ping")) return reply(id, 0, 2, NULL, 0);
    if (is(seg, n, "echo")) return reply(id, 0, bf, q + ql, bl);
    if (is(seg, n, "pid")) {
        char body[32];
        int k = snprintf(body, sizeof body, "%ld", (long)getpid());
        return reply(id, 0, 2, body, (uint64_t)k);
    }
    if (is(seg, n, "segv")) *(volatile int*)0 = 1;
    if (is(seg, n, "abort")) abort();
    if (is(seg, n, "exit")) exit(3);
    if (is(seg, n, "hang"))
        for (;;) nap(1000);
    if (is(seg, n, "nap")) {
        nap(2);
        return reply(id, 0, 2, NULL, 0);
    }
    if (is(seg, n, "hog")) {
        size_t mib = 0;
        for (;;) {
            unsigned char* block = malloc(16 << 20);
            if (block == NULL) {
                fprintf(stderr, "hog: out of memory after %zu MiB\n", mib);
                fflush(stderr);
                abort();
            }
            memset(block, 1, 16 << 20);
            mib += 16;
        }
    }
    if (is(seg, n, "print")) {
        printf("to stdout\n");
        fflush(stdout);
        fprintf(stderr, "to stderr\n");
        return reply(id, 0, 2, NULL, 0);
    }
    if (is(seg, n, "flood")) {
        for (int k = 0; k < 1000; k++) fprintf(stderr, "flood line %d\n", k);
        return reply(id, 0, 2, NULL, 0);
    }
    static const char msg[] = "invalid_query";
    return reply(id, 6, 3, msg, sizeof msg - 1);
}
