/*
 * Client JSON in: UE reports, variant metadata and family bodies parsed with
 * jansson into the plain structs of proto/types.h, with every field checked
 * against the bounds below. Errors name the field by its JSON path. Whether
 * a blob exists or a family is known is for store/ and server/ to decide.
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
#include <string.h>

#include <jansson.h>

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

/* What the client sent: "a string \"abc\"", "the number -3", "an array". */
static void describe(const json_t *v, char *buf, size_t size)
{
    char tmp[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        quote(json_string_value(v), json_string_length(v), tmp, sizeof(tmp));
        bfmt(buf, size, "the string %s", tmp);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        fmt_num(json_number_value(v), tmp, sizeof(tmp));
        bfmt(buf, size, "%s", tmp);
        break;
    case JSON_TRUE:
        bfmt(buf, size, "true");
        break;
    case JSON_FALSE:
        bfmt(buf, size, "false");
        break;
    case JSON_NULL:
        bfmt(buf, size, "null");
        break;
    case JSON_OBJECT:
        bfmt(buf, size, "an object");
        break;
    case JSON_ARRAY:
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
    /* "prefix.key", truncated like snprintf; without its format parsing,
     * since every field of every report passes here */
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

/* Loads body as one JSON object into *out (caller decrefs). */
static enum proto_status load_object(const char *body, size_t len,
                                     const struct proto_limits *lim,
                                     json_t **out, struct proto_error *err)
{
    size_t max_depth = lim ? lim->max_depth : DEFAULT_MAX_DEPTH;
    json_error_t jerr;
    json_t *root;

    if (!body)
        len = 0;
    if (len > 0 && !depth_is_ok(body, len, max_depth)) {
        proto_error_set(err, PROTO_ERR_JSON_TOO_DEEP, "body",
                        "the body nests arrays and objects more than %zu "
                        "levels deep",
                        max_depth);
        return PROTO_BAD_INPUT;
    }
    if (len == 0) {
        proto_error_set(err, PROTO_ERR_BAD_JSON, "body",
                        "the body is empty; expected a JSON object");
        return PROTO_BAD_INPUT;
    }
    root = json_loadb(body, len,
                      JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return PROTO_NO_MEMORY;
        proto_error_set(err, PROTO_ERR_BAD_JSON, "body",
                        "the body is not valid JSON: %s at line %d, "
                        "column %d",
                        jerr.text, jerr.line, jerr.column);
        return PROTO_BAD_INPUT;
    }
    if (!json_is_object(root)) {
        char got[80];

        describe(root, got, sizeof(got));
        proto_error_set(err, PROTO_ERR_BAD_JSON, "body",
                        "the body must be a JSON object, got %s", got);
        json_decref(root);
        return PROTO_BAD_INPUT;
    }
    *out = root;
    return PROTO_OK;
}

/* ---- field readers: each returns false with err set on bad input ------ */

/* The member, or NULL when absent or null. */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_null(v) ? NULL : v;
}

static bool missing(const char *path, const char *what,
                    struct proto_error *err)
{
    proto_error_set(err, PROTO_ERR_MISSING_FIELD, path, "%s is required: %s",
                    path, what);
    return false;
}

static bool wrong(const char *path, const char *what, const json_t *got,
                  struct proto_error *err)
{
    char desc[80];

    describe(got, desc, sizeof(desc));
    proto_error_set(err, PROTO_ERR_BAD_FIELD, path, "%s must be %s, got %s",
                    path, what, desc);
    return false;
}

static bool check_number(const json_t *v, const char *path,
                         const struct num_rule *r, double *out,
                         struct proto_error *err)
{
    char what[96];
    double x;

    /* The rule is written out only for the error: formatting it costs more
     * than the rest of a valid number's check (it runs per report field). */
    if (json_is_number(v)) {
        x = json_number_value(v);
        if (isfinite(x) && x >= r->min && !(r->min_open && x <= r->min) &&
            x <= r->max && !(r->integer && x != floor(x))) {
            *out = x;
            return true;
        }
    }
    rule_text(r, what, sizeof(what));
    return wrong(path, what, v, err);
}

/* An optional (or required) number of obj; *out untouched when absent. */
static bool get_number(const json_t *obj, const char *prefix, const char *key,
                       const struct num_rule *r, bool required, double *out,
                       bool *out_present, struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];
    json_t *v = member(obj, key);

    path_key(path, prefix, key);
    if (out_present)
        *out_present = false;
    if (!v) {
        char what[96];

        if (!required)
            return true;
        rule_text(r, what, sizeof(what));
        return missing(path, what, err);
    }
    if (!check_number(v, path, r, out, err))
        return false;
    if (out_present)
        *out_present = true;
    return true;
}

