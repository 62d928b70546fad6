/*
 * Unit tests of the delta format (proto/delta.c) and of `modeld patch`
 * (server/cmd_patch.c): round trips on pseudo-weights, every way a delta
 * can be refused, stock zstd applying our deltas, the plain zstd coding,
 * and the command's atomic write on real temporary files.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "proto/proto.h"
#include "server/commands.h"

#define MIB ((size_t)1 << 20)
#define MODEL_BYTES (4 * MIB)
#define LEVEL 3
#define NO_FAIL ((size_t)-1)

/* ---- helpers ------------------------------------------------------------ */

/* Growable byte buffer used as a sink; can fail on the n-th call. */
struct membuf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t calls;
    size_t fail_at_call; /* 0-based call index that fails; NO_FAIL for none */
    size_t max_piece;
};

static void membuf_init(struct membuf *b)
{
    memset(b, 0, sizeof(*b));
    b->fail_at_call = NO_FAIL;
}

static void membuf_free(struct membuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int membuf_sink(void *ctx, const void *data, size_t len)
{
    struct membuf *b = ctx;

    if (b->calls++ == b->fail_at_call)
        return -1;
    if (len > b->max_piece)
        b->max_piece = len;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        unsigned char *p;

        while (cap < b->len + len)
            cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static uint64_t prng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* float32 weights in (-0.5, 0.5): high entropy, like trained weights. */
static unsigned char *model_make(size_t len, uint64_t seed)
{
    unsigned char *m = malloc(len ? len : 1);
    uint64_t s = seed;

    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i + sizeof(float) <= len; i += sizeof(float)) {
        float f = (float)((double)(prng_next(&s) >> 11) / 9007199254740992.0 -
                          0.5);

        memcpy(m + i, &f, sizeof(f));
    }
    for (size_t i = len - len % sizeof(float); i < len; i++)
        m[i] = (unsigned char)prng_next(&s);
    return m;
}

/* A "fine-tuned" copy: about percent% of the floats nudged. */
static unsigned char *model_tune(const unsigned char *m, size_t len,
                                 unsigned percent, uint64_t seed)
{
    unsigned char *t = malloc(len ? len : 1);
    size_t floats = len / sizeof(float);
    size_t changes = floats * percent / 100;
    uint64_t s = seed;

    ck_assert_ptr_nonnull(t);
    if (len > 0)
        memcpy(t, m, len);
    for (size_t c = 0; c < changes; c++) {
        size_t i = (size_t)(prng_next(&s) % floats) * sizeof(float);
        float f;

        memcpy(&f, t + i, sizeof(f));
        f += (float)((double)(prng_next(&s) % 2001) / 1e5 - 0.01);
        memcpy(t + i, &f, sizeof(f));
    }
    return t;
}

static void sha256_hex(const void *data, size_t len,
                       char out_hex[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(proto_hasher_update(h, data, len), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, out_hex), PROTO_OK);
    proto_hasher_free(h);
}

/* Makes the delta old -> new into *out (initialised here). */
static void delta_build(const void *old, size_t old_len, const void *new_data,
                        size_t new_len, int level, struct membuf *out)
{
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];

    sha256_hex(old, old_len, from_hex);
    sha256_hex(new_data, new_len, to_hex);
    membuf_init(out);
    ck_assert_int_eq(proto_delta_make(old, old_len, new_data, new_len,
                                      from_hex, to_hex, level, membuf_sink,
                                      out),
                     PROTO_OK);
}

/* One shared pair of models and their delta per TCase, made once in the
 * runner (an unchecked fixture); tests only read them. */
static unsigned char *g_old, *g_new;
static struct membuf g_delta;

static void models_setup(void)
{
    g_old = model_make(MODEL_BYTES, 1);
    g_new = model_tune(g_old, MODEL_BYTES, 1, 2);
    delta_build(g_old, MODEL_BYTES, g_new, MODEL_BYTES, LEVEL, &g_delta);
}

static void models_teardown(void)
{
    free(g_old);
    free(g_new);
    membuf_free(&g_delta);
    g_old = g_new = NULL;
}

static void file_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    if (len > 0)
        ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Reads a whole file into *out (initialised here); false when missing. */
static bool file_read(const char *path, struct membuf *out)
{
    unsigned char buf[65536];
    FILE *f = fopen(path, "rb");
    size_t n;

    membuf_init(out);
    if (!f)
        return false;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ck_assert_int_eq(membuf_sink(out, buf, n), 0);
    fclose(f);
    return true;
}

/* Entries in dir, "." and ".." excluded. */
static size_t dir_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- make and apply ----------------------------------------------------- */

