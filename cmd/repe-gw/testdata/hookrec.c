/*
 * hookrec: a test hook plugin that records what the gateway asks it, so
 * that tests can tell which instance saw what across reloads.
 *
 * Its config: {"file": "/path", "tag": "a", "fail_init": false}. Each
 * instance appends one line per event to file, "<tag><HOOKREC_BUILD>
 * <event>": init, connect <conn>, request <conn> <id>, response <conn>
 * <id>, close <conn>, shutdown, destroy. Each line is one write to a file
 * opened for appending, so that the lines of every instance are in the
 * order the gateway made the calls. With fail_init true, init fails.
 * -DHOOKREC_BUILD='"2"' makes another build of it (another file content).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repe_gateway.h"

#ifndef HOOKREC_BUILD
#define HOOKREC_BUILD ""
#endif

typedef struct rec {
    FILE* f;
    char tag[64];
    pthread_mutex_t mu;
} rec;

/* json_string copies the string value of key in json (no escapes) into out. */
static int json_string(const char* json, size_t n, const char* key, char* out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char* end = json + n;
    const char* p = strstr(json, pat);
    if (p == NULL || p >= end) return 0;
    p += strlen(pat);
    while (p < end && (*p == ' ' || *p == ':')) p++;
    if (p >= end || *p != '"') return 0;
    p++;
    size_t i = 0;
    while (p < end && *p != '"' && i + 1 < cap) out[i++] = *p++;
    out[i] = 0;
    return 1;
}

static void line(rec* r, const char* fmt, uint64_t a, uint64_t b) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s%s ", r->tag, HOOKREC_BUILD);
    n += snprintf(buf + n, sizeof buf - (size_t)n, fmt, a, b);
    pthread_mutex_lock(&r->mu);
    fputs(buf, r->f);
    fputc('\n', r->f);
    fflush(r->f);
    pthread_mutex_unlock(&r->mu);
}

static int32_t on_connect(void* ud, const repe_conn_info* c) {
    line(ud, "connect %" PRIu64, c->conn_id, 0);
    return REPE_HOOK_CONTINUE;
}

static int32_t on_request(void* ud, const repe_request_info* q) {
    line(ud, "request %" PRIu64 " %" PRIu64, q->conn_id, q->id);
    return REPE_HOOK_CONTINUE;
}

static void on_response(void* ud, const repe_response_info* q) {
    line(ud, "response %" PRIu64 " %" PRIu64, q->conn_id, q->id);
}

static void on_close(void* ud, const repe_conn_info* c) { line(ud, "close %" PRIu64, c->conn_id, 0); }

static void on_shutdown(void* ud) { line(ud, "shutdown", 0, 0); }

static void destroy(void* ud) {
    rec* r = ud;
    line(r, "destroy", 0, 0);
    fclose(r->f);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi, repe_gateway_hooks* hooks, const repe_host_context* ctx) {
    (void)abi;
    char file[1024];
    if (!json_string(ctx->config_json, ctx->config_json_len, "file", file, sizeof file)) return 1;
    rec* r = calloc(1, sizeof *r);
    if (r == NULL) return 1;
    if (!json_string(ctx->config_json, ctx->config_json_len, "tag", r->tag, sizeof r->tag)) strcpy(r->tag, "hookrec");
    r->f = fopen(file, "a");
    if (r->f == NULL) {
        free(r);
        return 1;
    }
    pthread_mutex_init(&r->mu, NULL);
    line(r, "init", 0, 0);
    const char* fail = strstr(ctx->config_json, "\"fail_init\":true");
    if (fail != NULL && fail < ctx->config_json + ctx->config_json_len) {
        line(r, "init failed", 0, 0);
        fclose(r->f);
        free(r);
        return 1;
    }
    hooks->user_data = r;
    hooks->on_connect = on_connect;
    hooks->on_request = on_request;
    hooks->on_response = on_response;
    hooks->on_close = on_close;
    hooks->on_shutdown = on_shutdown;
    hooks->destroy = destroy;
    return 0;
}
