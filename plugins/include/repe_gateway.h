/*
 * repe_gateway.h: repe-gw's gateway hooks and plugin context, ABI version 1.
 *
 * Two optional extensions of a REPE plugin (repe_plugin.h). A Glaze plugin
 * exports neither and loads exactly as before.
 *
 *   - A hook plugin exports repe_gateway_hooks_init and fills a table of
 *     callbacks that the gateway calls for every connection and request:
 *     to authorise, rate-limit or audit in C. A file may be a hook plugin
 *     and a REPE plugin at once, or a hook plugin only, with no
 *     repe_plugin_* symbols. Hook plugins always run in the gateway's own
 *     process: --isolate does not apply to them.
 *   - Any plugin may export repe_plugin_init_ex, which the gateway calls
 *     instead of repe_plugin_init, with the plugin's context: a data
 *     directory of its own, its configuration, a logger, and a flag that
 *     says shutdown has begun.
 *
 * Names and meanings here are a public contract. Structs only ever grow at
 * their end; the host sets each struct's size, so a plugin built against an
 * older header reads the fields it knows and one built against a newer
 * header checks size before it reads a field the host may not have.
 *
 * Threads and lifetimes:
 *   - Hooks may be called concurrently, from several threads, for
 *     different connections and requests: guard shared state yourself.
 *   - Every pointer passed to a hook, and every pointer inside the structs
 *     it points to, is valid only during that callback. Copy what you keep.
 *   - The context and everything it points to stay valid for the life of
 *     the process; ctx->log may be called from any thread, the plugin's
 *     own included, at any time until destroy (for a hook plugin) or
 *     repe_plugin_shutdown (otherwise) returns.
 *   - Hooks must be fast: on_request runs on the thread that serves the
 *     connection, before the request is dispatched, and everything else on
 *     that thread waits for it. Hand slow work (I/O) to a thread of your own.
 *   - A hook must never block on the gateway, and nothing here calls back
 *     into the gateway's runtime: ctx->log is a system call and returns at
 *     once, dropping the message if the gateway is behind.
 */
#ifndef REPE_GATEWAY_H
#define REPE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "repe_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes; passed to repe_gateway_hooks_init. */
#define REPE_GATEWAY_ABI_VERSION 1

/* What on_connect and on_request return. */
#define REPE_HOOK_CONTINUE 0
#define REPE_HOOK_REJECT   1

/* Log levels of repe_host_context.log, those of Go's log/slog. */
#define REPE_LOG_DEBUG (-4)
#define REPE_LOG_INFO  0
#define REPE_LOG_WARN  4
#define REPE_LOG_ERROR 8

/* One client connection. */
typedef struct repe_conn_info {
  uint32_t size;
  uint64_t conn_id;          /* unique among the gateway's connections */
  const char* remote;        size_t remote_len;        /* "ip:port" */
  const char* tls_identity;  size_t tls_identity_len;  /* client certificate subject, or empty */
} repe_conn_info;

/* One request, framed and validated, not yet dispatched. */
typedef struct repe_request_info {
  uint32_t size;
  uint64_t conn_id;
  uint64_t id;
  const char* query;   size_t query_len;
  const uint8_t* body; size_t body_len;
  uint16_t body_format;
  uint8_t notify;
  const char* plugin;  size_t plugin_len;  /* name of the plugin that would serve it, or empty */
} repe_request_info;

/*
 * One request answered: ec 0 on success, the reply's ec otherwise. A notify
 * has no reply: ec 0 and reply_bytes 0. duration_ns is the time in the
 * plugin, 0 when the gateway answered itself.
 */
typedef struct repe_response_info {
  uint32_t size;
  uint64_t conn_id;
  uint64_t id;
  const char* query; size_t query_len;
  uint32_t ec;
  uint64_t duration_ns;
  uint64_t reply_bytes;
} repe_response_info;