START_TEST(test_proto_delta_apply_roundtrip)
{
    struct membuf out;

    /* 1% of the floats changed: the delta is under 5% (about 1.6%). */
    ck_assert_uint_gt(g_delta.len, PROTO_DELTA_HEADER_LEN);
    ck_assert_uint_lt(g_delta.len, MODEL_BYTES / 20);
    /* Streamed in pieces, never as one buffer. */
    ck_assert_uint_le(g_delta.max_piece, MIB);

    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(g_old, MODEL_BYTES, g_delta.data,
                                       g_delta.len, membuf_sink, &out),
                     PROTO_OK);
    ck_assert_uint_eq(out.len, MODEL_BYTES);
    ck_assert(memcmp(out.data, g_new, MODEL_BYTES) == 0);
    ck_assert_uint_gt(out.calls, 2);
    ck_assert_uint_le(out.max_piece, MIB);
    membuf_free(&out);
}
END_TEST

START_TEST(test_proto_delta_make_high_level)
{
    size_t len = MIB;
    unsigned char *old = model_make(len, 7);
    unsigned char *tuned = model_tune(old, len, 1, 8);
    struct membuf delta, out;

    delta_build(old, len, tuned, len, 19, &delta);
    ck_assert_uint_lt(delta.len, len / 20);
    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(old, len, delta.data, delta.len,
                                       membuf_sink, &out),
                     PROTO_OK);
    ck_assert_uint_eq(out.len, len);
    ck_assert(memcmp(out.data, tuned, len) == 0);
    membuf_free(&out);
    membuf_free(&delta);
    free(tuned);
    free(old);
}
END_TEST

static void hex_of(const void *data, size_t len, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(proto_hasher_update(h, data, len), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, out), PROTO_OK);
    proto_hasher_free(h);
}

/* proto_delta_apply_trusted: the base's digest given, not computed. The
 * base's last 64 KiB are not in the new model, so the delta never reads
 * them: a byte changed there is noticed only by hashing the base. */
START_TEST(test_proto_delta_apply_trusted)
{
    enum { KEEP = 192 * 1024, GONE = 64 * 1024, FRESH = 64 * 1024 };
    unsigned char *old = model_make(KEEP + GONE, 21);
    unsigned char *tuned = model_tune(old, KEEP, 1, 22);
    unsigned char *fresh = model_make(FRESH, 23);
    unsigned char *new_data = malloc(KEEP + FRESH);
    char old_hex[PROTO_HEX_SIZE], other_hex[PROTO_HEX_SIZE];
    struct membuf delta, out;

    ck_assert_ptr_nonnull(new_data);
    memcpy(new_data, tuned, KEEP);
    memcpy(new_data + KEEP, fresh, FRESH);
    hex_of(old, KEEP + GONE, old_hex);
    delta_build(old, KEEP + GONE, new_data, KEEP + FRESH, 19, &delta);

    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply_trusted(old, KEEP + GONE, old_hex,
                                               delta.data, delta.len,
                                               membuf_sink, &out),
                     PROTO_OK);
    ck_assert(out.len == KEEP + FRESH &&
              memcmp(out.data, new_data, out.len) == 0);
    /* a byte the delta does not read: hashing refuses the base, the
     * trusted digest does not (and the result is still the target) */
    old[KEEP + GONE - 100] ^= 0xff;
    out.len = 0;
    ck_assert_int_eq(proto_delta_apply(old, KEEP + GONE, delta.data,
                                       delta.len, membuf_sink, &out),
                     PROTO_MISMATCH);
    out.len = 0;
    ck_assert_int_eq(proto_delta_apply_trusted(old, KEEP + GONE, old_hex,
                                               delta.data, delta.len,
                                               membuf_sink, &out),
                     PROTO_OK);
    ck_assert(memcmp(out.data, new_data, out.len) == 0);
    /* a byte it reads: the result is wrong, refused (zstd's content
     * checksum, else the target digest) */
    old[1000] ^= 0xff;
    out.len = 0;
    ck_assert_int_ne(proto_delta_apply_trusted(old, KEEP + GONE, old_hex,
                                               delta.data, delta.len,
                                               membuf_sink, &out),
                     PROTO_OK);
    /* a digest that is not the delta's base, or not a digest */
    hex_of(fresh, FRESH, other_hex);
    ck_assert_int_eq(proto_delta_apply_trusted(old, KEEP + GONE, other_hex,
                                               delta.data, delta.len,
                                               membuf_sink, &out),
                     PROTO_MISMATCH);
    ck_assert_int_eq(proto_delta_apply_trusted(old, KEEP + GONE, "abc",
                                               delta.data, delta.len,
                                               membuf_sink, &out),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_delta_apply_trusted(old, KEEP + GONE, NULL,
                                               delta.data, delta.len,
                                               membuf_sink, &out),
                     PROTO_BAD_INPUT);
    membuf_free(&out);
    membuf_free(&delta);
    free(new_data);
    free(fresh);
    free(tuned);
    free(old);
}
END_TEST

static const struct empty_case {
    size_t old_len;
    size_t new_len;
} empty_cases[] = {
    { 0, 0 },
    { 0, 100000 },
    { 100000, 0 },
    { 1, 1 },
};

