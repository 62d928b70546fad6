/*
 * Unit tests of proto/ without the delta format: problem bodies, names and
 * digests, JSON in (every field's bad cases with the exact path and code),
 * JSON out (round trips, the decision's members per action), Range and
 * If-None-Match. proto/delta.c has its own tests.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "proto/proto.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* A report with a valid device plus dev_extra inside device and rest at the
 * top level. */
#define R(dev_extra, rest)                                                     \
    "{\"device\":{\"memory_bytes\":1000,\"gflops\":5" dev_extra "}" rest "}"
/* A variant with the required fields plus extra. */
#define V(extra)                                                               \
    "{\"blob\":\"sha256:" HEX_A "\",\"flops\":1e9,\"accuracy\":0.7" extra "}"

static enum proto_status parse_report_str(const char *body,
                                          struct proto_report *out,
                                          struct proto_error *err)
{
    struct proto_limits lim;

    proto_limits_default(&lim);
    return proto_report_parse(body, strlen(body), &lim, out, err);
}

static enum proto_status parse_variant_str(const char *body,
                                           struct proto_variant *out,
                                           struct proto_error *err)
{
    struct proto_limits lim;

    proto_limits_default(&lim);
    return proto_variant_parse(body, strlen(body), &lim, out, err);
}

static json_t *load(const char *s)
{
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);

    ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, s);
    return j;
}

/* ---- problem ------------------------------------------------------------ */

static const struct code_case {
    enum proto_code code;
    unsigned status;
    const char *type;
    const char *title;
} code_cases[] = {
    {PROTO_ERR_BAD_JSON, 400, "bad-json", "Malformed JSON"},
    {PROTO_ERR_BAD_FIELD, 400, "bad-field", "Invalid field"},
    {PROTO_ERR_MISSING_FIELD, 400, "missing-field", "Missing field"},
    {PROTO_ERR_BAD_DIGEST, 400, "bad-digest", "Invalid digest"},
    {PROTO_ERR_UNAUTHORIZED, 401, "unauthorized", "Authentication required"},
    {PROTO_ERR_UNKNOWN_FAMILY, 404, "unknown-family", "Unknown family"},
    {PROTO_ERR_METHOD_NOT_ALLOWED, 405, "method-not-allowed",
     "Method not allowed"},
    {PROTO_ERR_RANGE_NOT_SATISFIABLE, 416, "range-not-satisfiable",
     "Range not satisfiable"},
    {PROTO_ERR_INSUFFICIENT_STORAGE, 507, "insufficient-storage",
     "Insufficient storage"},
    {PROTO_ERR_HEADERS_TOO_LARGE, 431, "headers-too-large",
     "Request header fields too large"},
    {PROTO_ERR_RETIRED_20, 408, "retired-20", "Retired"},
    {PROTO_ERR_RETIRED_22, 411, "retired-22", "Retired"},
};

START_TEST(test_proto_problem_write_codes)
{
    const struct code_case *c = &code_cases[_i];
    struct proto_error err;
    char type[128];
    char *body;
    json_t *j;

    proto_error_set(&err, c->code, "device.gflops", "gflops %s", "is bad");
    ck_assert_uint_eq(proto_code_status(c->code), c->status);
    ck_assert_str_eq(proto_code_title(c->code), c->title);
    body = proto_problem_write(&err);
    ck_assert_ptr_nonnull(body);
    j = load(body);
    snprintf(type, sizeof(type), "https://modeld.dev/problems/%s", c->type);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), type);
    ck_assert_str_eq(json_string_value(json_object_get(j, "title")),
                     c->title);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")),
                     c->status);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "code")),
                     c->code);
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                     "gflops is bad");
    ck_assert_str_eq(json_string_value(json_object_get(j, "field")),
                     "device.gflops");
    ck_assert_uint_eq(json_object_size(j), 6);
    json_decref(j);
    free(body);
}
END_TEST

START_TEST(test_proto_problem_write_no_field)
{
    struct proto_error err;
    char *body;
    json_t *j;

    proto_error_set(&err, PROTO_ERR_NOT_FOUND, NULL, "no such \"thing\"\n");
    body = proto_problem_write(&err);
    ck_assert_ptr_nonnull(body);
    j = load(body);
    ck_assert_ptr_null(json_object_get(j, "field"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                     "no such \"thing\"\n");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 404);
    json_decref(j);
    free(body);
}
END_TEST

START_TEST(test_proto_problem_write_bad_utf8)
{
    struct proto_error err;
    char *body;
    json_t *j;

    proto_error_set(&err, PROTO_ERR_BAD_FIELD, "ue", "cut \xc3 here \xff");
    body = proto_problem_write(&err);
    ck_assert_ptr_nonnull(body);
    j = load(body);
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                     "cut ? here ?");
    json_decref(j);
    free(body);
}
END_TEST

START_TEST(test_proto_code_unknown)
{
    ck_assert_uint_eq(proto_code_status((enum proto_code)999), 500);
    ck_assert_str_eq(proto_code_title((enum proto_code)999),
                     "Internal error");
}
END_TEST

/* RFC 4648 section 10's vectors, in the URL alphabet without padding,
 * and the two characters only that alphabet has. */
/* The old spelling of an estimate, through printf. */
static void num_short_printf(char *out, size_t size, double x)
{
    if (!isfinite(x))
        snprintf(out, size, "null");
    else if (x == floor(x) && fabs(x) <= 9007199254740992.0 && fabs(x) < 1e15)
        snprintf(out, size, "%lld", (long long)x);
    else if (fabs(x) >= 1e5 && fabs(x) < 1e15)
        snprintf(out, size, "%.0f", x);
    else
        snprintf(out, size, "%.6g", x);
}

/* proto_num_short writes what printf wrote, over magnitudes 1e-7..1e17,
 * decimal-looking values (38.4, 0.706), values a hair from a rounding tie
 * and decade edges. */
START_TEST(test_proto_num_short_as_printf)
{
    static const double fixed[] = {
        0, -0.0, 57, 38.4, 0.706, 1e-4, 9.99999e-5, 0.0001, 99999.95,
        99999.949999, 99999.5, 0.1, 0.3, 1.0000005, 1.0000015, 2.5e-4,
        123456.5, 1e5, 1e15, -1e15, 9.999995, 9.9999949, 12345.65,
        0.00012345649999, 1e-5, 5e-324, 1.7976931348623157e308,
    };
    char got[PROTO_NUM_SHORT_SIZE], want[64];
    unsigned long long seed = 88172645463325252ull;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        size_t n = proto_num_short(got, fixed[i]);

        num_short_printf(want, sizeof(want), fixed[i]);
        ck_assert_msg(strcmp(got, want) == 0, "%.17g: %s, printf %s",
                      fixed[i], got, want);
        ck_assert_uint_eq(n, strlen(got));
    }
    ck_assert_str_eq((proto_num_short(got, NAN), got), "null");
    for (int i = 0; i < 400000; i++) {
        double x, mant;
        int ex;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ex = (int)(seed % 25) - 8;               /* 1e-8 .. 1e16 */
        mant = (double)(seed >> 11) / 9007199254740992.0;
        switch (i % 4) {
        case 0: x = mant * pow(10, ex); break;   /* any bits */
        case 1: x = round(mant * 1e4) / 100.0; break; /* 2 decimals */
        case 2: x = round(mant * 1e7) / 1e7 * pow(10, ex % 6); break;
        default: x = (round(mant * 2e6) + 0.5) / pow(10, ex % 7); break;
        }
        if (seed & 1024)
            x = -x;
        proto_num_short(got, x);
        num_short_printf(want, sizeof(want), x);
        ck_assert_msg(strcmp(got, want) == 0, "%.17g: %s, printf %s", x, got,
                      want);
    }
}
END_TEST

/* proto_g_exp writes what "%.<p>g" writes, 1e-30 <= a < 1e-4, every
 * precision 1..9: values of any bits, decimal-looking ones, ones a hair
 * from a rounding tie and decade edges; and it answers (does not leave
 * to printf) all but the few values within 1e-6 of a tie. */
START_TEST(test_proto_g_exp_as_printf)
{
    static const double fixed[] = {
        5.6e-05, 1.68e-05, 1e-5, 9.99999e-5, 9.96e-5, 1e-30, 1.5e-7,
        2.5e-6, 1.25e-10, 9.9999999999e-21, 3e-22, 7.00000000001e-9,
    };
    char got[64], want[64];
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    size_t answered = 0, tried = 0;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        for (int p = 1; p <= 9; p++) {
            size_t n = proto_g_exp(got, fixed[i], p);

            snprintf(want, sizeof(want), "%.*g", p, fixed[i]);
            if (n == 0)
                continue;
            got[n] = '\0';
            ck_assert_msg(strcmp(got, want) == 0, "%%.%dg of %.17g: %s, "
                          "printf %s", p, fixed[i], got, want);
        }
    ck_assert_uint_eq(proto_g_exp(got, 1e-4, 3), 0);
    ck_assert_uint_eq(proto_g_exp(got, 0.5e-30, 3), 0);
    ck_assert_uint_eq(proto_g_exp(got, 5e-5, 0), 0);
    for (int i = 0; i < 300000; i++) {
        double x, mant;
        int ex, p = 1 + i % 9;
        size_t n;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ex = -(int)(seed % 27) - 5;              /* 1e-31 .. 1e-5 */
        mant = 1 + 9 * ((double)(seed >> 11) / 9007199254740992.0);
        switch (i % 4) {
        case 0: x = mant * pow(10, ex); break;   /* any bits */
        case 1: x = round(mant * 1e3) / 1e3 * pow(10, ex); break;
        case 2: x = (round(mant * 1e4) + 0.5) / 1e4 * pow(10, ex); break;
        default: x = pow(10, ex) * (1 + (double)(seed % 3 - 1) * 1e-16);
        }
        n = proto_g_exp(got, x, p);
        if (i % 4 == 0 && x >= 1e-30 && x < 1e-4) {
            tried++;
            answered += n > 0;
        }
        if (n == 0)
            continue;
        got[n] = '\0';
        snprintf(want, sizeof(want), "%.*g", p, x);
        ck_assert_msg(strcmp(got, want) == 0, "%%.%dg of %.17g: %s, printf %s",
                      p, x, got, want);
    }
    /* a value of any bits is within 1e-6 of a tie about once in 500000 */
    ck_assert_uint_ge(answered * 1000, tried * 999);
}
END_TEST

START_TEST(test_proto_base64url_vectors)
{
    static const struct { const char *in, *out; } v[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
        {"\xfb\xff", "-_8"}, {"\xff\xfe\xfd", "__79"},
    };
    char out[PROTO_B64URL_SIZE(8)];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'x', sizeof(out));
        proto_base64url((const unsigned char *)v[i].in, strlen(v[i].in), out);
        ck_assert_str_eq(out, v[i].out);
        ck_assert_uint_eq(strlen(out) + 1, PROTO_B64URL_SIZE(strlen(v[i].in)));
    }
}
END_TEST

