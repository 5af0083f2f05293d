/*
 * calculator: the REPE plugin of Glaze's plugin documentation, in plain C11.
 *
 * It serves the JSON API of this C++ object, registered at /calculator:
 *
 *   struct calculator_api {
 *       double value = 0.0;
 *       double get_value() { return value; }
 *       void set_value(double v) { value = v; }
 *       double increment() { return ++value; }
 *   };
 *
 * and answers exactly as Glaze's registry does (REPE.md §2-§3): the same
 * validation of the request frame, the same dispatch order, success replies
 * byte for byte (numbers as Glaze writes them), errors with Glaze's codes and
 * message format. It is the example to copy: see plugins/README.md.
 */
#define _POSIX_C_SOURCE 200809L /* newlocale, uselocale, pthread */

#include <locale.h>
#include <math.h> /* isnan, isinf, signbit: macros, no libm */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repe_frame.h"
#include "repe_plugin.h"

static const repe_plugin_data plugin_info = {
    .name = "calculator",
    .version = "1.0.0",
    .root_path = "/calculator",
};

/*
 * The frame layout, the REPE error codes 0-9 and the checks of a request
 * come from repe_frame.h. Beyond those, Glaze's read errors that this plugin
 * sends (REPE.md §1.2):
 */
enum {
    EC_NO_READ_INPUT = 12,
    EC_PARSE_NUMBER_FAILURE = 14,
    EC_EXPECTED_BRACE = 15,
    EC_EXPECTED_QUOTE = 17,
    EC_EXPECTED_COMMA = 18,
    EC_EXPECTED_COLON = 19,
    EC_UNEXPECTED_END = 22,
    EC_ATTEMPT_MEMBER_FUNC_READ = 27,
    EC_UNKNOWN_KEY = 37,
};

static const char* ec_name(uint32_t ec) {
    switch (ec) {
    case EC_NO_READ_INPUT: return "no_read_input";
    case EC_PARSE_NUMBER_FAILURE: return "parse_number_failure";
    case EC_EXPECTED_BRACE: return "expected_brace";
    case EC_EXPECTED_QUOTE: return "expected_quote";
    case EC_EXPECTED_COMMA: return "expected_comma";
    case EC_EXPECTED_COLON: return "expected_colon";
    case EC_UNEXPECTED_END: return "unexpected_end";
    case EC_ATTEMPT_MEMBER_FUNC_READ: return "attempt_member_func_read";
    case EC_UNKNOWN_KEY: return "unknown_key";
    }
    return "parse_error";
}

/* ---- the reply buffer ----
 *
 * The host copies the reply before this thread calls again, so one buffer
 * per thread is enough and needs no lock. It grows and is reused; a key
 * destructor frees it when the thread exits.
 */

typedef struct {
    unsigned char* data;
    size_t len, cap;
    int failed; /* an allocation failed: send out_of_memory instead */
} reply_buf;

static _Thread_local reply_buf reply;
static pthread_key_t reply_key;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void free_reply(void* p) {
    (void)p;
    free(reply.data);
    reply = (reply_buf){0};
}

