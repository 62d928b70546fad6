/*
 * Client JSON in: UE reports, variant metadata, family bodies, events and
 * rollout changes parsed with proto/jdom.c (one parser for every body; it
 * accepts what jansson did, see proto/jdom.h) into the plain structs of
 * proto/types.h, with every field checked against the bounds below. Errors
 * name the field by its JSON path. Whether a blob exists or a family is
 * known is for store/ and server/ to decide.
 *
 * Bounds ("token" = 1..32 chars of [A-Za-z0-9._:+-]; "int" = a JSON number
 * with no fraction, 1e6 is fine; a range a..b includes both ends). The
 * request schemas of proto/openapi.yaml state the same bounds; the e2e
 * probe tests/e2e/bounds_probe.py fails when the two disagree, so a change
 * here goes there too:
 *
 *   UE report (select body)        rule
 *   ue                             string 1..128 bytes, printable ASCII
 *   device                         object, required
 *   device.memory_bytes            int 1..2^53, required
 *   device.gflops                  number > 0 and <= 1e6, required
 *   device.class                   token
 *   device.formats                 array of <= 8 tokens
 *   device.accelerators            array of <= 8 tokens
 *   device.battery_percent         number 0..100
 *   device.charging                boolean
 *   device.power_mw                number 0..1e6 (extension)
 *   device.memory_floor_bytes      int 0..2^53
 *   device.memory_history_bytes    array of <= 16 ints 0..2^53 (the low of
 *                                  each of the last minutes), newest last
 *   device.gflops_history          array of <= 16 numbers > 0 and <= 1e6
 *                                  (the low of each minute), newest last
 *   network                        object
 *   network.downlink_bps           number 0..1e12 (0: an outage)
 *   network.downlink_history_bps   array of <= 16 numbers 0..1e12,
 *                                  newest last
 *   network.rtt_ms                 number 0..600000
 *   network.metered                boolean
 *   network.load                   number 0..1
 *   requirements                   object
 *   requirements.max_latency_ms    number > 0 and <= 3.6e6
 *   requirements.min_accuracy      number 0..1
 *   requirements.max_download_s    number > 0 and <= 1e7
 *   requirements.max_energy_mj     number > 0 and <= 1e9
 *   requirements.horizon_s         number > 0 and <= 1e7
 *   preference                     "quality" | "balanced" | "saver"
 *                                  (default "quality")
 *   current                        "sha256:<64 lowercase hex>" (BAD_DIGEST)
 *   context                        object: token -> token | [token, ...],
 *                                  at most 16 tags in all
 *   accept                         object; members other than these two are
 *                                  left to their own readers (signed)
 *   accept.delta_formats           array of <= 8 strings of 1..32 printable
 *                                  ASCII; unknown names are ignored
 *   accept.encodings               the same
 *   fetching                       object {digest, bytes_done}
 *   fetching.digest                "sha256:<64 lowercase hex>", required
 *   fetching.bytes_done            int 0..2^53 (default 0)
 *   explain                        "all" | "best" (default "best")
 *   nonce                          string of 16..64 of [A-Za-z0-9_-]
 *   accept.signed                  boolean (asks for a signed answer)
 *
 *   Variant metadata (PUT .../variants/{v})
 *   blob                           "sha256:<64 lowercase hex>", required
 *   flops                          number > 0 and <= 1e18, required
 *   accuracy                       number 0..1, required
 *   format                         token
 *   techniques                     array of <= 8 tokens
 *   params                         int 0..1e13
 *   memory_bytes                   int 0..2^53
 *   latency_ms                     object: token -> number > 0, <= 16 entries
 *   energy_mj                      object: token -> number >= 0, <= 16
 *                                  entries (extension)
 *   exits                          array of <= 8 {flops, accuracy}, both
 *                                  required: flops > 0, below the variant's
 *                                  flops and strictly increasing; accuracy
 *                                  0..1
 *   context                        as in the report
 *   requires.accelerators          array of <= 8 tokens
 *   rollout_percent                int 0..100, default 100
 *   weights_manifest               "sha256:<64 lowercase hex>" (BAD_DIGEST):
 *                                  the TF.js model.json of the blob
 *   size_bytes, version, digest    ignored: the server fills them in
 *
 *   Family body
 *   task, description              strings of at most 256 bytes
 *
 *   Event (POST .../events)
 *   ue                             as in the report, required
 *   variant                        a name, required
 *   version                        int 1..2^53, required
 *   event                          "installed" | "load_failed" |
 *                                  "verify_failed" | "rolled_back", required
 *   digest                         "sha256:<64 lowercase hex>"
 *   device.class                   token
 *   latency_ms                     number > 0 and <= 3.6e6
 *   energy_mj                      number 0..1e9
 *
 *   Rollout change (PATCH .../versions/{n}), at least one of
 *   rollout_percent                int 0..100
 *   paused                         boolean
 *
 * Every body must be a JSON object nested at most lim->max_depth deep.
 * null counts as absent for optional fields; unknown fields are ignored;
 * duplicate keys are malformed JSON. Codes: BAD_JSON (not JSON, not an
 * object, too deep), MISSING_FIELD, BAD_FIELD (wrong type, out of range),
 * BAD_DIGEST (a malformed sha256 digest).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jdom.h"
#include "proto/proto.h"

#define TWO_POW_53 9007199254740992.0
#define DEFAULT_MAX_DEPTH 16
#define UE_MAX_LEN (PROTO_UE_SIZE - 1)
#define TEXT_MAX_LEN (PROTO_TEXT_SIZE - 1)
#define TOKEN_MAX_LEN (PROTO_TOKEN_SIZE - 1)
#define QUOTE_MAX 40

/* Range of one number: min..max, min excluded when min_open. */
struct num_rule {
    double min;
    bool min_open;
    double max;
    bool integer;
};

static const struct num_rule rule_memory = {1, false, TWO_POW_53, true};
static const struct num_rule rule_gflops = {0, true, 1e6, false};
static const struct num_rule rule_percent = {0, false, 100, false};
static const struct num_rule rule_power = {0, false, 1e6, false};
static const struct num_rule rule_downlink = {0, false, 1e12, false};
static const struct num_rule rule_horizon = {0, true, 1e7, false};
static const struct num_rule rule_bytes = {0, false, TWO_POW_53, true};
static const struct num_rule rule_rtt = {0, false, 600000, false};
static const struct num_rule rule_fraction = {0, false, 1, false};
static const struct num_rule rule_max_latency = {0, true, 3.6e6, false};
static const struct num_rule rule_max_download = {0, true, 1e7, false};
static const struct num_rule rule_max_energy = {0, true, 1e9, false};
static const struct num_rule rule_flops = {0, true, 1e18, false};
static const struct num_rule rule_params = {0, false, 1e13, true};
static const struct num_rule rule_variant_memory = {0, false, TWO_POW_53,
                                                    true};
