/*
 * repe_plugin.h: the C ABI of a REPE plugin, version 3.
 *
 * This header is repe-gw's own, and binary-compatible with Glaze's
 * include/glaze/rpc/repe/plugin.h at REPE_PLUGIN_INTERFACE_VERSION 3: the same
 * symbols, signatures, struct layouts and result codes. A plugin built against
 * either header loads in repe-gw and in a Glaze host. See plugins/README.md
 * for how to write, build and load one.
 *
 * Requests and replies are whole REPE frames: a 48-byte header, then the
 * query, then the body. The header's fields, all little-endian:
 *
 *   offset size  field
 *        0    8  length        48 + query_length + body_length
 *        8    2  spec          magic 0x1507 (bytes 07 15)
 *       10    1  version       1
 *       11    1  notify        non-zero: no reply wanted
 *       12    4  reserved      0 in replies, ignored in requests
 *       16    8  id            echoed in the reply
 *       24    8  query_length
 *       32    8  body_length
 *       40    2  query_format  0 raw, 1 JSON pointer
 *       42    2  body_format   0 raw, 1 BEVE, 2 JSON, 3 UTF-8
 *       44    4  ec            error code, 0 on success
 *
 * plugins/README.md says how a reply fills them in.
 *
 * The host checks repe_plugin_interface_version() before it reads anything
 * else, so a future layout change is refused, not misread.
 */
#ifndef REPE_PLUGIN_H
#define REPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The interface version this header describes. */
#define REPE_PLUGIN_INTERFACE_VERSION 3

/*
 * REPE_PLUGIN_EXPORT marks the plugin's entry points as exported. The
 * declarations below carry it, so a plugin that includes this header and
 * defines them exports exactly these symbols even when built with
 * -fvisibility=hidden.
 */
#if defined(_WIN32)
#define REPE_PLUGIN_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define REPE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define REPE_PLUGIN_EXPORT
#endif

/* A byte range, returned by value (16 bytes: RAX:RDX on x86-64, X0:X1 on AArch64). */
typedef struct repe_buffer {
    const char* data;
    uint64_t size;
} repe_buffer;

/* Result of repe_plugin_init. A C enum: int-sized. */
typedef enum repe_result {
    REPE_OK = 0,
    REPE_ERROR_INIT_FAILED = 1,
    REPE_ERROR_ALREADY_INITIALIZED = 2
} repe_result;

/*
 * What the plugin is. All three are NUL-terminated. name and root_path must
 * not be NULL; version may be. root_path is the query prefix the plugin
 * serves ("/calculator"); "" or "/" claims every query no other plugin does.
 * The struct must stay valid for the life of the process (a file-scope
 * static).
 */
typedef struct repe_plugin_data {
    const char* name;
    const char* version;
    const char* root_path;
} repe_plugin_data;

/* Required. Returns REPE_PLUGIN_INTERFACE_VERSION. Called first, before anything else. */
REPE_PLUGIN_EXPORT uint32_t repe_plugin_interface_version(void);

/* Required. Returns the plugin's description; NULL refuses the load. */
REPE_PLUGIN_EXPORT const repe_plugin_data* repe_plugin_info(void);

/*
 * Optional. Called once, before any call. Anything but REPE_OK refuses the
 * load; the host then still calls repe_plugin_shutdown (if exported) so that
 * a partial initialisation can be undone.
 */
REPE_PLUGIN_EXPORT repe_result repe_plugin_init(void);

/*
 * Optional. Called once, after every call into the plugin has returned. No
 * call follows it. The library is never unloaded (see plugins/README.md).
 */
REPE_PLUGIN_EXPORT void repe_plugin_shutdown(void);

/*
 * Required. Handles one request frame of request_size bytes and returns the
 * reply frame, or size 0 for no reply (a notify). It may be called from many
 * threads at once. The returned bytes must stay valid until the next
 * repe_plugin_call on the same thread: keep them in a thread-local buffer.
 * data must not be NULL when size is not 0. The request bytes are only valid
 * during the call.
 */
REPE_PLUGIN_EXPORT repe_buffer repe_plugin_call(const char* request, uint64_t request_size);

#ifdef __cplusplus
}
#endif

/* The layout Glaze's hosts and plugins agree on (64-bit targets). */
#if UINTPTR_MAX == UINT64_MAX
#if defined(__cplusplus)
#define REPE_PLUGIN_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define REPE_PLUGIN_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#ifdef REPE_PLUGIN_STATIC_ASSERT
REPE_PLUGIN_STATIC_ASSERT(sizeof(repe_buffer) == 16, "repe_buffer must be 16 bytes");
REPE_PLUGIN_STATIC_ASSERT(offsetof(repe_buffer, size) == 8, "repe_buffer.size must be at offset 8");
REPE_PLUGIN_STATIC_ASSERT(sizeof(repe_plugin_data) == 24, "repe_plugin_data must be 24 bytes");
REPE_PLUGIN_STATIC_ASSERT(offsetof(repe_plugin_data, version) == 8, "repe_plugin_data.version must be at offset 8");
REPE_PLUGIN_STATIC_ASSERT(offsetof(repe_plugin_data, root_path) == 16, "repe_plugin_data.root_path must be at offset 16");
REPE_PLUGIN_STATIC_ASSERT(sizeof(repe_result) == 4, "repe_result must be 4 bytes");
#undef REPE_PLUGIN_STATIC_ASSERT
#endif
#endif

#endif /* REPE_PLUGIN_H */