static void setup(void) {
    pthread_key_create(&reply_key, free_reply);
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/*
 * Doubles are read and written in the C locale, whatever locale the host
 * set: a decimal comma would break JSON. Only strtod and "%e" care, so the
 * switch is made around them alone, not on every call.
 */
static locale_t in_c_locale(void) { return c_locale ? uselocale(c_locale) : (locale_t)0; }

static void restore_locale(locale_t old) {
    if (old) uselocale(old);
}

static void reserve(size_t extra) {
    if (reply.failed || reply.cap - reply.len >= extra) return;
    if (extra > SIZE_MAX / 2 - reply.len) {
        reply.failed = 1;
        return;
    }
    size_t cap = reply.cap ? reply.cap : 256;
    while (cap - reply.len < extra) cap *= 2;
    unsigned char* p = realloc(reply.data, cap);
    if (!p) {
        reply.failed = 1;
        return;
    }
    if (!reply.data) pthread_setspecific(reply_key, p);
    reply.data = p;
    reply.cap = cap;
}

static void put(const void* s, size_t n) {
    reserve(n);
    if (reply.failed || n == 0) return;
    memcpy(reply.data + reply.len, s, n);
    reply.len += n;
}

static void puts_(const char* s) { put(s, strlen(s)); }

static void putc_(char c) { put(&c, 1); }

static void put_uint(uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    put(tmp, (size_t)n);
}

/* Starts a reply: room for the header, filled in by finish. */
static void begin(void) {
    reply.len = 0;
    reply.failed = 0;
    reserve(REPE_HEADER_SIZE);
    if (!reply.failed) reply.len = REPE_HEADER_SIZE;
}

/* Completes the reply: its header, as Glaze's response builder lays it out. */
static repe_buffer finish(uint64_t id, uint32_t ec, uint16_t body_format) {
    if (reply.failed) {
        /* Glaze would catch std::bad_alloc and answer ec 5; so do we, from static memory. */
        static _Thread_local unsigned char oom[REPE_HEADER_SIZE + 13];
        repe_write_reply_header(oom, id, REPE_EC_PARSE_ERROR, REPE_BODY_UTF8, 13);
        memcpy(oom + REPE_HEADER_SIZE, "out of memory", 13);
        return (repe_buffer){(const char*)oom, sizeof oom};
    }
    repe_write_reply_header(reply.data, id, ec, body_format, reply.len - REPE_HEADER_SIZE);
    return (repe_buffer){(const char*)reply.data, reply.len};
}

/* No reply: size 0, and data not NULL, as Glaze's plugins return for a notify. */
static repe_buffer no_reply(void) {
    static const char empty[1];
    return (repe_buffer){empty, 0};
}

static repe_buffer error_text(uint64_t id, uint32_t ec, const char* text) {
    begin();
    puts_(text);
    return finish(id, ec, REPE_BODY_UTF8);
}

/* ---- numbers as Glaze writes them ----
 *
 * Glaze writes a double with the fewest significant digits that read back
 * as the same double, the closest such when there are two, in fixed notation
 * when the decimal exponent is in [-4, 15] and otherwise as 1.5E-7 / 1E21
 * (capital E, no '+', no leading zeros); 0 as 0, -0 as -0, and NaN and the
 * infinities as null.
 */

/* Reads m * 10^e back; the decimal must be the one and only closest double. */
static int round_trips(uint64_t m, int e, double v) {
    char buf[48];
    snprintf(buf, sizeof buf, "%llue%d", (unsigned long long)m, e);
    return strtod(buf, NULL) == v;
}

static uint64_t pow10u(int n) {
    uint64_t p = 1;
    while (n-- > 0) p *= 10;
    return p;
}

/*
 * The p-digit decimal closest to v (printf rounds exactly), as m * 10^e.
 * v is finite and positive.
 */
static void nearest(double v, int p, uint64_t* m, int* e) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    uint64_t digits = 0;
    char* s = buf;
    for (; *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits = digits * 10 + (uint64_t)(*s - '0');
    *m = digits;
    *e = atoi(s + 1) - (p - 1);
}

/*
 * Shortest round-tripping digits of v > 0: m * 10^e, m without trailing
 * zeros. The closest p-digit decimal round-trips for every p from the
 * shortest length up, so that length is found by bisection. Only when v is a
 * power of two is the rounding interval lopsided (the gap below is half the
 * gap above), so that the other p-digit neighbour can round-trip where the
 * closest does not: then each length is tried in turn, neighbour included.
 */
static void shortest(double v, uint64_t* mo, int* eo) {
    locale_t old = in_c_locale();
    uint64_t m;
    int e, lo = 1, hi = 17;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    /* a power of two above the smallest normal: significand bits all zero */
    int lopsided = (bits & 0xfffffffffffffull) == 0 && (bits >> 52 & 0x7ff) > 1;
    if (lopsided) {
        for (int p = 1; p <= 17; p++) {
            nearest(v, p, &m, &e);
            if (round_trips(m, e, v)) goto done;
            char buf[48];
            snprintf(buf, sizeof buf, "%llue%d", (unsigned long long)m, e);
            uint64_t m2 = m;
            int e2 = e;
            if (strtod(buf, NULL) < v) {
                if (++m2 == pow10u(p)) m2 = pow10u(p - 1), e2++;
            } else if (--m2 < pow10u(p - 1)) {
                m2 = pow10u(p) - 1, e2--;
            }
            if (round_trips(m2, e2, v)) {
                m = m2, e = e2;
                goto done;
            }
        }
    }
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        nearest(v, mid, &m, &e);
        if (round_trips(m, e, v)) hi = mid;
        else lo = mid + 1;
    }
    nearest(v, lo, &m, &e);
done:
    restore_locale(old);
    while (m % 10 == 0) m /= 10, e++;
    *mo = m;
    *eo = e;
}

