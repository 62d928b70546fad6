/*
 * The request-body JSON parser declared in proto/jdom.h: recursive descent
 * over the bytes, one node per value appended to the caller's arena,
 * strings unescaped into the arena. It mirrors jansson's lexer (load.c) in
 * what it accepts and in the wording of its errors, so that a body refused
 * before is refused now with the same sentence; it leaves what the values
 * mean, and the 4xx they become, to proto/json_in.c.
 *
 * Arena bound: each value, and each key, starts with a byte of its own, so
 * a body of n bytes yields at most n + 1 nodes, however malformed (a valid
 * one at most n / 2 + 1: every value but the top one also owns the ',' ':'
 * ']' or '}' after it). Unescaping never lengthens a string and its NUL
 * takes the place of a quote, so the strings fit in n + 1 bytes; the
 * scratch (a large object's keys for the duplicate check, at most n / 5 + 1
 * of them, or one number's text for strtod) in 2n + 16.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jdom.h"

#define BODY_MAX_LEN ((size_t)1 << 30)
#define NEAR_MAX 20      /* jansson quotes the token when <= 20 bytes */
#define SMALL_OBJECT 16  /* members checked for duplicates on arrival */
#define TWO_POW_53 9007199254740992ULL

/* Byte classes: in strings (what the copy loop must stop at) and between
 * tokens (whitespace). */
enum {
    C_PLAIN = 0, /* printable ASCII other than '"' and '\\' */
    C_QUOTE,
    C_ESCAPE,
    C_CONTROL,   /* 0x00..0x1f */
    C_HIGH,      /* 0x80..0xff: a UTF-8 sequence to check */
};

#define ROW(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
static const unsigned char string_class[256] = {
    ROW(C_CONTROL), ROW(C_CONTROL),
    0, 0, C_QUOTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 */
    ROW(C_PLAIN), ROW(C_PLAIN),
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, C_ESCAPE, 0, 0, 0, /* 0x50 */
    ROW(C_PLAIN), ROW(C_PLAIN),
    ROW(C_HIGH), ROW(C_HIGH), ROW(C_HIGH), ROW(C_HIGH),
    ROW(C_HIGH), ROW(C_HIGH), ROW(C_HIGH), ROW(C_HIGH),
};
#undef ROW

static const bool is_ws[256] = {
    [' '] = true, ['\t'] = true, ['\n'] = true, ['\r'] = true,
};

struct parser {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    struct proto_jval *nodes;
    size_t node_count;
    size_t node_cap;
    char *strs;
    size_t str_len;
    void *scratch;
    size_t scratch_size;
    size_t max_depth;
    bool overflow; /* the last number read overflowed a double */
    enum proto_jdom_status status;
    struct proto_jdom_error *err;
};

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t node_cap(size_t len)
{
    return len + 1;
}

size_t proto_jdom_arena_size(size_t body_len)
{
    if (body_len > BODY_MAX_LEN)
        return 0;
    return align8(node_cap(body_len) * sizeof(struct proto_jval)) +
           align8(body_len + 1) + align8(2 * body_len + 16);
}