static const struct num_rule rule_latency = {0, true, INFINITY, false};
static const struct num_rule rule_energy = {0, false, INFINITY, false};
static const struct num_rule rule_rollout = {0, false, 100, true};

void proto_limits_default(struct proto_limits *out)
{
    out->max_depth = DEFAULT_MAX_DEPTH;
}

/* ---- describing values in details ------------------------------------ */

/* snprintf that truncates silently: details and paths are bounded on
 * purpose, and a cut detail is better than none. */
__attribute__((format(printf, 3, 4))) static void
bfmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* Writes s as a quoted, printable-ASCII-only excerpt for a detail. */
static void quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = 0;

    if (size < 8)
        return;
    buf[n++] = '"';
    for (size_t i = 0; i < len && i < QUOTE_MAX && n + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        buf[n++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    if (len > QUOTE_MAX && n + 5 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n++] = '"';
    buf[n] = '\0';
}

/* A number as a person writes it: 100, 0.5, 1e+18. */
static void fmt_num(double x, char *buf, size_t size)
{
    if (x == floor(x) && fabs(x) < 1e16)
        bfmt(buf, size, "%.0f", x);
    else
        bfmt(buf, size, "%.15g", x);
}

/* ---- values of the parsed body (proto/jdom.h) --------------------------- */

/* Type tests that, like jansson's, are false for NULL (an absent member or
 * an index past the end). */
static bool is_type(const struct proto_jval *v, enum proto_jtype type)
{
    return v && v->type == type;
}

static bool is_string(const struct proto_jval *v)
{
    return is_type(v, PROTO_JSTRING);
}

static bool is_number(const struct proto_jval *v)
{
    return is_type(v, PROTO_JNUMBER);
}

static bool is_object(const struct proto_jval *v)
{
    return is_type(v, PROTO_JOBJECT);
}

static bool is_array(const struct proto_jval *v)
{
    return is_type(v, PROTO_JARRAY);
}

static bool is_null(const struct proto_jval *v)
{
    return is_type(v, PROTO_JNULL);
}

static bool is_boolean(const struct proto_jval *v)
{
    return is_type(v, PROTO_JTRUE) || is_type(v, PROTO_JFALSE);
}

/* A string's bytes (NUL-terminated), NULL when v is no string. */
static const char *str_of(const struct proto_jval *v)
{
    return is_string(v) ? v->u.str : NULL;
}

/* A string's length, 0 when v is no string. */
static size_t len_of(const struct proto_jval *v)
{
    return is_string(v) ? v->len : 0;
}

static double num_of(const struct proto_jval *v)
{
    return v->u.num;
}

/* Items of an array, members of an object. */
static size_t count_of(const struct proto_jval *v)
{
    return v->len;
}

/* What the client sent: "a string \"abc\"", "the number -3", "an array". */
static void describe(const struct proto_jval *v, char *buf, size_t size)
{
    char tmp[64];

    switch ((enum proto_jtype)v->type) {
    case PROTO_JSTRING:
        quote(str_of(v), len_of(v), tmp, sizeof(tmp));
        bfmt(buf, size, "the string %s", tmp);
        break;
    case PROTO_JNUMBER:
        fmt_num(num_of(v), tmp, sizeof(tmp));
        bfmt(buf, size, "%s", tmp);
        break;
    case PROTO_JTRUE:
        bfmt(buf, size, "true");
        break;
    case PROTO_JFALSE:
        bfmt(buf, size, "false");
        break;
    case PROTO_JNULL:
        bfmt(buf, size, "null");
        break;
    case PROTO_JOBJECT:
        bfmt(buf, size, "an object");
        break;
    case PROTO_JARRAY:
        bfmt(buf, size, "an array");
        break;
    }
}

/* "an integer from 1 to 9007199254740992", "a number greater than 0 and
 * at most 1000000", ... */
static void rule_text(const struct num_rule *r, char *buf, size_t size)
{
    char lo[40], hi[40];
    const char *what = r->integer ? "an integer" : "a number";

    fmt_num(r->min, lo, sizeof(lo));
    fmt_num(r->max, hi, sizeof(hi));
    if (isinf(r->max))
        bfmt(buf, size, "%s %s %s", what,
                 r->min_open ? "greater than" : "of at least", lo);
    else if (r->min_open)
        bfmt(buf, size, "%s greater than %s and at most %s", what, lo, hi);
    else
        bfmt(buf, size, "%s from %s to %s", what, lo, hi);
}

/* ---- paths ------------------------------------------------------------ */

static void path_key(char out[PROTO_FIELD_SIZE], const char *prefix,
                     const char *key)
{
    /* "prefix.key", truncated like snprintf. */
    size_t n = 0;

    for (const char *p = prefix; *p && n + 1 < PROTO_FIELD_SIZE; p++)
        out[n++] = *p;
    if (prefix[0] && n + 1 < PROTO_FIELD_SIZE)
        out[n++] = '.';
    for (const char *p = key; *p && n + 1 < PROTO_FIELD_SIZE; p++)
        out[n++] = *p;
    out[n] = '\0';
}

static void path_index(char out[PROTO_FIELD_SIZE], const char *prefix,
                       size_t i)
{
    bfmt(out, PROTO_FIELD_SIZE, "%s[%zu]", prefix, i);
}

/* prefix.key[index], key NULL or index -1 left out. The readers build a
 * path only when an error names it: on the select path a report is read
 * field by field and formatting each path would cost more than parsing. */
static void path_make(char out[PROTO_FIELD_SIZE], const char *prefix,
                      const char *key, long index)
{
    size_t n;

    if (!key)
        bfmt(out, PROTO_FIELD_SIZE, "%s", prefix);
    else
        path_key(out, prefix, key);
    n = strlen(out);
    if (index >= 0)
        bfmt(out + n, PROTO_FIELD_SIZE - n, "[%ld]", index);
}

/* ---- loading ------------------------------------------------------------ */

/* Nesting of arrays and objects, counted without parsing: strings are
 * skipped so that brackets inside them do not count. */
static bool depth_is_ok(const char *body, size_t len, size_t max_depth)
{
    size_t depth = 0;
    bool in_string = false;
    bool escaped = false;

    for (size_t i = 0; i < len; i++) {
        char c = body[i];

        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

/* A parsed body: the tree in the stack arena when it fits (a body of up to
 * 1.2 kB, a typical report), else in one heap block; released by
 * body_release(). */
#define STACK_ARENA_SIZE 32768

struct body {
    const struct proto_jval *root;
    void *heap;
    _Alignas(struct proto_jval) unsigned char stack[STACK_ARENA_SIZE];
};

static void body_release(struct body *b)
{
    free(b->heap);
    b->heap = NULL;
}

/* Parses body as one JSON object into b (release with body_release(), also
 * after a failure). A body too deep is reported as such even when it is
 * not JSON either: the parser stops at the first fault, so the nesting
 * scan decides between the two. */
static enum proto_status load_object(const char *body, size_t len,
                                     const struct proto_limits *lim,
                                     struct body *b, struct proto_error *err)
{
    size_t max_depth = lim ? lim->max_depth : DEFAULT_MAX_DEPTH;
    size_t need;
    void *arena = b->stack;
    struct proto_jdom_error jerr;
    enum proto_jdom_status st;

    b->root = NULL;
    b->heap = NULL;
    if (!body)
        len = 0;
    if (len == 0) {
        proto_error_set(err, PROTO_ERR_BAD_JSON, "body",
                        "the body is empty; expected a JSON object");
        return PROTO_BAD_INPUT;
    }
    need = proto_jdom_arena_size(len);
    if (need == 0)
        return PROTO_NO_MEMORY;
    if (need > sizeof(b->stack)) {
        b->heap = malloc(need);
        if (!b->heap)
            return PROTO_NO_MEMORY;
        arena = b->heap;
    }
    st = proto_jdom_parse(body, len, max_depth, arena, need, &b->root, &jerr);
    if (st != PROTO_JDOM_OK && !depth_is_ok(body, len, max_depth)) {
        proto_error_set(err, PROTO_ERR_JSON_TOO_DEEP, "body",
                        "the body nests arrays and objects more than %zu "
                        "levels deep",
                        max_depth);
        return PROTO_BAD_INPUT;
    }
    if (st == PROTO_JDOM_TOO_BIG)
        return PROTO_NO_MEMORY;
    if (st != PROTO_JDOM_OK) {
        proto_error_set(err, PROTO_ERR_BAD_JSON, "body",
                        "the body is not valid JSON: %s at line %d, "
                        "column %d",
                        jerr.text, jerr.line, jerr.column);
        return PROTO_BAD_INPUT;
    }
    if (!is_object(b->root)) {
        char got[80];

        describe(b->root, got, sizeof(got));
        proto_error_set(err, PROTO_ERR_BAD_JSON, "body",
                        "the body must be a JSON object, got %s", got);
        return PROTO_BAD_INPUT;
    }
    return PROTO_OK;
}

/* ---- field readers: each returns false with err set on bad input ------ */

/* The member, or NULL when absent or null. */
static const struct proto_jval *member(const struct proto_jval *obj, const char *key)
{
    const struct proto_jval *v = proto_jdom_member(obj, key);

    return is_null(v) ? NULL : v;
}

static bool missing(const char *path, const char *what,
                    struct proto_error *err)
{
    proto_error_set(err, PROTO_ERR_MISSING_FIELD, path, "%s is required: %s",
                    path, what);
    return false;
}

static bool wrong(const char *path, const char *what, const struct proto_jval *got,
                  struct proto_error *err)
{
    char desc[80];

    describe(got, desc, sizeof(desc));
    proto_error_set(err, PROTO_ERR_BAD_FIELD, path, "%s must be %s, got %s",
                    path, what, desc);
    return false;
}

/* A number within r at prefix.key[index] (see path_make()). */
static bool check_number(const struct proto_jval *v, const char *prefix,
                         const char *key, long index,
                         const struct num_rule *r, double *out,
                         struct proto_error *err)
{
    char what[96];
    char path[PROTO_FIELD_SIZE];
    double x;

    /* The rule is written out only for the error: formatting it costs more
     * than the rest of a valid number's check (it runs per report field). */
    if (is_number(v)) {
        x = num_of(v);
        if (isfinite(x) && x >= r->min && !(r->min_open && x <= r->min) &&
            x <= r->max && !(r->integer && x != floor(x))) {
            *out = x;
            return true;
        }
    }
    rule_text(r, what, sizeof(what));
    path_make(path, prefix, key, index);
    return wrong(path, what, v, err);
}

/* An optional (or required) number of obj; *out untouched when absent. */
static bool get_number(const struct proto_jval *obj, const char *prefix, const char *key,
                       const struct num_rule *r, bool required, double *out,
                       bool *out_present, struct proto_error *err)
{
    const struct proto_jval *v = member(obj, key);

    if (out_present)
        *out_present = false;
    if (!v) {
        char what[96];
        char path[PROTO_FIELD_SIZE];

        if (!required)
            return true;
        rule_text(r, what, sizeof(what));
        path_key(path, prefix, key);
        return missing(path, what, err);
    }
    if (!check_number(v, prefix, key, -1, r, out, err))
        return false;
    if (out_present)
        *out_present = true;
    return true;
}

static bool get_uint(const struct proto_jval *obj, const char *prefix, const char *key,
                     const struct num_rule *r, bool required, uint64_t *out,
                     struct proto_error *err)
{
    double x = 0;
    bool present = false;

    if (!get_number(obj, prefix, key, r, required, &x, &present, err))
        return false;
    if (present)
        *out = (uint64_t)x;
    return true;
}

static bool get_bool(const struct proto_jval *obj, const char *prefix, const char *key,
                     bool *out, struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];
    const struct proto_jval *v = member(obj, key);

    if (!v)
        return true;
    if (!is_boolean(v)) {
        path_key(path, prefix, key);
        return wrong(path, "a boolean (true or false)", v, err);
    }
    *out = v->type == PROTO_JTRUE;
    return true;
}

static bool is_token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '+' || c == '-';
}

static bool token_is_valid(const char *s, size_t len)
{
    if (len == 0 || len > TOKEN_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_token_char(s[i]))
            return false;
    return true;
}

#define TOKEN_TEXT                                                             \
    "a token of 1 to 32 characters from A-Z a-z 0-9 . _ : + -"

/* A token at prefix.key[index] (see path_make()). */
static bool check_token(const struct proto_jval *v, const char *prefix,
                        const char *key, long index,
                        char out[PROTO_TOKEN_SIZE], struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];

    if (!is_string(v) || !token_is_valid(str_of(v), len_of(v))) {
        path_make(path, prefix, key, index);
        return wrong(path, TOKEN_TEXT, v, err);
    }
    memcpy(out, str_of(v), len_of(v) + 1);
    return true;
}

