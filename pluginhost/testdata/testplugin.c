/*
 * testplugin: a plugin that misbehaves on request, for pluginhost's tests.
 *
 * How it loads is chosen at compile time:
 *   -DTP_VERSION=n        repe_plugin_interface_version returns n (default 3)
 *   -DTP_NO_VERSION_FN    / -DTP_NO_INFO_FN / -DTP_NO_CALL_FN: leave that symbol out
 *   -DTP_INFO_NULL        repe_plugin_info returns NULL
 *   -DTP_NAME=x / -DTP_VERSION_STR=x / -DTP_ROOT=x: the info strings (NULL allowed)
 *   -DTP_NO_INIT          no repe_plugin_init; -DTP_INIT_RESULT=n: what it returns
 *   -DTP_NO_SHUTDOWN      no repe_plugin_shutdown
 *
 * How it answers is chosen by the query's last segment (<root>/<behaviour>):
 *   ping      a 48-byte reply, no body            echo     the request's body back
 *   empty     no reply (size 0)                    null     NULL data, size 0
 *   nullsize  NULL data, size 64                   garbage  64 bytes of 0xab
 *   short     10 bytes                             version  header version 2
 *   length    length field != size                 parts    length != 48+ql+bl
 *   overflow  ql+bl wraps to size - 48             wrongid  id + 1
 *   big       a valid 4096-byte reply              block    waits for tp_release()
 *   slowecho  echo, after sleeping 100 microseconds
 * Every reply is made whatever the notify flag says, so that the host's
 * handling of replies to notifies can be tested.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repe_plugin.h"

#ifndef TP_VERSION
#define TP_VERSION 3
#endif
#ifndef TP_NAME
#define TP_NAME "testplugin"
#endif
#ifndef TP_VERSION_STR
#define TP_VERSION_STR "0.1.0"
#endif
#ifndef TP_ROOT
#define TP_ROOT "/test"
#endif
#ifndef TP_INIT_RESULT
#define TP_INIT_RESULT REPE_OK
#endif

#define EXPORT __attribute__((visibility("default")))

/* Counters the tests read through dlsym. */
EXPORT atomic_int tp_init_calls;
EXPORT atomic_int tp_shutdown_calls;
EXPORT atomic_int tp_blocked; /* calls waiting in "block" */
/* The host's promises: no call after shutdown, no shutdown during a call. */
EXPORT atomic_int tp_calls_after_shutdown;
EXPORT atomic_int tp_shutdown_during_call;
static atomic_int in_calls;

static const repe_plugin_data info __attribute__((unused)) = {TP_NAME, TP_VERSION_STR, TP_ROOT};

#ifndef TP_NO_VERSION_FN
uint32_t repe_plugin_interface_version(void) { return TP_VERSION; }
#endif

#ifndef TP_NO_INFO_FN
const repe_plugin_data* repe_plugin_info(void) {
#ifdef TP_INFO_NULL
    return NULL;
#else
    return &info;
#endif
}
#endif

#ifndef TP_NO_INIT
repe_result repe_plugin_init(void) {
    atomic_fetch_add(&tp_init_calls, 1);
    return TP_INIT_RESULT;
}
#endif

#ifndef TP_NO_SHUTDOWN
void repe_plugin_shutdown(void) {
    if (atomic_load(&in_calls) != 0) atomic_fetch_add(&tp_shutdown_during_call, 1);
    atomic_fetch_add(&tp_shutdown_calls, 1);
}
#endif

static pthread_mutex_t block_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t block_cv = PTHREAD_COND_INITIALIZER;
static int released;

/* Lets every call waiting in "block" return. */
EXPORT void tp_release(void) {
    pthread_mutex_lock(&block_mu);
    released = 1;
    pthread_cond_broadcast(&block_cv);
    pthread_mutex_unlock(&block_mu);
}

/*
 * Walks the frame-pointer chain, as a profiler or a crash handler in C would:
 * stores where this function returns to, the frame pointer it was called
 * with (its caller's), and the two words of the caller's frame record (the
 * frame pointer and return address of the caller's caller). For the test of
 * the call trampoline, which is that caller.
 */
EXPORT __attribute__((noinline)) void tp_frame_chain(uintptr_t chain[4]) {
    uintptr_t* fp = __builtin_frame_address(0); /* {caller's fp, return address} */
    uintptr_t* caller = (uintptr_t*)fp[0];
    chain[0] = fp[1];
    chain[1] = (uintptr_t)caller;
    chain[2] = caller[0];
    chain[3] = caller[1];
}

