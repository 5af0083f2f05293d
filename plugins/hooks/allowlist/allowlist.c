/*
 * allowlist: a repe-gw hook plugin that lets in only connections from the
 * networks its config lists, and closes the others before anything is read.
 *
 * Config (its entry's config: mapping):
 *   allow   a list of networks in CIDR notation, IPv4 or IPv6
 *           ("127.0.0.0/8", "::1/128"); an address alone is one host.
 *
 * The list is required, and an empty one lets nobody in: an allow list
 * fails closed. An entry that does not parse refuses the plugin at load,
 * with a log line naming it.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repe_gateway.h"

#define MAX_NETS 256

typedef struct net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
} net;

typedef struct allowlist {
    net nets[MAX_NETS];
    int n;
} allowlist;

static allowlist list;

/* parse_net reads "addr[/bits]" of n bytes into out; 0 on success. */
static int parse_net(const char* s, size_t n, net* out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char* slash = strchr(buf, '/');
    if (slash) *slash = 0;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char* end;
        long bits = strtol(slash + 1, &end, 10);
        if (*end != 0 || slash[1] == 0 || bits < 0 || bits > out->bits) return -1;
        out->bits = (int)bits;
    }
    return 0;
}

/* matches reports whether the first bits of a and b agree. */
static int matches(const unsigned char* a, const unsigned char* b, int bits) {
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole) != 0) return 0;
    if (rest == 0) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static int32_t on_connect(void* ud, const repe_conn_info* c) {
    allowlist* l = ud;
    /* remote is "ip:port" or "[ip6]:port". */
    const char* s = c->remote;
    size_t n = c->remote_len;
    while (n > 0 && s[n - 1] != ':') n--;
    if (n == 0) return REPE_HOOK_REJECT;
    n--;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    net peer;
    if (parse_net(s, n, &peer) != 0) return REPE_HOOK_REJECT;
    /* An IPv4 peer on an IPv6 socket shows as ::ffff:a.b.c.d. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (peer.family == AF_INET6 && memcmp(peer.addr, mapped, 12) == 0) {
        memmove(peer.addr, peer.addr + 12, 4);
        peer.family = AF_INET;
    }
    for (int i = 0; i < l->n; i++) {
        if (l->nets[i].family == peer.family && matches(l->nets[i].addr, peer.addr, l->nets[i].bits)) {
            return REPE_HOOK_CONTINUE;
        }
    }
    return REPE_HOOK_REJECT;
}

/* complain logs text, then n bytes of arg, as an error. */
static void complain(const repe_host_context* ctx, const char* text, const char* arg, int n) {
    char msg[256];
    int len = snprintf(msg, sizeof msg, "%s%.*s", text, n, arg);
    if (len > 0) ctx->log(ctx->host, REPE_LOG_ERROR, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1);
}

/* load reads the "allow" list of the config into l; 0 on success. */
static int load(const repe_host_context* ctx, allowlist* l) {
    const char* j = ctx->config_json;
    size_t n = ctx->config_json_len;
    const char* key = "\"allow\"";
    size_t k = strlen(key), i = 0;
    while (i + k <= n && memcmp(j + i, key, k) != 0) i++;
    if (i + k > n) {
        complain(ctx, "config has no allow list", "", 0);
        return -1;
    }
    i += k;
    while (i < n && j[i] != '[') i++;
    if (i == n) return -1;
    i++;
    while (i < n && j[i] != ']') {
        if (j[i] != '"') {
            i++;
            continue;
        }
        size_t start = ++i;
        while (i < n && j[i] != '"') i++;
        if (l->n == MAX_NETS) {
            complain(ctx, "more networks than the allow list holds", "", 0);
            return -1;
        }
        if (parse_net(j + start, i - start, &l->nets[l->n]) != 0) {
            complain(ctx, "allow: not a network: ", j + start, (int)(i - start));
            return -1;
        }
        l->n++;
        i++;
    }
    return 0;
}

REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* ctx) {
    if (abi_version != REPE_GATEWAY_ABI_VERSION) return 1;
    list.n = 0;
    if (load(ctx, &list) != 0) return 1;
    hooks->user_data = &list;
    hooks->on_connect = on_connect;
    return 0;
}