START_TEST(test_proto_error_set_truncates)
{
    struct proto_error err;
    char long_field[300];

    memset(long_field, 'x', sizeof(long_field) - 1);
    long_field[sizeof(long_field) - 1] = '\0';
    proto_error_set(&err, PROTO_ERR_BAD_FIELD, long_field, "%s%s%s",
                    long_field, long_field, long_field);
    ck_assert_uint_eq(strlen(err.field), PROTO_FIELD_SIZE - 1);
    ck_assert_uint_eq(strlen(err.detail), PROTO_DETAIL_SIZE - 1);
    ck_assert_int_eq(err.code, PROTO_ERR_BAD_FIELD);
    /* arguments may alias the struct being filled */
    proto_error_set(&err, PROTO_ERR_BAD_JSON, "ue", "x");
    proto_error_set(&err, PROTO_ERR_BAD_FIELD, err.field, "%s: %s!",
                    err.field, err.detail);
    ck_assert_str_eq(err.field, "ue");
    ck_assert_str_eq(err.detail, "ue: x!");
}
END_TEST

/* ---- names and digests ------------------------------------------------ */

static const struct name_case {
    const char *s;
    bool valid;
} name_cases[] = {
    {"a", true},
    {"0", true},
    {"mobilenet-v2_1.0", true},
    {"inception-v3", true},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     false},
    {"", false},
    {"-a", false},
    {".a", false},
    {"_a", false},
    {"A", false},
    {"aB", false},
    {"a b", false},
    {"a/b", false},
    {"..", false},
    {"a\xc3\xa9", false},
};

/* One row of name_cases; the whole table runs in one test so that the
 * suite forks once, not once per row (forks are slow under ASan). */
static void check_one_name_is_valid_cases(size_t i)
{
    const struct name_case *c = &name_cases[i];

    ck_assert_msg(proto_name_is_valid(c->s, strlen(c->s)) == c->valid,
                  "name \"%s\"", c->s);
}

START_TEST(test_proto_name_is_valid_cases)
{
    for (size_t i = 0; i < ARRAY_SIZE(name_cases); i++)
        check_one_name_is_valid_cases(i);
}
END_TEST

START_TEST(test_proto_name_is_valid_nul)
{
    ck_assert(!proto_name_is_valid("ab\0c", 4));
    ck_assert(proto_name_is_valid("ab\0c", 2));
}
END_TEST

static const struct digest_case {
    const char *s;
    bool hex_valid;
    bool digest_valid;
} digest_cases[] = {
    {HEX_B, true, false},
    {"sha256:" HEX_B, false, true},
    {"sha256:" HEX_A, false, true},
    {"SHA256:" HEX_B, false, false},
    {"sha512:" HEX_B, false, false},
    {"sha256:" HEX_B "0", false, false},
    {"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
     false, false},
    {"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
     false, false},
    {"sha256:0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef",
     false, false},
    {"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", false,
     false},
    {"", false, false},
    {"sha256:", false, false},
    {" sha256:" HEX_B, false, false},
};

static void check_one_digest_parse_cases(size_t i)
{
    const struct digest_case *c = &digest_cases[i];
    char hex[PROTO_HEX_SIZE] = "untouched";
    enum proto_status rc;

    ck_assert_msg(proto_hex_is_valid(c->s, strlen(c->s)) == c->hex_valid,
                  "hex \"%s\"", c->s);
    rc = proto_digest_parse(c->s, strlen(c->s), hex);
    ck_assert_msg(rc == (c->digest_valid ? PROTO_OK : PROTO_BAD_INPUT),
                  "digest \"%s\"", c->s);
    if (c->digest_valid)
        ck_assert_str_eq(hex, c->s + 7);
    else
        ck_assert_str_eq(hex, "untouched");
}

START_TEST(test_proto_digest_parse_cases)
{
    for (size_t i = 0; i < ARRAY_SIZE(digest_cases); i++)
        check_one_digest_parse_cases(i);
}
END_TEST

START_TEST(test_proto_hasher_vectors)
{
    struct proto_hasher *h = proto_hasher_new();
    char hex[PROTO_HEX_SIZE];
    char chunk[1000];

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(proto_hasher_final(h, hex), PROTO_OK);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"
                          "a495991b7852b855");
    proto_hasher_reset(h);
    ck_assert_int_eq(proto_hasher_update(h, "a", 1), PROTO_OK);
    ck_assert_int_eq(proto_hasher_update(h, "bc", 2), PROTO_OK);
    ck_assert_int_eq(proto_hasher_update(h, "", 0), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, hex), PROTO_OK);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
                          "b410ff61f20015ad");
    proto_hasher_reset(h);
    memset(chunk, 'a', sizeof(chunk));
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(proto_hasher_update(h, chunk, sizeof(chunk)),
                         PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, hex), PROTO_OK);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e"
                          "046d39ccc7112cd0");
    proto_hasher_free(h);
    proto_hasher_free(NULL);
}
END_TEST

/* ---- report ----------------------------------------------------------------- */

START_TEST(test_proto_report_parse_full)
{
    static const char body[] =
        "{\"ue\":\"opaque-id 7\","
        "\"device\":{\"memory_bytes\":300000000,\"gflops\":50.5,"
        "\"class\":\"npu-class-a\",\"formats\":[\"tflite\",\"onnx\"],"
        "\"accelerators\":[\"npu\"],\"battery_percent\":80,"
        "\"charging\":true,\"power_mw\":1500},"
        "\"network\":{\"downlink_bps\":2e7,\"rtt_ms\":40,\"metered\":true,"
        "\"load\":0.3},"
        "\"requirements\":{\"max_latency_ms\":100,\"min_accuracy\":0.7,"
        "\"max_download_s\":30,\"max_energy_mj\":500},"
        "\"preference\":\"saver\",\"current\":\"sha256:" HEX_B "\","
        "\"context\":{\"scene\":\"night\",\"res\":[\"720p\",\"1080p\"]}}";
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(parse_report_str(body, &r, &err), PROTO_OK);
    ck_assert(r.has_ue);
    ck_assert_str_eq(r.ue, "opaque-id 7");
    ck_assert_uint_eq(r.memory_bytes, 300000000);
    ck_assert_double_eq(r.gflops, 50.5);
    ck_assert(r.has_device_class);
    ck_assert_str_eq(r.device_class, "npu-class-a");
    ck_assert(r.has_formats);
    ck_assert_uint_eq(r.format_count, 2);
    ck_assert_str_eq(r.formats[1], "onnx");
    ck_assert_uint_eq(r.accelerator_count, 1);
    ck_assert_str_eq(r.accelerators[0], "npu");
    ck_assert(r.has_battery_percent);
    ck_assert_double_eq(r.battery_percent, 80);
    ck_assert(r.charging);
    ck_assert(r.has_power_mw);
    ck_assert_double_eq(r.power_mw, 1500);
    ck_assert(r.has_downlink_bps);
    ck_assert_double_eq(r.downlink_bps, 2e7);
    ck_assert(r.has_rtt_ms);
    ck_assert_double_eq(r.rtt_ms, 40);
    ck_assert(r.metered);
    ck_assert(r.has_load);
    ck_assert_double_eq(r.load, 0.3);
    ck_assert(r.has_max_latency_ms);
    ck_assert_double_eq(r.max_latency_ms, 100);
    ck_assert(r.has_min_accuracy);
    ck_assert_double_eq(r.min_accuracy, 0.7);
    ck_assert(r.has_max_download_s);
    ck_assert_double_eq(r.max_download_s, 30);
    ck_assert(r.has_max_energy_mj);
    ck_assert_double_eq(r.max_energy_mj, 500);
    ck_assert_int_eq(r.preference, PROTO_PREFER_SAVER);
    ck_assert(r.has_current);
    ck_assert_str_eq(r.current_hex, HEX_B);
    ck_assert_uint_eq(r.context_count, 3);
    ck_assert_str_eq(r.context[0].key, "scene");
    ck_assert_str_eq(r.context[0].value, "night");
    ck_assert_str_eq(r.context[2].key, "res");
    ck_assert_str_eq(r.context[2].value, "1080p");
}
END_TEST

START_TEST(test_proto_report_parse_minimal)
{
    struct proto_report r;
    struct proto_error err;

    memset(&r, 0x5a, sizeof(r));
    ck_assert_int_eq(
        parse_report_str("{\"device\":{\"memory_bytes\":1e6,\"gflops\":1},"
                         "\"network\":null,\"preference\":null,"
                         "\"ue\":null,\"current\":null,\"context\":null}",
                         &r, &err),
        PROTO_OK);
    ck_assert_uint_eq(r.memory_bytes, 1000000);
    ck_assert_double_eq(r.gflops, 1);
    ck_assert(!r.has_ue && !r.has_device_class && !r.has_formats);
    ck_assert_uint_eq(r.format_count, 0);
    ck_assert_uint_eq(r.accelerator_count, 0);
    ck_assert(!r.has_battery_percent && !r.charging && !r.has_power_mw);
    ck_assert(!r.has_downlink_bps && !r.has_rtt_ms && !r.metered);
    ck_assert(!r.has_load && !r.has_max_latency_ms && !r.has_min_accuracy);
    ck_assert(!r.has_max_download_s && !r.has_max_energy_mj);
    ck_assert_int_eq(r.preference, PROTO_PREFER_QUALITY);
    ck_assert(!r.has_current);
    ck_assert_uint_eq(r.context_count, 0);
}
END_TEST

START_TEST(test_proto_report_parse_bounds_inclusive)
{
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(
        parse_report_str(
            "{\"device\":{\"memory_bytes\":9007199254740992,\"gflops\":1e6,"
            "\"battery_percent\":0,\"power_mw\":0,\"formats\":[]},"
            "\"network\":{\"downlink_bps\":1e12,\"rtt_ms\":0,\"load\":1},"
            "\"requirements\":{\"max_latency_ms\":3.6e6,\"min_accuracy\":0,"
            "\"max_download_s\":1e7,\"max_energy_mj\":1e9},"
            "\"ue\":\"" "0123456789012345678901234567890123456789012345678901"
            "234567890123456789012345678901234567890123456789012345678901234567"
            "8901234567\"}",
            &r, &err),
        PROTO_OK);
    ck_assert_uint_eq(r.memory_bytes, 9007199254740992ULL);
    ck_assert(r.has_formats);
    ck_assert_uint_eq(r.format_count, 0);
    ck_assert_uint_eq(strlen(r.ue), 128);
    ck_assert(r.has_battery_percent);
    ck_assert_double_eq(r.min_accuracy, 0);
}
END_TEST

/* The fields of selection over time, read back; downlink_bps 0 is an
 * outage, not an error. */
