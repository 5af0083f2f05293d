/*
 * audit: a repe-gw hook plugin that writes one JSON line per request to a
 * file in its data directory:
 *
 *   {"conn":3,"id":7,"query":"/calculator/add","ec":0,"duration_ns":812,"reply_bytes":52}
 *
 * Config (its entry's config: mapping):
 *   file   the file's name within the data directory (default "audit.jsonl")
 *
 * on_response only queues the line: a thread of the plugin's own writes the
 * queue out, so a request never waits for the disk. on_shutdown flushes and
 * syncs what has been queued; destroy, after the last request, writes the
 * rest, syncs and closes the file. Should the queue reach MAX_QUEUED lines
 * (the disk cannot keep up), further lines are dropped and counted, and the
 * count is logged.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repe_gateway.h"

#define MAX_QUEUED (1 << 20)

typedef struct line {
    struct line* next;
    size_t len;
    char text[];
} line;

typedef struct audit {
    const repe_host_context* ctx;
    FILE* f;
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t wake, synced;
    line *head, *tail;
    size_t queued;
    unsigned long long dropped;
    int stop;
    /* sync_asked counts the syncs asked for, sync_done those done. */
    unsigned sync_asked, sync_done;
} audit;

static audit au = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .synced = PTHREAD_COND_INITIALIZER};

/* escape appends s as the inside of a JSON string to out, and returns the new end. */
static char* escape(char* out, const char* s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 15];
            out += 6;
        } else {
            *out++ = (char)c;
        }
    }
    return out;
}

static void on_response(void* ud, const repe_response_info* r) {
    audit* a = ud;
    line* l = malloc(sizeof *l + 200 + 6 * r->query_len);
    if (!l) {
        pthread_mutex_lock(&a->mu);
        a->dropped++;
        pthread_mutex_unlock(&a->mu);
        return;
    }
    char* p = l->text;
    p += sprintf(p, "{\"conn\":%llu,\"id\":%llu,\"query\":\"", (unsigned long long)r->conn_id, (unsigned long long)r->id);
    p = escape(p, r->query, r->query_len);
    p += sprintf(p, "\",\"ec\":%u,\"duration_ns\":%llu,\"reply_bytes\":%llu}\n", (unsigned)r->ec,
                 (unsigned long long)r->duration_ns, (unsigned long long)r->reply_bytes);
    l->len = (size_t)(p - l->text);
    l->next = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->queued >= MAX_QUEUED) {
        a->dropped++;
        pthread_mutex_unlock(&a->mu);
        free(l);
        return;
    }
    if (a->tail) a->tail->next = l;
    else a->head = l;
    a->tail = l;
    a->queued++;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

/* writer writes the queue out until stop, syncing when asked. */
static void* writer(void* arg) {
    audit* a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->stop && a->sync_done == a->sync_asked) pthread_cond_wait(&a->wake, &a->mu);
        line* batch = a->head;
        a->head = a->tail = NULL;
        a->queued = 0;
        unsigned asked = a->sync_asked;
        int stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        while (batch) {
            line* next = batch->next;
            fwrite(batch->text, 1, batch->len, a->f);
            free(batch);
            batch = next;
        }
        if (asked != a->sync_done || stop) {
            fflush(a->f);
            fsync(fileno(a->f));
        }
        pthread_mutex_lock(&a->mu);
        if (asked != a->sync_done) {
            a->sync_done = asked;
            pthread_cond_broadcast(&a->synced);
        }
        if (stop && !a->head) break;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void on_shutdown(void* ud) {
    audit* a = ud;
    pthread_mutex_lock(&a->mu);
    unsigned want = ++a->sync_asked;
    pthread_cond_signal(&a->wake);
    while (a->sync_done != want) pthread_cond_wait(&a->synced, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

static void destroy(void* ud) {
    audit* a = ud;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->writer, NULL);
    fclose(a->f);
    if (a->dropped > 0) {
        char msg[96];
        int n = snprintf(msg, sizeof msg, "%llu audit lines dropped: the file could not keep up", a->dropped);
        a->ctx->log(a->ctx->host, REPE_LOG_WARN, msg, (size_t)n);
    }
}

/* file_name reads the "file" key of the config into out, or the default. */
static void file_name(const char* j, size_t n, char* out, size_t cap) {
    const char* key = "\"file\"";
    size_t k = strlen(key), i = 0;
    snprintf(out, cap, "audit.jsonl");
    while (i + k <= n && memcmp(j + i, key, k) != 0) i++;
    if (i + k > n) return;
    i += k;
    while (i < n && j[i] != '"') i++;
    size_t start = ++i;
    while (i < n && j[i] != '"') i++;
    if (i < n && i > start && i - start < cap && !memchr(j + start, '/', i - start)) {
        memcpy(out, j + start, i - start);
        out[i - start] = 0;
    }
}

REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* ctx) {
    if (abi_version != REPE_GATEWAY_ABI_VERSION) return 1;
    char name[256], path[4096];
    file_name(ctx->config_json, ctx->config_json_len, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", ctx->data_dir, name);
    au.ctx = ctx;
    au.f = fopen(path, "a");
    if (!au.f) {
        char msg[4200];
        int n = snprintf(msg, sizeof msg, "cannot open %s", path);
        ctx->log(ctx->host, REPE_LOG_ERROR, msg, (size_t)n);
        return 1;
    }
    if (pthread_create(&au.writer, NULL, writer, &au) != 0) {
        fclose(au.f);
        return 1;
    }
    char msg[4200];
    int n = snprintf(msg, sizeof msg, "auditing to %s", path);
    ctx->log(ctx->host, REPE_LOG_INFO, msg, (size_t)n);
    hooks->user_data = &au;
    hooks->on_response = on_response;
    hooks->on_shutdown = on_shutdown;
    hooks->destroy = destroy;
    return 0;
}