/* Appends v as Glaze's JSON writer does. */
static void put_double(double v) {
    if (isnan(v) || isinf(v)) {
        puts_("null");
        return;
    }
    if (signbit(v)) putc_('-'), v = -v;
    if (v == 0) {
        putc_('0');
        return;
    }
    uint64_t m;
    int e;
    shortest(v, &m, &e);
    char d[24];
    int n = snprintf(d, sizeof d, "%llu", (unsigned long long)m);
    int x = e + n - 1; /* v = d[0].d[1..] * 10^x */
    if (x >= -4 && x <= 15) {
        if (x < 0) {
            puts_("0.");
            for (int i = -1; i > x; i--) putc_('0');
            put(d, (size_t)n);
        } else if (n <= x + 1) {
            put(d, (size_t)n);
            for (int i = n; i <= x; i++) putc_('0');
        } else {
            put(d, (size_t)x + 1);
            putc_('.');
            put(d + x + 1, (size_t)(n - x - 1));
        }
        return;
    }
    putc_(d[0]);
    if (n > 1) {
        putc_('.');
        put(d + 1, (size_t)n - 1);
    }
    putc_('E');
    if (x < 0) putc_('-'), x = -x;
    put_uint((uint64_t)x);
}

/* ---- reading JSON as Glaze does (REPE.md §3.4) ---- */

typedef struct {
    const char* s;
    size_t n, i;
} reader;

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static void skip_ws(reader* r) {
    while (r->i < r->n && is_ws(r->s[r->i])) r->i++;
}

/*
 * Reads a JSON number at r->i into *out and returns 0, or returns
 * EC_PARSE_NUMBER_FAILURE and leaves r->i where the number should start.
 * Glaze's grammar: optional '-', digits without a leading zero, an optional
 * fraction with at least one digit, an optional exponent ('e' not followed by
 * digits ends the number before it). Out of double range is a failure too,
 * but, as in fast_float, *out is still set (to ±inf or ±0): Glaze reads into
 * the target directly, so a data member keeps that value.
 */
static int read_number(reader* r, double* out, int* assigned) {
    const char* s = r->s;
    size_t i = r->i, n = r->n, start = r->i;
    int nonzero = 0;
    *assigned = 0;
    if (i < n && s[i] == '-') i++;
    size_t int_start = i;
    while (i < n && is_digit(s[i])) nonzero |= s[i++] != '0';
    if (i == int_start || (s[int_start] == '0' && i - int_start > 1)) return EC_PARSE_NUMBER_FAILURE;
    if (i < n && s[i] == '.') {
        size_t frac = ++i;
        while (i < n && is_digit(s[i])) nonzero |= s[i++] != '0';
        if (i == frac) return EC_PARSE_NUMBER_FAILURE;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < n && is_digit(s[j])) {
            while (j < n && is_digit(s[j])) j++;
            i = j;
        }
    }
    /* strtod needs a terminated copy; the request bytes are not terminated. */
    size_t len = i - start;
    char small[128];
    char* buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) return EC_PARSE_NUMBER_FAILURE;
    memcpy(buf, s + start, len);
    buf[len] = 0;
    locale_t old = in_c_locale();
    double v = strtod(buf, NULL);
    restore_locale(old);
    if (buf != small) free(buf);
    *out = v;
    *assigned = 1;
    if (isinf(v) || (v == 0 && nonzero)) return EC_PARSE_NUMBER_FAILURE;
    r->i = i;
    return 0;
}