START_TEST(test_proto_delta_apply_empty)
{
    const struct empty_case *c = &empty_cases[_i];
    unsigned char *old = model_make(c->old_len, 11);
    unsigned char *new_data = model_make(c->new_len, 12);
    struct membuf delta, out;

    delta_build(c->old_len ? old : NULL, c->old_len,
                c->new_len ? new_data : NULL, c->new_len, LEVEL, &delta);
    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(c->old_len ? old : NULL, c->old_len,
                                       delta.data, delta.len, membuf_sink,
                                       &out),
                     PROTO_OK);
    ck_assert_uint_eq(out.len, c->new_len);
    if (c->new_len > 0)
        ck_assert(memcmp(out.data, new_data, c->new_len) == 0);
    membuf_free(&out);
    membuf_free(&delta);
    free(new_data);
    free(old);
}
END_TEST

START_TEST(test_proto_delta_make_bad_digest)
{
    static const char upper[] =
        "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    char good[PROTO_HEX_SIZE];
    struct membuf out;

    sha256_hex("x", 1, good);
    membuf_init(&out);
    ck_assert_int_eq(proto_delta_make("x", 1, "y", 1, upper, good, LEVEL,
                                      membuf_sink, &out),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_delta_make("x", 1, "y", 1, good, upper, LEVEL,
                                      membuf_sink, &out),
                     PROTO_BAD_INPUT);
    ck_assert_uint_eq(out.len, 0);
    membuf_free(&out);
}
END_TEST

/* ---- header ------------------------------------------------------------- */

START_TEST(test_proto_delta_header_parse_roundtrip)
{
    char want_from[PROTO_HEX_SIZE], want_to[PROTO_HEX_SIZE];
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    const unsigned char *d = g_delta.data;

    sha256_hex(g_old, MODEL_BYTES, want_from);
    sha256_hex(g_new, MODEL_BYTES, want_to);
    ck_assert_int_eq(proto_delta_header_parse(d, g_delta.len, from_hex,
                                              to_hex),
                     PROTO_OK);
    ck_assert_str_eq(from_hex, want_from);
    ck_assert_str_eq(to_hex, want_to);
    /* Exactly the header is enough. */
    ck_assert_int_eq(proto_delta_header_parse(d, PROTO_DELTA_HEADER_LEN,
                                              from_hex, to_hex),
                     PROTO_OK);
    /* A skippable frame, magic 0x184D2A5E little-endian, then zstd. */
    ck_assert_uint_eq(d[0], 0x5E);
    ck_assert_uint_eq(d[1], 0x2A);
    ck_assert_uint_eq(d[2], 0x4D);
    ck_assert_uint_eq(d[3], 0x18);
    ck_assert_uint_eq((size_t)d[4] | (size_t)d[5] << 8 | (size_t)d[6] << 16 |
                          (size_t)d[7] << 24,
                      PROTO_DELTA_HEADER_LEN - 8);
    ck_assert(memcmp(d + 8, "modeld-delta/1 from=sha256:", 27) == 0);
    ck_assert(memcmp(d + PROTO_DELTA_HEADER_LEN, "\x28\xB5\x2F\xFD", 4) == 0);
}
END_TEST

/* Header damage: byte at offset set to value. */
static const struct header_case {
    const char *what;
    size_t offset;
    unsigned char value;
} header_cases[] = {
    { "magic", 0, 0x50 },
    { "length", 4, 0x10 },
    { "tag", 8, 'M' },
    { "from hex uppercase", 8 + 27, 'A' },
    { "from hex not hex", 8 + 27 + 10, 'g' },
    { "to tag", 8 + 27 + 64 + 1, 'T' },
    { "to hex", 8 + 27 + 64 + 11 + 63, ' ' },
    { "newline", 8 + 27 + 64 + 11 + 64, ' ' },
    { "padding", PROTO_DELTA_HEADER_LEN - 1, 'x' },
};

START_TEST(test_proto_delta_header_parse_malformed)
{
    const struct header_case *c = &header_cases[_i];
    unsigned char h[PROTO_DELTA_HEADER_LEN];
    char from_hex[PROTO_HEX_SIZE] = "", to_hex[PROTO_HEX_SIZE] = "";
    struct membuf out;

    memcpy(h, g_delta.data, sizeof(h));
    ck_assert_msg(h[c->offset] != c->value, "case %s changes nothing",
                  c->what);
    h[c->offset] = c->value;
    ck_assert_msg(proto_delta_header_parse(h, sizeof(h), from_hex, to_hex) ==
                      PROTO_BAD_INPUT,
                  "case %s", c->what);
    ck_assert_str_eq(from_hex, "");
    /* And apply refuses it before writing anything. */
    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(g_old, MODEL_BYTES, h, sizeof(h),
                                       membuf_sink, &out),
                     PROTO_BAD_INPUT);
    ck_assert_uint_eq(out.len, 0);
    membuf_free(&out);
}
END_TEST