static bool get_uint(const json_t *obj, const char *prefix, const char *key,
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

static bool get_bool(const json_t *obj, const char *prefix, const char *key,
                     bool *out, struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];
    json_t *v = member(obj, key);

    path_key(path, prefix, key);
    if (!v)
        return true;
    if (!json_is_boolean(v))
        return wrong(path, "a boolean (true or false)", v, err);
    *out = json_is_true(v);
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

static bool check_token(const json_t *v, const char *path,
                        char out[PROTO_TOKEN_SIZE], struct proto_error *err)
{
    if (!json_is_string(v) ||
        !token_is_valid(json_string_value(v), json_string_length(v)))
        return wrong(path, TOKEN_TEXT, v, err);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool get_token(const json_t *obj, const char *prefix, const char *key,
                      char out[PROTO_TOKEN_SIZE], bool *out_present,
                      struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];
    json_t *v = member(obj, key);

    path_key(path, prefix, key);
    if (out_present)
        *out_present = false;
    if (!v)
        return true;
    if (!check_token(v, path, out, err))
        return false;
    if (out_present)
        *out_present = true;
    return true;
}

static bool get_token_array(const json_t *obj, const char *prefix,
                            const char *key, char (*out)[PROTO_TOKEN_SIZE],
                            size_t max, size_t *out_count, bool *out_present,
                            struct proto_error *err)
{
    char path[PROTO_FIELD_SIZE];
    char item[PROTO_FIELD_SIZE];
    char what[96];
    json_t *v = member(obj, key);

    path_key(path, prefix, key);
    if (out_present)
        *out_present = false;
    if (!v)
        return true;
    bfmt(what, sizeof(what), "an array of at most %zu tokens", max);
    if (!json_is_array(v))
        return wrong(path, what, v, err);
    if (json_array_size(v) > max) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, path,
                        "%s must be %s, got %zu items", path, what,
                        json_array_size(v));
        return false;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        path_index(item, path, i);
        if (!check_token(json_array_get(v, i), item, out[i], err))
            return false;
    }
    *out_count = json_array_size(v);
    if (out_present)
        *out_present = true;
    return true;
}

/* An optional nested object; *out is NULL when absent. */
static bool get_object(const json_t *obj, const char *key, bool required,
                       const char *what, json_t **out,
                       struct proto_error *err)
{
    json_t *v = member(obj, key);

    *out = NULL;
    if (!v)
        return required ? missing(key, what, err) : true;
    if (!json_is_object(v))
        return wrong(key, what, v, err);
    *out = v;
    return true;
}

static bool get_digest(const json_t *obj, const char *key, bool required,
                       char out_hex[PROTO_HEX_SIZE], bool *out_present,
                       struct proto_error *err)
{
    static const char what[] = "a digest \"sha256:<64 lowercase hex>\"";
    json_t *v = member(obj, key);

    if (out_present)
        *out_present = false;
    if (!v)
        return required ? missing(key, what, err) : true;
    if (!json_is_string(v))
        return wrong(key, what, v, err);
    if (proto_digest_parse(json_string_value(v), json_string_length(v),
                           out_hex) != PROTO_OK) {
        char got[64];

        quote(json_string_value(v), json_string_length(v), got, sizeof(got));
        proto_error_set(err, PROTO_ERR_BAD_DIGEST, key,
                        "%s must be %s, got %s", key, what, got);
        return false;
    }
    if (out_present)
        *out_present = true;
    return true;
}

