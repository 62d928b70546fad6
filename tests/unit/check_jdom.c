/*
 * proto/jdom.c: tables of valid and invalid documents (with the values and
 * the error texts they must give), the arena bound on worst-case bodies,
 * and a differential run against jansson over generated documents and
 * their mutations. The reading of bodies by proto/json_in.c through it is
 * covered by check_proto; the error format it keeps is checked here too.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jdom.h"
#include "proto/proto.h"
#include "tests/fuzz/jdom_diff.h"

/* Parses s[0..len) into a malloc'ed arena of exactly the bound (so that
 * ASan sees any write past it); the caller frees *out_arena. */
static enum proto_jdom_status parse_n(const char *s, size_t len,
                                      size_t max_depth,
                                      const struct proto_jval **out_root,
                                      struct proto_jdom_error *out_err,
                                      void **out_arena)
{
    size_t size = proto_jdom_arena_size(len);

    *out_arena = malloc(size);
    ck_assert_ptr_nonnull(*out_arena);
    return proto_jdom_parse(s, len, max_depth, *out_arena, size, out_root,
                            out_err);
}

/* v, which the test expects to be there. */
static const struct proto_jval *need(const struct proto_jval *v)
{
    if (!v)
        abort();
    return v;
}

/* ---- valid documents ---------------------------------------------------- */

#define S(lit) lit, sizeof(lit) - 1