START_TEST(test_proto_delta_header_parse_short)
{
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];

    ck_assert_int_eq(proto_delta_header_parse(g_delta.data,
                                              PROTO_DELTA_HEADER_LEN - 1,
                                              from_hex, to_hex),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_delta_header_parse(g_delta.data, 0, from_hex,
                                              to_hex),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_delta_header_parse(NULL, 0, from_hex, to_hex),
                     PROTO_BAD_INPUT);
}
END_TEST

/* ---- refusals ----------------------------------------------------------- */

START_TEST(test_proto_delta_apply_wrong_base)
{
    unsigned char *other = model_tune(g_old, MODEL_BYTES, 1, 99);
    struct membuf out;

    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(other, MODEL_BYTES, g_delta.data,
                                       g_delta.len, membuf_sink, &out),
                     PROTO_MISMATCH);
    ck_assert_uint_eq(out.len, 0);
    /* A base one byte short is not the base either. */
    ck_assert_int_eq(proto_delta_apply(g_old, MODEL_BYTES - 1, g_delta.data,
                                       g_delta.len, membuf_sink, &out),
                     PROTO_MISMATCH);
    ck_assert_int_eq(proto_delta_apply(NULL, 0, g_delta.data, g_delta.len,
                                       membuf_sink, &out),
                     PROTO_MISMATCH);
    ck_assert_uint_eq(out.len, 0);
    membuf_free(&out);
    free(other);
}
END_TEST

/* Where in the data frame a byte is flipped: from its start or its end. */
static const struct flip_case {
    const char *what;
    size_t offset;
    bool from_end;
} flip_cases[] = {
    { "zstd magic", 0, false },
    { "block body", 4096, false },
    { "middle", 0, true }, /* offset computed as half */
    { "last block", 40, true },
    { "checksum", 1, true },
};

START_TEST(test_proto_delta_apply_flipped_byte)
{
    const struct flip_case *c = &flip_cases[_i];
    size_t frame_len = g_delta.len - PROTO_DELTA_HEADER_LEN;
    unsigned char *d = malloc(g_delta.len);
    struct membuf out;
    size_t at;

    ck_assert_ptr_nonnull(d);
    memcpy(d, g_delta.data, g_delta.len);
    if (strcmp(c->what, "middle") == 0)
        at = frame_len / 2;
    else
        at = c->from_end ? frame_len - c->offset : c->offset;
    d[PROTO_DELTA_HEADER_LEN + at] ^= 0x5A;
    membuf_init(&out);
    ck_assert_msg(proto_delta_apply(g_old, MODEL_BYTES, d, g_delta.len,
                                    membuf_sink, &out) == PROTO_BAD_INPUT,
                  "case %s", c->what);
    membuf_free(&out);
    free(d);
}
END_TEST

START_TEST(test_proto_delta_apply_truncated)
{
    size_t cuts[] = {
        PROTO_DELTA_HEADER_LEN,     PROTO_DELTA_HEADER_LEN + 3,
        PROTO_DELTA_HEADER_LEN + 8, g_delta.len / 2,
        g_delta.len - 4,            g_delta.len - 1,
    };

    for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
        struct membuf out;

        membuf_init(&out);
        ck_assert_msg(proto_delta_apply(g_old, MODEL_BYTES, g_delta.data,
                                        cuts[i], membuf_sink,
                                        &out) == PROTO_BAD_INPUT,
                      "cut at %zu of %zu", cuts[i], g_delta.len);
        membuf_free(&out);
    }
}
END_TEST

/* A data frame declaring a 2 GiB window and no content size (found by
 * fuzz_delta): zstd would allocate the whole window before reading a
 * block. Refused up front, and so is a content size that the frame's few
 * bytes could never produce. Outside ASan (whose shadow memory needs the
 * address space) the test caps the address space at 1 GiB more than it
 * uses: an attempt to allocate the window then fails and is reported as
 * PROTO_NO_MEMORY, not PROTO_BAD_INPUT, so the test tells the two apart.
 * The fuzz smoke run also replays tests/fuzz/corpus/fuzz_delta/
 * regress-window-2gib under libFuzzer's 2 GiB malloc limit. */
/* Caps this (forked) test process's address space at what it maps now
 * plus extra bytes. Not under ASan, which reserves terabytes of shadow. */
static void cap_address_space(unsigned long extra)
{
#if !defined(__SANITIZE_ADDRESS__)
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    struct rlimit rl;

    if (!f)
        return;
    if (fscanf(f, "%lu", &pages) != 1)
        pages = 0;
    fclose(f);
    if (pages == 0)
        return;
    rl.rlim_cur = rl.rlim_max =
        pages * (unsigned long)sysconf(_SC_PAGESIZE) + extra;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
#else
    (void)extra;
#endif
}

