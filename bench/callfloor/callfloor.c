/*
 * callfloor: the plugin-call floor of the REPE benchmarks. It loads a plugin
 * as a host does (dlopen, the interface version, init), builds one request
 * frame and calls repe_plugin_call on it in a tight loop, from C, for a given
 * time. What one call costs there is what the plugin itself costs: no
 * server, socket, framing or Go can make it cheaper. bench/report adds it to
 * the echo floor to give the least CPU per request a gateway could use.
 *
 *   callfloor PLUGIN.so QUERY [BODYFILE] [SECONDS]
 *
 * The body, when given, is sent raw (body_format 0), as repe-bench
 * --body-format raw sends it. Every reply is checked: a whole frame, ec 0,
 * the request's id; the first bad one fails the run. The reply is read but
 * not copied (copying it out is the host's cost, not the plugin's).
 *
 * It prints one JSON object: the calls made and, per call, the CPU time of
 * the calling thread (user + system, CLOCK_THREAD_CPUTIME_ID, as comparable
 * to the server CPU time repe-bench reads from /proc) and the wall time.
 * Exit status 0, or 1 with a one-line reason on standard error.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repe_plugin.h"

/* REPE header fields used here (REPE.md §1.1), little-endian. */
enum {
    HEADER_SIZE = 48,
    OFF_LENGTH = 0,
    OFF_SPEC = 8,
    OFF_VERSION = 10,
    OFF_ID = 16,
    OFF_QUERY_LENGTH = 24,
    OFF_BODY_LENGTH = 32,
    OFF_QUERY_FORMAT = 40,
    OFF_BODY_FORMAT = 42,
    OFF_EC = 44,
};

/* Batches of calls between clock reads last at least this long, so that
 * reading the clock costs nothing measurable. */
#define MIN_BATCH_NS 10000000LL

static void die(const char* what, const char* detail) {
    fprintf(stderr, "callfloor: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void put_le(unsigned char* p, uint64_t v, int n) {
    for (int i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)v;
}

static uint64_t get_le(const unsigned char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static long long now_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static unsigned char* read_file(const char* path, uint64_t* size) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) die("cannot open the body file", path);
    size_t cap = 1 << 16, len = 0;
    unsigned char* b = malloc(cap);
    for (;;) {
        if (b == NULL) die("out of memory reading", path);
        len += fread(b + len, 1, cap - len, f);
        if (len < cap) break;
        cap *= 2;
        b = realloc(b, cap);
    }
    if (ferror(f)) die("cannot read the body file", path);
    fclose(f);
    *size = len;
    return b;
}

typedef repe_buffer (*call_fn)(const char*, uint64_t);

/* check fails the run unless r is a whole reply frame to request id with ec 0. */
static void check(repe_buffer r, uint64_t id) {
    const unsigned char* p = (const unsigned char*)r.data;
    if (r.size < HEADER_SIZE || p == NULL) die("the plugin returned no reply", NULL);
    if (get_le(p + OFF_LENGTH, 8) != r.size || get_le(p + OFF_SPEC, 2) != 0x1507 || p[OFF_VERSION] != 1)
        die("the plugin returned a malformed reply", NULL);
    if (get_le(p + OFF_ID, 8) != id) die("the plugin's reply carries another id", NULL);
    uint32_t ec = (uint32_t)get_le(p + OFF_EC, 4);
    if (ec != 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "ec %u", ec);
        die("the plugin answered an error", msg);
    }
}

int main(int argc, char** argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: callfloor PLUGIN.so QUERY [BODYFILE] [SECONDS]\n");
        return 2;
    }
    const char *path = argv[1], *query = argv[2];
    uint64_t body_len = 0;
    unsigned char* body = NULL;
    if (argc >= 4 && argv[3][0] != '\0') body = read_file(argv[3], &body_len);
    double seconds = argc == 5 ? atof(argv[4]) : 1.0;
    if (!(seconds > 0)) die("SECONDS must be positive", argv[argc - 1]);

    void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) die("dlopen", dlerror());
    uint32_t (*version)(void) = (uint32_t (*)(void))dlsym(lib, "repe_plugin_interface_version");
    repe_result (*init)(void) = (repe_result (*)(void))dlsym(lib, "repe_plugin_init");
    void (*shutdown)(void) = (void (*)(void))dlsym(lib, "repe_plugin_shutdown");
    call_fn call = (call_fn)dlsym(lib, "repe_plugin_call");
    if (version == NULL || call == NULL) die("not a REPE plugin", path);
    if (version() != REPE_PLUGIN_INTERFACE_VERSION) die("wrong plugin interface version", path);
    if (init != NULL && init() != REPE_OK) die("the plugin's init failed", path);

    uint64_t query_len = strlen(query), length = HEADER_SIZE + query_len + body_len;
    unsigned char* req = calloc(1, length);
    if (req == NULL) die("out of memory", NULL);
    put_le(req + OFF_LENGTH, length, 8);
    put_le(req + OFF_SPEC, 0x1507, 2);
    req[OFF_VERSION] = 1;
    put_le(req + OFF_QUERY_LENGTH, query_len, 8);
    put_le(req + OFF_BODY_LENGTH, body_len, 8);
    put_le(req + OFF_QUERY_FORMAT, 1, 2); /* JSON pointer */
    put_le(req + OFF_BODY_FORMAT, 0, 2);  /* raw, as repe-bench sends a body-less or raw request */
    memcpy(req + HEADER_SIZE, query, query_len);
    if (body_len > 0) memcpy(req + HEADER_SIZE + query_len, body, body_len);

    /* A warm-up of a tenth of the run (caches, page faults of the reply
     * buffer, the plugin's lazy set-up), then the measured calls, in
     * batches that grow until one lasts MIN_BATCH_NS. */
    uint64_t id = 1, calls = 0, batch = 1;
    long long warm_end = now_ns(CLOCK_MONOTONIC) + (long long)(seconds * 1e8);
    while (now_ns(CLOCK_MONOTONIC) < warm_end) {
        put_le(req + OFF_ID, id, 8);
        check(call((const char*)req, length), id);
        id++;
    }
    long long wall0 = now_ns(CLOCK_MONOTONIC), cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    long long end = wall0 + (long long)(seconds * 1e9), wall = wall0;
    while (wall < end) {
        long long t0 = wall;
        for (uint64_t i = 0; i < batch; i++) {
            put_le(req + OFF_ID, id, 8);
            check(call((const char*)req, length), id);
            id++;
        }
        calls += batch;
        wall = now_ns(CLOCK_MONOTONIC);
        if (wall - t0 < MIN_BATCH_NS) batch *= 2;
    }
    long long cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    if (shutdown != NULL) shutdown();

    printf("{\"plugin\": \"%s\", \"query\": \"%s\", \"body_bytes\": %llu, \"calls\": %llu, "
           "\"cpu_ns_per_call\": %.1f, \"wall_ns_per_call\": %.1f}\n",
           path, query, (unsigned long long)body_len, (unsigned long long)calls,
           (double)cpu / (double)calls, (double)(wall - wall0) / (double)calls);
    return 0;
}