/* ---- errors ------------------------------------------------------------ */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Length of the well-formed UTF-8 sequence at s (jansson's rules: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if none. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
        (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

/* Line and column just before body[offset], counted as jansson does:
 * lines from 1, columns in UTF-8 characters. */
static void locate(const unsigned char *start, size_t offset, int *out_line,
                   int *out_column)
{
    int line = 1, column = 0;

    for (size_t i = 0; i < offset; i++) {
        if (start[i] == '\n') {
            line++;
            column = 0;
        } else if ((start[i] & 0xc0) != 0x80) {
            column++;
        }
    }
    *out_line = line;
    *out_column = column;
}

/* Records why the body is refused. tok..tok_end is the offending token,
 * quoted in the text when short (non-printable bytes as '?'); an empty
 * token at the end of the body reads "near end of file". Returns false. */
__attribute__((format(printf, 4, 5))) static bool
fail(struct parser *ps, const unsigned char *tok,
     const unsigned char *tok_end, const char *fmt, ...)
{
    struct proto_jdom_error *e = ps->err;
    char msg[96];
    char near[NEAR_MAX + 1];
    size_t n = (size_t)(tok_end - tok);
    va_list ap;

    if (ps->status == PROTO_JDOM_OK)
        ps->status = PROTO_JDOM_SYNTAX;
    if (!e)
        return false;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->offset = (size_t)(tok_end - ps->start);
    locate(ps->start, e->offset, &e->line, &e->column);
    if (n > 0 && n <= NEAR_MAX) {
        for (size_t i = 0; i < n; i++)
            near[i] = (tok[i] >= 0x20 && tok[i] < 0x7f) ? (char)tok[i] : '?';
        near[n] = '\0';
        (void)snprintf(e->text, sizeof(e->text), "%s near '%s'", msg, near);
    } else if (n == 0 && tok_end == ps->end) {
        (void)snprintf(e->text, sizeof(e->text), "%s near end of file", msg);
    } else {
        (void)snprintf(e->text, sizeof(e->text), "%s", msg);
    }
    return false;
}

static bool fail_utf8(struct parser *ps, const unsigned char *at)
{
    return fail(ps, at, at, "unable to decode byte 0x%x", *at);
}

/* The extent of the token jansson would read at p, for error texts. */
static const unsigned char *token_end(const struct parser *ps,
                                      const unsigned char *p)
{
    const unsigned char *end = ps->end;

    if (p == end)
        return p;
    if (is_alpha(*p)) {
        while (p < end && is_alpha(*p))
            p++;
        return p;
    }
    if (*p == '-' || is_digit(*p)) {
        p++;
        while (p < end && (is_digit(*p) || *p == '.' || *p == 'e' ||
                           *p == 'E' || *p == '+' || *p == '-'))
            p++;
        return p;
    }
    if (*p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\' && p + 1 < end)
                p++;
        return p < end ? p + 1 : p;
    }
    return p + (*p >= 0x80 ? utf8_len(p, end) : 1);
}



/* ---- values ------------------------------------------------------------- */

static void skip_ws(struct parser *ps)
{
    const unsigned char *p = ps->p, *end = ps->end;

    while (p < end && is_ws[*p])
        p++;
    ps->p = p;
}

/* The next node. The arena bound (top of file) makes running out a bug. */
static struct proto_jval *push(struct parser *ps, enum proto_jtype type)
{
    struct proto_jval *v;

    assert(ps->node_count < ps->node_cap);
    v = &ps->nodes[ps->node_count++];
    v->type = (uint8_t)type;
    v->len = 0;
    v->span = 1;
    return v;
}

/* How many of the (up to) four bytes at s..end are hex digits. */
static int hex_run(const unsigned char *s, const unsigned char *end)
{
    int n = 0;

    while (n < 4 && s + n < end &&
           (is_digit(s[n]) || (s[n] >= 'a' && s[n] <= 'f') ||
            (s[n] >= 'A' && s[n] <= 'F')))
        n++;
    return n;
}

static int hex4(const unsigned char *s)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];

        v <<= 4;
        if (is_digit(c))
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static char *put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        *out++ = (char)cp;
    } else if (cp < 0x800) {
        *out++ = (char)(0xc0 | (cp >> 6));
        *out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *out++ = (char)(0xe0 | (cp >> 12));
        *out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *out++ = (char)(0xf0 | (cp >> 18));
        *out++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *out++ = (char)(0x80 | (cp & 0x3f));
    }
    return out;
}

/* What a string is read as: a value, a key, or a token in a place where
 * the grammar wants something else (read only for its own errors, which
 * jansson reports first, and with \u0000 allowed, as jansson's lexer
 * does). */
enum string_mode {
    STR_VALUE,
    STR_KEY,
    STR_PROBE,
};

/* What a string's escapes encode is checked after the string is read
 * (jansson converts escapes once the closing quote is found), so the first
 * such fault waits here; a fault of reading comes first. */