START_TEST(test_proto_delta_apply_huge_window_refused)
{
    static const unsigned char no_size[] = {0x28, 0xb5, 0x2f, 0xfd, 0x04,
                                            0xa8, 0x09, 0x00, 0x00, 0x78,
                                            0x00, 0x00, 0x00, 0x00};
    /* Single segment, 4-byte content size 1 GiB, one raw 1-byte block. */
    static const unsigned char big_size[] = {0x28, 0xb5, 0x2f, 0xfd, 0xa4,
                                             0x00, 0x00, 0x00, 0x40, 0x09,
                                             0x00, 0x00, 0x78, 0x00, 0x00,
                                             0x00, 0x00};
    const unsigned char *frames[] = {no_size, big_size};
    size_t frame_lens[] = {sizeof(no_size), sizeof(big_size)};

    cap_address_space(1UL << 30);

    for (size_t i = 0; i < 2; i++) {
        struct membuf bad, out;

        membuf_init(&bad);
        membuf_init(&out);
        ck_assert_int_eq(membuf_sink(&bad, g_delta.data,
                                     PROTO_DELTA_HEADER_LEN), 0);
        ck_assert_int_eq(membuf_sink(&bad, frames[i], frame_lens[i]), 0);
        ck_assert_msg(proto_delta_apply(g_old, MODEL_BYTES, bad.data, bad.len,
                                        membuf_sink, &out) == PROTO_BAD_INPUT,
                      "frame %zu", i);
        ck_assert_uint_eq(out.len, 0);
        membuf_free(&bad);
        membuf_free(&out);
    }
}
END_TEST

START_TEST(test_proto_delta_apply_trailing_data)
{
    struct membuf twice, out;

    /* The data frame twice: stock zstd would concatenate, we refuse. */
    membuf_init(&twice);
    ck_assert_int_eq(membuf_sink(&twice, g_delta.data, g_delta.len), 0);
    ck_assert_int_eq(membuf_sink(&twice,
                                 g_delta.data + PROTO_DELTA_HEADER_LEN,
                                 g_delta.len - PROTO_DELTA_HEADER_LEN),
                     0);
    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(g_old, MODEL_BYTES, twice.data,
                                       twice.len, membuf_sink, &out),
                     PROTO_BAD_INPUT);
    membuf_free(&out);
    membuf_free(&twice);
}
END_TEST

START_TEST(test_proto_delta_apply_wrong_target)
{
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    struct membuf delta, out;

    /* Header names the old model as target; the frame makes the new one. */
    sha256_hex(g_old, MODEL_BYTES, from_hex);
    memcpy(to_hex, from_hex, sizeof(to_hex));
    membuf_init(&delta);
    ck_assert_int_eq(proto_delta_make(g_old, MODEL_BYTES, g_new, MODEL_BYTES,
                                      from_hex, to_hex, LEVEL, membuf_sink,
                                      &delta),
                     PROTO_OK);
    membuf_init(&out);
    ck_assert_int_eq(proto_delta_apply(g_old, MODEL_BYTES, delta.data,
                                       delta.len, membuf_sink, &out),
                     PROTO_MISMATCH);
    membuf_free(&out);
    membuf_free(&delta);
}
END_TEST

START_TEST(test_proto_delta_sink_failure)
{
    /* make writes the header, then the (small) frame; apply and the
     * coding write 4 MiB in many pieces. */
    size_t fail_at[] = { 0, 1, 3 };

    for (size_t i = 0; i < ARRAY_SIZE(fail_at); i++) {
        struct membuf out;
        char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];

        sha256_hex(g_old, MODEL_BYTES, from_hex);
        sha256_hex(g_new, MODEL_BYTES, to_hex);
        if (fail_at[i] < 2) {
            membuf_init(&out);
            out.fail_at_call = fail_at[i];
            ck_assert_int_eq(proto_delta_make(g_old, MODEL_BYTES, g_new,
                                              MODEL_BYTES, from_hex, to_hex,
                                              LEVEL, membuf_sink, &out),
                             PROTO_SINK_FAILED);
            ck_assert_uint_eq(out.calls, fail_at[i] + 1);
            membuf_free(&out);
        }

        membuf_init(&out);
        out.fail_at_call = fail_at[i];
        ck_assert_int_eq(proto_delta_apply(g_old, MODEL_BYTES, g_delta.data,
                                           g_delta.len, membuf_sink, &out),
                         PROTO_SINK_FAILED);
        ck_assert_uint_eq(out.calls, fail_at[i] + 1);
        membuf_free(&out);

        membuf_init(&out);
        out.fail_at_call = fail_at[i];
        ck_assert_int_eq(proto_zstd_compress(g_new, MODEL_BYTES, LEVEL,
                                             membuf_sink, &out),
                         PROTO_SINK_FAILED);
        ck_assert_uint_eq(out.calls, fail_at[i] + 1);
        membuf_free(&out);
    }
}
END_TEST

/* ---- stock zstd --------------------------------------------------------- */