START_TEST(test_proto_report_parse_over_time)
{
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(
        parse_report_str(
            "{\"device\":{\"memory_bytes\":1000,\"gflops\":1,"
            "\"memory_floor_bytes\":600,\"memory_history_bytes\":[900,"
            "600,0,1,2,3,4,5,6,7,8,9,10,11,12,9007199254740992],"
            "\"gflops_history\":[60,18.5,1e6]},"
            "\"network\":{\"downlink_bps\":0,"
            "\"downlink_history_bps\":[1e6,0,2.5e6,1,2,3,4,5,6,7,8,9,10,11,12,"
            "13]},"
            "\"requirements\":{\"horizon_s\":1e7},"
            "\"fetching\":{\"digest\":\"sha256:" HEX_B "\",\"bytes_done\":"
            "9007199254740992},\"explain\":\"all\"}",
            &r, &err),
        PROTO_OK);
    ck_assert(r.has_downlink_bps);
    ck_assert_double_eq(r.downlink_bps, 0);
    ck_assert_uint_eq(r.downlink_history_count, 16);
    ck_assert_double_eq(r.downlink_history_bps[0], 1e6);
    ck_assert_double_eq(r.downlink_history_bps[2], 2.5e6);
    ck_assert_double_eq(r.downlink_history_bps[15], 13);
    ck_assert(r.has_horizon_s);
    ck_assert_double_eq(r.horizon_s, 1e7);
    ck_assert(r.has_fetching);
    ck_assert_str_eq(r.fetching_hex, HEX_B);
    ck_assert_uint_eq(r.fetching_bytes_done, 9007199254740992ULL);
    ck_assert(r.has_memory_floor_bytes);
    ck_assert_uint_eq(r.memory_floor_bytes, 600);
    ck_assert_uint_eq(r.memory_history_count, 16);
    ck_assert_uint_eq(r.memory_history_bytes[0], 900);
    ck_assert_uint_eq(r.memory_history_bytes[2], 0);
    ck_assert_uint_eq(r.memory_history_bytes[15], 9007199254740992ULL);
    ck_assert_uint_eq(r.gflops_history_count, 3);
    ck_assert_double_eq(r.gflops_history[1], 18.5);
    ck_assert_double_eq(r.gflops_history[2], 1e6);
    ck_assert(r.explain_all);

    ck_assert_int_eq(
        parse_report_str("{\"device\":{\"memory_bytes\":1000,\"gflops\":1},"
                         "\"explain\":\"best\",\"fetching\":{\"digest\":"
                         "\"sha256:" HEX_B "\"}}",
                         &r, &err),
        PROTO_OK);
    ck_assert(!r.explain_all && !r.has_horizon_s && !r.has_memory_floor_bytes);
    ck_assert(r.has_fetching);
    ck_assert_uint_eq(r.fetching_bytes_done, 0);
    ck_assert_uint_eq(r.downlink_history_count, 0);
    ck_assert_uint_eq(r.memory_history_count, 0);
    ck_assert_uint_eq(r.gflops_history_count, 0);
}
END_TEST

START_TEST(test_proto_report_parse_unknown_fields)
{
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(
        parse_report_str(
            "{\"future\":{\"x\":[1,2,{\"y\":null}]},\"device\":{\"memory_bytes\":"
            "5,\"gflops\":2,\"npu_tops\":\"lots\"},\"network\":{\"kind\":"
            "\"5g\"},\"requirements\":{\"max_jitter_ms\":\"x\"}}",
            &r, &err),
        PROTO_OK);
    ck_assert_uint_eq(r.memory_bytes, 5);
    ck_assert_double_eq(r.gflops, 2);
}
END_TEST

static const struct bad_case {
    const char *body;
    enum proto_code code;
    const char *field;
} report_bad_cases[] = {
    /* body shape */
    {"", PROTO_ERR_BAD_JSON, "body"},
    {"{", PROTO_ERR_BAD_JSON, "body"},
    {"[]", PROTO_ERR_BAD_JSON, "body"},
    {"\"device\"", PROTO_ERR_BAD_JSON, "body"},
    {"42", PROTO_ERR_BAD_JSON, "body"},
    {"null", PROTO_ERR_BAD_JSON, "body"},
    {"{} x", PROTO_ERR_BAD_JSON, "body"},
    {"{'device': 1}", PROTO_ERR_BAD_JSON, "body"},
    {R("", ",\"ue\":\"a\",\"ue\":\"b\""), PROTO_ERR_BAD_JSON, "body"},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},\"ue\":\"a\\u0000b\"}",
     PROTO_ERR_BAD_JSON, "body"},
    /* device */
    {"{}", PROTO_ERR_MISSING_FIELD, "device"},
    {"{\"device\":null}", PROTO_ERR_MISSING_FIELD, "device"},
    {"{\"device\":[]}", PROTO_ERR_BAD_FIELD, "device"},
    {"{\"device\":\"phone\"}", PROTO_ERR_BAD_FIELD, "device"},
    {"{\"device\":{\"gflops\":5}}", PROTO_ERR_MISSING_FIELD,
     "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":null,\"gflops\":5}}",
     PROTO_ERR_MISSING_FIELD, "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":0,\"gflops\":5}}", PROTO_ERR_BAD_FIELD,
     "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":-1,\"gflops\":5}}", PROTO_ERR_BAD_FIELD,
     "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":1.5,\"gflops\":5}}", PROTO_ERR_BAD_FIELD,
     "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":1e16,\"gflops\":5}}", PROTO_ERR_BAD_FIELD,
     "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":99999999999999999999999,\"gflops\":5}}",
     PROTO_ERR_BAD_FIELD, "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":\"50\",\"gflops\":5}}",
     PROTO_ERR_BAD_FIELD, "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":true,\"gflops\":5}}", PROTO_ERR_BAD_FIELD,
     "device.memory_bytes"},
    {"{\"device\":{\"memory_bytes\":1000}}", PROTO_ERR_MISSING_FIELD,
     "device.gflops"},
    {"{\"device\":{\"memory_bytes\":1000,\"gflops\":0}}", PROTO_ERR_BAD_FIELD,
     "device.gflops"},
    {"{\"device\":{\"memory_bytes\":1000,\"gflops\":-3}}",
     PROTO_ERR_BAD_FIELD, "device.gflops"},
    {"{\"device\":{\"memory_bytes\":1000,\"gflops\":1000001}}",
     PROTO_ERR_BAD_FIELD, "device.gflops"},
    {"{\"device\":{\"memory_bytes\":1000,\"gflops\":\"50\"}}",
     PROTO_ERR_BAD_FIELD, "device.gflops"},
    {"{\"device\":{\"memory_bytes\":1000,\"gflops\":[50]}}",
     PROTO_ERR_BAD_FIELD, "device.gflops"},
    {R(",\"class\":\"\"", ""), PROTO_ERR_BAD_FIELD, "device.class"},
    {R(",\"class\":\"a b\"", ""), PROTO_ERR_BAD_FIELD, "device.class"},
    {R(",\"class\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", ""),
     PROTO_ERR_BAD_FIELD, "device.class"},
    {R(",\"class\":5", ""), PROTO_ERR_BAD_FIELD, "device.class"},
    {R(",\"class\":[\"npu\"]", ""), PROTO_ERR_BAD_FIELD, "device.class"},
    {R(",\"formats\":\"tflite\"", ""), PROTO_ERR_BAD_FIELD, "device.formats"},
    {R(",\"formats\":{}", ""), PROTO_ERR_BAD_FIELD, "device.formats"},
    {R(",\"formats\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]",
       ""),
     PROTO_ERR_BAD_FIELD, "device.formats"},
    {R(",\"formats\":[1]", ""), PROTO_ERR_BAD_FIELD, "device.formats[0]"},
    {R(",\"formats\":[\"ok\",\"not ok\"]", ""), PROTO_ERR_BAD_FIELD,
     "device.formats[1]"},
    {R(",\"formats\":[\"ok\",null]", ""), PROTO_ERR_BAD_FIELD,
     "device.formats[1]"},
    {R(",\"accelerators\":\"npu\"", ""), PROTO_ERR_BAD_FIELD,
     "device.accelerators"},
    {R(",\"accelerators\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
       "\"9\"]",
       ""),
     PROTO_ERR_BAD_FIELD, "device.accelerators"},
    {R(",\"accelerators\":[\"npu\",\"\"]", ""), PROTO_ERR_BAD_FIELD,
     "device.accelerators[1]"},
    {R(",\"battery_percent\":-1", ""), PROTO_ERR_BAD_FIELD,
     "device.battery_percent"},
    {R(",\"battery_percent\":100.5", ""), PROTO_ERR_BAD_FIELD,
     "device.battery_percent"},
    {R(",\"battery_percent\":\"80\"", ""), PROTO_ERR_BAD_FIELD,
     "device.battery_percent"},
    {R(",\"charging\":\"true\"", ""), PROTO_ERR_BAD_FIELD, "device.charging"},
    {R(",\"charging\":1", ""), PROTO_ERR_BAD_FIELD, "device.charging"},
    {R(",\"power_mw\":-1", ""), PROTO_ERR_BAD_FIELD, "device.power_mw"},
    {R(",\"power_mw\":1000001", ""), PROTO_ERR_BAD_FIELD, "device.power_mw"},
    {R(",\"power_mw\":false", ""), PROTO_ERR_BAD_FIELD, "device.power_mw"},
    /* network */
    {R("", ",\"network\":\"5g\""), PROTO_ERR_BAD_FIELD, "network"},
    {R("", ",\"network\":[]"), PROTO_ERR_BAD_FIELD, "network"},
    {R("", ",\"network\":{\"downlink_bps\":-5}"), PROTO_ERR_BAD_FIELD,
     "network.downlink_bps"},
    {R("", ",\"network\":{\"downlink_bps\":1.1e12}"), PROTO_ERR_BAD_FIELD,
     "network.downlink_bps"},
    {R("", ",\"network\":{\"downlink_bps\":\"1000\"}"), PROTO_ERR_BAD_FIELD,
     "network.downlink_bps"},
    {R("", ",\"network\":{\"rtt_ms\":-1}"), PROTO_ERR_BAD_FIELD,
     "network.rtt_ms"},
    {R("", ",\"network\":{\"rtt_ms\":600001}"), PROTO_ERR_BAD_FIELD,
     "network.rtt_ms"},
    {R("", ",\"network\":{\"metered\":0}"), PROTO_ERR_BAD_FIELD,
     "network.metered"},
    {R("", ",\"network\":{\"metered\":\"no\"}"), PROTO_ERR_BAD_FIELD,
     "network.metered"},
    {R("", ",\"network\":{\"load\":1.5}"), PROTO_ERR_BAD_FIELD,
     "network.load"},
    {R("", ",\"network\":{\"load\":-0.1}"), PROTO_ERR_BAD_FIELD,
     "network.load"},
    /* requirements */
    {R("", ",\"requirements\":[]"), PROTO_ERR_BAD_FIELD, "requirements"},
    {R("", ",\"requirements\":{\"max_latency_ms\":0}"), PROTO_ERR_BAD_FIELD,
     "requirements.max_latency_ms"},
    {R("", ",\"requirements\":{\"max_latency_ms\":3600001}"),
     PROTO_ERR_BAD_FIELD, "requirements.max_latency_ms"},
    {R("", ",\"requirements\":{\"max_latency_ms\":\"100\"}"),
     PROTO_ERR_BAD_FIELD, "requirements.max_latency_ms"},
    {R("", ",\"requirements\":{\"min_accuracy\":1.01}"), PROTO_ERR_BAD_FIELD,
     "requirements.min_accuracy"},
    {R("", ",\"requirements\":{\"min_accuracy\":-0.5}"), PROTO_ERR_BAD_FIELD,
     "requirements.min_accuracy"},
    {R("", ",\"requirements\":{\"max_download_s\":0}"), PROTO_ERR_BAD_FIELD,
     "requirements.max_download_s"},
    {R("", ",\"requirements\":{\"max_download_s\":1.5e7}"),
     PROTO_ERR_BAD_FIELD, "requirements.max_download_s"},
    {R("", ",\"requirements\":{\"max_energy_mj\":0}"), PROTO_ERR_BAD_FIELD,
     "requirements.max_energy_mj"},
    {R("", ",\"requirements\":{\"max_energy_mj\":2e9}"), PROTO_ERR_BAD_FIELD,
     "requirements.max_energy_mj"},
    /* top level */
    {R("", ",\"preference\":\"fast\""), PROTO_ERR_BAD_FIELD, "preference"},
    {R("", ",\"preference\":\"Quality\""), PROTO_ERR_BAD_FIELD, "preference"},
    {R("", ",\"preference\":1"), PROTO_ERR_BAD_FIELD, "preference"},
    {R("", ",\"current\":\"sha256:ABC\""), PROTO_ERR_BAD_DIGEST, "current"},
    {R("", ",\"current\":\"md5:" HEX_A "\""), PROTO_ERR_BAD_DIGEST,
     "current"},
    {R("", ",\"current\":\"" HEX_A "\""), PROTO_ERR_BAD_DIGEST, "current"},
    {R("", ",\"current\":\"sha256:" HEX_A "a\""), PROTO_ERR_BAD_DIGEST,
     "current"},
    {R("", ",\"current\":5"), PROTO_ERR_BAD_FIELD, "current"},
    {R("", ",\"ue\":\"\""), PROTO_ERR_BAD_FIELD, "ue"},
    {R("", ",\"ue\":\"a\\nb\""), PROTO_ERR_BAD_FIELD, "ue"},
    {R("", ",\"ue\":\"caf\\u00e9\""), PROTO_ERR_BAD_FIELD, "ue"},
    {R("", ",\"ue\":7"), PROTO_ERR_BAD_FIELD, "ue"},
    {R("", ",\"ue\":\"0123456789012345678901234567890123456789012345678901"
           "234567890123456789012345678901234567890123456789012345678901234567"
           "89012345678\""),
     PROTO_ERR_BAD_FIELD, "ue"},
    {R("", ",\"context\":[]"), PROTO_ERR_BAD_FIELD, "context"},
    {R("", ",\"context\":\"night\""), PROTO_ERR_BAD_FIELD, "context"},
    {R("", ",\"context\":{\"bad key\":\"x\"}"), PROTO_ERR_BAD_FIELD,
     "context"},
    {R("", ",\"context\":{\"\":\"x\"}"), PROTO_ERR_BAD_FIELD, "context"},
    {R("", ",\"context\":{\"scene\":5}"), PROTO_ERR_BAD_FIELD,
     "context.scene"},
    {R("", ",\"context\":{\"scene\":{}}"), PROTO_ERR_BAD_FIELD,
     "context.scene"},
    {R("", ",\"context\":{\"scene\":\"a b\"}"), PROTO_ERR_BAD_FIELD,
     "context.scene"},
    {R("", ",\"context\":{\"scene\":[\"ok\",5]}"), PROTO_ERR_BAD_FIELD,
     "context.scene[1]"},
    {R("", ",\"context\":{\"a\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
           "\"8\",\"9\"],\"b\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
           "\"8\"]}"),
     PROTO_ERR_BAD_FIELD, "context"},
    /* selection over time */
    {R("", ",\"network\":{\"downlink_history_bps\":5}"),
     PROTO_ERR_BAD_FIELD, "network.downlink_history_bps"},
    {R("", ",\"network\":{\"downlink_history_bps\":[1,2,3,4,5,6,7,8,9,10,"
           "11,12,13,14,15,16,17]}"),
     PROTO_ERR_BAD_FIELD, "network.downlink_history_bps"},
    {R("", ",\"network\":{\"downlink_history_bps\":[1,-2]}"),
     PROTO_ERR_BAD_FIELD, "network.downlink_history_bps[1]"},
    {R("", ",\"network\":{\"downlink_history_bps\":[\"1\"]}"),
     PROTO_ERR_BAD_FIELD, "network.downlink_history_bps[0]"},
    {R("", ",\"requirements\":{\"horizon_s\":0}"), PROTO_ERR_BAD_FIELD,
     "requirements.horizon_s"},
    {R("", ",\"requirements\":{\"horizon_s\":1.1e7}"), PROTO_ERR_BAD_FIELD,
     "requirements.horizon_s"},
    {R(",\"memory_floor_bytes\":-1", ""), PROTO_ERR_BAD_FIELD,
     "device.memory_floor_bytes"},
    {R(",\"memory_history_bytes\":5", ""), PROTO_ERR_BAD_FIELD,
     "device.memory_history_bytes"},
    {R(",\"memory_history_bytes\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
       "16,17]", ""),
     PROTO_ERR_BAD_FIELD, "device.memory_history_bytes"},
    {R(",\"memory_history_bytes\":[1,-2]", ""), PROTO_ERR_BAD_FIELD,
     "device.memory_history_bytes[1]"},
    {R(",\"memory_history_bytes\":[1.5]", ""), PROTO_ERR_BAD_FIELD,
     "device.memory_history_bytes[0]"},
    {R(",\"memory_history_bytes\":[9007199254740993e3]", ""),
     PROTO_ERR_BAD_FIELD, "device.memory_history_bytes[0]"},
    {R(",\"gflops_history\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]",
       ""), PROTO_ERR_BAD_FIELD, "device.gflops_history"},
    {R(",\"gflops_history\":{}", ""), PROTO_ERR_BAD_FIELD,
     "device.gflops_history"},
    {R(",\"gflops_history\":[1,0]", ""), PROTO_ERR_BAD_FIELD,
     "device.gflops_history[1]"},
    {R(",\"gflops_history\":[2e6]", ""), PROTO_ERR_BAD_FIELD,
     "device.gflops_history[0]"},
    {R(",\"memory_floor_bytes\":1.5", ""), PROTO_ERR_BAD_FIELD,
     "device.memory_floor_bytes"},
    {R("", ",\"fetching\":\"sha256:00\""), PROTO_ERR_BAD_FIELD, "fetching"},
    {R("", ",\"fetching\":{\"bytes_done\":5}"), PROTO_ERR_MISSING_FIELD,
     "fetching.digest"},
    {R("", ",\"fetching\":{\"digest\":\"sha256:XYZ\"}"),
     PROTO_ERR_BAD_DIGEST, "fetching.digest"},
    {R("", ",\"fetching\":{\"digest\":7}"), PROTO_ERR_BAD_FIELD,
     "fetching.digest"},
    {R("", ",\"fetching\":{\"digest\":\"sha256:" HEX_B "\","
           "\"bytes_done\":-1}"),
     PROTO_ERR_BAD_FIELD, "fetching.bytes_done"},
    {R("", ",\"explain\":\"some\""), PROTO_ERR_BAD_FIELD, "explain"},
    {R("", ",\"explain\":true"), PROTO_ERR_BAD_FIELD, "explain"},
};