struct escape_fault {
    const char *fmt;
    int cp, lo;
};

/* A \u escape at s (pointing at the 'u'), surrogate pairs joined; writes
 * the character at *out and returns the byte after the escape, or NULL
 * with the error recorded when the hex digits are wrong. An escape that
 * encodes no character (a lone surrogate, \u0000) is noted in *fault. */
static const unsigned char *unescape_u(struct parser *ps,
                                       const unsigned char *tok,
                                       const unsigned char *s,
                                       enum string_mode mode, char **out,
                                       struct escape_fault *fault)
{
    const unsigned char *end = ps->end;
    int n = hex_run(s + 1, end);
    int cp, lo;
    struct escape_fault f = {NULL, 0, 0};

    if (n < 4) {
        /* jansson quotes the string up to the byte that is no hex digit. */
        const unsigned char *at = s + 1 + n;

        (void)fail(ps, tok, at < end ? at + 1 : at, "invalid escape");
        return NULL;
    }
    cp = hex4(s + 1);
    s += 5;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (end - s >= 2 && s[0] == '\\' && s[1] == 'u') {
            n = hex_run(s + 2, end);
            if (n < 4) {
                const unsigned char *at = s + 2 + n;

                (void)fail(ps, tok, at < end ? at + 1 : at, "invalid escape");
                return NULL;
            }
            lo = hex4(s + 2);
            s += 6;
            if (lo >= 0xdc00 && lo <= 0xdfff)
                cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
            else
                f = (struct escape_fault){"invalid Unicode '\\u%04X\\u%04X'",
                                          cp, lo};
        } else {
            f = (struct escape_fault){"invalid Unicode '\\u%04X'", cp, 0};
        }
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        f = (struct escape_fault){"invalid Unicode '\\u%04X'", cp, 0};
    } else if (cp == 0 && mode == STR_KEY) {
        f = (struct escape_fault){"NUL byte in object key not supported", 0,
                                  0};
    } else if (cp == 0 && mode == STR_VALUE) {
        f = (struct escape_fault){
            "\\u0000 is not allowed without JSON_ALLOW_NUL", 0, 0};
    }
    if (f.fmt) {
        if (!fault->fmt)
            *fault = f;
        return s;
    }
    *out = put_utf8(*out, (uint32_t)cp);
    return s;
}