static bool get_token(const struct proto_jval *obj, const char *prefix, const char *key,
                      char out[PROTO_TOKEN_SIZE], bool *out_present,
                      struct proto_error *err)
{
    const struct proto_jval *v = member(obj, key);

    if (out_present)
        *out_present = false;
    if (!v)
        return true;
    if (!check_token(v, prefix, key, -1, out, err))
        return false;
    if (out_present)
        *out_present = true;
    return true;
}

static bool get_token_array(const struct proto_jval *obj, const char *prefix,
                            const char *key, char (*out)[PROTO_TOKEN_SIZE],
                            size_t max, size_t *out_count, bool *out_present,
                            struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];
    char what[96];
    const struct proto_jval *v = member(obj, key);
    const struct proto_jval *t;

    if (out_present)
        *out_present = false;
    if (!v)
        return true;
    if (!is_array(v) || count_of(v) > max) {
        path_key(path, prefix, key);
        bfmt(what, sizeof(what), "an array of at most %zu tokens", max);
        if (!is_array(v))
            return wrong(path, what, v, err);
        proto_error_set(err, PROTO_ERR_BAD_FIELD, path,
                        "%s must be %s, got %zu items", path, what,
                        count_of(v));
        return false;
    }
    t = proto_jdom_first(v);
    for (size_t i = 0; i < count_of(v); i++, t = proto_jdom_next(t)) {
        char prefix_key[PROTO_FIELD_SIZE];

        if (!is_string(t) || !token_is_valid(str_of(t), len_of(t))) {
            path_key(prefix_key, prefix, key);
            return check_token(t, prefix_key, NULL, (long)i, out[i], err);
        }
        memcpy(out[i], str_of(t), len_of(t) + 1);
    }
    *out_count = count_of(v);
    if (out_present)
        *out_present = true;
    return true;
}

