/*
 * Unit tests of the tensor maps (proto/tensor_map.c) and the tensor codings
 * (proto/tensor_code.c) on synthetic model files written by the test itself
 * (tests/lib/tensorgen.h) in every supported format: the maps find every
 * tensor at its exact bytes; truncated and garbled files are "unknown
 * format", never a crash; deltas and byte-grouped codings round-trip, also
 * fed one byte at a time; every corruption is refused; and the tensor
 * delta beats patch-from where the issue says it must.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_estimateDCtxSize */
#include <zstd.h>

#include "proto/tensor.h"
#include "tests/lib/tensorgen.h"

#define LEVEL 3
#define MODEL_BYTES ((size_t)600 << 10)

enum fmt { F_SAFETENSORS, F_GGUF, F_ONNX, F_TFLITE, F_TFJS, F_COUNT };

static const enum proto_model_format want_format[F_COUNT] = {
    PROTO_MODEL_SAFETENSORS, PROTO_MODEL_GGUF, PROTO_MODEL_ONNX,
    PROTO_MODEL_TFLITE, PROTO_MODEL_TFJS,
};

struct file {
    struct tg_buf data, manifest;
};

static void file_write(const struct tg_model *m, enum fmt f, struct file *out)
{
    memset(out, 0, sizeof(*out));
    switch (f) {
    case F_SAFETENSORS: tg_safetensors(m, &out->data); break;
    case F_GGUF: tg_gguf(m, &out->data); break;
    case F_ONNX: tg_onnx(m, &out->data); break;
    case F_TFLITE: tg_tflite(m, &out->data); break;
    case F_TFJS: tg_tfjs(m, &out->data, &out->manifest); break;
    default: ck_abort();
    }
}

static void file_free(struct file *f)
{
    free(f->data.p);
    free(f->manifest.p);
}

static enum proto_status map_of(const struct file *f,
                                struct proto_tensor_map *out)
{
    return proto_tensor_map_parse(f->data.p, f->data.len, f->manifest.p,
                                  f->manifest.len, out);
}

struct membuf {
    unsigned char *p;
    size_t len, cap;
};

static int mem_sink(void *ctx, const void *data, size_t len)
{
    struct membuf *b = ctx;

    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap - b->len < len)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            return 1;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static void sha(const void *p, size_t n, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(proto_hasher_update(h, p, n), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, out), PROTO_OK);
    proto_hasher_free(h);
}

/* ---- maps ------------------------------------------------------------------ */

START_TEST(test_proto_tensor_map_parse_formats)
{
    struct tg_model m = tg_model_new(64 << 10, 7);
    struct proto_tensor_map map;
    struct file f;

    file_write(&m, (enum fmt)_i, &f);
    ck_assert_int_eq(map_of(&f, &map), PROTO_OK);
    ck_assert_int_eq(map.format, want_format[_i]);
    ck_assert_uint_eq(map.count, m.count);
    /* Every tensor is found, by name, at its very bytes. */
    for (size_t i = 0; i < m.count; i++) {
        const struct proto_tensor *t = NULL;

        for (size_t k = 0; k < map.count; k++)
            if (strcmp(map.tensors[k].name, m.t[i].name) == 0)
                t = &map.tensors[k];
        ck_assert_msg(t != NULL, "%s missing", m.t[i].name);
        ck_assert_uint_eq(t->len, m.t[i].len);
        ck_assert_int_eq(t->dtype, PROTO_DTYPE_F32);
        ck_assert_uint_eq(t->elem_bytes, 4);
        ck_assert_int_eq(memcmp(f.data.p + t->offset, m.t[i].data, t->len),
                         0);
    }
    for (size_t k = 1; k < map.count; k++)
        ck_assert_uint_ge(map.tensors[k].offset,
                          map.tensors[k - 1].offset + map.tensors[k - 1].len);
    proto_tensor_map_free(&map);
    file_free(&f);
    tg_model_free(&m);
}
END_TEST

