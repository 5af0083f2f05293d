/*
 * benchplugin: the least a plugin can do, for measuring the host's call
 * path. repe_plugin_call answers every request with a 48-byte reply carrying
 * its id, from a thread-local buffer as Glaze's plugins do.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <string.h>
#include <time.h>

#include "repe_plugin.h"

static const repe_plugin_data info = {"bench", "1", "/bench"};

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info(void) { return &info; }

static const unsigned char reply_header[48] = {48, 0, 0, 0, 0, 0, 0, 0, 0x07, 0x15, 1, [42] = 2};
static _Thread_local unsigned char reply[48];

repe_buffer repe_plugin_call(const char* request, uint64_t size) {
    memcpy(reply, reply_header, sizeof reply);
    if (size >= 48) memcpy(reply + 16, request + 16, 8); /* the id */
    return (repe_buffer){(const char*)reply, sizeof reply};
}

/*
 * The floor: iters calls of repe_plugin_call from C, each reply copied out as
 * the host copies it, timed with the monotonic clock. Returns nanoseconds.
 */
__attribute__((visibility("default"))) uint64_t bench_loop(const char* request, uint64_t size, uint64_t iters) {
    /* Through a volatile pointer, so that the compiler cannot inline the call. */
    repe_buffer (*volatile call)(const char*, uint64_t) = repe_plugin_call;
    static _Thread_local unsigned char sink[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < iters; i++) {
        repe_buffer r = call(request, size);
        memcpy(sink, r.data, r.size < sizeof sink ? r.size : sizeof sink);
        __asm__ volatile("" : : "r"(sink) : "memory");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
}
