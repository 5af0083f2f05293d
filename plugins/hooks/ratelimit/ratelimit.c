/*
 * ratelimit: a repe-gw hook plugin that limits requests with token buckets,
 * one per connection and one per remote address.
 *
 * Config (its entry's config: mapping):
 *   rate           tokens per second added to each bucket (default 100)
 *   burst          what a bucket holds when full (default 20)
 *   address_rate   the per-address buckets' rate (default: rate)
 *   address_burst  the per-address buckets' burst (default: burst)
 *
 * A request takes one token from its connection's bucket and one from its
 * address's; it is rejected, with "rate limit exceeded", when either is
 * empty, and then takes none. Buckets start full. An address's bucket
 * outlives its connections until it is full again, so reconnecting does
 * not refill it.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repe_gateway.h"

#define TABLE 4096

typedef struct bucket {
    double tokens;
    uint64_t last_ns;
} bucket;

typedef struct addr_entry {
    struct addr_entry* next;
    bucket b;
    int conns; /* open connections from the address */
    size_t len;
    char ip[64];
} addr_entry;

typedef struct conn_entry {
    struct conn_entry* next;
    uint64_t id;
    bucket b;
    addr_entry* addr;
} conn_entry;

typedef struct limiter {
    pthread_mutex_t mu;
    double rate, burst, addr_rate, addr_burst;
    conn_entry* conns[TABLE];
    addr_entry* addrs[TABLE];
} limiter;

static limiter lim = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* refill brings b up to now at rate, up to burst. */
static void refill(bucket* b, double rate, double burst, uint64_t now) {
    b->tokens += (double)(now - b->last_ns) * rate / 1e9;
    if (b->tokens > burst) b->tokens = burst;
    b->last_ns = now;
}

static size_t hash(const void* p, size_t n) {
    const unsigned char* s = p;
    size_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211u;
    return h % TABLE;
}

/* ip_len returns the length of the address part of "ip:port" or "[ip6]:port". */
static size_t ip_len(const char* remote, size_t n) {
    size_t i = n;
    while (i > 0 && remote[i - 1] != ':') i--;
    return i > 0 ? i - 1 : n;
}

/* number reads the JSON number after "key": in json, or returns def. */
static double number(const char* json, size_t n, const char* key, double def) {
    char pat[64];
    size_t k = (size_t)snprintf(pat, sizeof pat, "\"%s\"", key);
    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(json + i, pat, k) != 0) continue;
        size_t j = i + k;
        while (j < n && (json[j] == ' ' || json[j] == ':' || json[j] == '\t' || json[j] == '\n')) j++;
        char buf[64];
        size_t m = 0;
        while (j < n && m + 1 < sizeof buf && strchr("0123456789.eE+-", json[j])) buf[m++] = json[j++];
        buf[m] = 0;
        char* end;
        double v = strtod(buf, &end);
        return (m > 0 && *end == 0) ? v : def;
    }
    return def;
}

static int32_t on_connect(void* ud, const repe_conn_info* c) {
    limiter* l = ud;
    size_t n = ip_len(c->remote, c->remote_len);
    if (n >= sizeof ((addr_entry*)0)->ip) n = sizeof ((addr_entry*)0)->ip - 1;
    conn_entry* ce = calloc(1, sizeof *ce);
    if (!ce) return REPE_HOOK_REJECT;
    uint64_t now = now_ns();
    pthread_mutex_lock(&l->mu);
    size_t h = hash(c->remote, n);
    addr_entry* a = l->addrs[h];
    while (a && !(a->len == n && memcmp(a->ip, c->remote, n) == 0)) a = a->next;
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a) {
            pthread_mutex_unlock(&l->mu);
            free(ce);
            return REPE_HOOK_REJECT;
        }
        memcpy(a->ip, c->remote, n);
        a->len = n;
        a->b = (bucket){l->addr_burst, now};
        a->next = l->addrs[h];
        l->addrs[h] = a;
    }
    a->conns++;
    ce->id = c->conn_id;
    ce->b = (bucket){l->burst, now};
    ce->addr = a;
    size_t hc = hash(&ce->id, sizeof ce->id);
    ce->next = l->conns[hc];
    l->conns[hc] = ce;
    pthread_mutex_unlock(&l->mu);
    return REPE_HOOK_CONTINUE;
}