START_TEST(test_proto_tensor_map_parse_fp16)
{
    struct tg_model m = tg_model_new(16 << 10, 8);
    struct proto_tensor_map map;
    struct file f;

    tg_to_f16(&m);
    file_write(&m, (enum fmt)_i, &f);
    ck_assert_int_eq(map_of(&f, &map), PROTO_OK);
    for (size_t k = 0; k < map.count; k++) {
        ck_assert_int_eq(map.tensors[k].dtype, PROTO_DTYPE_F16);
        ck_assert_uint_eq(map.tensors[k].elem_bytes, 2);
    }
    proto_tensor_map_free(&map);
    file_free(&f);
    tg_model_free(&m);
}
END_TEST

/* Every prefix of a file and a file with bytes flipped: a map or "unknown
 * format", never a crash or an entry outside the bytes. */
START_TEST(test_proto_tensor_map_parse_truncated)
{
    struct tg_model m = tg_model_new(4 << 10, 9);
    struct file f;
    uint64_t s = 1;

    file_write(&m, (enum fmt)_i, &f);
    for (size_t n = 0; n < f.data.len; n += 1 + n / 64) {
        struct proto_tensor_map map;
        enum proto_status rc = proto_tensor_map_parse(
            f.data.p, n, f.manifest.p, f.manifest.len, &map);

        ck_assert(rc == PROTO_OK || rc == PROTO_BAD_INPUT);
        for (size_t k = 0; rc == PROTO_OK && k < map.count; k++)
            ck_assert_uint_le(map.tensors[k].offset + map.tensors[k].len, n);
        if (rc == PROTO_OK)
            proto_tensor_map_free(&map);
    }
    for (int round = 0; round < 300; round++) {
        struct proto_tensor_map map;
        unsigned char *copy = malloc(f.data.len);
        enum proto_status rc;

        memcpy(copy, f.data.p, f.data.len);
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            copy[(s >> 33) % f.data.len] ^= (unsigned char)(s >> 13);
        }
        rc = proto_tensor_map_parse(copy, f.data.len, f.manifest.p,
                                    f.manifest.len, &map);
        ck_assert(rc == PROTO_OK || rc == PROTO_BAD_INPUT);
        if (rc == PROTO_OK)
            proto_tensor_map_free(&map);
        free(copy);
    }
    file_free(&f);
    tg_model_free(&m);
}
END_TEST

static const struct {
    const char *bytes;
    size_t len;
} unknown_cases[] = {
    { "", 0 },
    { "hello, world", 12 },
    { "GGUF\x01\0\0\0", 8 },                         /* version 1 */
    { "\x02\0\0\0\0\0\0\0{}", 10 },                  /* no tensors */
    { "\x08\x08\x3a\x02\x0a\x00", 6 },               /* ONNX, no tensor */
    { "\x08\x08\x3a\x40", 4 },                       /* graph past end */
    { "\x10\0\0\0TFL3\0\0\0\0\0\0\0\0", 16 },        /* root past vtable */
};

START_TEST(test_proto_tensor_map_parse_unknown)
{
    struct proto_tensor_map map;

    ck_assert_int_eq(proto_tensor_map_parse(unknown_cases[_i].bytes,
                                            unknown_cases[_i].len, NULL, 0,
                                            &map),
                     PROTO_BAD_INPUT);
}
END_TEST

/* ONNX tensors stored outside the file are refused: the whole file is
 * then "unknown format". */
START_TEST(test_proto_tensor_map_parse_onnx_external)
{
    struct tg_buf t = { 0 }, g = { 0 }, f = { 0 }, kv = { 0 };
    struct proto_tensor_map map;

    tg_pb_varint(&t, 1, 4);
    tg_pb_varint(&t, 2, 1);
    tg_pb_bytes(&t, 8, "w", 1);
    tg_pb_bytes(&kv, 1, "location", 8);
    tg_pb_bytes(&kv, 2, "w.bin", 5);
    tg_pb_bytes(&t, 13, kv.p, kv.len);
    tg_pb_varint(&t, 14, 1);
    tg_pb_bytes(&g, 5, t.p, t.len);
    tg_pb_varint(&f, 1, 8);
    tg_pb_bytes(&f, 7, g.p, g.len);
    ck_assert_int_eq(proto_tensor_map_parse(f.p, f.len, NULL, 0, &map),
                     PROTO_BAD_INPUT);
    free(t.p);
    free(g.p);
    free(f.p);
    free(kv.p);
}
END_TEST