/* ---- Glaze's error text: format_error(error_ctx, body) ---- */

static void put_error_text(uint32_t ec, const char* body, size_t n, size_t index) {
    const char* name = ec_name(ec);
    if (index >= n) {
        puts_("index ");
        put_uint(index);
        puts_(": ");
        puts_(name);
        return;
    }
    size_t offset = 0, line = 1;
    for (size_t k = 0; k < index; k++)
        if (body[k] == '\n') line++, offset = k + 1;
    size_t column = index - offset + 1;
    size_t cb = offset, ce = index + 1;
    while (ce < n && body[ce] != '\n') ce++;
    size_t front = 0, rear = 0;
    if (ce - cb > 64) {
        if (column <= 32) {
            rear = 64;
            ce = cb + rear;
        } else {
            front = column - 32;
            cb += front;
            if (ce - cb > 64) {
                rear = front + 64;
                ce = offset + rear;
            }
        }
    }
    put_uint(line);
    putc_(':');
    put_uint(column);
    puts_(": ");
    puts_(name);
    puts_(front ? "\n..." : "\n   ");
    for (size_t k = cb; k < ce; k++) putc_(body[k] == '\t' ? ' ' : body[k]);
    puts_(front && rear ? "...\n   " : "\n   ");
    for (size_t k = 1 + front; k < column; k++) putc_(' ');
    putc_('^');
}

static repe_buffer read_error(uint64_t id, int notify, uint32_t ec, const char* body, size_t n, size_t index) {
    if (notify) return no_reply(); /* since Glaze v8.0.0 */
    begin();
    put_error_text(ec, body, n, index);
    return finish(id, ec, REPE_BODY_UTF8);
}

/* ---- the calculator ---- */

static pthread_mutex_t value_mu = PTHREAD_MUTEX_INITIALIZER;
static double value;

static double load_value(void) {
    pthread_mutex_lock(&value_mu);
    double v = value;
    pthread_mutex_unlock(&value_mu);
    return v;
}

static void store_value(double v) {
    pthread_mutex_lock(&value_mu);
    value = v;
    pthread_mutex_unlock(&value_mu);
}

static double increment_value(void) {
    pthread_mutex_lock(&value_mu);
    double v = ++value;
    pthread_mutex_unlock(&value_mu);
    return v;
}

static repe_buffer reply_double(uint64_t id, int notify, double v) {
    if (notify) return no_reply();
    begin();
    put_double(v);
    return finish(id, REPE_EC_OK, REPE_BODY_JSON);
}

static repe_buffer reply_null(uint64_t id, int notify) {
    if (notify) return no_reply();
    begin();
    puts_("null");
    return finish(id, REPE_EC_OK, REPE_BODY_JSON);
}

/* A whole body that is one double: set_value's parameter or a write of value. */
static uint32_t read_double_body(const char* body, size_t n, double* out, int* assigned, size_t* at) {
    reader r = {body, n, 0};
    *assigned = 0;
    skip_ws(&r);
    if (r.i == n) {
        *at = n;
        return EC_NO_READ_INPUT;
    }
    uint32_t ec = (uint32_t)read_number(&r, out, assigned);
    *at = r.i;
    return ec; /* bytes after the number are ignored, as by Glaze */
}