static const struct valid_case {
    const char *body;
    size_t len;
    enum proto_jtype type;
    double num;   /* the number, or the first item's number when an array */
    const char *str; /* the string, or the value of member "k" */
    size_t str_len;
} valid_cases[] = {
    {S("{}"), PROTO_JOBJECT, 0, NULL, 0},
    {S("[]"), PROTO_JARRAY, 0, NULL, 0},
    {S(" \t\r\n{ \t\r\n} \t\r\n"), PROTO_JOBJECT, 0, NULL, 0},
    {S("0"), PROTO_JNUMBER, 0, NULL, 0},
    {S("-0"), PROTO_JNUMBER, -0.0, NULL, 0},
    {S("-0.0e+0"), PROTO_JNUMBER, -0.0, NULL, 0},
    {S("1e-400"), PROTO_JNUMBER, 0, NULL, 0},
    {S("-1e-400"), PROTO_JNUMBER, -0.0, NULL, 0},
    {S("4.9e-324"), PROTO_JNUMBER, 4.9e-324, NULL, 0},
    {S("1.7976931348623157e308"), PROTO_JNUMBER, 1.7976931348623157e308,
     NULL, 0},
    {S("9007199254740993"), PROTO_JNUMBER, 9007199254740992.0, NULL, 0},
    {S("123456789012345678901234567890"), PROTO_JNUMBER,
     1.2345678901234568e29, NULL, 0},
    {S("0.1"), PROTO_JNUMBER, 0.1, NULL, 0},
    {S("1E22"), PROTO_JNUMBER, 1e22, NULL, 0},
    {S("1e23"), PROTO_JNUMBER, 1e23, NULL, 0},
    {S("0.000001234e-5"), PROTO_JNUMBER, 1.234e-11, NULL, 0},
    {S("2.2250738585072011e-308"), PROTO_JNUMBER, 2.2250738585072011e-308,
     NULL, 0},
    {S("[1e6, 2]"), PROTO_JARRAY, 1e6, NULL, 0},
    {S("\"\""), PROTO_JSTRING, 0, "", 0},
    {S("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), PROTO_JSTRING, 0,
     "\"\\/\b\f\n\r\t", 8},
    {S("\"\\u00e9\\u20AC\""), PROTO_JSTRING, 0, "\xc3\xa9\xe2\x82\xac", 5},
    {S("\"\\ud83d\\ude00\""), PROTO_JSTRING, 0, "\xf0\x9f\x98\x80", 4},
    {S("\"\xf0\x9f\x98\x80\xef\xbf\xbf\x7f\""), PROTO_JSTRING, 0,
     "\xf0\x9f\x98\x80\xef\xbf\xbf\x7f", 8},
    {S("{\"k\":\"v\",\"K\":1}"), PROTO_JOBJECT, 0, "v", 1},
    {S("{\"\\u006b\":\"x\"}"), PROTO_JOBJECT, 0, "x", 1},
    {S("true"), PROTO_JTRUE, 0, NULL, 0},
    {S("false"), PROTO_JFALSE, 0, NULL, 0},
    {S("null"), PROTO_JNULL, 0, NULL, 0},
};

START_TEST(test_proto_jdom_parse_valid)
{
    const struct valid_case *c = &valid_cases[_i];
    const struct proto_jval *root = NULL, *v;
    struct proto_jdom_error e;
    void *arena;

    ck_assert_int_eq(parse_n(c->body, c->len, 16, &root, &e, &arena),
                     PROTO_JDOM_OK);
    ck_assert_int_eq(root->type, c->type);
    ck_assert_ptr_null(jdom_diff(c->body, c->len));
    switch (c->type) {
    case PROTO_JNUMBER:
        ck_assert(memcmp(&root->u.num, &c->num, sizeof(double)) == 0);
        break;
    case PROTO_JSTRING:
        ck_assert_uint_eq(root->len, c->str_len);
        ck_assert(memcmp(root->u.str, c->str, c->str_len + 1) == 0);
        break;
    case PROTO_JARRAY:
        if (root->len > 0)
            ck_assert(proto_jdom_first(root)->u.num == c->num);
        break;
    case PROTO_JOBJECT:
        v = proto_jdom_member(root, "k");
        if (c->str) {
            ck_assert_str_eq(need(v)->u.str, c->str);
        } else {
            ck_assert_ptr_null(v);
        }
        break;
    default:
        break;
    }
    free(arena);
}
END_TEST

START_TEST(test_proto_jdom_parse_tree)
{
    static const char body[] =
        "{\"a\":[1,{\"b\":null},[]],\"c\":{\"d\":true},\"e\":\"f\"}";
    const struct proto_jval *root = NULL, *a, *c;
    struct proto_jdom_error e;
    void *arena;

    ck_assert_int_eq(parse_n(body, strlen(body), 16, &root, &e, &arena),
                     PROTO_JDOM_OK);
    ck_assert_uint_eq(root->len, 3);
    ck_assert_uint_eq(root->span, 14);
    a = need(proto_jdom_member(root, "a"));
    ck_assert_int_eq(a->type, PROTO_JARRAY);
    ck_assert_uint_eq(a->len, 3);
    ck_assert_int_eq(need(proto_jdom_index(a, 1))->type, PROTO_JOBJECT);
    ck_assert_int_eq(need(proto_jdom_member(need(proto_jdom_index(a, 1)), "b"))->type,
                     PROTO_JNULL);
    ck_assert_int_eq(need(proto_jdom_index(a, 2))->type, PROTO_JARRAY);
    ck_assert_ptr_null(proto_jdom_index(a, 3));
    c = need(proto_jdom_member(root, "c"));
    ck_assert_int_eq(need(proto_jdom_member(c, "d"))->type, PROTO_JTRUE);
    ck_assert_ptr_null(proto_jdom_member(c, "a"));
    ck_assert_str_eq(need(proto_jdom_member(root, "e"))->u.str, "f");
    /* Members in document order. */
    ck_assert_str_eq(proto_jdom_first(root)->u.str, "a");
    ck_assert_str_eq(proto_jdom_next(proto_jdom_first(root) + 1)->u.str,
                     "c");
    free(arena);
}
END_TEST

/* ---- invalid documents -------------------------------------------------- */

static const struct invalid_case {
    const char *body;
    size_t len;
    enum proto_jdom_status want;
    const char *text; /* the whole error text */
    int line, column;
} invalid_cases[] = {
    {S(""), PROTO_JDOM_SYNTAX, "unexpected token near end of file", 1, 0},
    {S(" \n "), PROTO_JDOM_SYNTAX, "unexpected token near end of file", 2,
     1},
    {S("{"), PROTO_JDOM_SYNTAX, "string or '}' expected near end of file",
     1, 1},
    {S("["), PROTO_JDOM_SYNTAX, "']' expected near end of file", 1, 1},
    {S("[1,]"), PROTO_JDOM_SYNTAX, "unexpected token near ']'", 1, 4},
    {S("{\"a\":1,}"), PROTO_JDOM_SYNTAX, "string or '}' expected near '}'",
     1, 8},
    {S("{\"a\" 1}"), PROTO_JDOM_SYNTAX, "':' expected near '1'", 1, 6},
    {S("{'a':1}"), PROTO_JDOM_SYNTAX, "string or '}' expected near '''", 1,
     2},
    {S("{} x"), PROTO_JDOM_SYNTAX, "end of file expected near 'x'", 1, 4},
    {S("{}\n\n  }"), PROTO_JDOM_SYNTAX, "end of file expected near '}'", 3,
     3},
    {S("[1x]"), PROTO_JDOM_SYNTAX, "']' expected near 'x'", 1, 3},
    {S("[01]"), PROTO_JDOM_SYNTAX, "invalid token near '0'", 1, 2},
    {S("[-01]"), PROTO_JDOM_SYNTAX, "invalid token near '-0'", 1, 3},
    {S("[1.]"), PROTO_JDOM_SYNTAX, "invalid token near '1.'", 1, 3},
    {S("[.5]"), PROTO_JDOM_SYNTAX, "invalid token near '.'", 1, 2},
    {S("[-]"), PROTO_JDOM_SYNTAX, "invalid token near '-'", 1, 2},
    {S("[+1]"), PROTO_JDOM_SYNTAX, "invalid token near '+'", 1, 2},
    {S("[1e]"), PROTO_JDOM_SYNTAX, "invalid token near '1e'", 1, 3},
    {S("[1e+]"), PROTO_JDOM_SYNTAX, "invalid token near '1e+'", 1, 4},
    {S("[1e400]"), PROTO_JDOM_SYNTAX, "real number overflow near '1e400'",
     1, 6},
    {S("[-1e400]"), PROTO_JDOM_SYNTAX, "real number overflow near '-1e400'",
     1, 7},
    {S("[1"
       "0000000000000000000000000000000000000000000000000000000000000000000"
       "0000000000000000000000000000000000000000000000000000000000000000000"
       "0000000000000000000000000000000000000000000000000000000000000000000"
       "0000000000000000000000000000000000000000000000000000000000000000000"
       "0000000000000000000000000000000000000000000000000000000000000000000"
       "]"),
     PROTO_JDOM_SYNTAX, "real number overflow", 1, 337},
    {S("[NaN]"), PROTO_JDOM_SYNTAX, "invalid token near 'NaN'", 1, 4},
    {S("[Infinity]"), PROTO_JDOM_SYNTAX, "invalid token near 'Infinity'", 1,
     9},
    {S("[tru]"), PROTO_JDOM_SYNTAX, "invalid token near 'tru'", 1, 4},
    {S("[truex]"), PROTO_JDOM_SYNTAX, "invalid token near 'truex'", 1, 6},
    {S("[True]"), PROTO_JDOM_SYNTAX, "invalid token near 'True'", 1, 5},
    {S("[\"a\nb\"]"), PROTO_JDOM_SYNTAX, "unexpected newline near '\"a'", 1,
     3},
    {S("[\"\t\"]"), PROTO_JDOM_SYNTAX, "control character 0x9 near '\"'", 1,
     2},
    {S("[\"a\0b\"]"), PROTO_JDOM_SYNTAX, "control character 0x0 near '\"a'",
     1, 3},
    {S("[\"ab"), PROTO_JDOM_SYNTAX, "premature end of input near '\"ab'", 1,
     4},
    {S("[\"\\x\"]"), PROTO_JDOM_SYNTAX, "invalid escape near '\"\\x'", 1, 4},
    {S("[\"\\u12g4\"]"), PROTO_JDOM_SYNTAX, "invalid escape near '\"\\u12g'",
     1, 7},
    {S("[\"\\ud800\"]"), PROTO_JDOM_SYNTAX,
     "invalid Unicode '\\uD800' near '\"\\ud800\"'", 1, 9},
    {S("[\"\\udc00\\ud800\"]"), PROTO_JDOM_SYNTAX,
     "invalid Unicode '\\uDC00' near '\"\\udc00\\ud800\"'", 1, 15},
    {S("[\"\\ud800\\u0041\"]"), PROTO_JDOM_SYNTAX,
     "invalid Unicode '\\uD800\\u0041' near '\"\\ud800\\u0041\"'", 1, 15},
    {S("[\"\\u0000\"]"), PROTO_JDOM_SYNTAX,
     "\\u0000 is not allowed without JSON_ALLOW_NUL near '\"\\u0000\"'", 1,
     9},
    {S("{\"\\u0000\":1}"), PROTO_JDOM_SYNTAX,
     "NUL byte in object key not supported near '\"\\u0000\"'", 1, 9},
    /* Overlong '/', overlong NUL, a surrogate, above U+10FFFF, a lone
     * continuation byte, a truncated sequence, 0xff. */
    {S("[\"\xc0\xaf\"]"), PROTO_JDOM_SYNTAX, "unable to decode byte 0xc0", 1,
     2},
    {S("[\"\xc0\x80\"]"), PROTO_JDOM_SYNTAX, "unable to decode byte 0xc0", 1,
     2},
    {S("[\"\xe0\x80\xaf\"]"), PROTO_JDOM_SYNTAX,
     "unable to decode byte 0xe0", 1, 2},
    {S("[\"\xed\xa0\x80\"]"), PROTO_JDOM_SYNTAX,
     "unable to decode byte 0xed", 1, 2},
    {S("[\"\xf4\x90\x80\x80\"]"), PROTO_JDOM_SYNTAX,
     "unable to decode byte 0xf4", 1, 2},
    {S("[\"\x80\"]"), PROTO_JDOM_SYNTAX, "unable to decode byte 0x80", 1, 2},
    {S("[\"\xe2\x82\"]"), PROTO_JDOM_SYNTAX, "unable to decode byte 0xe2", 1,
     2},
    {S("[\xff]"), PROTO_JDOM_SYNTAX, "unable to decode byte 0xff", 1, 1},
    {S("{\"a\":1,\"a\":2}"), PROTO_JDOM_SYNTAX,
     "duplicate object key near '\"a\"'", 1, 10},
    {S("{\"a\":1,\"\\u0061\":2}"), PROTO_JDOM_SYNTAX,
     "duplicate object key near '\"\\u0061\"'", 1, 15},
    /* A NUL byte outside a string, even where jansson drops it. */
    {S("[1\0]"), PROTO_JDOM_SYNTAX, "']' expected near '?'", 1, 3},
    {S("{\"a\":true\0}"), PROTO_JDOM_SYNTAX, "'}' expected near '?'", 1, 10},
    {S("\0{}"), PROTO_JDOM_SYNTAX, "invalid token near '?'", 1, 1},
    {S("[[[[1]]]]"), PROTO_JDOM_TOO_DEEP,
     "arrays and objects nested more than 3 deep near '['", 1, 4},
};

START_TEST(test_proto_jdom_parse_invalid)
{
    const struct invalid_case *c = &invalid_cases[_i];
    const struct proto_jval *root = NULL;
    struct proto_jdom_error e;
    void *arena;

    ck_assert_int_eq(parse_n(c->body, c->len, 3, &root, &e, &arena),
                     c->want);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(e.text, c->text);
    ck_assert_int_eq(e.line, c->line);
    ck_assert_int_eq(e.column, c->column);
    if (c->want == PROTO_JDOM_SYNTAX)
        ck_assert_ptr_null(jdom_diff(c->body, c->len));
    free(arena);
}
END_TEST

/* ---- depth, size, large objects ----------------------------------------- */

static char *nested(size_t depth, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(2 * depth + n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, '[', depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, ']', depth);
    s[2 * depth + n] = '\0';
    return s;
}

START_TEST(test_proto_jdom_parse_depth)
{
    const struct proto_jval *root = NULL;
    struct proto_jdom_error e;
    char *ok = nested(64, "1");
    char *deep = nested(65, "");
    char *bomb = nested(200000, "");
    void *arena;

    ck_assert_int_eq(parse_n(ok, strlen(ok), 64, &root, &e, &arena),
                     PROTO_JDOM_OK);
    free(arena);
    ck_assert_int_eq(parse_n(deep, strlen(deep), 64, &root, &e, &arena),
                     PROTO_JDOM_TOO_DEEP);
    free(arena);
    /* The recursion stops at the bound, not at the end of the body. */
    ck_assert_int_eq(parse_n(bomb, strlen(bomb), PROTO_JDOM_MAX_DEPTH, &root,
                             &e, &arena),
                     PROTO_JDOM_TOO_DEEP);
    ck_assert_uint_eq(e.offset, PROTO_JDOM_MAX_DEPTH + 1);
    free(arena);
    ck_assert_int_eq(proto_jdom_parse(ok, strlen(ok), PROTO_JDOM_MAX_DEPTH + 1,
                                      arena = malloc(1 << 16), 1 << 16,
                                      &root, &e),
                     PROTO_JDOM_TOO_BIG);
    ck_assert_int_eq(proto_jdom_parse(ok, strlen(ok), 64, arena, 16, &root,
                                      &e),
                     PROTO_JDOM_TOO_BIG);
    free(arena);
    ck_assert_uint_eq(proto_jdom_arena_size((size_t)1 << 31), 0);
    free(ok);
    free(deep);
    free(bomb);
}
END_TEST

/* Bodies with the most values, strings and keys per byte parse in an arena
 * of exactly proto_jdom_arena_size() (ASan checks the bound). */
START_TEST(test_proto_jdom_parse_arena_bound)
{
    enum { N = 3000 };
    static const char *const units[][3] = {
        {"[", "1,", "1]"},
        {"[", "[],", "[]]"},
        {"[", "{},", "{}]"},
        {"[", "\"\",", "\"\"]"},
        {"[", "\"\\u00e9\\ud83d\\ude00\",", "\"\\u00e9\"]"},
        {"", "", "1"},
        {"", "", "\"\""},
    };

    for (size_t u = 0; u < ARRAY_SIZE(units); u++) {
        size_t cap = N * 40 + 16, n = 0;
        char *s = malloc(cap);
        const struct proto_jval *root = NULL;
        struct proto_jdom_error e;
        void *arena;

        ck_assert_ptr_nonnull(s);
        n += (size_t)sprintf(s + n, "%s", units[u][0]);
        for (int i = 0; units[u][1][0] && i < N; i++)
            n += (size_t)sprintf(s + n, "%s", units[u][1]);
        n += (size_t)sprintf(s + n, "%s", units[u][2]);
        ck_assert_int_eq(parse_n(s, n, 4, &root, &e, &arena), PROTO_JDOM_OK);
        free(arena);
        free(s);
    }
}
END_TEST

/* Objects past the on-arrival duplicate check: a repeat among many keys is
 * still found, wherever it is; many distinct keys pass. */
START_TEST(test_proto_jdom_parse_large_object)
{
    enum { N = 2000 };
    char *s = malloc(N * 16 + 16);
    const struct proto_jval *root = NULL;
    struct proto_jdom_error e;
    void *arena;
    size_t n = 0;

    ck_assert_ptr_nonnull(s);
    s[n++] = '{';
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(s + n, "%s\"k%d\":%d", i ? "," : "", i, i);
    s[n++] = '}';
    ck_assert_int_eq(parse_n(s, n, 4, &root, &e, &arena), PROTO_JDOM_OK);
    ck_assert_uint_eq(root->len, N);
    ck_assert(need(proto_jdom_member(root, "k1999"))->u.num == 1999);
    ck_assert_ptr_null(jdom_diff(s, n));
    free(arena);
    /* The same with "k1000" renamed "k17": a repeat past the first 16. */
    memcpy(strstr(s, "\"k1000\""), "\"k17\"\t ", 7);
    ck_assert_int_eq(parse_n(s, n, 4, &root, &e, &arena),
                     PROTO_JDOM_SYNTAX);
    ck_assert_ptr_null(jdom_diff(s, n));
    ck_assert_str_eq(e.text, "duplicate object key near '}'");
    free(arena);
    free(s);
}
END_TEST

/* ---- differential: generated documents against jansson ----------------- */

struct gen {
    uint64_t state;
    char *buf;
    size_t len, cap;
};

static uint32_t rnd(struct gen *g, uint32_t n)
{
    g->state ^= g->state << 13;
    g->state ^= g->state >> 7;
    g->state ^= g->state << 17;
    return (uint32_t)(g->state >> 11) % n;
}

static void emit(struct gen *g, const char *s, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        g->cap = (g->len + n + 1) * 2;
        g->buf = realloc(g->buf, g->cap);
        ck_assert_ptr_nonnull(g->buf);
    }
    memcpy(g->buf + g->len, s, n);
    g->len += n;
}