/* ---- codings ------------------------------------------------------------- */

enum pair { P_FT1, P_FT100, P_HALF, P_F16, P_PRUNE, P_REORDER, P_SAME,
            P_F16_RENAMED, P_COUNT };

static struct tg_model pair_new(const struct tg_model *base, enum pair p)
{
    struct tg_model m = tg_model_copy(base);

    switch (p) {
    case P_FT1: tg_finetune(&m, 0.01, 1e-3, 0, 11); break;
    case P_FT100: tg_finetune(&m, 1.0, 1e-3, 0, 12); break;
    case P_HALF: tg_finetune(&m, 1.0, 1e-3, 1, 13); break;
    case P_F16: tg_to_f16(&m); break;
    case P_PRUNE: tg_prune(&m, 0.5); break;
    case P_REORDER: tg_reorder(&m); break;
    case P_F16_RENAMED:
        /* a converter's re-export: fp16, and every name changed */
        tg_to_f16(&m);
        for (size_t i = 0; i < m.count; i++)
            m.t[i].name[0] = 'L';
        break;
    default: break;
    }
    return m;
}

struct coded {
    struct membuf tensor, patch;
};

/* Makes both deltas from a to b and checks that each rebuilds b. */
static void deltas(const struct file *a, const struct file *b,
                   struct coded *out)
{
    struct proto_tensor_map ma, mb;
    struct proto_tensor_options opt = { LEVEL };
    char ha[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE], hr[PROTO_HEX_SIZE];
    struct membuf res = { 0 };

    memset(out, 0, sizeof(*out));
    sha(a->data.p, a->data.len, ha);
    sha(b->data.p, b->data.len, hb);
    ck_assert_int_eq(map_of(a, &ma), PROTO_OK);
    ck_assert_int_eq(map_of(b, &mb), PROTO_OK);
    ck_assert_int_eq(proto_tensor_delta_make(a->data.p, a->data.len, &ma,
                                             b->data.p, b->data.len, &mb, ha,
                                             hb, &opt, mem_sink, &out->tensor),
                     PROTO_OK);
    ck_assert_int_eq(proto_delta_make(a->data.p, a->data.len, b->data.p,
                                      b->data.len, ha, hb, LEVEL, mem_sink,
                                      &out->patch),
                     PROTO_OK);
    ck_assert_int_eq(proto_coded_apply(a->data.p, a->data.len, out->tensor.p,
                                       out->tensor.len, mem_sink, &res, hr),
                     PROTO_OK);
    ck_assert_uint_eq(res.len, b->data.len);
    ck_assert_int_eq(memcmp(res.p, b->data.p, res.len), 0);
    ck_assert_str_eq(hr, hb);
    free(res.p);
    proto_tensor_map_free(&ma);
    proto_tensor_map_free(&mb);
}

/* What a test of a pair made: both deltas, both files, both models. */
static void pair_free(struct coded *c, struct file *a, struct file *b,
                      struct tg_model *base, struct tg_model *next)
{
    free(c->tensor.p);
    free(c->patch.p);
    file_free(a);
    file_free(b);
    tg_model_free(base);
    tg_model_free(next);
}

