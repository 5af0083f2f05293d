/*
 * noophook: a hook plugin whose on_request lets everything through and does
 * nothing else, so that a benchmark measures what calling a hook costs.
 * Built with -DNOOP_RESPONSE, it has an on_response that does nothing too.
 */
#include "repe_gateway.h"

static int32_t on_request(void* ud, const repe_request_info* r) {
    (void)ud;
    (void)r;
    return REPE_HOOK_CONTINUE;
}

#ifdef NOOP_RESPONSE
static void on_response(void* ud, const repe_response_info* r) {
    (void)ud;
    (void)r;
}
#endif

REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* ctx) {
    (void)ctx;
    if (abi_version != REPE_GATEWAY_ABI_VERSION) return 1;
    hooks->on_request = on_request;
#ifdef NOOP_RESPONSE
    hooks->on_response = on_response;
#endif
    return 0;
}
