/*
 * identityhook: a hook plugin that lets in only the connections whose TLS
 * client certificate's subject is WANT (built with -DWANT='"CN=..."'), and
 * counts in `seen` the connections on_connect saw with any identity.
 */
#include <stdatomic.h>
#include <string.h>

#include "repe_gateway.h"

REPE_PLUGIN_EXPORT atomic_int seen;

static int32_t on_connect(void* ud, const repe_conn_info* c) {
    (void)ud;
    if (c->tls_identity_len > 0) atomic_fetch_add(&seen, 1);
    size_t n = strlen(WANT);
    return c->tls_identity_len == n && memcmp(c->tls_identity, WANT, n) == 0 ? REPE_HOOK_CONTINUE : REPE_HOOK_REJECT;
}

REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* ctx) {
    (void)ctx;
    if (abi_version != REPE_GATEWAY_ABI_VERSION) return 1;
    hooks->on_connect = on_connect;
    return 0;
}