/* An optional nested object; *out is NULL when absent. */
static bool get_object(const struct proto_jval *obj, const char *key, bool required,
                       const char *what, const struct proto_jval **out,
                       struct proto_error *err)
{
    const struct proto_jval *v = member(obj, key);

    *out = NULL;
    if (!v)
        return required ? missing(key, what, err) : true;
    if (!is_object(v))
        return wrong(key, what, v, err);
    *out = v;
    return true;
}

static bool get_digest(const struct proto_jval *obj, const char *key, bool required,
                       char out_hex[PROTO_HEX_SIZE], bool *out_present,
                       struct proto_error *err)
{
    static const char what[] = "a digest \"sha256:<64 lowercase hex>\"";
    const struct proto_jval *v = member(obj, key);

    if (out_present)
        *out_present = false;
    if (!v)
        return required ? missing(key, what, err) : true;
    if (!is_string(v))
        return wrong(key, what, v, err);
    if (proto_digest_parse(str_of(v), len_of(v),
                           out_hex) != PROTO_OK) {
        char got[64];

        quote(str_of(v), len_of(v), got, sizeof(got));
        proto_error_set(err, PROTO_ERR_BAD_DIGEST, key,
                        "%s must be %s, got %s", key, what, got);
        return false;
    }
    if (out_present)
        *out_present = true;
    return true;
}

/* context: {"scene": "night", "res": ["720p", "1080p"]} -> tags. */
static bool get_context(const struct proto_jval *obj, struct proto_tag *out,
                        size_t *out_count, struct proto_error *err)
{
    static const char what[] =
        "an object mapping tokens to a token or an array of tokens";
    char path[PROTO_FIELD_SIZE];
    const struct proto_jval *ctx = member(obj, "context");
    const struct proto_jval *k;
    size_t n = 0;

    if (!ctx)
        return true;
    if (!is_object(ctx))
        return wrong("context", what, ctx, err);
    k = proto_jdom_first(ctx);
    for (size_t m = 0; m < count_of(ctx); m++, k = proto_jdom_next(k + 1)) {
        const char *key = k->u.str;
        size_t key_len = k->len;
        const struct proto_jval *v = k + 1;
        const struct proto_jval *t = is_array(v) ? proto_jdom_first(v) : v;
        size_t count = is_array(v) ? count_of(v) : 1;

        if (!token_is_valid(key, key_len)) {
            char got[64];

            quote(key, key_len, got, sizeof(got));
            proto_error_set(err, PROTO_ERR_BAD_FIELD, "context",
                            "context keys must be tokens (1 to 32 characters "
                            "from A-Z a-z 0-9 . _ : + -), got %s",
                            got);
            return false;
        }
        if (is_null(v))
            continue;
        if (!is_string(v) && !is_array(v)) {
            path_key(path, "context", key);
            return wrong(path, "a token or an array of tokens", v, err);
        }
        if (count > PROTO_MAX_TAGS - n) {
            proto_error_set(err, PROTO_ERR_BAD_FIELD, "context",
                            "context must hold at most %d tags in all",
                            PROTO_MAX_TAGS);
            return false;
        }
        for (size_t i = 0; i < count; i++, t = proto_jdom_next(t)) {
            if (!check_token(t, "context", key, is_array(v) ? (long)i : -1,
                             out[n].value, err))
                return false;
            memcpy(out[n].key, key, key_len + 1);
            n++;
        }
    }
    *out_count = n;
    return true;
}

/* latency_ms / energy_mj: {"npu-class-a": 4.0} */
static bool get_class_map(const struct proto_jval *obj, const char *key,
                          const struct num_rule *r,
                          struct proto_class_value *out, size_t *out_count,
                          struct proto_error *err)
{
    char what[128];
    char rule[96];
    const struct proto_jval *map = member(obj, key);
    const struct proto_jval *k;
    size_t n = 0;

    if (!map)
        return true;
    rule_text(r, rule, sizeof(rule));
    bfmt(what, sizeof(what),
             "an object of at most %d device classes, each mapped to %s",
             PROTO_MAX_LATENCIES, rule);
    if (!is_object(map))
        return wrong(key, what, map, err);
    if (count_of(map) > PROTO_MAX_LATENCIES) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, key,
                        "%s must be %s, got %zu entries", key, what,
                        count_of(map));
        return false;
    }
    k = proto_jdom_first(map);
    for (size_t m = 0; m < count_of(map); m++, k = proto_jdom_next(k + 1)) {
        const char *cls = k->u.str;
        size_t cls_len = k->len;
        const struct proto_jval *v = k + 1;

        if (!token_is_valid(cls, cls_len)) {
            char got[64];

            quote(cls, cls_len, got, sizeof(got));
            proto_error_set(err, PROTO_ERR_BAD_FIELD, key,
                            "%s keys must be device classes (tokens of 1 to "
                            "32 characters from A-Z a-z 0-9 . _ : + -), got "
                            "%s",
                            key, got);
            return false;
        }
        if (!check_number(v, key, cls, -1, r, &out[n].value, err))
            return false;
        memcpy(out[n].device_class, cls, cls_len + 1);
        n++;
    }
    *out_count = n;
    return true;
}

/* ---- the report ---------------------------------------------------------- */

static bool parse_ue(const struct proto_jval *root, struct proto_report *r,
                     struct proto_error *err)
{
    static const char what[] = "a string of 1 to 128 printable ASCII bytes";
    const struct proto_jval *v = member(root, "ue");
    const char *s;
    size_t len;