START_TEST(test_proto_tensor_delta_roundtrip)
{
    enum fmt f = (enum fmt)(_i % F_COUNT);
    enum pair p = (enum pair)(_i / F_COUNT);
    struct tg_model base = tg_model_new(MODEL_BYTES / 4, 21);
    struct tg_model next = pair_new(&base, p);
    struct file a, b;
    struct coded c;

    file_write(&base, f, &a);
    file_write(&next, f, &b);
    deltas(&a, &b, &c);
    /* Where the weights moved a little or moved around, the tensor delta
     * is the smaller one. */
    if (p == P_FT100 || p == P_HALF || p == P_F16 || p == P_F16_RENAMED)
        ck_assert_msg(c.tensor.len < c.patch.len * 3 / 4,
                      "format %d pair %d: tensor %zu, patch %zu", f, p,
                      c.tensor.len, c.patch.len);
    /* A re-export is the casts of the old values: next to nothing, also
     * when the converter renamed every tensor (matched by shape). */
    if (p == P_F16 || p == P_F16_RENAMED)
        ck_assert_msg(c.tensor.len < c.patch.len / 8,
                      "format %d pair %d: tensor %zu, patch %zu", f, p,
                      c.tensor.len, c.patch.len);
    if (p == P_SAME || p == P_REORDER)
        ck_assert_msg(c.tensor.len < 2048, "format %d pair %d: %zu", f, p,
                      c.tensor.len);
    /* A sparse fine-tune costs about its information (the changes'
     * positions and bits; tg_finetune_info_bits) and the fixed parts: the
     * 192-byte header, the plan, the non-tensor bytes, the frames. The
     * byte planes and (gap, value) records took 10-15% more. */
    if (p == P_FT1) {
        double info = tg_finetune_info_bits(&base, &next, 1e-3) / 8;

        ck_assert_msg((double)c.tensor.len <= info * 1.04 + 448,
                      "format %d: tensor %zu, information %.0f", f,
                      c.tensor.len, info);
    }
    /* Pruning: which values became 0 follows from their old magnitudes,
     * which the RC ops take as context (0.40x before). */
    if (p == P_PRUNE)
        ck_assert_msg(c.tensor.len < c.patch.len / 5,
                      "format %d: tensor %zu, patch %zu", f, c.tensor.len,
                      c.patch.len);
    pair_free(&c, &a, &b, &base, &next);
}
END_TEST

/* A file that is no model: the delta still works (all non-tensor). */
START_TEST(test_proto_tensor_delta_unmapped)
{
    unsigned char a[5000], b[6000];
    struct proto_tensor_options opt = { LEVEL };
    char ha[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE];
    struct membuf d = { 0 }, res = { 0 };

    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = (unsigned char)(i * 7 + i / 100);
    memcpy(b, a, sizeof(a));
    memset(b + sizeof(a), 'x', sizeof(b) - sizeof(a));
    sha(a, sizeof(a), ha);
    sha(b, sizeof(b), hb);
    ck_assert_int_eq(proto_tensor_delta_make(a, sizeof(a), NULL, b,
                                             sizeof(b), NULL, ha, hb, &opt,
                                             mem_sink, &d),
                     PROTO_OK);
    ck_assert_uint_lt(d.len, 400);
    ck_assert_int_eq(proto_tensor_apply(a, sizeof(a), d.p, d.len, mem_sink,
                                        &res),
                     PROTO_OK);
    ck_assert_uint_eq(res.len, sizeof(b));
    ck_assert_int_eq(memcmp(res.p, b, sizeof(b)), 0);
    free(d.p);
    free(res.p);
}
END_TEST

