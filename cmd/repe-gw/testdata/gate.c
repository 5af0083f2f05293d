/*
 * gate: a test plugin that holds its init, or a call, until the test lets
 * it go, so that tests can order events without guessing how long anything
 * takes.
 *
 * Built with -DGATE_DIR='"/path"', a directory of the test's, and
 * -DGATE_ROOT='"/gate"' (the default) and -DGATE_NAME. It appends each event
 * to GATE_DIR/events, one line each ("<name> init", "<name> wait 3", ...),
 * and waits for files the test creates in GATE_DIR:
 *   init       with -DGATE_HOLD_INIT, repe_plugin_init logs "init", then
 *              returns once GATE_DIR/init-go exists
 *   wait       a call whose query ends in /wait logs "wait <id>", then
 *              replies (the JSON body "released") once GATE_DIR/go exists
 *   echo       the request's body back, with its body format
 *   other      ec 6 "invalid_query: <query>", as a Glaze registry does
 * A wait gives up after a minute, so that a test that fails before it lets
 * go does not leave a process behind for good.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repe_plugin.h"

#ifndef GATE_DIR
#error "build with -DGATE_DIR='\"/path\"'"
#endif
#ifndef GATE_ROOT
#define GATE_ROOT "/gate"
#endif
#ifndef GATE_NAME
#define GATE_NAME "gate"
#endif

static const repe_plugin_data info = {GATE_NAME, "1.0.0", GATE_ROOT};

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info(void) { return &info; }

static void record(const char* event, unsigned long long id, int with_id) {
    FILE* f = fopen(GATE_DIR "/events", "a");
    if (f == NULL) return;
    if (with_id) {
        fprintf(f, "%s %s %llu\n", GATE_NAME, event, id);
    } else {
        fprintf(f, "%s %s\n", GATE_NAME, event);
    }
    fclose(f);
}

/* wait_for returns once the file exists, or after a minute. */
static void wait_for(const char* path) {
    struct timespec d = {0, 1000 * 1000};
    for (int i = 0; i < 60 * 1000 && access(path, F_OK) != 0; i++) {
        nanosleep(&d, NULL);
    }
}

repe_result repe_plugin_init(void) {
    record("init", 0, 0);
#ifdef GATE_HOLD_INIT
    wait_for(GATE_DIR "/init-go");
    record("init done", 0, 0);
#endif
    return REPE_OK;
}

void repe_plugin_shutdown(void) { record("shutdown", 0, 0); }

static _Thread_local char* out;
static _Thread_local size_t out_cap;

static uint64_t load_u64(const char* p) {
    uint64_t v;
    memcpy(&v, p, 8); /* little-endian hosts only, as the tests run on */
    return v;
}

static repe_buffer reply(uint64_t id, uint32_t ec, uint16_t bf, const char* body, uint64_t bl, int notify) {
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
    return (repe_buffer){out, notify ? 0 : length};
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

    if (last_segment_is(q, ql, "wait")) {
        record("wait", (unsigned long long)id, 1);
        wait_for(GATE_DIR "/go");
        return reply(id, 0, 2, "\"released\"", 10, notify);
    }
    if (last_segment_is(q, ql, "echo")) {
        return reply(id, 0, bf, q + ql, bl, notify);
    }
    char msg[256];
    int n = snprintf(msg, sizeof msg, "invalid_query: %.*s", (int)(ql < 200 ? ql : 200), q);
    return reply(id, 6, 3, msg, (uint64_t)n, notify);
}