    if (!v)
        return true;
    if (!is_string(v))
        return wrong("ue", what, v, err);
    s = str_of(v);
    len = len_of(v);
    if (len == 0 || len > UE_MAX_LEN)
        return wrong("ue", what, v, err);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return wrong("ue", what, v, err);
    memcpy(r->ue, s, len + 1);
    r->has_ue = true;
    return true;
}

static bool parse_device(const struct proto_jval *root, struct proto_report *r,
                         struct proto_error *err)
{
    const struct proto_jval *dev;
    double gflops = 0;

    if (!get_object(root, "device", true,
                    "an object with memory_bytes and gflops", &dev, err))
        return false;
    return get_uint(dev, "device", "memory_bytes", &rule_memory, true,
                    &r->memory_bytes, err) &&
           get_number(dev, "device", "gflops", &rule_gflops, true, &gflops,
                      NULL, err) &&
           (r->gflops = gflops, true) &&
           get_token(dev, "device", "class", r->device_class,
                     &r->has_device_class, err) &&
           get_token_array(dev, "device", "formats", r->formats,
                           PROTO_MAX_FORMATS, &r->format_count,
                           &r->has_formats, err) &&
           get_token_array(dev, "device", "accelerators", r->accelerators,
                           PROTO_MAX_ACCELERATORS, &r->accelerator_count,
                           NULL, err) &&
           get_number(dev, "device", "battery_percent", &rule_percent, false,
                      &r->battery_percent, &r->has_battery_percent, err) &&
           get_bool(dev, "device", "charging", &r->charging, err) &&
           get_number(dev, "device", "power_mw", &rule_power, false,
                      &r->power_mw, &r->has_power_mw, err);
}

static bool parse_network(const struct proto_jval *root, struct proto_report *r,
                          struct proto_error *err)
{
    const struct proto_jval *net;

    if (!get_object(root, "network", false, "an object", &net, err))
        return false;
    if (!net)
        return true;
    return get_number(net, "network", "downlink_bps", &rule_downlink, false,
                      &r->downlink_bps, &r->has_downlink_bps, err) &&
           get_number(net, "network", "rtt_ms", &rule_rtt, false, &r->rtt_ms,
                      &r->has_rtt_ms, err) &&
           get_bool(net, "network", "metered", &r->metered, err) &&
           get_number(net, "network", "load", &rule_fraction, false, &r->load,
                      &r->has_load, err);
}

static bool parse_requirements(const struct proto_jval *root, struct proto_report *r,
                               struct proto_error *err)
{
    static const char p[] = "requirements";
    const struct proto_jval *req;

    if (!get_object(root, p, false, "an object", &req, err))
        return false;
    if (!req)
        return true;
    return get_number(req, p, "max_latency_ms", &rule_max_latency, false,
                      &r->max_latency_ms, &r->has_max_latency_ms, err) &&
           get_number(req, p, "min_accuracy", &rule_fraction, false,
                      &r->min_accuracy, &r->has_min_accuracy, err) &&
           get_number(req, p, "max_download_s", &rule_max_download, false,
                      &r->max_download_s, &r->has_max_download_s, err) &&
           get_number(req, p, "max_energy_mj", &rule_max_energy, false,
                      &r->max_energy_mj, &r->has_max_energy_mj, err);
}

static bool parse_preference(const struct proto_jval *root, struct proto_report *r,
                             struct proto_error *err)
{
    static const char what[] =
        "one of \"quality\", \"balanced\" or \"saver\"";
    const struct proto_jval *v = member(root, "preference");
    const char *s;

    r->preference = PROTO_PREFER_QUALITY;
    if (!v)
        return true;
    if (!is_string(v))
        return wrong("preference", what, v, err);
    s = str_of(v);
    if (strcmp(s, "quality") == 0)
        r->preference = PROTO_PREFER_QUALITY;
    else if (strcmp(s, "balanced") == 0)
        r->preference = PROTO_PREFER_BALANCED;
    else if (strcmp(s, "saver") == 0)
        r->preference = PROTO_PREFER_SAVER;
    else
        return wrong("preference", what, v, err);
    return true;
}

/* accept.delta_formats / accept.encodings: names of codings, each checked
 * for shape; the ones this server knows set the report's flags. */
static bool get_names(const struct proto_jval *accept, const char *key,
                      struct proto_report *r, struct proto_error *err)
{
    static const char what[] =
        "an array of at most 8 names (1..32 printable ASCII characters)";
    static const char name_what[] =
        "a name of 1..32 printable ASCII characters";
    char path[PROTO_FIELD_SIZE];
    const struct proto_jval *v = member(accept, key);
    const struct proto_jval *n;
    bool is_formats = strcmp(key, "delta_formats") == 0;
    bool zstd_patch = false;

    if (!v)
        return true;
    if (!is_array(v) || count_of(v) > 8) {
        path_key(path, "accept", key);
        return wrong(path, what, v, err);
    }
    n = proto_jdom_first(v);
    for (size_t i = 0; i < count_of(v); i++, n = proto_jdom_next(n)) {
        const char *s = str_of(n);
        size_t len = len_of(n);
        bool ok = s && len > 0 && len <= 32;

        for (size_t k = 0; ok && k < len; k++)
            ok = s[k] >= 0x21 && s[k] <= 0x7e;
        if (!ok) {
            path_make(path, "accept", key, (long)i);
            return wrong(path, name_what, n, err);
        }
        if (is_formats && strcmp(s, "modeld-tensor/1") == 0)
            r->accept_tensor_delta = true;
        if (is_formats && strcmp(s, "zstd-patch") == 0)
            zstd_patch = true;
        if (!is_formats && strcmp(s, "modeld-bg/1") == 0)
            r->accept_bg = true;
    }
    if (is_formats)
        r->refuse_zstd_patch = !zstd_patch;
    return true;
}

static bool parse_accept(const struct proto_jval *root, struct proto_report *r,
                         struct proto_error *err)
{
    const struct proto_jval *accept;

    if (!get_object(root, "accept", false, "an object", &accept, err))
        return false;
    if (!accept)
        return true;
    r->has_accept = true;
    return get_names(accept, "delta_formats", r, err) &&
           get_names(accept, "encodings", r, err);
}

/* A history array at h (absent: nothing to do): at most PROTO_MAX_HISTORY
 * numbers, newest last, each under rule; items says what they are. */
static bool get_history(const struct proto_jval *h, const char *path,
                        const char *items, const struct num_rule *rule,
                        double out[PROTO_MAX_HISTORY], size_t *count,
                        struct proto_error *err)
{
    const struct proto_jval *t;
    char what[96];