START_TEST(test_proto_tensor_bg_roundtrip)
{
    struct tg_model m = tg_model_new(MODEL_BYTES / 4, 31);
    struct proto_tensor_map map;
    struct proto_tensor_options opt = { LEVEL };
    struct membuf bg = { 0 }, z = { 0 }, res = { 0 };
    char h[PROTO_HEX_SIZE], hr[PROTO_HEX_SIZE];
    struct file f;

    file_write(&m, (enum fmt)_i, &f);
    sha(f.data.p, f.data.len, h);
    ck_assert_int_eq(map_of(&f, &map), PROTO_OK);
    ck_assert_int_eq(proto_tensor_bg_make(f.data.p, f.data.len, &map, h,
                                          &opt, mem_sink, &bg),
                     PROTO_OK);
    ck_assert_int_eq(proto_zstd_compress(f.data.p, f.data.len, LEVEL,
                                         mem_sink, &z),
                     PROTO_OK);
    /* Byte planes beat plain zstd on float weights. */
    ck_assert_msg(bg.len < z.len, "bg %zu zstd %zu", bg.len, z.len);
    ck_assert_int_eq(proto_coded_apply(NULL, 0, bg.p, bg.len, mem_sink, &res,
                                       hr),
                     PROTO_OK);
    ck_assert_str_eq(hr, h);
    ck_assert_uint_eq(res.len, f.data.len);
    ck_assert_int_eq(memcmp(res.p, f.data.p, res.len), 0);
    /* A plain zstd frame decodes too, with no digest to name. */
    res.len = 0;
    ck_assert_int_eq(proto_coded_apply(NULL, 0, z.p, z.len, mem_sink, &res,
                                       hr),
                     PROTO_OK);
    ck_assert_str_eq(hr, "");
    ck_assert_uint_eq(res.len, f.data.len);
    free(bg.p);
    free(z.p);
    free(res.p);
    proto_tensor_map_free(&map);
    file_free(&f);
    tg_model_free(&m);
}
END_TEST

/* Fixtures for the decoder tests: two small pairs and their deltas, one
 * with casts (fp16 re-export of a fine-tune), one with the sparse ops (a
 * 1% fine-tune of some layers, pruning of others). */
static struct file pa[2], pb[2];
static struct membuf pd[2];
static struct file da, db;
static struct membuf dd;

static void pair_setup(void)
{
    for (int k = 0; k < 2; k++) {
        struct tg_model base = tg_model_new(48 << 10, 41);
        struct tg_model next = pair_new(&base, k ? P_FT1 : P_FT100);
        struct coded c;

        if (k == 0) {
            tg_to_f16(&next);     /* casts and fine-tune at once */
        } else {
            struct tg_model half = { next.t, next.count / 2 };

            tg_prune(&half, 0.5);
        }
        file_write(&base, F_SAFETENSORS, &pa[k]);
        file_write(&next, F_SAFETENSORS, &pb[k]);
        deltas(&pa[k], &pb[k], &c);
        pd[k] = c.tensor;
        free(c.patch.p);
        tg_model_free(&base);
        tg_model_free(&next);
    }
}

static void pair_teardown(void)
{
    for (int k = 0; k < 2; k++) {
        file_free(&pa[k]);
        file_free(&pb[k]);
        free(pd[k].p);
    }
}

/* The loop index picks the fixture. */
static void pair_pick(int i)
{
    da = pa[i];
    db = pb[i];
    dd = pd[i];
}

START_TEST(test_proto_tensor_dec_feed_bytewise)
{
    struct proto_tensor_dec *d = NULL;
    struct membuf res = { 0 };

    pair_pick(_i);
    ck_assert_int_eq(proto_tensor_dec_new(da.data.p, da.data.len, mem_sink,
                                          &res, &d),
                     PROTO_OK);
    for (size_t i = 0; i < dd.len; i++)
        ck_assert_int_eq(proto_tensor_dec_feed(d, dd.p + i, 1), PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_finish(d), PROTO_OK);
    ck_assert_uint_gt(proto_tensor_dec_peak_bytes(d), 0);
    proto_tensor_dec_free(d);
    ck_assert_uint_eq(res.len, db.data.len);
    ck_assert_int_eq(memcmp(res.p, db.data.p, res.len), 0);
    free(res.p);
}
END_TEST

START_TEST(test_proto_tensor_dec_wrong_base)
{
    struct membuf res = { 0 };
    unsigned char *old;

    pair_pick(_i);
    old = malloc(da.data.len);
    memcpy(old, da.data.p, da.data.len);
    old[da.data.len - 1] ^= 1;
    ck_assert_int_eq(proto_tensor_apply(old, da.data.len, dd.p, dd.len,
                                        mem_sink, &res),
                     PROTO_MISMATCH);
    ck_assert_int_eq(proto_tensor_apply(NULL, 0, dd.p, dd.len, mem_sink,
                                        &res),
                     PROTO_MISMATCH);
    free(old);
    free(res.p);
}
END_TEST