/* The string at ps->p (its opening quote) as a node. */
static bool parse_string(struct parser *ps, enum string_mode mode)
{
    const unsigned char *tok = ps->p, *s = tok + 1, *end = ps->end;
    char *first = ps->strs + ps->str_len, *out = first;
    struct escape_fault fault = {NULL, 0, 0};
    struct proto_jval *v;

    for (;;) {
        unsigned char c;

        while (s < end && string_class[*s] == C_PLAIN)
            *out++ = (char)*s++;
        if (s == end)
            return fail(ps, tok, s, "premature end of input");
        c = *s;
        if (c == '"')
            break;
        if (c == '\\') {
            if (++s == end)
                return fail(ps, tok, s, "invalid escape");
            switch (*s) {
            case '"':
            case '\\':
            case '/':
                *out++ = (char)*s;
                break;
            case 'b':
                *out++ = '\b';
                break;
            case 'f':
                *out++ = '\f';
                break;
            case 'n':
                *out++ = '\n';
                break;
            case 'r':
                *out++ = '\r';
                break;
            case 't':
                *out++ = '\t';
                break;
            case 'u':
                s = unescape_u(ps, tok, s, mode, &out, &fault);
                if (!s)
                    return false;
                continue;
            default:
                return fail(ps, tok, s + 1, "invalid escape");
            }
            s++;
        } else if (c < 0x20) {
            if (c == '\n')
                return fail(ps, tok, s, "unexpected newline");
            return fail(ps, tok, s, "control character 0x%x", c);
        } else {
            size_t n = utf8_len(s, end);

            if (n == 0)
                return fail_utf8(ps, s);
            memcpy(out, s, n);
            out += n;
            s += n;
        }
    }
    if (fault.fmt) {
        /* The format is one of unescape_u()'s literals. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        return fail(ps, tok, s + 1, fault.fmt, fault.cp, fault.lo);
#pragma GCC diagnostic pop
    }
    *out = '\0';
    v = push(ps, PROTO_JSTRING);
    v->u.str = first;
    v->len = (uint32_t)(out - first);
    ps->str_len += (size_t)(out - first) + 1;
    ps->p = s + 1;
    return true;
}

static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The number tok..end by strtod, as jansson converts it (the C locale's
 * '.': the daemon never calls setlocale). */
static bool number_strtod(struct parser *ps, const unsigned char *tok,
                          const unsigned char *end, double *out)
{
    size_t n = (size_t)(end - tok);
    char *buf = ps->scratch;
    char *stop;
    double x = 0;

    assert(n < ps->scratch_size);
    memcpy(buf, tok, n);
    buf[n] = '\0';
    errno = 0;
    x = strtod(buf, &stop);
    assert(stop == buf + n);
    if ((x == HUGE_VAL || x == -HUGE_VAL) && errno == ERANGE) {
        ps->overflow = true;
        return fail(ps, tok, end, "real number overflow");
    }
    *out = x;
    return true;
}

/*
 * The number at ps->p. Up to 19 significant digits are gathered into an
 * integer m with a decimal exponent e; when m <= 2^53 and |e| <= 22 both
 * are exact doubles and m * 10^e (or m / 10^-e) is one correctly rounded
 * operation, the same double strtod gives (Clinger's fast path). Anything
 * else goes to strtod.
 */
static bool parse_number(struct parser *ps)
{
    const unsigned char *tok = ps->p, *s = tok, *end = ps->end;
    bool neg = false, exact = true;
    uint64_t m = 0;
    int digits = 0;
    long exp10 = 0;
    double x = 0;
    struct proto_jval *v;

    if (*s == '-') {
        neg = true;
        s++;
    }
    if (s == end || !is_digit(*s))
        return fail(ps, tok, s, "invalid token");
    if (*s == '0') {
        s++;
        if (s < end && is_digit(*s))
            return fail(ps, tok, s, "invalid token");
    } else {
        for (; s < end && is_digit(*s); s++) {
            if (digits < 19) {
                m = m * 10 + (uint64_t)(*s - '0');
                digits++;
            } else {
                exact = false;
            }
        }
    }
    if (s < end && *s == '.') {
        s++;
        if (s == end || !is_digit(*s))
            return fail(ps, tok, s, "invalid token");
        for (; s < end && is_digit(*s); s++) {
            if (m == 0 && *s == '0') {
                exp10--;
            } else if (digits < 19) {
                m = m * 10 + (uint64_t)(*s - '0');
                digits++;
                exp10--;
            } else {
                exact = false;
            }
        }
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        bool eneg = false;
        long e = 0;

        s++;
        if (s < end && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        if (s == end || !is_digit(*s))
            return fail(ps, tok, s, "invalid token");
        for (; s < end && is_digit(*s); s++)
            if (e < 100000)
                e = e * 10 + (*s - '0');
        exp10 += eneg ? -e : e;
    }
    if (m == 0) {
        x = neg ? -0.0 : 0.0;
    } else if (exact && m <= TWO_POW_53 && exp10 >= -22 && exp10 <= 22) {
        x = exp10 < 0 ? (double)m / pow10_exact[-exp10]
                      : (double)m * pow10_exact[exp10];
        if (neg)
            x = -x;
    } else if (!number_strtod(ps, tok, s, &x)) {
        return false;
    }
    v = push(ps, PROTO_JNUMBER);
    v->u.num = x;
    ps->p = s;
    return true;
}

/* true, false, null: jansson reads the whole run of letters. */
static bool parse_literal(struct parser *ps)
{
    static const struct {
        const char *text;
        size_t len;
        enum proto_jtype type;
    } words[] = {
        {"true", 4, PROTO_JTRUE},
        {"false", 5, PROTO_JFALSE},
        {"null", 4, PROTO_JNULL},
    };
    const unsigned char *tok = ps->p, *s = tok;

    while (s < ps->end && is_alpha(*s))
        s++;
    for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
        if ((size_t)(s - tok) == words[i].len &&
            memcmp(tok, words[i].text, words[i].len) == 0) {
            (void)push(ps, words[i].type);
            ps->p = s;
            return true;
        }
    }
    return fail(ps, tok, s, "invalid token");
}

/* A token that is not the one the grammar needs at ps->p. jansson reads a
 * whole token before its parser looks at it and keeps the first error, so
 * a fault inside the token (a bad string, a number out of range, bytes
 * that are no UTF-8) is the one reported. */
static bool fail_expected(struct parser *ps, const char *what)
{
    const unsigned char *p = ps->p;

    if (p < ps->end && *p >= 0x80 && utf8_len(p, ps->end) == 0)
        return fail_utf8(ps, p);
    if (p < ps->end && *p == '"' && !parse_string(ps, STR_PROBE))
        return false;
    if (p < ps->end && (*p == '-' || is_digit(*p))) {
        ps->overflow = false;
        if (!parse_number(ps) && ps->overflow)
            return false;
        ps->status = PROTO_JDOM_OK;
    }
    return fail(ps, p, token_end(ps, p), "%s", what);
}

static bool parse_value(struct parser *ps, size_t depth);

static bool key_equal(const struct proto_jval *a, const struct proto_jval *b)
{
    return a->len == b->len && memcmp(a->u.str, b->u.str, a->len) == 0;
}

static int key_cmp(const void *pa, const void *pb)
{
    const struct proto_jval *a = *(const struct proto_jval *const *)pa;
    const struct proto_jval *b = *(const struct proto_jval *const *)pb;

    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return memcmp(a->u.str, b->u.str, a->len);
}

/* Whether key, the newest member's, repeats one of the members before it
 * (the first SMALL_OBJECT are checked on arrival, as jansson does). */
static bool key_is_new(const struct proto_jval *obj,
                       const struct proto_jval *key, uint32_t members)
{
    const struct proto_jval *k = proto_jdom_first(obj);

    for (uint32_t i = 0; i < members; i++) {
        if (key_equal(k, key))
            return false;
        k = proto_jdom_next(k + 1);
    }
    return true;
}

/* The duplicate check of an object of more than SMALL_OBJECT members:
 * its keys sorted in the scratch, neighbours compared. */
static bool keys_are_unique(struct parser *ps, const struct proto_jval *obj)
{
    const struct proto_jval **keys = ps->scratch;
    const struct proto_jval *k = proto_jdom_first(obj);

    assert(obj->len * sizeof(*keys) <= ps->scratch_size);
    for (uint32_t i = 0; i < obj->len; i++) {
        keys[i] = k;
        k = proto_jdom_next(k + 1);
    }
    qsort(keys, obj->len, sizeof(*keys), key_cmp);
    for (uint32_t i = 1; i < obj->len; i++)
        if (key_equal(keys[i - 1], keys[i]))
            return fail(ps, ps->p, ps->p + 1, "duplicate object key");
    return true;
}

static bool too_deep(struct parser *ps)
{
    ps->status = PROTO_JDOM_TOO_DEEP;
    return fail(ps, ps->p, ps->p + 1,
                "arrays and objects nested more than %zu deep",
                ps->max_depth);
}

/* After a member or an element: a ',' is skipped (with the space after
 * it) and *more set, the closing bracket is left for the caller; anything
 * else is the error expected names. */
static bool after_item(struct parser *ps, char close, const char *expected,
                       bool *more)
{
    skip_ws(ps);
    *more = ps->p < ps->end && *ps->p == ',';
    if (*more) {
        ps->p++;
        skip_ws(ps);
        return true;
    }
    if (ps->p < ps->end && *ps->p == close)
        return true;
    return fail_expected(ps, expected);
}

static bool parse_object(struct parser *ps, size_t depth)
{
    size_t at = ps->node_count;
    struct proto_jval *obj;
    uint32_t n = 0;
    bool more;

    if (depth > ps->max_depth)
        return too_deep(ps);
    obj = push(ps, PROTO_JOBJECT);
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return true;
    }
    for (;;) {
        const unsigned char *key_tok = ps->p;

        if (ps->p == ps->end || *ps->p != '"')
            return fail_expected(ps, "string or '}' expected");
        if (!parse_string(ps, STR_KEY))
            return false;
        if (n < SMALL_OBJECT &&
            !key_is_new(obj, &ps->nodes[ps->node_count - 1], n))
            return fail(ps, key_tok, ps->p, "duplicate object key");
        skip_ws(ps);
        if (ps->p == ps->end || *ps->p != ':')
            return fail_expected(ps, "':' expected");
        ps->p++;
        skip_ws(ps);
        if (!parse_value(ps, depth))
            return false;
        n++;
        if (!after_item(ps, '}', "'}' expected", &more))
            return false;
        if (!more)
            break;
    }
    obj->len = n;
    obj->span = (uint32_t)(ps->node_count - at);
    if (n > SMALL_OBJECT && !keys_are_unique(ps, obj))
        return false;
    ps->p++;
    return true;
}

static bool parse_array(struct parser *ps, size_t depth)
{
    size_t at = ps->node_count;
    struct proto_jval *arr;
    uint32_t n = 0;
    bool more;

    if (depth > ps->max_depth)
        return too_deep(ps);
    arr = push(ps, PROTO_JARRAY);
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return true;
    }
    if (ps->p == ps->end)
        return fail_expected(ps, "']' expected");
    for (;;) {
        if (!parse_value(ps, depth))
            return false;
        n++;
        if (!after_item(ps, ']', "']' expected", &more))
            return false;
        if (!more)
            break;
    }
    arr->len = n;
    arr->span = (uint32_t)(ps->node_count - at);
    ps->p++;
    return true;
}