    if (!h)
        return true;
    if (!is_array(h) || count_of(h) > PROTO_MAX_HISTORY) {
        bfmt(what, sizeof(what), "an array of at most %d %s",
             PROTO_MAX_HISTORY, items);
        return wrong(path, what, h, err);
    }
    t = proto_jdom_first(h);
    for (size_t i = 0; i < count_of(h); i++, t = proto_jdom_next(t))
        if (!check_number(t, path, NULL, (long)i, rule, &out[i], err))
            return false;
    *count = count_of(h);
    return true;
}

/* device.memory_history_bytes and device.gflops_history. */
static bool parse_device_history(const struct proto_jval *dev,
                                 struct proto_report *r,
                                 struct proto_error *err)
{
    double bytes[PROTO_MAX_HISTORY];
    size_t n = 0;

    if (!get_history(member(dev, "memory_history_bytes"),
                     "device.memory_history_bytes",
                     "integers 0..2^53 (bytes, newest last)", &rule_bytes,
                     bytes, &n, err))
        return false;
    for (size_t i = 0; i < n; i++)
        r->memory_history_bytes[i] = (uint64_t)bytes[i];
    r->memory_history_count = n;
    return get_history(member(dev, "gflops_history"), "device.gflops_history",
                       "numbers > 0 and <= 1e6 (GFLOP/s, newest last)",
                       &rule_gflops, r->gflops_history,
                       &r->gflops_history_count, err);
}

/* The fields of selection over time (issue 9): throughput history,
 * horizon, a download in flight, the memory floor and explain. */
static bool parse_over_time(const struct proto_jval *root, struct proto_report *r,
                            struct proto_error *err)
{
    static const char hist[] = "network.downlink_history_bps";
    static const char ex_what[] = "\"all\" or \"best\"";
    const struct proto_jval *net = member(root, "network");
    const struct proto_jval *dev = member(root, "device");
    const struct proto_jval *req = member(root, "requirements");
    const struct proto_jval *fetch = NULL;
    const struct proto_jval *h = net ? member(net, "downlink_history_bps") : NULL;
    const struct proto_jval *ex = member(root, "explain");

    if (!get_history(h, hist, "numbers 0..1e12 (bit/s, newest last)",
                     &rule_downlink, r->downlink_history_bps,
                     &r->downlink_history_count, err))
        return false;
    if (dev && !get_uint(dev, "device", "memory_floor_bytes", &rule_bytes,
                         false, &r->memory_floor_bytes, err))
        return false;
    if (dev && !parse_device_history(dev, r, err))
        return false;
    if (dev && member(dev, "memory_floor_bytes"))
        r->has_memory_floor_bytes = true;
    if (req && !get_number(req, "requirements", "horizon_s", &rule_horizon,
                           false, &r->horizon_s, &r->has_horizon_s, err))
        return false;
    if (!get_object(root, "fetching", false,
                    "an object {\"digest\": \"sha256:...\", \"bytes_done\": N}",
                    &fetch, err))
        return false;
    if (fetch) {
        static const char dg[] = "fetching.digest";
        static const char dg_what[] = "a digest \"sha256:<64 lowercase hex>\"";
        const struct proto_jval *d = member(fetch, "digest");

        if (!d)
            return missing(dg, dg_what, err);
        if (!is_string(d))
            return wrong(dg, dg_what, d, err);
        if (proto_digest_parse(str_of(d), len_of(d),
                               r->fetching_hex) != PROTO_OK) {
            char got[64];

            quote(str_of(d), len_of(d), got,
                  sizeof(got));
            proto_error_set(err, PROTO_ERR_BAD_DIGEST, dg,
                            "%s must be %s, got %s", dg, dg_what, got);
            return false;
        }
        if (!get_uint(fetch, "fetching", "bytes_done", &rule_bytes, false,
                      &r->fetching_bytes_done, err))
            return false;
        r->has_fetching = true;
    }
    if (ex) {
        if (!is_string(ex))
            return wrong("explain", ex_what, ex, err);
        if (strcmp(str_of(ex), "all") == 0)
            r->explain_all = true;
        else if (strcmp(str_of(ex), "best") != 0)
            return wrong("explain", ex_what, ex, err);
    }
    return true;
}

/* A string member of min to max characters from A-Z a-z 0-9 _ - (a nonce,
 * a receipt): no quote or backslash can reach an answer's JSON or a log
 * line. Absent: true, *has false. */
static bool get_b64url(const struct proto_jval *root, const char *key,
                       size_t min, size_t max, const char *what, char *out,
                       bool *has, struct proto_error *err)
{
    const struct proto_jval *v = member(root, key);
    const char *s;
    size_t len;

    if (!v)
        return true;
    if (!is_string(v))
        return wrong(key, what, v, err);
    s = str_of(v);
    len = len_of(v);
    if (len < min || len > max)
        return wrong(key, what, v, err);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return wrong(key, what, v, err);
    }
    memcpy(out, s, len + 1);
    *has = true;
    return true;
}

/* nonce: echoed in a signed answer (replay protection). */
static bool parse_nonce(const struct proto_jval *root, struct proto_report *r,
                        struct proto_error *err)
{
    return get_b64url(root, "nonce", 16, PROTO_NONCE_SIZE - 1,
                      "a string of 16 to 64 characters from A-Z a-z 0-9 _ -",
                      r->nonce, &r->has_nonce, err);
}

/* accept.signed only; the accept object's other members have their own
 * parsers. */
static bool parse_accept_signed(const struct proto_jval *root, struct proto_report *r,
                                struct proto_error *err)
{
    const struct proto_jval *acc;

    if (!get_object(root, "accept", false, "an object", &acc, err))
        return false;
    if (!acc)
        return true;
    return get_bool(acc, "accept", "signed", &r->accept_signed, err);
}

enum proto_status proto_report_parse(const char *body, size_t len,
                                     const struct proto_limits *lim,
                                     struct proto_report *out,
                                     struct proto_error *err)
{
    struct proto_report r;
    struct body b;
    const struct proto_jval *root;
    enum proto_status rc;

    memset(&r, 0, sizeof(r));
    rc = load_object(body, len, lim, &b, err);
    if (rc != PROTO_OK) {
        body_release(&b);
        return rc;
    }
    root = b.root;
    if (parse_ue(root, &r, err) && parse_device(root, &r, err) &&
        parse_network(root, &r, err) && parse_requirements(root, &r, err) &&
        parse_preference(root, &r, err) &&
        get_digest(root, "current", false, r.current_hex, &r.has_current,
                   err) &&
        get_context(root, r.context, &r.context_count, err) &&
        parse_accept(root, &r, err) &&
        parse_over_time(root, &r, err) && parse_nonce(root, &r, err) &&
        parse_accept_signed(root, &r, err)) {
        *out = r;
        rc = PROTO_OK;
    } else {
        rc = PROTO_BAD_INPUT;
    }
    body_release(&b);
    return rc;
}