/* A bad case's parse: refused with its code, naming its field in the
 * error and in the detail. */
static void assert_refused(const struct bad_case *c, enum proto_status rc,
                           const struct proto_error *err)
{
    ck_assert_msg(rc == PROTO_BAD_INPUT, "accepted: %s", c->body);
    ck_assert_msg(err->code == c->code, "code %d want %d for %s (%s)",
                  err->code, c->code, c->body, err->detail);
    ck_assert_msg(strcmp(err->field, c->field) == 0,
                  "field \"%s\" want \"%s\" for %s", err->field, c->field,
                  c->body);
    ck_assert_msg(err->detail[0] != '\0', "no detail for %s", c->body);
    ck_assert_msg(strstr(err->detail, c->field) != NULL,
                  "detail \"%s\" does not name %s", err->detail, c->field);
}

static void check_one_report_parse_bad(size_t i)
{
    const struct bad_case *c = &report_bad_cases[i];
    struct proto_report r;
    struct proto_error err;

    memset(&r, 0x5a, sizeof(r));
    memset(&err, 0, sizeof(err));
    assert_refused(c, parse_report_str(c->body, &r, &err), &err);
    ck_assert_uint_eq(r.memory_bytes, 0x5a5a5a5a5a5a5a5aULL);
}

START_TEST(test_proto_report_parse_bad)
{
    for (size_t i = 0; i < ARRAY_SIZE(report_bad_cases); i++)
        check_one_report_parse_bad(i);
}
END_TEST

START_TEST(test_proto_report_parse_detail_sentence)
{
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(
        parse_report_str("{\"device\":{\"memory_bytes\":1,\"gflops\":\"50\"}}",
                         &r, &err),
        PROTO_BAD_INPUT);
    ck_assert_str_eq(err.detail, "device.gflops must be a number greater "
                                 "than 0 and at most 1000000, got the string "
                                 "\"50\"");
    ck_assert_int_eq(
        parse_report_str(R("", ",\"requirements\":{\"min_accuracy\":2}"), &r,
                         &err),
        PROTO_BAD_INPUT);
    ck_assert_str_eq(err.detail, "requirements.min_accuracy must be a number "
                                 "from 0 to 1, got 2");
}
END_TEST

START_TEST(test_proto_report_parse_context_max)
{
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(
        parse_report_str(R("", ",\"context\":{\"a\":[\"1\",\"2\",\"3\",\"4\","
                               "\"5\",\"6\",\"7\",\"8\"],\"b\":[\"1\",\"2\","
                               "\"3\",\"4\",\"5\",\"6\",\"7\"],\"c\":\"x\","
                               "\"d\":null,\"e\":[]}"),
                         &r, &err),
        PROTO_OK);
    ck_assert_uint_eq(r.context_count, PROTO_MAX_TAGS);
    ck_assert_str_eq(r.context[15].key, "c");
    ck_assert_str_eq(r.context[15].value, "x");
}
END_TEST

/* A report whose extra member "x" nests depth arrays, total depth+1. */
static char *nested_report(size_t depth)
{
    static const char head[] = "{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
                               "\"x\":";
    size_t len = strlen(head) + 2 * depth + 2;
    char *s = malloc(len);

    ck_assert_ptr_nonnull(s);
    strcpy(s, head);
    memset(s + strlen(head), '[', depth);
    memset(s + strlen(head) + depth, ']', depth);
    strcpy(s + strlen(head) + 2 * depth, "}");
    return s;
}