static void emits(struct gen *g, const char *s)
{
    emit(g, s, strlen(s));
}

static void gen_ws(struct gen *g)
{
    static const char *const ws[] = {"", "", "", " ", "\n", "\t", "\r\n  "};

    emits(g, ws[rnd(g, ARRAY_SIZE(ws))]);
}

static void gen_number(struct gen *g)
{
    static const char *const fixed[] = {
        "0", "-0", "1e-400", "1e400", "-1e308", "1.7976931348623157e308",
        "1.7976931348623159e308", "4.9e-324", "2.4703282292062328e-324",
        "9007199254740993", "0.30000000000000004", "1E22", "1e+23",
        "123456789012345678901", "0.1e1", "100e-2", "5e-1",
    };
    char tmp[64];

    if (rnd(g, 4) == 0) {
        emits(g, fixed[rnd(g, ARRAY_SIZE(fixed))]);
        return;
    }
    if (rnd(g, 3) == 0)
        emits(g, "-");
    (void)snprintf(tmp, sizeof(tmp), "%u", rnd(g, 3) ? rnd(g, 1000)
                                                     : rnd(g, 4000000000u));
    emits(g, tmp);
    if (rnd(g, 2)) {
        (void)snprintf(tmp, sizeof(tmp), ".%0*u", (int)rnd(g, 12) + 1,
                       rnd(g, 1000000));
        emits(g, tmp);
    }
    if (rnd(g, 3) == 0) {
        (void)snprintf(tmp, sizeof(tmp), "%c%s%u", rnd(g, 2) ? 'e' : 'E',
                       rnd(g, 2) ? "-" : (rnd(g, 2) ? "+" : ""),
                       rnd(g, 3) ? rnd(g, 30) : rnd(g, 400));
        emits(g, tmp);
    }
}