/* ---- variant metadata ------------------------------------------------------ */

static bool parse_exits(const struct proto_jval *root, struct proto_variant *v,
                        struct proto_error *err)
{
    char what[64];
    char path[PROTO_FIELD_SIZE];
    char flops_path[PROTO_FIELD_SIZE];
    char got[40], limit[40];
    const struct proto_jval *arr = member(root, "exits");
    size_t n;

    if (!arr)
        return true;
    bfmt(what, sizeof(what), "an array of at most %d exits",
             PROTO_MAX_EXITS);
    if (!is_array(arr))
        return wrong("exits", what, arr, err);
    n = count_of(arr);
    if (n > PROTO_MAX_EXITS) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, "exits",
                        "exits must be %s, got %zu", what, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct proto_jval *e = proto_jdom_index(arr, i);
        struct proto_exit *x = &v->exits[i];

        path_index(path, "exits", i);
        if (!is_object(e))
            return wrong(path, "an object with flops and accuracy", e, err);
        if (!get_number(e, path, "flops", &rule_flops, true, &x->flops, NULL,
                        err) ||
            !get_number(e, path, "accuracy", &rule_fraction, true,
                        &x->accuracy, NULL, err))
            return false;
        path_key(flops_path, path, "flops");
        fmt_num(x->flops, got, sizeof(got));
        if (x->flops >= v->flops) {
            fmt_num(v->flops, limit, sizeof(limit));
            proto_error_set(err, PROTO_ERR_BAD_FIELD, flops_path,
                            "%s must be less than the variant's flops %s, "
                            "got %s",
                            flops_path, limit, got);
            return false;
        }
        if (i > 0 && x->flops <= v->exits[i - 1].flops) {
            fmt_num(v->exits[i - 1].flops, limit, sizeof(limit));
            proto_error_set(err, PROTO_ERR_BAD_FIELD, flops_path,
                            "%s must be greater than the previous exit's "
                            "flops %s, got %s",
                            flops_path, limit, got);
            return false;
        }
    }
    v->exit_count = n;
    return true;
}

static bool parse_variant(const struct proto_jval *root, struct proto_variant *v,
                          struct proto_error *err)
{
    const struct proto_jval *req;
    double rollout = 100;

    return get_digest(root, "blob", true, v->blob_hex, NULL, err) &&
           get_digest(root, "weights_manifest", false,
                      v->weights_manifest_hex, NULL, err) &&
           get_number(root, "", "flops", &rule_flops, true, &v->flops, NULL,
                      err) &&
           get_number(root, "", "accuracy", &rule_fraction, true,
                      &v->accuracy, NULL, err) &&
           get_token(root, "", "format", v->format, NULL, err) &&
           get_token_array(root, "", "techniques", v->techniques,
                           PROTO_MAX_TECHNIQUES, &v->technique_count, NULL,
                           err) &&
           get_uint(root, "", "params", &rule_params, false, &v->params,
                    err) &&
           get_uint(root, "", "memory_bytes", &rule_variant_memory, false,
                    &v->memory_bytes, err) &&
           get_class_map(root, "latency_ms", &rule_latency, v->latency_ms,
                         &v->latency_count, err) &&
           get_class_map(root, "energy_mj", &rule_energy, v->energy_mj,
                         &v->energy_count, err) &&
           parse_exits(root, v, err) &&
           get_context(root, v->context, &v->context_count, err) &&
           get_object(root, "requires", false, "an object", &req, err) &&
           (!req || get_token_array(req, "requires", "accelerators",
                                    v->accelerators, PROTO_MAX_ACCELERATORS,
                                    &v->accelerator_count, NULL, err)) &&
           get_number(root, "", "rollout_percent", &rule_rollout, false,
                      &rollout, NULL, err) &&
           (v->rollout_percent = (unsigned)rollout, true);
}

enum proto_status proto_variant_parse(const char *body, size_t len,
                                      const struct proto_limits *lim,
                                      struct proto_variant *out,
                                      struct proto_error *err)
{
    struct proto_variant v;
    struct body b;
    const struct proto_jval *root;
    enum proto_status rc;

    memset(&v, 0, sizeof(v));
    rc = load_object(body, len, lim, &b, err);
    if (rc != PROTO_OK) {
        body_release(&b);
        return rc;
    }
    root = b.root;
    if (parse_variant(root, &v, err)) {
        *out = v;
        rc = PROTO_OK;
    } else {
        rc = PROTO_BAD_INPUT;
    }
    body_release(&b);
    return rc;
}

/* ---- family ------------------------------------------------------------------ */

static bool get_text(const struct proto_jval *obj, const char *key,
                     char out[PROTO_TEXT_SIZE], struct proto_error *err)
{
    static const char what[] = "a string of at most 256 bytes";
    const struct proto_jval *v = member(obj, key);

    if (!v)
        return true;
    if (!is_string(v))
        return wrong(key, what, v, err);
    if (len_of(v) > TEXT_MAX_LEN) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, key,
                        "%s must be %s, got %zu bytes", key, what,
                        len_of(v));
        return false;
    }
    memcpy(out, str_of(v), len_of(v) + 1);
    return true;
}

enum proto_status proto_family_parse(const char *body, size_t len,
                                     const struct proto_limits *lim,
                                     struct proto_family *out,
                                     struct proto_error *err)
{
    char task[PROTO_TEXT_SIZE] = "";
    char description[PROTO_TEXT_SIZE] = "";
    struct body b;
    const struct proto_jval *root;
    enum proto_status rc;

    rc = load_object(body, len, lim, &b, err);
    if (rc != PROTO_OK) {
        body_release(&b);
        return rc;
    }
    root = b.root;
    if (get_text(root, "task", task, err) &&
        get_text(root, "description", description, err)) {
        memcpy(out->task, task, sizeof(task));
        memcpy(out->description, description, sizeof(description));
        rc = PROTO_OK;
    } else {
        rc = PROTO_BAD_INPUT;
    }
    body_release(&b);
    return rc;
}

/* ---- events and rollout changes ------------------------------------------ */

static const struct num_rule rule_version = {1, false, TWO_POW_53, true};
static const struct num_rule rule_event_latency = {0, true, 3.6e6, false};
static const struct num_rule rule_event_energy = {0, false, 1e9, false};

static const char *const event_kinds[PROTO_EVENT_KINDS] = {
    [PROTO_EVENT_INSTALLED] = "installed",
    [PROTO_EVENT_LOAD_FAILED] = "load_failed",
    [PROTO_EVENT_VERIFY_FAILED] = "verify_failed",
    [PROTO_EVENT_ROLLED_BACK] = "rolled_back",
};