START_TEST(test_proto_report_parse_depth)
{
    struct proto_report r;
    struct proto_error err;
    struct proto_limits lim;
    char *ok = nested_report(15);
    char *deep = nested_report(16);
    char *bomb = nested_report(200000);

    proto_limits_default(&lim);
    ck_assert_uint_eq(lim.max_depth, 16);
    ck_assert_int_eq(proto_report_parse(ok, strlen(ok), &lim, &r, &err),
                     PROTO_OK);
    ck_assert_int_eq(proto_report_parse(deep, strlen(deep), &lim, &r, &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, PROTO_ERR_JSON_TOO_DEEP);
    ck_assert_str_eq(err.field, "body");
    ck_assert_ptr_nonnull(strstr(err.detail, "16"));
    ck_assert_int_eq(proto_report_parse(bomb, strlen(bomb), &lim, &r, &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, PROTO_ERR_JSON_TOO_DEEP);
    /* A bomb that never closes is stopped by the scan as well. */
    ck_assert_int_eq(proto_report_parse(bomb, 150000, &lim, &r, &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, PROTO_ERR_JSON_TOO_DEEP);
    lim.max_depth = 2;
    ck_assert_int_eq(proto_report_parse(ok, strlen(ok), &lim, &r, &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, PROTO_ERR_JSON_TOO_DEEP);
    free(ok);
    free(deep);
    free(bomb);
}
END_TEST

START_TEST(test_proto_report_parse_depth_ignores_strings)
{
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(
        parse_report_str(R("", ",\"ue\":\"[[[[[[[[[[[[[[[[[[[[[[{{{{{\\\""
                               "[[[[[[[[[[[[[[[[[[[\\\\\""),
                         &r, &err),
        PROTO_OK);
    ck_assert_str_eq(r.ue, "[[[[[[[[[[[[[[[[[[[[[[{{{{{\"[[[[[[[[[[[[[[[[[[["
                           "\\");
}
END_TEST

START_TEST(test_proto_report_parse_not_nul_terminated)
{
    static const char body[] = R("", "") "garbage";
    struct proto_report r;
    struct proto_error err;
    struct proto_limits lim;

    proto_limits_default(&lim);
    ck_assert_int_eq(proto_report_parse(body, strlen(R("", "")), &lim, &r,
                                        &err),
                     PROTO_OK);
    ck_assert_int_eq(proto_report_parse(body, sizeof(body) - 1, &lim, &r,
                                        &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_report_parse(NULL, 0, NULL, &r, &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, PROTO_ERR_BAD_JSON);
}
END_TEST

/* ---- variant ------------------------------------------------------------ */

static const char full_variant[] =
    "{\"blob\":\"sha256:" HEX_B "\",\"format\":\"tflite\","
    "\"techniques\":[\"quantized\",\"pruned\"],\"params\":3300000,"
    "\"flops\":280000000,\"accuracy\":0.706,\"memory_bytes\":13200000,"
    "\"latency_ms\":{\"npu-class-a\":4.0,\"cpu\":33.3},"
    "\"energy_mj\":{\"npu-class-a\":0},"
    "\"exits\":[{\"flops\":9e7,\"accuracy\":0.61},"
    "{\"flops\":1.5e8,\"accuracy\":0.655}],"
    "\"context\":{\"scene\":[\"night\",\"dusk\"],\"res\":\"720p\"},"
    "\"requires\":{\"accelerators\":[\"npu\"]},\"rollout_percent\":25,"
    "\"size_bytes\":5,\"version\":9,\"digest\":\"nonsense\",\"x\":{}}";

START_TEST(test_proto_variant_parse_full)
{
    struct proto_variant v;
    struct proto_error err;

    ck_assert_int_eq(parse_variant_str(full_variant, &v, &err), PROTO_OK);
    ck_assert_str_eq(v.blob_hex, HEX_B);
    ck_assert_str_eq(v.format, "tflite");
    ck_assert_uint_eq(v.technique_count, 2);
    ck_assert_str_eq(v.techniques[1], "pruned");
    ck_assert_uint_eq(v.params, 3300000);
    ck_assert_double_eq(v.flops, 280000000);
    ck_assert_double_eq(v.accuracy, 0.706);
    ck_assert_uint_eq(v.memory_bytes, 13200000);
    ck_assert_uint_eq(v.latency_count, 2);
    ck_assert_str_eq(v.latency_ms[1].device_class, "cpu");
    ck_assert_double_eq(v.latency_ms[1].value, 33.3);
    ck_assert_uint_eq(v.energy_count, 1);
    ck_assert_double_eq(v.energy_mj[0].value, 0);
    ck_assert_uint_eq(v.exit_count, 2);
    ck_assert_double_eq(v.exits[1].flops, 1.5e8);
    ck_assert_double_eq(v.exits[1].accuracy, 0.655);
    ck_assert_uint_eq(v.context_count, 3);
    ck_assert_str_eq(v.context[1].value, "dusk");
    ck_assert_str_eq(v.context[2].key, "res");
    ck_assert_uint_eq(v.accelerator_count, 1);
    ck_assert_str_eq(v.accelerators[0], "npu");
    ck_assert_uint_eq(v.rollout_percent, 25);
    /* server-filled fields are not taken from the body */
    ck_assert_uint_eq(v.size_bytes, 0);
    ck_assert_int_eq(v.version, 0);
    ck_assert_int_eq(v.created_s, 0);
    ck_assert_str_eq(v.family, "");
    ck_assert_str_eq(v.name, "");
}
END_TEST

START_TEST(test_proto_variant_parse_minimal)
{
    struct proto_variant v;
    struct proto_error err;

    ck_assert_int_eq(parse_variant_str(V(",\"format\":null,\"exits\":null,"
                                         "\"requires\":{}"),
                                       &v, &err),
                     PROTO_OK);
    ck_assert_uint_eq(v.rollout_percent, 100);
    ck_assert_str_eq(v.format, "");
    ck_assert_uint_eq(v.technique_count + v.latency_count + v.energy_count +
                          v.exit_count + v.context_count +
                          v.accelerator_count,
                      0);
    ck_assert_uint_eq(v.params + v.memory_bytes, 0);
    ck_assert_int_eq(parse_variant_str(V(",\"rollout_percent\":0"), &v, &err),
                     PROTO_OK);
    ck_assert_uint_eq(v.rollout_percent, 0);
}
END_TEST

static const struct bad_case variant_bad_cases[] = {
    {"[1]", PROTO_ERR_BAD_JSON, "body"},
    {"{\"flops\":1,\"accuracy\":0.5}", PROTO_ERR_MISSING_FIELD, "blob"},
    {"{\"blob\":5,\"flops\":1,\"accuracy\":0.5}", PROTO_ERR_BAD_FIELD,
     "blob"},
    {"{\"blob\":\"sha256:xyz\",\"flops\":1,\"accuracy\":0.5}",
     PROTO_ERR_BAD_DIGEST, "blob"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"accuracy\":0.5}",
     PROTO_ERR_MISSING_FIELD, "flops"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"flops\":1}", PROTO_ERR_MISSING_FIELD,
     "accuracy"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"flops\":0,\"accuracy\":0.5}",
     PROTO_ERR_BAD_FIELD, "flops"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"flops\":1e19,\"accuracy\":0.5}",
     PROTO_ERR_BAD_FIELD, "flops"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"flops\":\"1\",\"accuracy\":0.5}",
     PROTO_ERR_BAD_FIELD, "flops"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"flops\":1,\"accuracy\":1.5}",
     PROTO_ERR_BAD_FIELD, "accuracy"},
    {"{\"blob\":\"sha256:" HEX_A "\",\"flops\":1,\"accuracy\":-0.1}",
     PROTO_ERR_BAD_FIELD, "accuracy"},
    {V(",\"format\":\"a b\""), PROTO_ERR_BAD_FIELD, "format"},
    {V(",\"format\":[]"), PROTO_ERR_BAD_FIELD, "format"},
    {V(",\"techniques\":\"quantized\""), PROTO_ERR_BAD_FIELD, "techniques"},
    {V(",\"techniques\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
       "\"9\"]"),
     PROTO_ERR_BAD_FIELD, "techniques"},
    {V(",\"techniques\":[5]"), PROTO_ERR_BAD_FIELD, "techniques[0]"},
    {V(",\"params\":-1"), PROTO_ERR_BAD_FIELD, "params"},
    {V(",\"params\":1.5"), PROTO_ERR_BAD_FIELD, "params"},
    {V(",\"params\":1e14"), PROTO_ERR_BAD_FIELD, "params"},
    {V(",\"memory_bytes\":-1"), PROTO_ERR_BAD_FIELD, "memory_bytes"},
    {V(",\"memory_bytes\":0.5"), PROTO_ERR_BAD_FIELD, "memory_bytes"},
    {V(",\"memory_bytes\":1e16"), PROTO_ERR_BAD_FIELD, "memory_bytes"},
    {V(",\"memory_bytes\":\"1\""), PROTO_ERR_BAD_FIELD, "memory_bytes"},
    {V(",\"latency_ms\":[]"), PROTO_ERR_BAD_FIELD, "latency_ms"},
    {V(",\"latency_ms\":4"), PROTO_ERR_BAD_FIELD, "latency_ms"},
    {V(",\"latency_ms\":{\"npu-class-a\":0}"), PROTO_ERR_BAD_FIELD,
     "latency_ms.npu-class-a"},
    {V(",\"latency_ms\":{\"npu-class-a\":\"4\"}"), PROTO_ERR_BAD_FIELD,
     "latency_ms.npu-class-a"},
    {V(",\"latency_ms\":{\"npu-class-a\":null}"), PROTO_ERR_BAD_FIELD,
     "latency_ms.npu-class-a"},
    {V(",\"latency_ms\":{\"bad key\":1}"), PROTO_ERR_BAD_FIELD,
     "latency_ms"},
    {V(",\"latency_ms\":{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,"
       "\"g\":1,\"h\":1,\"i\":1,\"j\":1,\"k\":1,\"l\":1,\"m\":1,\"n\":1,"
       "\"o\":1,\"p\":1,\"q\":1}"),
     PROTO_ERR_BAD_FIELD, "latency_ms"},
    {V(",\"energy_mj\":{\"npu\":-1}"), PROTO_ERR_BAD_FIELD, "energy_mj.npu"},
    {V(",\"energy_mj\":\"x\""), PROTO_ERR_BAD_FIELD, "energy_mj"},
    {V(",\"exits\":{}"), PROTO_ERR_BAD_FIELD, "exits"},
    {V(",\"exits\":[5]"), PROTO_ERR_BAD_FIELD, "exits[0]"},
    {V(",\"exits\":[{\"accuracy\":0.5}]"), PROTO_ERR_MISSING_FIELD,
     "exits[0].flops"},
    {V(",\"exits\":[{\"flops\":1}]"), PROTO_ERR_MISSING_FIELD,
     "exits[0].accuracy"},
    {V(",\"exits\":[{\"flops\":1,\"accuracy\":0.5},{\"flops\":2,"
       "\"accuracy\":0.6},{\"flops\":3,\"accuracy\":1.5}]"),
     PROTO_ERR_BAD_FIELD, "exits[2].accuracy"},
    {V(",\"exits\":[{\"flops\":0,\"accuracy\":0.5}]"), PROTO_ERR_BAD_FIELD,
     "exits[0].flops"},
    {V(",\"exits\":[{\"flops\":1e9,\"accuracy\":0.5}]"), PROTO_ERR_BAD_FIELD,
     "exits[0].flops"},
    {V(",\"exits\":[{\"flops\":2,\"accuracy\":0.5},{\"flops\":2,"
       "\"accuracy\":0.6}]"),
     PROTO_ERR_BAD_FIELD, "exits[1].flops"},
    {V(",\"exits\":[{\"flops\":3,\"accuracy\":0.5},{\"flops\":2,"
       "\"accuracy\":0.6}]"),
     PROTO_ERR_BAD_FIELD, "exits[1].flops"},
    {V(",\"exits\":[{\"flops\":1,\"accuracy\":0},{\"flops\":2,\"accuracy\":0},"
       "{\"flops\":3,\"accuracy\":0},{\"flops\":4,\"accuracy\":0},"
       "{\"flops\":5,\"accuracy\":0},{\"flops\":6,\"accuracy\":0},"
       "{\"flops\":7,\"accuracy\":0},{\"flops\":8,\"accuracy\":0},"
       "{\"flops\":9,\"accuracy\":0}]"),
     PROTO_ERR_BAD_FIELD, "exits"},
    {V(",\"context\":{\"scene\":[1]}"), PROTO_ERR_BAD_FIELD,
     "context.scene[0]"},
    {V(",\"context\":[\"night\"]"), PROTO_ERR_BAD_FIELD, "context"},
    {V(",\"requires\":5"), PROTO_ERR_BAD_FIELD, "requires"},
    {V(",\"requires\":{\"accelerators\":\"npu\"}"), PROTO_ERR_BAD_FIELD,
     "requires.accelerators"},
    {V(",\"requires\":{\"accelerators\":[1]}"), PROTO_ERR_BAD_FIELD,
     "requires.accelerators[0]"},
    {V(",\"rollout_percent\":101"), PROTO_ERR_BAD_FIELD, "rollout_percent"},
    {V(",\"rollout_percent\":-1"), PROTO_ERR_BAD_FIELD, "rollout_percent"},
    {V(",\"rollout_percent\":50.5"), PROTO_ERR_BAD_FIELD, "rollout_percent"},
    {V(",\"rollout_percent\":\"50\""), PROTO_ERR_BAD_FIELD,
     "rollout_percent"},
};

static void check_one_variant_parse_bad(size_t i)
{
    const struct bad_case *c = &variant_bad_cases[i];
    struct proto_variant v;
    struct proto_error err;

    memset(&v, 0x5a, sizeof(v));
    memset(&err, 0, sizeof(err));
    assert_refused(c, parse_variant_str(c->body, &v, &err), &err);
    ck_assert_uint_eq(v.rollout_percent, 0x5a5a5a5a);
}

START_TEST(test_proto_variant_parse_bad)
{
    for (size_t i = 0; i < ARRAY_SIZE(variant_bad_cases); i++)
        check_one_variant_parse_bad(i);
}
END_TEST

static void assert_variant_eq(const struct proto_variant *a,
                              const struct proto_variant *b)
{
    ck_assert_str_eq(a->blob_hex, b->blob_hex);
    ck_assert_str_eq(a->format, b->format);
    ck_assert_uint_eq(a->technique_count, b->technique_count);
    for (size_t i = 0; i < a->technique_count; i++)
        ck_assert_str_eq(a->techniques[i], b->techniques[i]);
    ck_assert_uint_eq(a->params, b->params);
    ck_assert_double_eq(a->flops, b->flops);
    ck_assert_double_eq(a->accuracy, b->accuracy);
    ck_assert_uint_eq(a->memory_bytes, b->memory_bytes);
    ck_assert_uint_eq(a->latency_count, b->latency_count);
    for (size_t i = 0; i < a->latency_count; i++) {
        ck_assert_str_eq(a->latency_ms[i].device_class,
                         b->latency_ms[i].device_class);
        ck_assert_double_eq(a->latency_ms[i].value, b->latency_ms[i].value);
    }
    ck_assert_uint_eq(a->energy_count, b->energy_count);
    for (size_t i = 0; i < a->energy_count; i++) {
        ck_assert_str_eq(a->energy_mj[i].device_class,
                         b->energy_mj[i].device_class);
        ck_assert_double_eq(a->energy_mj[i].value, b->energy_mj[i].value);
    }
    ck_assert_uint_eq(a->exit_count, b->exit_count);
    for (size_t i = 0; i < a->exit_count; i++) {
        ck_assert_double_eq(a->exits[i].flops, b->exits[i].flops);
        ck_assert_double_eq(a->exits[i].accuracy, b->exits[i].accuracy);
    }
    ck_assert_uint_eq(a->context_count, b->context_count);
    for (size_t i = 0; i < a->context_count; i++) {
        ck_assert_str_eq(a->context[i].key, b->context[i].key);
        ck_assert_str_eq(a->context[i].value, b->context[i].value);
    }
    ck_assert_uint_eq(a->accelerator_count, b->accelerator_count);
    for (size_t i = 0; i < a->accelerator_count; i++)
        ck_assert_str_eq(a->accelerators[i], b->accelerators[i]);
    ck_assert_uint_eq(a->rollout_percent, b->rollout_percent);
}

static const char *const round_trip_bodies[] = {
    full_variant,
    V(""),
    "{\"blob\":\"sha256:" HEX_A "\",\"flops\":0.3,\"accuracy\":0.1,"
    "\"params\":0,\"context\":{\"k\":[\"v\"]}}",
    "{\"blob\":\"sha256:" HEX_C "\",\"flops\":1e18,\"accuracy\":1,"
    "\"memory_bytes\":9007199254740992,\"params\":1e13,"
    "\"latency_ms\":{\"a\":1e-9,\"b\":123456789.123},"
    "\"exits\":[{\"flops\":0.001,\"accuracy\":0.3333333333333333}],"
    "\"rollout_percent\":0}",
};

START_TEST(test_proto_variant_round_trip)
{
    struct proto_variant a, b;
    struct proto_error err;
    char *out;

    ck_assert_int_eq(parse_variant_str(round_trip_bodies[_i], &a, &err),
                     PROTO_OK);
    out = proto_variant_write(&a);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(parse_variant_str(out, &b, &err) == PROTO_OK,
                  "written variant does not parse back (%s): %s", err.detail,
                  out);
    assert_variant_eq(&a, &b);
    free(out);
}
END_TEST

/* ---- family ------------------------------------------------------------- */

START_TEST(test_proto_family_parse_ok)
{
    struct proto_family f;
    struct proto_error err;
    struct proto_limits lim;
    static const char body[] =
        "{\"task\":\"image-classification\",\"description\":\"Caf\\u00e9 "
        "\\\"models\\\"\",\"other\":1}";

    proto_limits_default(&lim);
    memset(&f, 0, sizeof(f));
    strcpy(f.name, "keep");
    ck_assert_int_eq(proto_family_parse(body, strlen(body), &lim, &f, &err),
                     PROTO_OK);
    ck_assert_str_eq(f.task, "image-classification");
    ck_assert_str_eq(f.description, "Caf\xc3\xa9 \"models\"");
    ck_assert_str_eq(f.name, "keep");
    ck_assert_int_eq(proto_family_parse("{\"task\":null}", 13, &lim, &f,
                                        &err),
                     PROTO_OK);
    ck_assert_str_eq(f.task, "");
    ck_assert_str_eq(f.description, "");
}
END_TEST

START_TEST(test_proto_family_parse_bad)
{
    static const struct bad_case cases[] = {
        {"{\"task\":5}", PROTO_ERR_BAD_FIELD, "task"},
        {"{\"description\":[\"x\"]}", PROTO_ERR_BAD_FIELD, "description"},
        {"\"task\"", PROTO_ERR_BAD_JSON, "body"},
        {"{\"task\":", PROTO_ERR_BAD_JSON, "body"},
    };
    struct proto_family f;
    struct proto_error err;
    struct proto_limits lim;
    char body[400];

    proto_limits_default(&lim);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_assert_int_eq(proto_family_parse(cases[i].body,
                                            strlen(cases[i].body), &lim, &f,
                                            &err),
                         PROTO_BAD_INPUT);
        ck_assert_int_eq(err.code, cases[i].code);
        ck_assert_str_eq(err.field, cases[i].field);
    }
    /* 256 bytes fit, 257 do not */
    strcpy(body, "{\"description\":\"");
    memset(body + strlen(body), 'd', 256);
    strcpy(body + 16 + 256, "\"}");
    ck_assert_int_eq(proto_family_parse(body, strlen(body), &lim, &f, &err),
                     PROTO_OK);
    ck_assert_uint_eq(strlen(f.description), 256);
    memmove(body + 17, body + 16, strlen(body + 16) + 1);
    body[16] = 'd';
    ck_assert_int_eq(proto_family_parse(body, strlen(body), &lim, &f, &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, PROTO_ERR_BAD_FIELD);
    ck_assert_str_eq(err.field, "description");
}
END_TEST

/* ---- JSON out -------------------------------------------------------------- */

static void sample_variants(struct proto_variant v[2])
{
    struct proto_error err;

    ck_assert_int_eq(parse_variant_str(full_variant, &v[0], &err), PROTO_OK);
    strcpy(v[0].family, "image-classification");
    strcpy(v[0].name, "mobilenet-v1");
    v[0].version = 3;
    v[0].size_bytes = 13000000;
    v[0].created_s = 1795896000; /* 2026-11-28T20:00:00Z */
    ck_assert_int_eq(parse_variant_str(V(""), &v[1], &err), PROTO_OK);
    strcpy(v[1].family, "image-classification");
    strcpy(v[1].name, "vgg-16");
    v[1].version = 1;
    v[1].size_bytes = 552000000;
}

START_TEST(test_proto_versions_write)
{
    struct proto_variant v[2];
    char *out;
    json_t *j, *arr;

    sample_variants(v);
    out = proto_versions_write(v, 2);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    arr = json_object_get(j, "versions");
    ck_assert(json_is_array(arr));
    ck_assert_uint_eq(json_array_size(arr), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(arr, 0), "version")),
                     v[0].version);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(arr, 1), "version")),
                     v[1].version);
    json_decref(j);
    free(out);
    out = proto_versions_write(NULL, 0);
    ck_assert_str_eq(out, "{\"versions\":[]}");
    free(out);
}
END_TEST

START_TEST(test_proto_variant_write_members)
{
    struct proto_variant v[2];
    char *out;
    json_t *j, *ctx;

    sample_variants(v);
    out = proto_variant_write(&v[0]);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "family")),
                     "image-classification");
    ck_assert_str_eq(json_string_value(json_object_get(j, "variant")),
                     "mobilenet-v1");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "size_bytes")),
                     13000000);
    ck_assert_str_eq(json_string_value(json_object_get(j, "blob")),
                     "sha256:" HEX_B);
    ck_assert_str_eq(json_string_value(json_object_get(j, "digest")),
                     "sha256:" HEX_B);
    ck_assert_str_eq(json_string_value(json_object_get(j, "url")),
                     "/v1/blobs/sha256:" HEX_B);
    ck_assert_str_eq(json_string_value(json_object_get(j, "created")),
                     "2026-11-28T20:00:00Z");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "flops")),
                     280000000);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "params")),
                     3300000);
    ck_assert_double_eq(json_real_value(json_object_get(j, "accuracy")),
                        0.706);
    ck_assert_int_eq(json_integer_value(json_object_get(j,
                                                        "rollout_percent")),
                     25);
    ck_assert(json_is_array(json_object_get(j, "techniques")));
    ctx = json_object_get(j, "context");
    ck_assert(json_is_array(json_object_get(ctx, "scene")));
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "res")), "720p");
    ck_assert_str_eq(
        json_string_value(json_array_get(
            json_object_get(json_object_get(j, "requires"), "accelerators"),
            0)),
        "npu");
    ck_assert_ptr_nonnull(strstr(out, "\"accuracy\":0.706,"));
    json_decref(j);
    free(out);

    /* absent optional fields are omitted */
    out = proto_variant_write(&v[1]);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "created")),
                     "1970-01-01T00:00:00Z");
    ck_assert_int_eq(json_integer_value(json_object_get(j,
                                                        "rollout_percent")),
                     100);
    {
        static const char *const absent[] = {
            "format",  "techniques", "params", "memory_bytes", "latency_ms",
            "energy_mj", "exits",    "context", "requires",
        };

        for (size_t i = 0; i < ARRAY_SIZE(absent); i++)
            ck_assert_msg(json_object_get(j, absent[i]) == NULL,
                          "%s present in %s", absent[i], out);
    }
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(test_proto_families_write)
{
    struct proto_family f[2];
    char *out;
    json_t *j, *arr;

    memset(f, 0, sizeof(f));
    strcpy(f[0].name, "image-classification");
    strcpy(f[0].task, "classify \"images\"\n\t\x01");
    strcpy(f[0].description, "bad utf8 \xff\xc3 ok \xc3\xa9");
    f[0].variant_count = 4;
    strcpy(f[1].name, "asr");
    out = proto_families_write(f, 2);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    arr = json_object_get(j, "families");
    ck_assert_uint_eq(json_array_size(arr), 2);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(arr, 0), "task")),
        "classify \"images\"\n\t\x01");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(arr, 0), "description")),
                     "bad utf8 \xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(arr, 0), "variants")),
                     4);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(arr, 1), "name")),
        "asr");
    json_decref(j);
    free(out);

    out = proto_families_write(NULL, 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out, "{\"families\":[]}");
    free(out);
}
END_TEST