/* A value at ps->p (whitespace skipped); depth counts the containers
 * around it. */
static bool parse_value(struct parser *ps, size_t depth)
{
    const unsigned char *p = ps->p;

    if (p == ps->end)
        return fail(ps, p, p, "unexpected token");
    switch (*p) {
    case '{':
        return parse_object(ps, depth + 1);
    case '[':
        return parse_array(ps, depth + 1);
    case '"':
        return parse_string(ps, STR_VALUE);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(ps);
    case '}':
    case ']':
    case ':':
    case ',':
        return fail(ps, p, p + 1, "unexpected token");
    default:
        if (is_alpha(*p))
            return parse_literal(ps);
        return fail_expected(ps, "invalid token");
    }
}

enum proto_jdom_status
proto_jdom_parse(const char *body, size_t len, size_t max_depth, void *arena,
                 size_t arena_size, const struct proto_jval **out_root,
                 struct proto_jdom_error *out_err)
{
    size_t need = proto_jdom_arena_size(len);
    size_t nodes_size = align8(node_cap(len) * sizeof(struct proto_jval));
    struct parser ps;

    if (!body)
        body = "";
    memset(&ps, 0, sizeof(ps));
    ps.start = (const unsigned char *)body;
    ps.p = ps.start;
    ps.end = ps.start + len;
    ps.err = out_err;
    if (need == 0 || arena_size < need || max_depth > PROTO_JDOM_MAX_DEPTH) {
        ps.status = PROTO_JDOM_TOO_BIG;
        (void)fail(&ps, ps.start, ps.start, "the body is too large to parse");
        return ps.status;
    }
    ps.nodes = arena;
    ps.node_cap = node_cap(len);
    ps.strs = (char *)arena + nodes_size;
    ps.scratch = ps.strs + align8(len + 1);
    ps.scratch_size = align8(2 * len + 16);
    ps.max_depth = max_depth;
    skip_ws(&ps);
    if (!parse_value(&ps, 0))
        return ps.status;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        (void)fail_expected(&ps, "end of file expected");
        return ps.status;
    }
    *out_root = ps.nodes;
    return PROTO_JDOM_OK;
}