/* Truncated at every length, or with a byte changed anywhere: refused
 * (never PROTO_OK, never a crash). */
START_TEST(test_proto_tensor_dec_corrupt)
{
    unsigned char *copy;

    pair_pick(_i);
    copy = malloc(dd.len);
    for (size_t n = 0; n < dd.len; n += 1 + n / 32) {
        struct membuf res = { 0 };

        ck_assert_int_ne(proto_tensor_apply(da.data.p, da.data.len, dd.p, n,
                                            mem_sink, &res),
                         PROTO_OK);
        free(res.p);
    }
    for (size_t at = 0; at < dd.len; at += 1 + at / 16) {
        struct membuf res = { 0 };

        memcpy(copy, dd.p, dd.len);
        copy[at] ^= 0x5a;
        ck_assert_int_ne(proto_tensor_apply(da.data.p, da.data.len, copy,
                                            dd.len, mem_sink, &res),
                         PROTO_OK);
        free(res.p);
    }
    free(copy);
}
END_TEST

/* The sparse fixture's delta beats patch-from (it is the sparse ops that
 * do: a 1% fine-tune coded in planes of every element does not). */
START_TEST(test_proto_tensor_delta_sparse_beats_patch)
{
    struct membuf patch = { 0 };
    char ha[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE];

    pair_pick(1);
    sha(da.data.p, da.data.len, ha);
    sha(db.data.p, db.data.len, hb);
    ck_assert_int_eq(proto_delta_make(da.data.p, da.data.len, db.data.p,
                                      db.data.len, ha, hb, LEVEL, mem_sink,
                                      &patch),
                     PROTO_OK);
    ck_assert_msg(dd.len < patch.len * 9 / 10, "tensor %zu patch %zu",
                  dd.len, patch.len);
    free(patch.p);
}
END_TEST

/*
 * A model of three batches (1 MiB of stream bytes each): a fully
 * fine-tuned tensor (byte planes) that ends 2 KiB before the first batch
 * boundary, then 2% fine-tunes (range-coded), so that a range-coded
 * item's bytes run across the boundary; fed in pieces of odd sizes. The
 * decoder's memory, zstd's included, stays under the new model's size:
 * the streams' bytes once (their zstd windows, or buffers of their own
 * when as small), zstd's contexts and a 64 KiB step; not a batch of
 * planes beside the windows, nor the compressed chunk, nor a second copy
 * of the range-coded bytes.
 */
static void tensor_fill(struct tg_tensor *t, const char *name, size_t rows,
                        size_t cols)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = TG_F32;
    t->ndim = 2;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->len = rows * cols * 4;
    t->data = malloc(t->len);
    ck_assert_ptr_nonnull(t->data);
    for (size_t i = 0; i < rows * cols; i++)
        tg_setf(t, i, (float)(0.05 * tg_gauss()));
}