START_TEST(test_proto_family_write)
{
    struct proto_family f;
    struct proto_variant v[2];
    char *out;
    json_t *j, *arr;

    memset(&f, 0, sizeof(f));
    strcpy(f.name, "image-classification");
    strcpy(f.task, "classification");
    sample_variants(v);
    out = proto_family_write(&f, v, 2);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")),
                     "image-classification");
    ck_assert_str_eq(json_string_value(json_object_get(j, "description")),
                     "");
    arr = json_object_get(j, "variants");
    ck_assert_uint_eq(json_array_size(arr), 2);
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(arr, 1), "variant")),
                     "vgg-16");
    json_decref(j);
    free(out);
}
END_TEST

/* Members of the decision per action; "!" marks one that must be absent. */
static const struct decision_case {
    enum proto_action action;
    bool has_delta;
    int exit_index;
    bool has_energy;
    const char *members[16];
} decision_cases[] = {
    {PROTO_ACTION_DOWNLOAD, false, -1, false,
     {"action", "family", "variant", "version", "model", "accuracy",
      "!delta", "degraded", "violations", "estimates", "!exit", "candidates",
      "recheck_after_s", NULL}},
    {PROTO_ACTION_DOWNLOAD, false, 1, true,
     {"variant", "model", "!delta", "estimates", "exit", "candidates", NULL}},
    {PROTO_ACTION_DELTA, true, -1, false,
     {"variant", "version", "model", "delta", "estimates", "!exit",
      "candidates", NULL}},
    {PROTO_ACTION_KEEP, false, -1, false,
     {"variant", "version", "model", "!delta", "estimates", "!exit",
      "candidates", "recheck_after_s", NULL}},
    {PROTO_ACTION_NONE, false, -1, false,
     {"action", "family", "!variant", "!version", "!model", "!accuracy",
      "!delta", "degraded", "violations", "!estimates", "!exit",
      "candidates", "recheck_after_s", NULL}},
};