static int32_t on_request(void* ud, const repe_request_info* r) {
    limiter* l = ud;
    uint64_t now = now_ns();
    int32_t res = REPE_HOOK_CONTINUE;
    pthread_mutex_lock(&l->mu);
    conn_entry* ce = l->conns[hash(&r->conn_id, sizeof r->conn_id)];
    while (ce && ce->id != r->conn_id) ce = ce->next;
    if (ce) {
        refill(&ce->b, l->rate, l->burst, now);
        refill(&ce->addr->b, l->addr_rate, l->addr_burst, now);
        if (ce->b.tokens >= 1 && ce->addr->b.tokens >= 1) {
            ce->b.tokens -= 1;
            ce->addr->b.tokens -= 1;
        } else {
            res = REPE_HOOK_REJECT;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return res;
}

static void on_close(void* ud, const repe_conn_info* c) {
    limiter* l = ud;
    uint64_t now = now_ns();
    pthread_mutex_lock(&l->mu);
    conn_entry** p = &l->conns[hash(&c->conn_id, sizeof c->conn_id)];
    while (*p && (*p)->id != c->conn_id) p = &(*p)->next;
    conn_entry* ce = *p;
    if (ce) {
        *p = ce->next;
        addr_entry* a = ce->addr;
        free(ce);
        /* An address with no connection left goes once its bucket has
         * refilled: forgetting it sooner would refill it on reconnect. */
        if (--a->conns == 0) {
            refill(&a->b, l->addr_rate, l->addr_burst, now);
            if (a->b.tokens >= l->addr_burst) {
                addr_entry** q = &l->addrs[hash(a->ip, a->len)];
                while (*q != a) q = &(*q)->next;
                *q = a->next;
                free(a);
            }
        }
    }
    pthread_mutex_unlock(&l->mu);
}

static const char* error_message(void* ud) {
    (void)ud;
    return "rate limit exceeded";
}

static void destroy(void* ud) {
    limiter* l = ud;
    for (size_t i = 0; i < TABLE; i++) {
        for (conn_entry* c = l->conns[i]; c;) {
            conn_entry* next = c->next;
            free(c);
            c = next;
        }
        for (addr_entry* a = l->addrs[i]; a;) {
            addr_entry* next = a->next;
            free(a);
            a = next;
        }
        l->conns[i] = NULL;
        l->addrs[i] = NULL;
    }
}

REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* ctx) {
    if (abi_version != REPE_GATEWAY_ABI_VERSION) return 1;
    lim.rate = number(ctx->config_json, ctx->config_json_len, "rate", 100);
    lim.burst = number(ctx->config_json, ctx->config_json_len, "burst", 20);
    lim.addr_rate = number(ctx->config_json, ctx->config_json_len, "address_rate", lim.rate);
    lim.addr_burst = number(ctx->config_json, ctx->config_json_len, "address_burst", lim.burst);
    if (!(lim.rate >= 0 && lim.burst >= 1 && lim.addr_rate >= 0 && lim.addr_burst >= 1)) {
        static const char msg[] = "rate and address_rate must be >= 0, burst and address_burst >= 1";
        ctx->log(ctx->host, REPE_LOG_ERROR, msg, sizeof msg - 1);
        return 1;
    }
    hooks->user_data = &lim;
    hooks->on_connect = on_connect;
    hooks->on_request = on_request;
    hooks->on_close = on_close;
    hooks->error_message = error_message;
    hooks->destroy = destroy;
    return 0;
}