static void gen_string(struct gen *g)
{
    static const char *const parts[] = {
        "a", "b", "key", "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\u0041",
        "\\ud83d\\ude00", "\\uDBFF\\uDFFF", "\xc3\xa9", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80", "\x7f", " ", "[", "{", ":", ",",
    };
    unsigned n = rnd(g, 6);

    emits(g, "\"");
    for (unsigned i = 0; i < n; i++)
        emits(g, parts[rnd(g, ARRAY_SIZE(parts))]);
    emits(g, "\"");
}

static void gen_value(struct gen *g, int depth)
{
    unsigned kind = rnd(g, depth > 6 ? 6 : 8);

    gen_ws(g);
    switch (kind) {
    case 0:
        emits(g, "true");
        break;
    case 1:
        emits(g, "false");
        break;
    case 2:
        emits(g, "null");
        break;
    case 3:
    case 4:
        gen_number(g);
        break;
    case 5:
        gen_string(g);
        break;
    case 6: {
        unsigned n = rnd(g, 5);

        emits(g, "[");
        for (unsigned i = 0; i < n; i++) {
            if (i)
                emits(g, ",");
            gen_value(g, depth + 1);
        }
        gen_ws(g);
        emits(g, "]");
        break;
    }
    default: {
        unsigned n = rnd(g, 6);

        emits(g, "{");
        for (unsigned i = 0; i < n; i++) {
            if (i)
                emits(g, ",");
            gen_ws(g);
            gen_string(g); /* repeats happen: "" "a" "b" ... */
            gen_ws(g);
            emits(g, ":");
            gen_value(g, depth + 1);
        }
        gen_ws(g);
        emits(g, "}");
        break;
    }
    }
    gen_ws(g);
}

/* One byte changed, dropped, inserted or the body cut short. */
static void mutate(struct gen *g)
{
    static const char bytes[] = "{}[]:,\"\\0-+.eE tfn\x80\xc0\xed\xff\n";
    size_t at = g->len ? rnd(g, (uint32_t)g->len) : 0;
    char b = bytes[rnd(g, sizeof(bytes))]; /* the NUL included */

    switch (rnd(g, 4)) {
    case 0:
        if (g->len)
            g->buf[at] = b;
        break;
    case 1:
        if (g->len) {
            memmove(g->buf + at, g->buf + at + 1, g->len - at - 1);
            g->len--;
        }
        break;
    case 2:
        emit(g, " ", 1);
        memmove(g->buf + at + 1, g->buf + at, g->len - at - 1);
        g->buf[at] = b;
        break;
    default:
        g->len = at;
        break;
    }
}

START_TEST(test_proto_jdom_parse_differential)
{
    struct gen g = {.state = 0x9e3779b97f4a7c15ULL + (uint64_t)_i};
    unsigned accepted = 0, refused = 0;

    for (int n = 0; n < 4000; n++) {
        const char *why;
        json_t *j;

        g.len = 0;
        gen_value(&g, 0);
        if (n % 2)
            for (unsigned m = rnd(&g, 3) + 1; m > 0; m--)
                mutate(&g);
        why = jdom_diff(g.buf, g.len);
        if (why) {
            fprintf(stderr, "differs (%s) on: \"", why);
            for (size_t i = 0; i < g.len; i++)
                fprintf(stderr, (unsigned char)g.buf[i] >= 0x20 &&
                                        (unsigned char)g.buf[i] < 0x7f &&
                                        g.buf[i] != '"' && g.buf[i] != '\\'
                                    ? "%c"
                                    : "\\x%02x\"\"",
                        (unsigned char)g.buf[i]);
            fprintf(stderr, "\"\n");
            ck_abort_msg("jdom and jansson differ: %s", why);
        }
        j = json_loadb(g.buf, g.len, JDOM_DIFF_FLAGS, NULL);
        if (j)
            accepted++;
        else
            refused++;
        json_decref(j);
    }
    /* The run exercised both sides. */
    ck_assert_uint_gt(accepted, 1000);
    ck_assert_uint_gt(refused, 1000);
    free(g.buf);
}
END_TEST

/* ---- json_in keeps its error format ------------------------------------- */

static const struct detail_case {
    const char *body;
    enum proto_code code;
    const char *detail;
} detail_cases[] = {
    {"{\"ue\": x}", PROTO_ERR_BAD_JSON,
     "the body is not valid JSON: invalid token near 'x' at line 1, "
     "column 8"},
    {"{\n\"ue\": \"a\",\n\"ue\": \"b\"}", PROTO_ERR_BAD_JSON,
     "the body is not valid JSON: duplicate object key near '\"ue\"' at "
     "line 3, column 4"},
    {"[1, 2]", PROTO_ERR_BAD_JSON,
     "the body must be a JSON object, got an array"},
    {"\"device\"", PROTO_ERR_BAD_JSON,
     "the body must be a JSON object, got the string \"device\""},
    {"{\"device\": {\"memory_bytes\": 1e400}}", PROTO_ERR_BAD_JSON,
     "the body is not valid JSON: real number overflow near '1e400' at "
     "line 1, column 33"},
    {"{\"device\": {\"memory_bytes\": -0, \"gflops\": 1}}",
     PROTO_ERR_BAD_FIELD,
     "device.memory_bytes must be an integer from 1 to 9007199254740992, "
     "got -0"},
    {"{\"device\": {\"memory_bytes\": 1, \"gflops\": 1, "
     "\"formats\": [\"a\", 7]}}",
     PROTO_ERR_BAD_FIELD,
     "device.formats[1] must be a token of 1 to 32 characters from A-Z "
     "a-z 0-9 . _ : + -, got 7"},
    {"[[[[[[[[[[[[[[[[[[x", PROTO_ERR_JSON_TOO_DEEP,
     "the body nests arrays and objects more than 16 levels deep"},
};

START_TEST(test_proto_report_parse_detail)
{
    const struct detail_case *c = &detail_cases[_i];
    struct proto_report r;
    struct proto_error err;

    ck_assert_int_eq(proto_report_parse(c->body, strlen(c->body), NULL, &r,
                                        &err),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(err.code, c->code);
    ck_assert_str_eq(err.detail, c->detail);
}
END_TEST

static Suite *jdom_suite(void)
{
    Suite *s = suite_create("jdom");
    TCase *tc = tcase_create("parse");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_proto_jdom_parse_valid, 0,
                        ARRAY_SIZE(valid_cases));
    tcase_add_test(tc, test_proto_jdom_parse_tree);
    tcase_add_loop_test(tc, test_proto_jdom_parse_invalid, 0,
                        ARRAY_SIZE(invalid_cases));
    tcase_add_test(tc, test_proto_jdom_parse_depth);
    tcase_add_test(tc, test_proto_jdom_parse_arena_bound);
    tcase_add_test(tc, test_proto_jdom_parse_large_object);
    tcase_add_loop_test(tc, test_proto_jdom_parse_differential, 0, 8);
    suite_add_tcase(s, tc);
    tc = tcase_create("json_in");
    tcase_add_loop_test(tc, test_proto_report_parse_detail, 0,
                        ARRAY_SIZE(detail_cases));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jdom_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