START_TEST(test_proto_delta_stock_zstd_applies)
{
    char dir[] = "/tmp/check_delta.XXXXXX";
    char old_path[128], delta_path[128], new_path[128], cmd[512];
    struct membuf rebuilt;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(old_path, sizeof(old_path), "%s/old", dir);
    snprintf(delta_path, sizeof(delta_path), "%s/delta", dir);
    snprintf(new_path, sizeof(new_path), "%s/new", dir);
    file_write(old_path, g_old, MODEL_BYTES);
    file_write(delta_path, g_delta.data, g_delta.len);
    snprintf(cmd, sizeof(cmd),
             "zstd -q -d --long=31 --patch-from='%s' '%s' -o '%s'", old_path,
             delta_path, new_path);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert(file_read(new_path, &rebuilt));
    ck_assert_uint_eq(rebuilt.len, MODEL_BYTES);
    ck_assert(memcmp(rebuilt.data, g_new, MODEL_BYTES) == 0);
    membuf_free(&rebuilt);
    dir_remove(dir);
}
END_TEST

/* ---- plain zstd coding -------------------------------------------------- */

static const struct coding_case {
    size_t len;
    int level;
} coding_cases[] = {
    { 0, LEVEL },
    { 1000, LEVEL },
    { 12 * MIB, 1 },
    { 12 * MIB, 22 }, /* its own window would be 128 MiB */
};

START_TEST(test_proto_zstd_compress_cases)
{
    const struct coding_case *c = &coding_cases[_i];
    unsigned char *data = malloc(c->len ? c->len : 1);
    unsigned char *back = malloc(c->len ? c->len : 1);
    ZSTD_frameHeader fh;
    struct membuf out;
    uint64_t s = 5;
    size_t ret;

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(back);
    /* Compressible and quick even at level 22: sparse random bytes. */
    for (size_t i = 0; i < c->len; i++)
        data[i] = (i % 4096 == 0) ? (unsigned char)prng_next(&s) : 0;
    membuf_init(&out);
    ck_assert_int_eq(proto_zstd_compress(data, c->len, c->level, membuf_sink,
                                         &out),
                     PROTO_OK);
    ck_assert_uint_le(out.max_piece, MIB);
    ck_assert_uint_eq(ZSTD_getFrameHeader(&fh, out.data, out.len), 0);
    ck_assert_int_eq(fh.frameType, ZSTD_frame);
    ck_assert_uint_le(fh.windowSize, 8 * MIB);
    ck_assert_uint_eq(fh.frameContentSize, c->len);
    ck_assert_uint_eq(fh.checksumFlag, 1);
    /* Exactly one frame. */
    ck_assert_uint_eq(ZSTD_findFrameCompressedSize(out.data, out.len),
                      out.len);
    ret = ZSTD_decompress(back, c->len ? c->len : 1, out.data, out.len);
    ck_assert_msg(!ZSTD_isError(ret), "%s", ZSTD_getErrorName(ret));
    ck_assert_uint_eq(ret, c->len);
    if (c->len > 0) {
        ck_assert(memcmp(back, data, c->len) == 0);
        ck_assert_uint_lt(out.len, c->len / 2 + 64);
    }
    membuf_free(&out);
    free(back);
    free(data);
}
END_TEST

/* A source handing out a buffer in odd-sized pieces, optionally giving
 * more or fewer bytes than it should, or failing. */
struct piece_source {
    const unsigned char *p;
    size_t left;
    size_t piece;
    int fail_after;      /* calls before failing; -1 never */
};

static int piece_read(void *ctx, void *buf, size_t cap, size_t *out_len)
{
    struct piece_source *ps = ctx;
    size_t n = ps->left < ps->piece ? ps->left : ps->piece;

    if (ps->fail_after == 0)
        return -1;
    if (ps->fail_after > 0)
        ps->fail_after--;
    if (n > cap)
        n = cap;
    memcpy(buf, ps->p, n);
    ps->p += n;
    ps->left -= n;
    *out_len = n;
    return 0;
}

START_TEST(test_proto_zstd_compress_from_pieces)
{
    unsigned char *model = model_make(MODEL_BYTES, 11);
    unsigned char *back = malloc(MODEL_BYTES);
    struct piece_source ps = { model, MODEL_BYTES, 4093, -1 };
    struct membuf out, direct;
    size_t ret;

    ck_assert_ptr_nonnull(back);
    membuf_init(&out);
    membuf_init(&direct);
    ck_assert_int_eq(proto_zstd_compress_from(piece_read, &ps, MODEL_BYTES,
                                              LEVEL, membuf_sink, &out),
                     PROTO_OK);
    ret = ZSTD_decompress(back, MODEL_BYTES, out.data, out.len);
    ck_assert_msg(!ZSTD_isError(ret), "%s", ZSTD_getErrorName(ret));
    ck_assert_uint_eq(ret, MODEL_BYTES);
    ck_assert(memcmp(back, model, MODEL_BYTES) == 0);
    /* The buffer API is the same frame. */
    ck_assert_int_eq(proto_zstd_compress(model, MODEL_BYTES, LEVEL,
                                         membuf_sink, &direct),
                     PROTO_OK);
    ck_assert_uint_eq(direct.len, out.len);
    ck_assert(memcmp(direct.data, out.data, out.len) == 0);
    membuf_free(&direct);
    membuf_free(&out);
    free(back);
    free(model);
}
END_TEST