static int key_is(const char* k, size_t n, const char* want) { return strlen(want) == n && memcmp(k, want, n) == 0; }

/*
 * Writes the object {"value": number} into the calculator, member by member
 * as Glaze does (an error part-way keeps the members already read). Missing
 * keys are fine; unknown keys are an error; the functions cannot be written.
 */
static uint32_t read_object_body(const char* body, size_t n, size_t* at) {
    reader r = {body, n, 0};
    uint32_t ec = 0;
    skip_ws(&r);
    if (r.i == n) {
        *at = n;
        return EC_NO_READ_INPUT;
    }
    if (body[r.i] != '{') {
        ec = EC_EXPECTED_BRACE;
        goto fail;
    }
    r.i++;
    skip_ws(&r);
    if (r.i == n) goto end;
    if (body[r.i] == '}') goto ok;
    for (;;) {
        if (body[r.i] != '"') {
            ec = EC_EXPECTED_QUOTE;
            goto fail;
        }
        size_t key = ++r.i;
        const char* q = memchr(body + key, '"', n - key);
        if (!q) {
            ec = EC_EXPECTED_QUOTE;
            goto fail;
        }
        size_t key_len = (size_t)(q - (body + key));
        int is_value = key_is(body + key, key_len, "value");
        if (!is_value && !key_is(body + key, key_len, "get_value") && !key_is(body + key, key_len, "set_value") &&
            !key_is(body + key, key_len, "increment")) {
            ec = EC_UNKNOWN_KEY;
            goto fail;
        }
        r.i = key + key_len + 1;
        skip_ws(&r);
        if (r.i == n) goto end;
        if (body[r.i] != ':') {
            ec = EC_EXPECTED_COLON;
            goto fail;
        }
        r.i++;
        skip_ws(&r);
        if (r.i == n) goto end;
        if (!is_value) {
            ec = EC_ATTEMPT_MEMBER_FUNC_READ;
            goto fail;
        }
        double v;
        int assigned;
        ec = (uint32_t)read_number(&r, &v, &assigned);
        if (assigned) store_value(v);
        if (ec) goto fail;
        skip_ws(&r);
        if (r.i == n) goto end;
        if (body[r.i] == '}') goto ok;
        if (body[r.i] != ',') {
            ec = EC_EXPECTED_COMMA;
            goto fail;
        }
        r.i++;
        skip_ws(&r);
        if (r.i == n) goto end;
    }
ok:
    return 0;
end:
    r.i = n;
    ec = EC_UNEXPECTED_END;
fail:
    *at = r.i;
    return ec;
}

enum endpoint { EP_NONE, EP_ROOT, EP_VALUE, EP_GET_VALUE, EP_SET_VALUE, EP_INCREMENT };

/* Glaze matches the query exactly: no prefix, no trailing '/', no unescaping. */
static enum endpoint lookup(const char* q, size_t n) {
    static const struct {
        const char* path;
        enum endpoint ep;
    } paths[] = {
        {"/calculator", EP_ROOT},
        {"/calculator/value", EP_VALUE},
        {"/calculator/get_value", EP_GET_VALUE},
        {"/calculator/set_value", EP_SET_VALUE},
        {"/calculator/increment", EP_INCREMENT},
    };
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++)
        if (key_is(q, n, paths[k].path)) return paths[k].ep;
    return EP_NONE;
}

/*
 * Answers a frame that repe_read_request refused with ec, with Glaze's texts
 * (REPE.md §2.2). These errors are sent even for a notify: the notify byte of
 * a broken header cannot be trusted.
 */