START_TEST(test_proto_tensor_dec_bounded)
{
    static const size_t pieces[] = { 1, 5, 333, 4096, 70000 };
    struct tg_model base = { calloc(4, sizeof(struct tg_tensor)), 4 };
    struct tg_model next, one;
    struct file a, b;
    struct coded c;
    struct proto_tensor_dec *d = NULL;
    struct membuf res = { 0 };
    size_t at = 0;

    ck_assert_ptr_nonnull(base.t);
    tg_seed(77);
    /* (1 MiB - 2 KiB) / 4 = 1022 * 256 elements */
    tensor_fill(&base.t[0], "a.weight", 1022, 256);
    tensor_fill(&base.t[1], "b.weight", 512, 256);
    tensor_fill(&base.t[2], "c.weight", 1024, 256);
    tensor_fill(&base.t[3], "d.weight", 512, 256);
    next = tg_model_copy(&base);
    for (size_t i = 0; i < 4; i++) {
        one.t = &next.t[i];
        one.count = 1;
        tg_finetune(&one, i % 2 ? 0.02 : 1.0, 1e-3, 0, 90 + i);
    }
    file_write(&base, F_SAFETENSORS, &a);
    file_write(&next, F_SAFETENSORS, &b);
    deltas(&a, &b, &c); /* also applies it whole */
    ck_assert_int_eq(proto_tensor_dec_new(a.data.p, a.data.len, mem_sink,
                                          &res, &d),
                     PROTO_OK);
    for (size_t k = 0; at < c.tensor.len; k++) {
        size_t n = pieces[k % 5] < c.tensor.len - at ? pieces[k % 5]
                                                      : c.tensor.len - at;

        ck_assert_int_eq(proto_tensor_dec_feed(d, c.tensor.p + at, n),
                         PROTO_OK);
        at += n;
    }
    ck_assert_int_eq(proto_tensor_dec_finish(d), PROTO_OK);
    ck_assert_uint_eq(res.len, b.data.len);
    ck_assert_int_eq(memcmp(res.p, b.data.p, res.len), 0);
    /* the streams' bytes once, and a zstd context with an input block
     * for each stream in use (4 planes and the range coder's, and one) */
    ck_assert_msg(proto_tensor_dec_peak_bytes(d) <=
                      b.data.len +
                          6 * (ZSTD_estimateDCtxSize() + ZSTD_BLOCKSIZE_MAX),
                  "decoder held %llu bytes",
                  (unsigned long long)proto_tensor_dec_peak_bytes(d));
    proto_tensor_dec_free(d);
    free(res.p);
    pair_free(&c, &a, &b, &base, &next);
}
END_TEST

/* fp16 weights fine-tuned (XOR/SUB of 2-byte elements, the decoder's
 * fused 16-bit path, as in the real TF.js pairs) and the fp16 model's
 * byte planes alone (RAW). */
START_TEST(test_proto_tensor_delta_f16_finetune)
{
    struct tg_model base = tg_model_new(MODEL_BYTES / 2, 51);
    struct tg_model next = tg_model_copy(&base);
    struct proto_tensor_map map;
    struct proto_tensor_options opt = { LEVEL };
    struct membuf bg = { 0 }, res = { 0 };
    char h[PROTO_HEX_SIZE], hr[PROTO_HEX_SIZE];
    struct file a, b;
    struct coded c;

    tg_finetune(&next, _i ? 0.3 : 1.0, 1e-2, 0, 52);
    tg_to_f16(&base);
    tg_to_f16(&next);
    file_write(&base, F_TFJS, &a);
    file_write(&next, F_TFJS, &b);
    deltas(&a, &b, &c);
    ck_assert_msg(c.tensor.len < c.patch.len, "tensor %zu, patch %zu",
                  c.tensor.len, c.patch.len);
    sha(b.data.p, b.data.len, h);
    ck_assert_int_eq(map_of(&b, &map), PROTO_OK);
    ck_assert_int_eq(proto_tensor_bg_make(b.data.p, b.data.len, &map, h,
                                          &opt, mem_sink, &bg),
                     PROTO_OK);
    ck_assert_int_eq(proto_coded_apply(NULL, 0, bg.p, bg.len, mem_sink, &res,
                                       hr),
                     PROTO_OK);
    ck_assert_uint_eq(res.len, b.data.len);
    ck_assert_int_eq(memcmp(res.p, b.data.p, res.len), 0);
    proto_tensor_map_free(&map);
    free(bg.p);
    free(res.p);
    pair_free(&c, &a, &b, &base, &next);
}
END_TEST

/* The base's digest from the caller (modeld patch hashes the file with
 * read(2)): checked against the header's instead of hashing old. */