const char *proto_event_kind_name(enum proto_event_kind kind)
{
    return (unsigned)kind < PROTO_EVENT_KINDS ? event_kinds[kind] : "unknown";
}

static bool parse_event_kind(const struct proto_jval *root, struct proto_event *e,
                             struct proto_error *err)
{
    static const char what[] = "one of \"installed\", \"load_failed\", "
                               "\"verify_failed\" or \"rolled_back\"";
    const struct proto_jval *v = member(root, "event");

    if (!v)
        return missing("event", what, err);
    for (unsigned i = 0; is_string(v) && i < PROTO_EVENT_KINDS; i++) {
        if (strcmp(str_of(v), event_kinds[i]) == 0) {
            e->kind = (enum proto_event_kind)i;
            return true;
        }
    }
    return wrong("event", what, v, err);
}

static bool parse_event_variant(const struct proto_jval *root, struct proto_event *e,
                                struct proto_error *err)
{
    static const char what[] =
        "a name: 1 to 64 of [a-z0-9._-], starting with a letter or digit";
    const struct proto_jval *v = member(root, "variant");

    if (!v)
        return missing("variant", what, err);
    if (!is_string(v) ||
        !proto_name_is_valid(str_of(v), len_of(v)))
        return wrong("variant", what, v, err);
    memcpy(e->variant, str_of(v), len_of(v) + 1);
    return true;
}

enum proto_status proto_event_parse(const char *body, size_t len,
                                    const struct proto_limits *lim,
                                    struct proto_event *out,
                                    struct proto_error *err)
{
    struct proto_report r;
    struct proto_event e;
    struct body b;
    const struct proto_jval *root;
    const struct proto_jval *dev;
    double version = 0;
    enum proto_status rc;

    memset(&e, 0, sizeof(e));
    memset(&r, 0, sizeof(r));
    rc = load_object(body, len, lim, &b, err);
    if (rc != PROTO_OK) {
        body_release(&b);
        return rc;
    }
    root = b.root;
    rc = PROTO_BAD_INPUT;
    if (!parse_ue(root, &r, err))
        goto out;
    if (!r.has_ue) {
        (void)missing("ue", "a string of 1 to 128 printable ASCII bytes",
                      err);
        goto out;
    }
    memcpy(e.ue, r.ue, sizeof(e.ue));
    if (parse_event_variant(root, &e, err) &&
        get_number(root, "", "version", &rule_version, true, &version, NULL,
                   err) &&
        parse_event_kind(root, &e, err) &&
        get_digest(root, "digest", false, e.digest_hex, &e.has_digest,
                   err) &&
        get_object(root, "device", false, "an object", &dev, err) &&
        (!dev || get_token(dev, "device", "class", e.device_class, NULL,
                           err)) &&
        get_number(root, "", "latency_ms", &rule_event_latency, false,
                   &e.latency_ms, &e.has_latency_ms, err) &&
        get_number(root, "", "energy_mj", &rule_event_energy, false,
                   &e.energy_mj, &e.has_energy_mj, err) &&
        get_b64url(root, "receipt", 1, PROTO_RECEIPT_SIZE - 1,
                   "a string of 1 to 64 characters from A-Z a-z 0-9 _ - "
                   "(the receipt of the select answer)",
                   e.receipt, &e.has_receipt, err)) {
        e.version = (int64_t)version;
        *out = e;
        rc = PROTO_OK;
    }
out:
    body_release(&b);
    return rc;
}

enum proto_status proto_rollout_patch_parse(const char *body, size_t len,
                                            const struct proto_limits *lim,
                                            struct proto_rollout_patch *out,
                                            struct proto_error *err)
{
    struct proto_rollout_patch p;
    struct body b;
    const struct proto_jval *root;
    double percent = 0;
    enum proto_status rc;

    memset(&p, 0, sizeof(p));
    rc = load_object(body, len, lim, &b, err);
    if (rc != PROTO_OK) {
        body_release(&b);
        return rc;
    }
    root = b.root;
    rc = PROTO_BAD_INPUT;
    if (get_number(root, "", "rollout_percent", &rule_rollout, false,
                   &percent, &p.has_rollout_percent, err) &&
        get_bool(root, "", "paused", &p.paused, err)) {
        p.has_paused = member(root, "paused") != NULL;
        p.rollout_percent = (unsigned)percent;
        if (!p.has_rollout_percent && !p.has_paused) {
            (void)missing("rollout_percent",
                          "rollout_percent (0..100) or paused (boolean)",
                          err);
        } else {
            *out = p;
            rc = PROTO_OK;
        }
    }
    body_release(&b);
    return rc;
}

/* ---- variant metadata equality (idempotent PUT) ---------------------------- */

static bool class_values_equal(const struct proto_class_value *a,
                               size_t a_count,
                               const struct proto_class_value *b,
                               size_t b_count)
{
    if (a_count != b_count)
        return false;
    for (size_t i = 0; i < a_count; i++)
        if (strcmp(a[i].device_class, b[i].device_class) != 0 ||
            a[i].value != b[i].value)
            return false;
    return true;
}

static bool tokens_equal(const char (*a)[PROTO_TOKEN_SIZE], size_t a_count,
                         const char (*b)[PROTO_TOKEN_SIZE], size_t b_count)
{
    if (a_count != b_count)
        return false;
    for (size_t i = 0; i < a_count; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

bool proto_variant_meta_equal(const struct proto_variant *a,
                              const struct proto_variant *b)
{
    if (strcmp(a->blob_hex, b->blob_hex) != 0 ||
        strcmp(a->format, b->format) != 0 || a->params != b->params ||
        strcmp(a->weights_manifest_hex, b->weights_manifest_hex) != 0 ||
        a->flops != b->flops || a->accuracy != b->accuracy ||
        a->memory_bytes != b->memory_bytes ||
        a->rollout_percent != b->rollout_percent ||
        a->exit_count != b->exit_count ||
        a->context_count != b->context_count ||
        !tokens_equal(a->techniques, a->technique_count, b->techniques,
                      b->technique_count) ||
        !tokens_equal(a->accelerators, a->accelerator_count,
                      b->accelerators, b->accelerator_count) ||
        !class_values_equal(a->latency_ms, a->latency_count, b->latency_ms,
                            b->latency_count) ||
        !class_values_equal(a->energy_mj, a->energy_count, b->energy_mj,
                            b->energy_count))
        return false;
    for (size_t i = 0; i < a->exit_count; i++)
        if (a->exits[i].flops != b->exits[i].flops ||
            a->exits[i].accuracy != b->exits[i].accuracy)
            return false;
    for (size_t i = 0; i < a->context_count; i++)
        if (strcmp(a->context[i].key, b->context[i].key) != 0 ||
            strcmp(a->context[i].value, b->context[i].value) != 0)
            return false;
    return true;
}