START_TEST(test_proto_zstd_compress_from_refuses)
{
    static const unsigned char bytes[3000];
    struct membuf out;
    struct piece_source shorter = { bytes, 1000, 300, -1 };
    struct piece_source longer = { bytes, 3000, 300, -1 };
    struct piece_source failing = { bytes, 3000, 300, 2 };

    membuf_init(&out);
    /* Fewer bytes than promised, more, and a source that fails. */
    ck_assert_int_eq(proto_zstd_compress_from(piece_read, &shorter, 2000,
                                              LEVEL, membuf_sink, &out),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_zstd_compress_from(piece_read, &longer, 2000,
                                              LEVEL, membuf_sink, &out),
                     PROTO_BAD_INPUT);
    ck_assert_int_eq(proto_zstd_compress_from(piece_read, &failing, 3000,
                                              LEVEL, membuf_sink, &out),
                     PROTO_SINK_FAILED);
    membuf_free(&out);
}
END_TEST

/* ---- modeld patch ------------------------------------------------------- */

static char p_dir[64];
static char p_old[128], p_new[128], p_delta[128], p_out[128], p_bad[128];

static void patch_setup(void)
{
    snprintf(p_dir, sizeof(p_dir), "/tmp/check_patch.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(p_dir));
    snprintf(p_old, sizeof(p_old), "%s/old.bin", p_dir);
    snprintf(p_new, sizeof(p_new), "%s/new.bin", p_dir);
    snprintf(p_delta, sizeof(p_delta), "%s/old-new.delta", p_dir);
    snprintf(p_out, sizeof(p_out), "%s/out.bin", p_dir);
    snprintf(p_bad, sizeof(p_bad), "%s/missing.bin", p_dir);
    file_write(p_old, g_old, MODEL_BYTES);
    file_write(p_new, g_new, MODEL_BYTES);
    file_write(p_delta, g_delta.data, g_delta.len);
}

static void patch_teardown(void)
{
    dir_remove(p_dir);
}

static int run_patch(const char *a, const char *b, const char *c)
{
    char *argv[5] = { "patch", (char *)(uintptr_t)a, (char *)(uintptr_t)b,
                      (char *)(uintptr_t)c, NULL };
    int argc = 1 + (a != NULL) + (b != NULL) + (c != NULL);

    return cmd_patch(argc, argv);
}

/* OUT holds exactly want (want_len bytes). */
static void assert_file_is(const char *path, const void *want,
                           size_t want_len)
{
    struct membuf got;

    ck_assert(file_read(path, &got));
    ck_assert_uint_eq(got.len, want_len);
    if (want_len > 0)
        ck_assert(memcmp(got.data, want, want_len) == 0);
    membuf_free(&got);
}

START_TEST(test_cmd_patch_success)
{
    struct stat st;

    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 0);
    assert_file_is(p_out, g_new, MODEL_BYTES);
    ck_assert_int_eq(stat(p_out, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0644); /* umask 022, set in main */
    /* old, new, delta, out: no temporary file left. */
    ck_assert_uint_eq(dir_count(p_dir), 4);
    /* Replaces an existing OUT. */
    file_write(p_out, "stale", 5);
    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 0);
    assert_file_is(p_out, g_new, MODEL_BYTES);
    ck_assert_uint_eq(dir_count(p_dir), 4);
}
END_TEST

START_TEST(test_cmd_patch_wrong_base)
{
    file_write(p_out, g_old, MODEL_BYTES);
    /* new.bin is not the delta's base. */
    ck_assert_int_eq(run_patch(p_new, p_delta, p_out), 1);
    assert_file_is(p_out, g_old, MODEL_BYTES);
    ck_assert_uint_eq(dir_count(p_dir), 4);
}
END_TEST

START_TEST(test_cmd_patch_corrupt_delta)
{
    unsigned char *d = malloc(g_delta.len);

    ck_assert_ptr_nonnull(d);
    memcpy(d, g_delta.data, g_delta.len);
    d[g_delta.len / 2] ^= 0xFF;
    file_write(p_delta, d, g_delta.len);
    file_write(p_out, g_old, MODEL_BYTES);
    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 1);
    assert_file_is(p_out, g_old, MODEL_BYTES);
    ck_assert_uint_eq(dir_count(p_dir), 4);

    /* Truncated, and not a delta at all. */
    file_write(p_delta, g_delta.data, g_delta.len - 100);
    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 1);
    file_write(p_delta, g_new, 1000);
    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 1);
    file_write(p_delta, "", 0);
    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 1);
    assert_file_is(p_out, g_old, MODEL_BYTES);
    ck_assert_uint_eq(dir_count(p_dir), 4);
    free(d);
}
END_TEST