/* context: {"scene": "night", "res": ["720p", "1080p"]} -> tags. */
static bool get_context(const json_t *obj, struct proto_tag *out,
                        size_t *out_count, struct proto_error *err)
{
    static const char what[] =
        "an object mapping tokens to a token or an array of tokens";
    char path[PROTO_FIELD_SIZE];
    char item[PROTO_FIELD_SIZE];
    json_t *ctx = member(obj, "context");
    const char *key;
    json_t *v;
    size_t n = 0;

    if (!ctx)
        return true;
    if (!json_is_object(ctx))
        return wrong("context", what, ctx, err);
    json_object_foreach(ctx, key, v) {
        size_t key_len = strlen(key);
        size_t count = json_is_array(v) ? json_array_size(v) : 1;

        if (!token_is_valid(key, key_len)) {
            char got[64];

            quote(key, key_len, got, sizeof(got));
            proto_error_set(err, PROTO_ERR_BAD_FIELD, "context",
                            "context keys must be tokens (1 to 32 characters "
                            "from A-Z a-z 0-9 . _ : + -), got %s",
                            got);
            return false;
        }
        path_key(path, "context", key);
        if (json_is_null(v))
            continue;
        if (!json_is_string(v) && !json_is_array(v))
            return wrong(path, "a token or an array of tokens", v, err);
        if (count > PROTO_MAX_TAGS - n) {
            proto_error_set(err, PROTO_ERR_BAD_FIELD, "context",
                            "context must hold at most %d tags in all",
                            PROTO_MAX_TAGS);
            return false;
        }
        for (size_t i = 0; i < count; i++) {
            const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;

            if (json_is_array(v))
                path_index(item, path, i);
            else
                bfmt(item, sizeof(item), "%s", path);
            if (!check_token(t, item, out[n].value, err))
                return false;
            memcpy(out[n].key, key, key_len + 1);
            n++;
        }
    }
    *out_count = n;
    return true;
}

/* latency_ms / energy_mj: {"npu-class-a": 4.0} */
static bool get_class_map(const json_t *obj, const char *key,
                          const struct num_rule *r,
                          struct proto_class_value *out, size_t *out_count,
                          struct proto_error *err)
{
    char what[128];
    char rule[96];
    char path[PROTO_FIELD_SIZE];
    json_t *map = member(obj, key);
    const char *cls;
    json_t *v;
    size_t n = 0;

    if (!map)
        return true;
    rule_text(r, rule, sizeof(rule));
    bfmt(what, sizeof(what),
             "an object of at most %d device classes, each mapped to %s",
             PROTO_MAX_LATENCIES, rule);
    if (!json_is_object(map))
        return wrong(key, what, map, err);
    if (json_object_size(map) > PROTO_MAX_LATENCIES) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, key,
                        "%s must be %s, got %zu entries", key, what,
                        json_object_size(map));
        return false;
    }
    json_object_foreach(map, cls, v) {
        size_t cls_len = strlen(cls);

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
        path_key(path, key, cls);
        if (!check_number(v, path, r, &out[n].value, err))
            return false;
        memcpy(out[n].device_class, cls, cls_len + 1);
        n++;
    }
    *out_count = n;
    return true;
}

/* ---- the report ---------------------------------------------------------- */

static bool parse_ue(const json_t *root, struct proto_report *r,
                     struct proto_error *err)
{
    static const char what[] = "a string of 1 to 128 printable ASCII bytes";
    json_t *v = member(root, "ue");
    const char *s;
    size_t len;

    if (!v)
        return true;
    if (!json_is_string(v))
        return wrong("ue", what, v, err);
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0 || len > UE_MAX_LEN)
        return wrong("ue", what, v, err);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return wrong("ue", what, v, err);
    memcpy(r->ue, s, len + 1);
    r->has_ue = true;
    return true;
}