static repe_buffer invalid_frame(uint32_t ec, const repe_header* h, uint64_t size) {
    char text[160];
    uint64_t expected;
    if (size < REPE_HEADER_SIZE) return error_text(0, ec, "Invalid header");
    if (ec == REPE_EC_INVALID_BODY) return error_text(h->id, ec, "Failed to parse request");
    if (h->spec != REPE_MAGIC) {
        snprintf(text, sizeof text, "REPE magic number mismatch: expected 0x1507, got 0x%04x", (unsigned)h->spec);
    } else if (ec == REPE_EC_VERSION_MISMATCH) {
        snprintf(text, sizeof text, "REPE version mismatch: expected 1, got %u", (unsigned)h->version);
    } else if (!repe_frame_length(h, &expected)) {
        snprintf(text, sizeof text, "REPE length overflow: query_length %llu + body_length %llu exceed uint64_t",
                 (unsigned long long)h->query_length, (unsigned long long)h->body_length);
    } else {
        snprintf(text, sizeof text, "REPE length mismatch: expected %llu, got %llu", (unsigned long long)expected,
                 (unsigned long long)h->length);
    }
    return error_text(h->id, ec, text);
}

static repe_buffer handle(const char* frame, uint64_t size) {
    repe_request req;
    uint32_t bad = repe_read_request(&req, frame, size);
    if (bad) return invalid_frame(bad, &req.header, size);

    const char *query = req.query, *body = req.body;
    uint64_t ql = req.header.query_length, bl = req.header.body_length;
    uint64_t id = req.header.id;
    int notify = req.header.notify != 0;
    enum endpoint ep = lookup(query, ql);
    if (ep == EP_NONE) {
        if (notify) return no_reply();
        begin();
        puts_("invalid_query: ");
        put(query, ql);
        return finish(id, REPE_EC_METHOD_NOT_FOUND, REPE_BODY_UTF8);
    }
    if (req.header.ec != REPE_EC_OK) {
        /* A request that carries an error is echoed, not executed (REPE.md §3.1). */
        if (notify) return no_reply();
        begin();
        return finish(id, req.header.ec, REPE_BODY_UTF8);
    }

    double v;
    int assigned;
    size_t at;
    uint32_t ec;
    switch (ep) {
    case EP_ROOT:
        if (bl == 0) {
            if (notify) return no_reply();
            begin();
            puts_("{\"value\":");
            put_double(load_value());
            putc_('}');
            return finish(id, REPE_EC_OK, REPE_BODY_JSON);
        }
        ec = read_object_body(body, bl, &at);
        if (ec) return read_error(id, notify, ec, body, bl, at);
        return reply_null(id, notify);
    case EP_VALUE:
        if (bl == 0) return reply_double(id, notify, load_value());
        ec = read_double_body(body, bl, &v, &assigned, &at);
        if (assigned) store_value(v); /* Glaze reads straight into the member */
        if (ec) return read_error(id, notify, ec, body, bl, at);
        return reply_null(id, notify);
    case EP_GET_VALUE: /* no parameters: any body is ignored */
        return reply_double(id, notify, load_value());
    case EP_SET_VALUE:
        /* A member function with a parameter: an empty body calls it with 0.0. */
        v = 0;
        if (bl != 0) {
            ec = read_double_body(body, bl, &v, &assigned, &at);
            if (ec) return read_error(id, notify, ec, body, bl, at);
        }
        store_value(v);
        return reply_null(id, notify);
    case EP_INCREMENT:
        return reply_double(id, notify, increment_value());
    case EP_NONE:
        break;
    }
    return no_reply();
}

/* ---- the plugin ABI ---- */

uint32_t repe_plugin_interface_version(void) { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info(void) { return &plugin_info; }

repe_result repe_plugin_init(void) {
    pthread_once(&setup_once, setup);
    return c_locale ? REPE_OK : REPE_ERROR_INIT_FAILED;
}

void repe_plugin_shutdown(void) {}

repe_buffer repe_plugin_call(const char* request, uint64_t request_size) {
    /* A host need not call init (Glaze's hosts may skip it): set up lazily. */
    pthread_once(&setup_once, setup);
    if (!request) request_size = 0;
    return handle(request, request_size);
}