static const char *const action_names[] = {"download", "delta", "keep",
                                           "none"};

START_TEST(test_proto_decision_write_members)
{
    const struct decision_case *c = &decision_cases[_i];
    struct proto_variant v[2];
    struct proto_delta deltas[2];
    struct proto_candidate cand[1];
    struct proto_reasons reasons[1];
    struct proto_decision d;
    char *out;
    json_t *j, *est, *cands;

    sample_variants(v);
    memset(deltas, 0, sizeof(deltas));
    strcpy(deltas[1].from_hex, HEX_C);
    strcpy(deltas[1].to_hex, HEX_B);
    deltas[1].size_bytes = 1234;
    memset(&d, 0, sizeof(d));
    memset(cand, 0, sizeof(cand));
    cand[0].variant = 1;
    cand[0].feasible = false;
    strcpy(reasons[0].text[0], "latency: 160 ms over max_latency_ms 100");
    reasons[0].count = 1;
    d.action = c->action;
    d.chosen = 0;
    d.has_delta = c->has_delta;
    d.delta = 1;
    d.degraded = c->action == PROTO_ACTION_NONE;
    if (d.degraded) {
        strcpy(d.violations.text[0], "memory");
        d.violations.count = 1;
    }
    d.estimates.latency_ms = 57.0000001;
    d.estimates.download_s = 38.4;
    d.estimates.memory_bytes = 13200000;
    d.estimates.energy_mj = 12.5;
    d.estimates.has_energy_mj = c->has_energy;
    d.exit_index = c->exit_index;
    d.candidates = cand;
    d.candidate_reasons = reasons;
    d.candidate_count = 1;
    d.recheck_after_s = 300;

    out = proto_decision_write(&d, "image-classification", v, deltas);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    for (size_t i = 0; c->members[i]; i++) {
        const char *m = c->members[i];

        if (m[0] == '!')
            ck_assert_msg(json_object_get(j, m + 1) == NULL,
                          "%s present: %s", m + 1, out);
        else
            ck_assert_msg(json_object_get(j, m) != NULL, "%s missing: %s",
                          m, out);
    }
    ck_assert_str_eq(json_string_value(json_object_get(j, "action")),
                     action_names[c->action]);
    ck_assert_str_eq(json_string_value(json_object_get(j, "family")),
                     "image-classification");
    ck_assert(json_is_boolean(json_object_get(j, "degraded")));
    ck_assert(json_is_array(json_object_get(j, "violations")));
    ck_assert_uint_eq(json_array_size(json_object_get(j, "violations")),
                      d.violations.count);
    ck_assert_int_eq(json_integer_value(json_object_get(j,
                                                        "recheck_after_s")),
                     300);
    cands = json_object_get(j, "candidates");
    ck_assert_uint_eq(json_array_size(cands), 1);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(cands, 0), "variant")),
                     "vgg-16");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(cands, 0), "version")),
                     1);
    ck_assert(json_is_false(
        json_object_get(json_array_get(cands, 0), "feasible")));
    ck_assert_str_eq(
        json_string_value(json_array_get(
            json_object_get(json_array_get(cands, 0), "reasons"), 0)),
        "latency: 160 ms over max_latency_ms 100");

    if (c->action != PROTO_ACTION_NONE) {
        json_t *model = json_object_get(j, "model");

        ck_assert_str_eq(json_string_value(json_object_get(j, "variant")),
                         "mobilenet-v1");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "version")),
                         3);
        ck_assert_str_eq(json_string_value(json_object_get(model, "digest")),
                         "sha256:" HEX_B);
        ck_assert_int_eq(
            json_integer_value(json_object_get(model, "size_bytes")),
            13000000);
        ck_assert_str_eq(json_string_value(json_object_get(model, "url")),
                         "/v1/blobs/sha256:" HEX_B);
        ck_assert_double_eq(
            json_number_value(json_object_get(j, "accuracy")),
            c->exit_index >= 0 ? 0.655 : 0.706);
        est = json_object_get(j, "estimates");
        ck_assert(json_is_integer(json_object_get(est, "latency_ms")));
        ck_assert_int_eq(json_integer_value(json_object_get(est,
                                                            "latency_ms")),
                         57);
        ck_assert_double_eq(json_real_value(json_object_get(est,
                                                            "download_s")),
                            38.4);
        ck_assert_int_eq(
            json_integer_value(json_object_get(est, "memory_bytes")),
            13200000);
        ck_assert((json_object_get(est, "energy_mj") != NULL) ==
                  c->has_energy);
        ck_assert_uint_eq(json_object_size(est), c->has_energy ? 4 : 3);
    }
    if (c->has_delta) {
        json_t *delta = json_object_get(j, "delta");

        ck_assert_str_eq(json_string_value(json_object_get(delta, "from")),
                         "sha256:" HEX_C);
        ck_assert_int_eq(
            json_integer_value(json_object_get(delta, "size_bytes")), 1234);
        ck_assert_str_eq(json_string_value(json_object_get(delta, "url")),
                         "/v1/deltas/sha256:" HEX_C "/sha256:" HEX_B);
    }
    if (c->exit_index >= 0)
        ck_assert_int_eq(json_integer_value(json_object_get(j, "exit")),
                         c->exit_index);
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(test_proto_decision_write_numbers)
{
    static const struct num_case {
        double x;
        const char *want;
    } cases[] = {
        {57, "\"latency_ms\":57,"},
        {38.4, "\"latency_ms\":38.4,"},
        {0.123456789, "\"latency_ms\":0.123457,"},
        {1234567.89, "\"latency_ms\":1234568,"},
        {NAN, "\"latency_ms\":null,"},
        {INFINITY, "\"latency_ms\":null,"},
        {-0.0, "\"latency_ms\":0,"},
    };
    struct proto_variant v[2];
    struct proto_decision d;
    char *out;

    sample_variants(v);
    memset(&d, 0, sizeof(d));
    d.action = PROTO_ACTION_DOWNLOAD;
    d.exit_index = -1;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *j;

        d.estimates.latency_ms = cases[i].x;
        d.estimates.download_s = NAN;
        out = proto_decision_write(&d, "f", v, NULL);
        ck_assert_ptr_nonnull(out);
        ck_assert_msg(strstr(out, cases[i].want) != NULL, "%s not in %s",
                      cases[i].want, out);
        ck_assert_ptr_nonnull(strstr(out, "\"download_s\":null"));
        j = load(out);
        ck_assert_uint_eq(json_array_size(json_object_get(j, "candidates")),
                          0);
        json_decref(j);
        free(out);
    }
}
END_TEST

START_TEST(test_proto_decision_write_escapes)
{
    struct proto_variant v[2];
    struct proto_candidate cand[2];
    struct proto_reasons reasons[2];
    struct proto_decision d;
    char *out;
    json_t *j;

    sample_variants(v);
    memset(&d, 0, sizeof(d));
    memset(cand, 0, sizeof(cand));
    memset(reasons, 0, sizeof(reasons));
    d.action = PROTO_ACTION_KEEP;
    d.exit_index = 7; /* beyond the variant's exits: not written */
    strcpy(d.violations.text[0], "quote \" backslash \\ nl \n ctl \x1f");
    d.violations.count = 1;
    cand[0].variant = 1;
    cand[0].feasible = true;
    cand[1].variant = 0;
    d.candidates = cand;
    d.candidate_reasons = reasons;
    d.candidate_count = 2;
    out = proto_decision_write(&d, "fam\"ily", v, NULL);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    ck_assert_ptr_null(json_object_get(j, "reasons"));
    json_decref(j);
    free(out);
    strcpy(d.reasons.text[0], "keep: current is within the margin");
    strcpy(d.reasons.text[1], "context: matches scene=night");
    d.reasons.count = 2;
    out = proto_decision_write(&d, "fam\"ily", v, NULL);
    ck_assert_ptr_nonnull(out);
    j = load(out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "family")),
                     "fam\"ily");
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(j, "violations"), 0)),
        "quote \" backslash \\ nl \n ctl \x1f");
    ck_assert_ptr_null(json_object_get(j, "exit"));
    ck_assert_uint_eq(json_array_size(json_object_get(j, "reasons")), 2);
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(j, "reasons"), 1)),
        "context: matches scene=night");
    ck_assert(json_is_true(json_object_get(
        json_array_get(json_object_get(j, "candidates"), 0), "feasible")));
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_array_get(json_object_get(j, "candidates"), 1),
                          "reasons")),
                      0);
    json_decref(j);
    free(out);
}
END_TEST