static bool parse_device(const json_t *root, struct proto_report *r,
                         struct proto_error *err)
{
    json_t *dev;
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

static bool parse_network(const json_t *root, struct proto_report *r,
                          struct proto_error *err)
{
    json_t *net;

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

static bool parse_requirements(const json_t *root, struct proto_report *r,
                               struct proto_error *err)
{
    static const char p[] = "requirements";
    json_t *req;

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

static bool parse_preference(const json_t *root, struct proto_report *r,
                             struct proto_error *err)
{
    static const char what[] =
        "one of \"quality\", \"balanced\" or \"saver\"";
    json_t *v = member(root, "preference");
    const char *s;

    r->preference = PROTO_PREFER_QUALITY;
    if (!v)
        return true;
    if (!json_is_string(v))
        return wrong("preference", what, v, err);
    s = json_string_value(v);
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
static bool get_names(const json_t *accept, const char *key,
                      struct proto_report *r, struct proto_error *err)
{
    static const char what[] =
        "an array of at most 8 names (1..32 printable ASCII characters)";
    char path[PROTO_FIELD_SIZE];
    json_t *v = member(accept, key);
    bool is_formats = strcmp(key, "delta_formats") == 0;
    bool zstd_patch = false;

    bfmt(path, sizeof(path), "accept.%s", key);
    if (!v)
        return true;
    if (!json_is_array(v) || json_array_size(v) > 8)
        return wrong(path, what, v, err);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *n = json_array_get(v, i);
        const char *s = json_string_value(n);
        size_t len = json_string_length(n);
        char item[PROTO_FIELD_SIZE];

        path_index(item, path, i);
        if (!s || len == 0 || len > 32)
            return wrong(item, "a name of 1..32 printable ASCII characters",
                         n, err);
        for (size_t k = 0; k < len; k++)
            if (s[k] < 0x21 || s[k] > 0x7e)
                return wrong(item,
                             "a name of 1..32 printable ASCII characters", n,
                             err);
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

static bool parse_accept(const json_t *root, struct proto_report *r,
                         struct proto_error *err)
{
    json_t *accept;

    if (!get_object(root, "accept", false, "an object", &accept, err))
        return false;
    if (!accept)
        return true;
    r->has_accept = true;
    return get_names(accept, "delta_formats", r, err) &&
           get_names(accept, "encodings", r, err);
}

/* device.memory_history_bytes: at most PROTO_MAX_HISTORY byte counts. */
static bool parse_memory_history(const json_t *dev, struct proto_report *r,
                                 struct proto_error *err)
{
    static const char path[] = "device.memory_history_bytes";
    json_t *h = member(dev, "memory_history_bytes");
    char item[PROTO_FIELD_SIZE];
    char what[96];

    if (!h)
        return true;
    bfmt(what, sizeof(what),
         "an array of at most %d integers 0..2^53 (bytes, newest last)",
         PROTO_MAX_HISTORY);
    if (!json_is_array(h) || json_array_size(h) > PROTO_MAX_HISTORY)
        return wrong(path, what, h, err);
    for (size_t i = 0; i < json_array_size(h); i++) {
        double x;

        path_index(item, path, i);
        if (!check_number(json_array_get(h, i), item, &rule_bytes, &x, err))
            return false;
        r->memory_history_bytes[i] = (uint64_t)x;
    }
    r->memory_history_count = json_array_size(h);
    return true;
}

/* The fields of selection over time (issue 9): throughput history,
 * horizon, a download in flight, the memory floor and explain. */
static bool parse_over_time(const json_t *root, struct proto_report *r,
                            struct proto_error *err)
{
    static const char hist[] = "network.downlink_history_bps";
    static const char ex_what[] = "\"all\" or \"best\"";
    json_t *net = member(root, "network");
    json_t *dev = member(root, "device");
    json_t *req = member(root, "requirements");
    json_t *fetch = NULL;
    json_t *h = net ? member(net, "downlink_history_bps") : NULL;
    json_t *ex = member(root, "explain");
    char item[PROTO_FIELD_SIZE];