/*
 * The hook table. The host zeroes it and sets size; init fills in what it
 * implements. Every callback may be left NULL, and user_data is the first
 * argument of every callback.
 *
 *   on_connect     a connection was accepted; REJECT closes it before
 *                  anything is read. on_close follows every on_connect that
 *                  returned CONTINUE.
 *   on_request     a request passed validation; REJECT answers it with
 *                  ec 3 (invalid_query) and the text error_message returns,
 *                  and it is not dispatched. A rejected notify gets no reply.
 *                  The first hook plugin that rejects wins: later ones are
 *                  not asked.
 *   on_response    a request was answered (or, for a notify, served), after
 *                  the reply was made; every hook plugin sees every one.
 *   on_close       a connection closed.
 *   error_message  the reason for the last REJECT, called right after it
 *                  on the same thread; the string must stay valid until the
 *                  next hook call on that thread. NULL or no callback: a
 *                  generic text.
 *   on_shutdown    shutdown has begun; called once. Hook calls for the
 *                  requests still in flight may follow it.
 *   destroy        called once, after the last hook call.
 */
typedef struct repe_gateway_hooks {
  uint32_t size;
  void* user_data;
  int32_t (*on_connect)(void* user_data, const repe_conn_info* c);
  int32_t (*on_request)(void* user_data, const repe_request_info* r);
  void    (*on_response)(void* user_data, const repe_response_info* r);
  void    (*on_close)(void* user_data, const repe_conn_info* c);
  const char* (*error_message)(void* user_data);
  void    (*on_shutdown)(void* user_data);
  void    (*destroy)(void* user_data);
} repe_gateway_hooks;

/*
 * What the host gives a plugin at init. All strings are NUL-terminated;
 * config_json is also given with its length.
 */
typedef struct repe_host_context {
  uint32_t size;
  const char* name;                       /* the plugin's name */
  const char* data_dir;                   /* a directory of its own, created by the gateway */
  const char* config_json; size_t config_json_len;  /* its section of the config file, as JSON ("{}" if none) */
  void* host;
  void (*log)(void* host, int32_t level, const char* msg, size_t msg_len);  /* level: -4 debug, 0 info, 4 warn, 8 error */
  const volatile uint32_t* shutting_down; /* becomes 1 when the gateway begins shutdown */
} repe_host_context;

/* Exported by a hook plugin. Returns 0 on success. */
REPE_PLUGIN_EXPORT int32_t repe_gateway_hooks_init(uint32_t abi_version, repe_gateway_hooks* hooks, const repe_host_context* ctx);
/* Optional for any REPE plugin; called instead of repe_plugin_init when exported. */
REPE_PLUGIN_EXPORT int32_t repe_plugin_init_ex(const repe_host_context* ctx);

#ifdef __cplusplus
}
#endif

/* The layouts the host reads and writes (64-bit targets). */
#if UINTPTR_MAX == UINT64_MAX
#if defined(__cplusplus)
#define REPE_GATEWAY_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define REPE_GATEWAY_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#ifdef REPE_GATEWAY_STATIC_ASSERT
REPE_GATEWAY_STATIC_ASSERT(sizeof(repe_conn_info) == 48, "repe_conn_info must be 48 bytes");
REPE_GATEWAY_STATIC_ASSERT(sizeof(repe_request_info) == 80, "repe_request_info must be 80 bytes");
REPE_GATEWAY_STATIC_ASSERT(offsetof(repe_request_info, plugin) == 64, "repe_request_info.plugin must be at offset 64");
REPE_GATEWAY_STATIC_ASSERT(sizeof(repe_response_info) == 64, "repe_response_info must be 64 bytes");
REPE_GATEWAY_STATIC_ASSERT(sizeof(repe_gateway_hooks) == 72, "repe_gateway_hooks must be 72 bytes");
REPE_GATEWAY_STATIC_ASSERT(sizeof(repe_host_context) == 64, "repe_host_context must be 64 bytes");
#undef REPE_GATEWAY_STATIC_ASSERT
#endif
#endif

#endif /* REPE_GATEWAY_H */