/* ---- Range ---------------------------------------------------------------- */

static const struct range_case {
    const char *header;
    uint64_t size;
    enum proto_range_kind want;
    uint64_t start;
    uint64_t len;
} range_cases[] = {
    {NULL, 100, PROTO_RANGE_FULL, 0, 0},
    {"", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=0-0", 100, PROTO_RANGE_PARTIAL, 0, 1},
    {"bytes=0-99", 100, PROTO_RANGE_PARTIAL, 0, 100},
    {"bytes=10-19", 100, PROTO_RANGE_PARTIAL, 10, 10},
    {"bytes=10-1000", 100, PROTO_RANGE_PARTIAL, 10, 90},
    {"bytes=99-", 100, PROTO_RANGE_PARTIAL, 99, 1},
    {"bytes=0-", 100, PROTO_RANGE_PARTIAL, 0, 100},
    {"bytes=-1", 100, PROTO_RANGE_PARTIAL, 99, 1},
    {"bytes=-100", 100, PROTO_RANGE_PARTIAL, 0, 100},
    {"bytes=-500", 100, PROTO_RANGE_PARTIAL, 0, 100},
    {"bytes=0-18446744073709551615", 100, PROTO_RANGE_PARTIAL, 0, 100},
    {"  bytes=5-9  ", 100, PROTO_RANGE_PARTIAL, 5, 5},
    {"bytes = 5 - 9", 100, PROTO_RANGE_PARTIAL, 5, 5},
    {"bytes=\t5-9,", 100, PROTO_RANGE_PARTIAL, 5, 5},
    {"bytes=, 5-9 ,,", 100, PROTO_RANGE_PARTIAL, 5, 5},
    {"Bytes=5-9", 100, PROTO_RANGE_PARTIAL, 5, 5},
    {"BYTES=-3", 100, PROTO_RANGE_PARTIAL, 97, 3},
    {"bytes=100-", 100, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=100-200", 100, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=18446744073709551615-", 100, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=-0", 100, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=0-0", 0, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=0-", 0, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=-5", 0, PROTO_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=99999999999999999999999-", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=0-99999999999999999999999", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=-99999999999999999999999", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=18446744073709551616-", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=0-1,5-6", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=0-1, -5", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=5-4", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=-", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=,", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=5", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=a-b", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=1-2-3", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=--5", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=+5-9", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes=5-9x", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes 5-9", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytes", 100, PROTO_RANGE_FULL, 0, 0},
    {"items=0-5", 100, PROTO_RANGE_FULL, 0, 0},
    {"bytesx=0-5", 100, PROTO_RANGE_FULL, 0, 0},
    {"garbage", 100, PROTO_RANGE_FULL, 0, 0},
    {"=0-5", 100, PROTO_RANGE_FULL, 0, 0},
};

static void check_one_range_parse_cases(size_t i)
{
    const struct range_case *c = &range_cases[i];
    uint64_t start = 4242, len = 4242;
    enum proto_range_kind got =
        proto_range_parse(c->header, c->size, &start, &len);

    ck_assert_msg(got == c->want, "\"%s\" size %llu: got %d want %d",
                  c->header ? c->header : "(null)",
                  (unsigned long long)c->size, got, c->want);
    if (c->want == PROTO_RANGE_PARTIAL) {
        ck_assert_msg(start == c->start && len == c->len,
                      "\"%s\": start %llu len %llu", c->header,
                      (unsigned long long)start, (unsigned long long)len);
        ck_assert_uint_le(start + len, c->size);
    }
}

START_TEST(test_proto_range_parse_cases)
{
    for (size_t i = 0; i < ARRAY_SIZE(range_cases); i++)
        check_one_range_parse_cases(i);
}
END_TEST

/* ---- ETag ---------------------------------------------------------------- */

#define ETAG "\"sha256:" HEX_B "\""

static const struct etag_case {
    const char *header;
    bool match;
} etag_cases[] = {
    {NULL, false},
    {"", false},
    {ETAG, true},
    {"*", true},
    {" * ", true},
    {"W/" ETAG, true},
    {"\"other\", " ETAG, true},
    {"\"other\"," ETAG ",\"x\"", true},
    {"\"a\" , W/" ETAG, true},
    {"sha256:" HEX_B, true},
    {"\"other\"", false},
    {"\"sha256:" HEX_A "\"", false},
    {"\"sha256:" HEX_B, false},
    {"W/\"other\"", false},
    {"\"\"", false},
    {"w/" ETAG, false},
    {"\"sha256:" HEX_B "x\"", false},
    {",,, ,", false},
    {"*x", false},
};

static void check_one_etag_list_matches_cases(size_t i)
{
    const struct etag_case *c = &etag_cases[i];

    ck_assert_msg(proto_etag_list_matches(c->header, ETAG) == c->match,
                  "If-None-Match: %s", c->header ? c->header : "(null)");
}

START_TEST(test_proto_etag_list_matches_cases)
{
    for (size_t i = 0; i < ARRAY_SIZE(etag_cases); i++)
        check_one_etag_list_matches_cases(i);
}
END_TEST

static const struct media_case {
    const char *header;
    bool json;
} media_cases[] = {
    {"application/json", true},
    {"Application/JSON", true},
    {"application/json; charset=utf-8", true},
    {"  application/json ;charset=UTF-8", true},
    {"application/merge-patch+json", true},
    {"application/problem+JSON", true},
    {NULL, false},
    {"", false},
    {"text/plain", false},
    {"application/x-www-form-urlencoded", false},
    {"application/jsonx", false},
    {"application/json x", false},
    {"application/+json", false},
    {"+json", false},
    {"/json", false},
    {"json", false},
    {"text/json-seq", false},
};

START_TEST(test_proto_media_type_is_json_cases)
{
    for (size_t i = 0; i < ARRAY_SIZE(media_cases); i++)
        ck_assert_msg(proto_media_type_is_json(media_cases[i].header) ==
                          media_cases[i].json,
                      "Content-Type: %s",
                      media_cases[i].header ? media_cases[i].header
                                            : "(null)");
}
END_TEST

/* Published FNV-1a 64 vectors (the FNV reference test_fnv.c, also in
 * draft-eastlake-fnv): the rollout bucket depends on this being exact. */
static const struct fnv_case {
    const char *in;
    uint64_t want;
} fnv_cases[] = {
    { "", UINT64_C(0xcbf29ce484222325) },
    { "a", UINT64_C(0xaf63dc4c8601ec8c) },
    { "foobar", UINT64_C(0x85944171f73967e8) },
    { "chongo was here!\n", UINT64_C(0x46810940eff5f915) },
};

START_TEST(test_proto_fnv1a64_vectors)
{
    const struct fnv_case *c = &fnv_cases[_i];
    size_t half = strlen(c->in) / 2;
    uint64_t h;

    ck_assert_uint_eq(PROTO_FNV1A64_OFFSET, UINT64_C(14695981039346656037));
    ck_assert_uint_eq(proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, c->in),
                      c->want);
    h = proto_fnv1a64_add(PROTO_FNV1A64_OFFSET, c->in, half);
    ck_assert_uint_eq(proto_fnv1a64_str(h, c->in + half), c->want);
}
END_TEST

Suite *proto_suite(void);

Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc;

    tc = tcase_create("problem");
    tcase_add_loop_test(tc, test_proto_problem_write_codes, 0,
                        ARRAY_SIZE(code_cases));
    tcase_add_test(tc, test_proto_problem_write_no_field);
    tcase_add_test(tc, test_proto_problem_write_bad_utf8);
    tcase_add_test(tc, test_proto_code_unknown);
    tcase_add_test(tc, test_proto_error_set_truncates);
    tcase_add_test(tc, test_proto_base64url_vectors);
    tcase_add_test(tc, test_proto_num_short_as_printf);
    tcase_add_test(tc, test_proto_g_exp_as_printf);
    suite_add_tcase(s, tc);

    tc = tcase_create("digest");
    tcase_add_test(tc, test_proto_name_is_valid_cases);
    tcase_add_test(tc, test_proto_name_is_valid_nul);
    tcase_add_test(tc, test_proto_digest_parse_cases);
    tcase_add_test(tc, test_proto_hasher_vectors);
    tcase_add_loop_test(tc, test_proto_fnv1a64_vectors, 0,
                        ARRAY_SIZE(fnv_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("report");
    tcase_add_test(tc, test_proto_report_parse_full);
    tcase_add_test(tc, test_proto_report_parse_minimal);
    tcase_add_test(tc, test_proto_report_parse_bounds_inclusive);
    tcase_add_test(tc, test_proto_report_parse_unknown_fields);
    tcase_add_test(tc, test_proto_report_parse_over_time);
    tcase_add_test(tc, test_proto_report_parse_bad);
    tcase_add_test(tc, test_proto_report_parse_detail_sentence);
    tcase_add_test(tc, test_proto_report_parse_context_max);
    tcase_add_test(tc, test_proto_report_parse_depth);
    tcase_add_test(tc, test_proto_report_parse_depth_ignores_strings);
    tcase_add_test(tc, test_proto_report_parse_not_nul_terminated);
    suite_add_tcase(s, tc);

    tc = tcase_create("variant");
    tcase_add_test(tc, test_proto_variant_parse_full);
    tcase_add_test(tc, test_proto_variant_parse_minimal);
    tcase_add_test(tc, test_proto_variant_parse_bad);
    tcase_add_loop_test(tc, test_proto_variant_round_trip, 0,
                        ARRAY_SIZE(round_trip_bodies));
    suite_add_tcase(s, tc);

    tc = tcase_create("family");
    tcase_add_test(tc, test_proto_family_parse_ok);
    tcase_add_test(tc, test_proto_family_parse_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("json_out");
    tcase_add_test(tc, test_proto_variant_write_members);
    tcase_add_test(tc, test_proto_versions_write);
    tcase_add_test(tc, test_proto_families_write);
    tcase_add_test(tc, test_proto_family_write);
    tcase_add_loop_test(tc, test_proto_decision_write_members, 0,
                        ARRAY_SIZE(decision_cases));
    tcase_add_test(tc, test_proto_decision_write_numbers);
    tcase_add_test(tc, test_proto_decision_write_escapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("range");
    tcase_add_test(tc, test_proto_range_parse_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("etag");
    tcase_add_test(tc, test_proto_etag_list_matches_cases);
    tcase_add_test(tc, test_proto_media_type_is_json_cases);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