    if (h) {
        char what[96];

        bfmt(what, sizeof(what),
             "an array of at most %d numbers 0..1e12 (bit/s, newest last)",
             PROTO_MAX_HISTORY);
        if (!json_is_array(h) || json_array_size(h) > PROTO_MAX_HISTORY)
            return wrong(hist, what, h, err);
        for (size_t i = 0; i < json_array_size(h); i++) {
            path_index(item, hist, i);
            if (!check_number(json_array_get(h, i), item, &rule_downlink,
                              &r->downlink_history_bps[i], err))
                return false;
        }
        r->downlink_history_count = json_array_size(h);
    }
    if (dev && !get_uint(dev, "device", "memory_floor_bytes", &rule_bytes,
                         false, &r->memory_floor_bytes, err))
        return false;
    if (dev && !parse_memory_history(dev, r, err))
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
        json_t *d = member(fetch, "digest");

        if (!d)
            return missing(dg, dg_what, err);
        if (!json_is_string(d))
            return wrong(dg, dg_what, d, err);
        if (proto_digest_parse(json_string_value(d), json_string_length(d),
                               r->fetching_hex) != PROTO_OK) {
            char got[64];

            quote(json_string_value(d), json_string_length(d), got,
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
        if (!json_is_string(ex))
            return wrong("explain", ex_what, ex, err);
        if (strcmp(json_string_value(ex), "all") == 0)
            r->explain_all = true;
        else if (strcmp(json_string_value(ex), "best") != 0)
            return wrong("explain", ex_what, ex, err);
    }
    return true;
}

/* nonce: echoed in a signed answer (replay protection); no quote or
 * backslash can reach the answer's JSON or a log line. */
static bool parse_nonce(const json_t *root, struct proto_report *r,
                        struct proto_error *err)
{
    static const char what[] =
        "a string of 16 to 64 characters from A-Z a-z 0-9 _ -";
    json_t *v = member(root, "nonce");
    const char *s;
    size_t len;

    if (!v)
        return true;
    if (!json_is_string(v))
        return wrong("nonce", what, v, err);
    s = json_string_value(v);
    len = json_string_length(v);
    if (len < 16 || len > PROTO_NONCE_SIZE - 1)
        return wrong("nonce", what, v, err);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return wrong("nonce", what, v, err);
    }
    memcpy(r->nonce, s, len + 1);
    r->has_nonce = true;
    return true;
}

/* accept.signed only; the accept object's other members have their own
 * parsers. */
static bool parse_accept_signed(const json_t *root, struct proto_report *r,
                                struct proto_error *err)
{
    json_t *acc;

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
    json_t *root = NULL;
    enum proto_status rc;

    memset(&r, 0, sizeof(r));
    rc = load_object(body, len, lim, &root, err);
    if (rc != PROTO_OK)
        return rc;
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
    json_decref(root);
    return rc;
}

/* ---- variant metadata ------------------------------------------------------ */

static bool parse_exits(const json_t *root, struct proto_variant *v,
                        struct proto_error *err)
{
    char what[64];
    char path[PROTO_FIELD_SIZE];
    char flops_path[PROTO_FIELD_SIZE];
    char got[40], limit[40];
    json_t *arr = member(root, "exits");
    size_t n;

    if (!arr)
        return true;
    bfmt(what, sizeof(what), "an array of at most %d exits",
             PROTO_MAX_EXITS);
    if (!json_is_array(arr))
        return wrong("exits", what, arr, err);
    n = json_array_size(arr);
    if (n > PROTO_MAX_EXITS) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, "exits",
                        "exits must be %s, got %zu", what, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        struct proto_exit *x = &v->exits[i];

        path_index(path, "exits", i);
        if (!json_is_object(e))
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

static bool parse_variant(const json_t *root, struct proto_variant *v,
                          struct proto_error *err)
{
    json_t *req;
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
    json_t *root = NULL;
    enum proto_status rc;

