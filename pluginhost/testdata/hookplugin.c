/*
 * hookplugin: a hook plugin that counts what the host calls, for
 * pluginhost's tests.
 *
 *   -DHP_REPE      also a REPE plugin (root /hp) that exports
 *                  repe_plugin_init_ex, not repe_plugin_init, and answers
 *                  every query with an empty reply
 *   -DHP_INIT_FAIL repe_gateway_hooks_init returns 1
 *   -DHP_NO_ERRMSG no error_message callback
 *   -DHP_FLOOD     init also logs HP_FLOOD_N messages "flood" in a row, more
 *                  than the log socket holds
 *
 * on_request rejects queries that start with "/deny", with the reason
 * "denied: <query>", kept per thread; on_connect rejects remotes that
 * start with "10.". At init it writes "hello" to <data_dir>/hello, keeps
 * its config_json in hp_config and logs "init <name>" at info level, a
 * 5000-byte message at warn level, and "from a thread" from a thread of its
 * own. destroy records in hp_destroy_flag the
 * value of *shutting_down it saw.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "repe_gateway.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT atomic_int hp_connects, hp_requests, hp_responses, hp_closes, hp_shutdowns, hp_destroys;
EXPORT atomic_int hp_destroy_flag = -1;
EXPORT atomic_int hp_last_ec = -1;
EXPORT atomic_llong hp_reply_bytes;
EXPORT char hp_config[256];

static const repe_host_context* ctx;
static _Thread_local char reason[128];
static int user_data_token;

static int32_t on_connect(void* ud, const repe_conn_info* c) {
    if (ud != &user_data_token) return REPE_HOOK_REJECT;
    atomic_fetch_add(&hp_connects, 1);
    return (c->remote_len >= 3 && memcmp(c->remote, "10.", 3) == 0) ? REPE_HOOK_REJECT : REPE_HOOK_CONTINUE;
}

static int32_t on_request(void* ud, const repe_request_info* r) {
    (void)ud;
    atomic_fetch_add(&hp_requests, 1);
    if (r->query_len >= 5 && memcmp(r->query, "/deny", 5) == 0) {
        snprintf(reason, sizeof reason, "denied: %.*s", (int)r->query_len, r->query);
        return REPE_HOOK_REJECT;
    }
    return REPE_HOOK_CONTINUE;
}

static void on_response(void* ud, const repe_response_info* r) {
    (void)ud;
    atomic_store(&hp_last_ec, (int)r->ec);
    atomic_fetch_add(&hp_reply_bytes, (long long)r->reply_bytes);
    atomic_fetch_add(&hp_responses, 1);
}

static void on_close(void* ud, const repe_conn_info* c) {
    (void)ud;
    (void)c;
    atomic_fetch_add(&hp_closes, 1);
}

static const char* error_message(void* ud) {
    (void)ud;
    return reason;
}

static void on_shutdown(void* ud) {
    (void)ud;
    atomic_fetch_add(&hp_shutdowns, 1);
}

static void destroy(void* ud) {
    (void)ud;
    atomic_store(&hp_destroy_flag, (int)*ctx->shutting_down);
    atomic_fetch_add(&hp_destroys, 1);
    ctx->log(ctx->host, REPE_LOG_INFO, "destroyed", 9);
}

#define HP_FLOOD_N 5000

static void* log_from_thread(void* arg) {
    const repe_host_context* c = arg;
    c->log(c->host, REPE_LOG_DEBUG, "from a thread", 13);
    return NULL;
}

static int setup(const repe_host_context* c) {
    ctx = c;
    char path[1024];
    snprintf(path, sizeof path, "%s/hello", c->data_dir);
    FILE* f = fopen(path, "w");
    if (!f) return 1;
    fputs("hello", f);
    fclose(f);
    snprintf(hp_config, sizeof hp_config, "%.*s", (int)c->config_json_len, c->config_json);
    char msg[64];
    int n = snprintf(msg, sizeof msg, "init %s", c->name);
    c->log(c->host, REPE_LOG_INFO, msg, (size_t)n);
    static char big[5000];
    memset(big, 'x', sizeof big);
    c->log(c->host, REPE_LOG_WARN, big, sizeof big);
    pthread_t t;
    if (pthread_create(&t, NULL, log_from_thread, (void*)c) != 0) return 1;
    pthread_join(t, NULL);
#ifdef HP_FLOOD
    for (int i = 0; i < HP_FLOOD_N; i++) c->log(c->host, REPE_LOG_INFO, "flood", 5);
#endif
    return 0;
}

EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* c) {
#ifdef HP_INIT_FAIL
    (void)abi_version; (void)hooks; (void)c;
    return 1;
#else
    if (abi_version != REPE_GATEWAY_ABI_VERSION || hooks->size < sizeof *hooks) return 1;
    if (ctx != c && setup(c) != 0) return 1;
    hooks->user_data = &user_data_token;
    hooks->on_connect = on_connect;
    hooks->on_request = on_request;
    hooks->on_response = on_response;
    hooks->on_close = on_close;
#ifndef HP_NO_ERRMSG
    hooks->error_message = error_message;
#endif
    hooks->on_shutdown = on_shutdown;
    hooks->destroy = destroy;
    return 0;
#endif
}

#ifdef HP_REPE
EXPORT atomic_int hp_init_ex, hp_repe_shutdowns;

static const repe_plugin_data info = {"hookplugin", "1.0", "/hp"};

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }
const repe_plugin_data* repe_plugin_info(void) { return &info; }
int32_t repe_plugin_init_ex(const repe_host_context* c) {
    atomic_fetch_add(&hp_init_ex, 1);
    return setup(c);
}
repe_result repe_plugin_init(void) { return REPE_ERROR_INIT_FAILED; } /* never called: init_ex is */
void repe_plugin_shutdown(void) { atomic_fetch_add(&hp_repe_shutdowns, 1); }
repe_buffer repe_plugin_call(const char* req, uint64_t size) {
    (void)req; (void)size;
    return (repe_buffer){"", 0};
}
#endif