static _Thread_local unsigned char out[4096];

static uint64_t get_u64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_u64(unsigned char* p, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8) p[i] = (unsigned char)v;
}

/* A well-formed reply header for a body of bl bytes. */
static void header(uint64_t id, uint64_t bl) {
    memset(out, 0, 48);
    put_u64(out, 48 + bl);
    out[8] = 0x07, out[9] = 0x15, out[10] = 1;
    put_u64(out + 16, id);
    put_u64(out + 32, bl);
    out[42] = 2; /* JSON */
}

static int is(const char* seg, size_t n, const char* want) { return strlen(want) == n && memcmp(seg, want, n) == 0; }

#ifndef TP_NO_CALL_FN
static repe_buffer answer(const char* request, uint64_t size);

repe_buffer repe_plugin_call(const char* request, uint64_t size) {
    atomic_fetch_add(&in_calls, 1);
    if (atomic_load(&tp_shutdown_calls) != 0) atomic_fetch_add(&tp_calls_after_shutdown, 1);
    repe_buffer r = answer(request, size);
    atomic_fetch_sub(&in_calls, 1);
    return r;
}

static repe_buffer answer(const char* request, uint64_t size) {
    const unsigned char* req = (const unsigned char*)request;
    if (size < 48) return (repe_buffer){NULL, 0};
    uint64_t id = get_u64(req + 16), ql = get_u64(req + 24), bl = get_u64(req + 32);
    const char* q = request + 48;
    const char* body = q + ql;
    size_t n = ql;
    while (n > 0 && q[n - 1] != '/') n--;
    const char* seg = q + n;
    size_t sn = ql - n;

    if (is(seg, sn, "ping")) {
        header(id, 0);
        return (repe_buffer){(const char*)out, 48};
    }
    int slow = is(seg, sn, "slowecho");
    if (slow || is(seg, sn, "echo")) {
        if (slow) nanosleep(&(struct timespec){0, 100 * 1000}, NULL);
        if (bl > sizeof out - 48) bl = 0;
        header(id, bl);
        memcpy(out + 48, body, bl);
        return (repe_buffer){(const char*)out, 48 + bl};
    }
    if (is(seg, sn, "empty")) return (repe_buffer){(const char*)out, 0};
    if (is(seg, sn, "null")) return (repe_buffer){NULL, 0};
    if (is(seg, sn, "nullsize")) return (repe_buffer){NULL, 64};
    if (is(seg, sn, "garbage")) {
        memset(out, 0xab, 64);
        return (repe_buffer){(const char*)out, 64};
    }
    if (is(seg, sn, "short")) {
        header(id, 0);
        return (repe_buffer){(const char*)out, 10};
    }
    if (is(seg, sn, "version")) {
        header(id, 0);
        out[10] = 2;
        return (repe_buffer){(const char*)out, 48};
    }
    if (is(seg, sn, "length")) {
        header(id, 4);
        put_u64(out, 48);
        return (repe_buffer){(const char*)out, 52};
    }
    if (is(seg, sn, "parts")) {
        header(id, 4);
        put_u64(out + 24, 2);
        return (repe_buffer){(const char*)out, 52};
    }
    if (is(seg, sn, "overflow")) {
        header(id, 4);
        put_u64(out + 24, UINT64_MAX);
        put_u64(out + 32, 5); /* 48 + (2^64-1) + 5 wraps to 52 */
        return (repe_buffer){(const char*)out, 52};
    }
    if (is(seg, sn, "wrongid")) {
        header(id + 1, 0);
        return (repe_buffer){(const char*)out, 48};
    }
    if (is(seg, sn, "big")) {
        header(id, sizeof out - 48);
        memset(out + 48, ' ', sizeof out - 48);
        return (repe_buffer){(const char*)out, sizeof out};
    }
    if (is(seg, sn, "block")) {
        pthread_mutex_lock(&block_mu);
        atomic_fetch_add(&tp_blocked, 1);
        while (!released) pthread_cond_wait(&block_cv, &block_mu);
        atomic_fetch_sub(&tp_blocked, 1);
        pthread_mutex_unlock(&block_mu);
        header(id, 0);
        return (repe_buffer){(const char*)out, 48};
    }
    return (repe_buffer){NULL, 0};
}

#endif