    memset(&v, 0, sizeof(v));
    rc = load_object(body, len, lim, &root, err);
    if (rc != PROTO_OK)
        return rc;
    if (parse_variant(root, &v, err)) {
        *out = v;
        rc = PROTO_OK;
    } else {
        rc = PROTO_BAD_INPUT;
    }
    json_decref(root);
    return rc;
}

/* ---- family ------------------------------------------------------------------ */

static bool get_text(const json_t *obj, const char *key,
                     char out[PROTO_TEXT_SIZE], struct proto_error *err)
{
    static const char what[] = "a string of at most 256 bytes";
    json_t *v = member(obj, key);

    if (!v)
        return true;
    if (!json_is_string(v))
        return wrong(key, what, v, err);
    if (json_string_length(v) > TEXT_MAX_LEN) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, key,
                        "%s must be %s, got %zu bytes", key, what,
                        json_string_length(v));
        return false;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

enum proto_status proto_family_parse(const char *body, size_t len,
                                     const struct proto_limits *lim,
                                     struct proto_family *out,
                                     struct proto_error *err)
{
    char task[PROTO_TEXT_SIZE] = "";
    char description[PROTO_TEXT_SIZE] = "";
    json_t *root = NULL;
    enum proto_status rc;

    rc = load_object(body, len, lim, &root, err);
    if (rc != PROTO_OK)
        return rc;
    if (get_text(root, "task", task, err) &&
        get_text(root, "description", description, err)) {
        memcpy(out->task, task, sizeof(task));
        memcpy(out->description, description, sizeof(description));
        rc = PROTO_OK;
    } else {
        rc = PROTO_BAD_INPUT;
    }
    json_decref(root);
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

static bool parse_event_kind(const json_t *root, struct proto_event *e,
                             struct proto_error *err)
{
    static const char what[] = "one of \"installed\", \"load_failed\", "
                               "\"verify_failed\" or \"rolled_back\"";
    json_t *v = member(root, "event");

    if (!v)
        return missing("event", what, err);
    for (unsigned i = 0; json_is_string(v) && i < PROTO_EVENT_KINDS; i++) {
        if (strcmp(json_string_value(v), event_kinds[i]) == 0) {
            e->kind = (enum proto_event_kind)i;
            return true;
        }
    }
    return wrong("event", what, v, err);
}

static bool parse_event_variant(const json_t *root, struct proto_event *e,
                                struct proto_error *err)
{
    static const char what[] =
        "a name: 1 to 64 of [a-z0-9._-], starting with a letter or digit";
    json_t *v = member(root, "variant");

    if (!v)
        return missing("variant", what, err);
    if (!json_is_string(v) ||
        !proto_name_is_valid(json_string_value(v), json_string_length(v)))
        return wrong("variant", what, v, err);
    memcpy(e->variant, json_string_value(v), json_string_length(v) + 1);
    return true;
}

enum proto_status proto_event_parse(const char *body, size_t len,
                                    const struct proto_limits *lim,
                                    struct proto_event *out,
                                    struct proto_error *err)
{
    struct proto_report r;
    struct proto_event e;
    json_t *root = NULL;
    json_t *dev;
    double version = 0;
    enum proto_status rc;

    memset(&e, 0, sizeof(e));
    memset(&r, 0, sizeof(r));
    rc = load_object(body, len, lim, &root, err);
    if (rc != PROTO_OK)
        return rc;
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
                   &e.energy_mj, &e.has_energy_mj, err)) {
        e.version = (int64_t)version;
        *out = e;
        rc = PROTO_OK;
    }
out:
    json_decref(root);
    return rc;
}

enum proto_status proto_rollout_patch_parse(const char *body, size_t len,
                                            const struct proto_limits *lim,
                                            struct proto_rollout_patch *out,
                                            struct proto_error *err)
{
    struct proto_rollout_patch p;
    json_t *root = NULL;
    double percent = 0;
    enum proto_status rc;

    memset(&p, 0, sizeof(p));
    rc = load_object(body, len, lim, &root, err);
    if (rc != PROTO_OK)
        return rc;
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
    json_decref(root);
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
