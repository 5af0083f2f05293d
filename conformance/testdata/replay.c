/*
 * replay: a plugin that answers with recorded Glaze replies, so that the
 * conformance suite can prove the gateway passes a plugin's bytes through
 * untouched, Glaze's own error texts included.
 *
 * Built with -DREPLAY_FILE='"/path"': a file of recorded exchanges, in the
 * order they were recorded, each as
 *     u64 request length, request bytes, u64 reply length, reply bytes
 * (little-endian; a reply length of 0 means the plugin sent nothing). Each
 * call is answered by the first exchange at or after the last one used whose
 * request bytes equal the call's, so that a replay in order finds its
 * recording even where the same request was sent twice.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repe_plugin.h"

static const repe_plugin_data info = {"replay", "1.0.0", "/calculator"};

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info(void) { return &info; }

struct exchange {
    char* req;
    uint64_t req_len;
    char* res;
    uint64_t res_len;
};

static struct exchange* recorded;
static size_t n_recorded, next;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int read_block(FILE* f, char** data, uint64_t* len) {
    if (fread(len, 8, 1, f) != 1) return 0;
    *data = malloc(*len ? *len : 1);
    return *data != NULL && fread(*data, 1, *len, f) == *len;
}

repe_result repe_plugin_init(void) {
    FILE* f = fopen(REPLAY_FILE, "rb");
    if (f == NULL) return REPE_ERROR_INIT_FAILED;
    struct exchange e;
    while (read_block(f, &e.req, &e.req_len)) {
        if (!read_block(f, &e.res, &e.res_len)) break;
        recorded = realloc(recorded, (n_recorded + 1) * sizeof *recorded);
        if (recorded == NULL) abort();
        recorded[n_recorded++] = e;
    }
    fclose(f);
    return n_recorded > 0 ? REPE_OK : REPE_ERROR_INIT_FAILED;
}

static _Thread_local char out[64 << 10];

repe_buffer repe_plugin_call(const char* req, uint64_t size) {
    pthread_mutex_lock(&mu);
    for (size_t i = next; i < n_recorded; i++) {
        struct exchange* e = &recorded[i];
        if (e->req_len == size && memcmp(e->req, req, size) == 0 && e->res_len <= sizeof out) {
            next = i + 1;
            memcpy(out, e->res, e->res_len);
            pthread_mutex_unlock(&mu);
            return (repe_buffer){out, e->res_len};
        }
    }
    pthread_mutex_unlock(&mu);
    /* No recording: a reply the suite will not mistake for Glaze's. */
    static const char none[] = "replay: no recorded exchange for this request";
    uint64_t length = 48 + sizeof none - 1, bl = sizeof none - 1, id;
    memcpy(&id, req + 16, 8);
    memset(out, 0, 48);
    memcpy(out, &length, 8);
    out[8] = 0x07, out[9] = 0x15, out[10] = 1;
    memcpy(out + 16, &id, 8);
    memcpy(out + 32, &bl, 8);
    out[42] = 3;
    out[44] = 5;
    memcpy(out + 48, none, bl);
    return (repe_buffer){out, length};
}