START_TEST(test_proto_tensor_dec_trust_base)
{
    struct proto_tensor_dec *d = NULL;
    struct membuf res = { 0 };
    char ha[PROTO_HEX_SIZE], other[PROTO_HEX_SIZE];

    pair_pick(_i);
    sha(da.data.p, da.data.len, ha);
    sha(db.data.p, db.data.len, other);
    /* the right digest: decodes */
    ck_assert_int_eq(proto_tensor_dec_new(da.data.p, da.data.len, mem_sink,
                                          &res, &d),
                     PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_trust_base(d, ha), PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_feed(d, dd.p, dd.len), PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_finish(d), PROTO_OK);
    ck_assert_uint_eq(res.len, db.data.len);
    ck_assert_int_eq(memcmp(res.p, db.data.p, res.len), 0);
    /* too late once bytes came */
    ck_assert_int_eq(proto_tensor_dec_trust_base(d, ha), PROTO_BAD_INPUT);
    proto_tensor_dec_free(d);
    /* another digest: refused before a byte is written */
    res.len = 0;
    ck_assert_int_eq(proto_tensor_dec_new(da.data.p, da.data.len, mem_sink,
                                          &res, &d),
                     PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_trust_base(d, other), PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_feed(d, dd.p, dd.len), PROTO_MISMATCH);
    ck_assert_uint_eq(res.len, 0);
    /* not a digest */
    proto_tensor_dec_free(d);
    ck_assert_int_eq(proto_tensor_dec_new(da.data.p, da.data.len, mem_sink,
                                          &res, &d),
                     PROTO_OK);
    ck_assert_int_eq(proto_tensor_dec_trust_base(d, "sha256:00"),
                     PROTO_BAD_INPUT);
    proto_tensor_dec_free(d);
    free(res.p);
}
END_TEST

START_TEST(test_proto_coded_kind_headers)
{
    char from[PROTO_HEX_SIZE], to[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE];
    unsigned char zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

    pair_pick(0);
    sha(db.data.p, db.data.len, hb);
    ck_assert_int_eq(proto_coded_kind(dd.p, dd.len, from, to),
                     PROTO_CODED_TENSOR);
    ck_assert_str_eq(to, hb);
    ck_assert_int_eq(proto_coded_kind(zstd_magic, 4, from, to),
                     PROTO_CODED_ZSTD);
    ck_assert_int_eq(proto_coded_kind(dd.p, 100, from, to),
                     PROTO_CODED_UNKNOWN);
    ck_assert_int_eq(proto_coded_kind("hello", 5, from, to),
                     PROTO_CODED_UNKNOWN);
}
END_TEST

static Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("maps");

    tcase_add_loop_test(tc, test_proto_tensor_map_parse_formats, 0, F_COUNT);
    tcase_add_loop_test(tc, test_proto_tensor_map_parse_fp16, 0, F_COUNT);
    tcase_add_loop_test(tc, test_proto_tensor_map_parse_truncated, 0,
                        F_COUNT);
    tcase_add_loop_test(tc, test_proto_tensor_map_parse_unknown, 0,
                        (int)(sizeof(unknown_cases) /
                              sizeof(unknown_cases[0])));
    tcase_add_test(tc, test_proto_tensor_map_parse_onnx_external);
    suite_add_tcase(s, tc);

    tc = tcase_create("codings");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_proto_tensor_delta_roundtrip, 0,
                        F_COUNT * P_COUNT);
    tcase_add_test(tc, test_proto_tensor_delta_unmapped);
    tcase_add_loop_test(tc, test_proto_tensor_bg_roundtrip, 0, F_COUNT);
    suite_add_tcase(s, tc);

    tc = tcase_create("decoder");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, pair_setup, pair_teardown);
    tcase_add_loop_test(tc, test_proto_tensor_dec_feed_bytewise, 0, 2);
    tcase_add_loop_test(tc, test_proto_tensor_dec_wrong_base, 0, 2);
    tcase_add_loop_test(tc, test_proto_tensor_dec_corrupt, 0, 2);
    tcase_add_loop_test(tc, test_proto_tensor_dec_trust_base, 0, 2);
    tcase_add_test(tc, test_proto_tensor_dec_bounded);
    tcase_add_loop_test(tc, test_proto_tensor_delta_f16_finetune, 0, 2);
    tcase_add_test(tc, test_proto_coded_kind_headers);
    tcase_add_test(tc, test_proto_tensor_delta_sparse_beats_patch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tensor_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