START_TEST(test_cmd_patch_missing_file)
{
    char out_in_missing_dir[160];

    ck_assert_int_eq(run_patch(p_bad, p_delta, p_out), 1);
    ck_assert_int_eq(run_patch(p_old, p_bad, p_out), 1);
    ck_assert_int_eq(access(p_out, F_OK), -1);
    snprintf(out_in_missing_dir, sizeof(out_in_missing_dir), "%s/no/out",
             p_dir);
    ck_assert_int_eq(run_patch(p_old, p_delta, out_in_missing_dir), 1);
    ck_assert_uint_eq(dir_count(p_dir), 3);
}
END_TEST

START_TEST(test_cmd_patch_empty_models)
{
    struct membuf delta;

    /* Empty base -> model, and model -> empty target. */
    delta_build(NULL, 0, g_new, MODEL_BYTES, LEVEL, &delta);
    file_write(p_old, "", 0);
    file_write(p_delta, delta.data, delta.len);
    ck_assert_int_eq(run_patch(p_old, p_delta, p_out), 0);
    assert_file_is(p_out, g_new, MODEL_BYTES);
    membuf_free(&delta);

    delta_build(g_new, MODEL_BYTES, NULL, 0, LEVEL, &delta);
    file_write(p_delta, delta.data, delta.len);
    ck_assert_int_eq(run_patch(p_new, p_delta, p_out), 0);
    assert_file_is(p_out, NULL, 0);
    membuf_free(&delta);
}
END_TEST

START_TEST(test_cmd_patch_usage)
{
    char *help[] = { "patch", "--help", NULL };
    char *bogus[] = { "patch", "--bogus", p_old, p_delta, p_out, NULL };
    char *four[] = { "patch", p_old, p_delta, p_out, p_new, NULL };
    char *empty[] = { "patch", p_old, "", p_out, NULL };

    ck_assert_int_eq(run_patch(NULL, NULL, NULL), 2);
    ck_assert_int_eq(run_patch(p_old, NULL, NULL), 2);
    ck_assert_int_eq(run_patch(p_old, p_delta, NULL), 2);
    ck_assert_int_eq(cmd_patch(5, bogus), 2);
    ck_assert_int_eq(cmd_patch(5, four), 2);
    ck_assert_int_eq(cmd_patch(4, empty), 2);
    ck_assert_int_eq(cmd_patch(2, help), 0);
    ck_assert_int_eq(access(p_out, F_OK), -1);
}
END_TEST

static Suite *delta_suite(void)
{
    Suite *s = suite_create("delta");
    TCase *tc;

    tc = tcase_create("make_apply");
    tcase_add_unchecked_fixture(tc, models_setup, models_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_proto_delta_apply_roundtrip);
    tcase_add_test(tc, test_proto_delta_make_high_level);
    tcase_add_test(tc, test_proto_delta_apply_trusted);
    tcase_add_loop_test(tc, test_proto_delta_apply_empty, 0,
                        ARRAY_SIZE(empty_cases));
    tcase_add_test(tc, test_proto_delta_make_bad_digest);
    suite_add_tcase(s, tc);

    tc = tcase_create("header");
    tcase_add_unchecked_fixture(tc, models_setup, models_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_proto_delta_header_parse_roundtrip);
    tcase_add_loop_test(tc, test_proto_delta_header_parse_malformed, 0,
                        ARRAY_SIZE(header_cases));
    tcase_add_test(tc, test_proto_delta_header_parse_short);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusals");
    tcase_add_unchecked_fixture(tc, models_setup, models_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_proto_delta_apply_wrong_base);
    tcase_add_loop_test(tc, test_proto_delta_apply_flipped_byte, 0,
                        ARRAY_SIZE(flip_cases));
    tcase_add_test(tc, test_proto_delta_apply_truncated);
    tcase_add_test(tc, test_proto_delta_apply_huge_window_refused);
    tcase_add_test(tc, test_proto_delta_apply_trailing_data);
    tcase_add_test(tc, test_proto_delta_apply_wrong_target);
    tcase_add_test(tc, test_proto_delta_sink_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("stock_zstd");
    tcase_add_unchecked_fixture(tc, models_setup, models_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_proto_delta_stock_zstd_applies);
    suite_add_tcase(s, tc);

    tc = tcase_create("zstd_compress");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_proto_zstd_compress_cases, 0,
                        ARRAY_SIZE(coding_cases));
    tcase_add_test(tc, test_proto_zstd_compress_from_pieces);
    tcase_add_test(tc, test_proto_zstd_compress_from_refuses);
    suite_add_tcase(s, tc);

    tc = tcase_create("cmd_patch");
    tcase_add_unchecked_fixture(tc, models_setup, models_teardown);
    tcase_add_checked_fixture(tc, patch_setup, patch_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cmd_patch_success);
    tcase_add_test(tc, test_cmd_patch_wrong_base);
    tcase_add_test(tc, test_cmd_patch_corrupt_delta);
    tcase_add_test(tc, test_cmd_patch_missing_file);
    tcase_add_test(tc, test_cmd_patch_empty_models);
    tcase_add_test(tc, test_cmd_patch_usage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(delta_suite());
    int failed;

    umask(022);

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
