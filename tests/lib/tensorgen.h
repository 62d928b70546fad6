/*
 * Synthetic model files for the tensor tests, fuzz seeds and benchmark:
 * one list of tensors written as safetensors, GGUF, ONNX, TFLite or TF.js
 * (weights plus model.json), byte for byte as each format lays them out,
 * and the usual "next versions" of a model (fine-tunes, fp16 re-export,
 * pruning, reordering). Header-only (static functions) so that a test, a
 * fuzz seed maker and the bench tool each include it without a library.
 * Deterministic: a seeded xoshiro256** drives every value.
 */
#ifndef TESTS_LIB_TENSORGEN_H
#define TESTS_LIB_TENSORGEN_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tg_dtype { TG_F32, TG_F16 };

struct tg_tensor {
    char name[64];
    enum tg_dtype dtype;
    unsigned ndim;
    uint64_t shape[4];
    unsigned char *data;          /* little-endian values */
    size_t len;
};

struct tg_model {
    struct tg_tensor *t;
    size_t count;
};

struct tg_buf {
    unsigned char *p;
    size_t len, cap;
};

/* ---- bytes ---- */

static inline void tg_put(struct tg_buf *b, const void *data, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap - b->len < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void tg_le(struct tg_buf *b, uint64_t v, unsigned n)
{
    unsigned char x[8];

    for (unsigned i = 0; i < n; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    tg_put(b, x, n);
}

static inline void tg_patch32(struct tg_buf *b, size_t at, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        b->p[at + i] = (unsigned char)(v >> (8 * i));
}

static inline void tg_pad(struct tg_buf *b, size_t align)
{
    while (b->len % align)
        tg_put(b, "", 1);
}

static inline void tg_str(struct tg_buf *b, const char *s)
{
    tg_put(b, s, strlen(s));
}

/* ---- values ---- */

static uint64_t tg_rng[4];

static inline uint64_t tg_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t tg_next(void)
{
    uint64_t r = tg_rotl(tg_rng[1] * 5, 7) * 9, t = tg_rng[1] << 17;

    tg_rng[2] ^= tg_rng[0];
    tg_rng[3] ^= tg_rng[1];
    tg_rng[1] ^= tg_rng[2];
    tg_rng[0] ^= tg_rng[3];
    tg_rng[2] ^= t;
    tg_rng[3] = tg_rotl(tg_rng[3], 45);
    return r;
}

static inline void tg_seed(uint64_t s)
{
    for (int i = 0; i < 4; i++) {
        s += 0x9e3779b97f4a7c15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        tg_rng[i] = z ^ (z >> 31);
    }
}

static inline double tg_gauss(void)
{
    double u = ((double)(tg_next() >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(tg_next() >> 11) + 0.5) / 9007199254740992.0;

    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static inline float tg_getf(const struct tg_tensor *t, size_t i)
{
    float f;

    memcpy(&f, t->data + 4 * i, 4);
    return f;
}

static inline void tg_setf(struct tg_tensor *t, size_t i, float f)
{
    memcpy(t->data + 4 * i, &f, 4);
}

static inline uint16_t tg_f16(float f)
{
    uint32_t x, sign, man;
    int e;

    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000;
    e = (int)((x >> 23) & 0xff) - 127 + 15;
    man = x & 0x7fffff;
    if (e <= 0)
        return (uint16_t)sign;    /* flush tiny values: an exporter's */
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    return (uint16_t)(sign | ((uint32_t)e << 10) | ((man + 0x1000) >> 13));
}

/*
 * A model of layers: each a rows x cols weight matrix from N(0,
 * sqrt(2/cols)) and a bias vector from N(0, 0.01), until about bytes.
 */
static inline struct tg_model tg_model_new(size_t bytes, uint64_t seed)
{
    struct tg_model m = { 0 };
    size_t total = 0, cap = 0;
    unsigned layer = 0;

    tg_seed(seed);
    while (total < bytes) {
        size_t cols = 64 << (layer % 4), rows = 128 + 32 * (layer % 3);

        for (int k = 0; k < 2; k++) {
            struct tg_tensor *t;
            size_t n = k == 0 ? rows * cols : rows;
            double spread = k == 0 ? sqrt(2.0 / (double)cols) : 0.01;

            if (m.count == cap) {
                cap = cap ? 2 * cap : 16;
                m.t = realloc(m.t, cap * sizeof(*m.t));
                if (!m.t)
                    abort();
            }
            t = &m.t[m.count++];
            memset(t, 0, sizeof(*t));
            snprintf(t->name, sizeof(t->name), "layer%u.%s", layer,
                     k == 0 ? "weight" : "bias");
            t->dtype = TG_F32;
            t->ndim = k == 0 ? 2 : 1;
            t->shape[0] = rows;
            t->shape[1] = cols;
            t->len = n * 4;
            t->data = malloc(t->len);
            if (!t->data)
                abort();
            for (size_t i = 0; i < n; i++)
                tg_setf(t, i, (float)(spread * tg_gauss()));
            total += t->len;
        }
        layer++;
    }
    return m;
}

static inline struct tg_model tg_model_copy(const struct tg_model *a)
{
    struct tg_model m = { malloc(a->count * sizeof(*a->t)), a->count };

    if (!m.t)
        abort();
    for (size_t i = 0; i < a->count; i++) {
        m.t[i] = a->t[i];
        m.t[i].data = malloc(a->t[i].len);
        if (!m.t[i].data)
            abort();
        memcpy(m.t[i].data, a->t[i].data, a->t[i].len);
    }
    return m;
}

static inline void tg_model_free(struct tg_model *m)
{
    for (size_t i = 0; i < m->count; i++)
        free(m->t[i].data);
    free(m->t);
    m->t = NULL;
    m->count = 0;
}

/* Fine-tune: a share (0..1) of the values of every tensor (or of every
 * other tensor pair when half_layers) moves by rel times its magnitude's
 * spread (N(0, rel * |x|) noise). */
static inline void tg_finetune(struct tg_model *m, double share, double rel,
                        int half_layers, uint64_t seed)
{
    tg_seed(seed);
    for (size_t i = 0; i < m->count; i++) {
        struct tg_tensor *t = &m->t[i];

        if (t->dtype != TG_F32 || (half_layers && (i / 2) % 2 == 1))
            continue;
        for (size_t k = 0; k < t->len / 4; k++) {
            float f;

            if ((double)(tg_next() >> 11) / 9007199254740992.0 >= share)
                continue;
            f = tg_getf(t, k);
            tg_setf(t, k, (float)(f + rel * fabs(f) * tg_gauss()));
        }
    }
}

/*
 * The information in a fine-tune made by tg_finetune(base, share, rel):
 * the positions of the changed values (n H(k/n) bits a tensor) and each
 * change's probability under the generator's Gaussian, in units of the
 * value's last place (spread rel |x| / ulp(x)). No lossless coding of
 * next given base does better on average. In bits.
 */
static inline double tg_finetune_info_bits(const struct tg_model *base,
                                           const struct tg_model *next,
                                           double rel)
{
    double bits = 0;

    for (size_t i = 0; i < base->count && i < next->count; i++) {
        const unsigned char *a = base->t[i].data, *b = next->t[i].data;
        size_t n = base->t[i].len / 4, k = 0;
        double p;

        if (base->t[i].dtype != TG_F32 || next->t[i].len != base->t[i].len)
            continue;
        for (size_t j = 0; j < n; j++) {
            uint32_t x, y;
            float f;
            double ulp, sigma, d;

            memcpy(&x, a + 4 * j, 4);
            memcpy(&y, b + 4 * j, 4);
            if (x == y)
                continue;
            k++;
            memcpy(&f, &x, 4);
            ulp = ldexp(1.0, (int)((x >> 23) & 0xff) - 150);
            sigma = rel * fabs((double)f) / ulp;
            d = (double)y - (double)x;
            bits += log2(sigma * 2.5066282746310002) +
                    d * d / (2 * sigma * sigma * 0.6931471805599453);
        }
        p = (double)k / (double)n;
        if (k > 0 && k < n)
            bits += (double)n * -(p * log2(p) + (1 - p) * log2(1 - p));
    }
    return bits;
}

/* fp32 -> fp16 re-export of every tensor. */
static inline void tg_to_f16(struct tg_model *m)
{
    for (size_t i = 0; i < m->count; i++) {
        struct tg_tensor *t = &m->t[i];
        size_t n = t->len / 4;
        unsigned char *d = malloc(n * 2);

        if (!d)
            abort();
        for (size_t k = 0; k < n; k++) {
            uint16_t h = tg_f16(tg_getf(t, k));

            d[2 * k] = (unsigned char)h;
            d[2 * k + 1] = (unsigned char)(h >> 8);
        }
        free(t->data);
        t->data = d;
        t->len = n * 2;
        t->dtype = TG_F16;
    }
}

/* Magnitude pruning: values under threshold times the spread become 0. */
static inline void tg_prune(struct tg_model *m, double share)
{
    for (size_t i = 0; i < m->count; i++) {
        struct tg_tensor *t = &m->t[i];
        double sum = 0;
        size_t n = t->len / 4;

        for (size_t k = 0; k < n; k++)
            sum += fabs(tg_getf(t, k));
        /* |N(0,s)| under 0.674 s is half of the values (share 0.5). */
        for (size_t k = 0; k < n; k++)
            if (fabs(tg_getf(t, k)) < share * 1.349 * (sum / (double)n) *
                                          1.2533)
                tg_setf(t, k, 0.0f);
    }
}

/* Reverses the order of the layers (tensor pairs). */
static inline void tg_reorder(struct tg_model *m)
{
    for (size_t i = 0, j = m->count / 2 - 1; i < j; i++, j--) {
        struct tg_tensor a = m->t[2 * i], b = m->t[2 * i + 1];

        m->t[2 * i] = m->t[2 * j];
        m->t[2 * i + 1] = m->t[2 * j + 1];
        m->t[2 * j] = a;
        m->t[2 * j + 1] = b;
    }
}

/* ---- formats ---- */

static inline void tg_safetensors(const struct tg_model *m, struct tg_buf *out)
{
    struct tg_buf h = { 0 };
    size_t at = 0;
    char tmp[256];

    tg_str(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < m->count; i++) {
        const struct tg_tensor *t = &m->t[i];

        snprintf(tmp, sizeof(tmp), ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                 t->name, t->dtype == TG_F32 ? "F32" : "F16");
        tg_str(&h, tmp);
        for (unsigned d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof(tmp), "%s%llu", d ? "," : "",
                     (unsigned long long)t->shape[d]);
            tg_str(&h, tmp);
        }
        snprintf(tmp, sizeof(tmp), "],\"data_offsets\":[%zu,%zu]}", at,
                 at + t->len);
        tg_str(&h, tmp);
        at += t->len;
    }
    tg_str(&h, "}");
    while (h.len % 8)
        tg_str(&h, " ");
    tg_le(out, h.len, 8);
    tg_put(out, h.p, h.len);
    for (size_t i = 0; i < m->count; i++)
        tg_put(out, m->t[i].data, m->t[i].len);
    free(h.p);
}

static inline void tg_gguf_str(struct tg_buf *b, const char *s)
{
    tg_le(b, strlen(s), 8);
    tg_str(b, s);
}

static inline void tg_gguf(const struct tg_model *m, struct tg_buf *out)
{
    size_t at = 0;

    tg_str(out, "GGUF");
    tg_le(out, 3, 4);
    tg_le(out, m->count, 8);
    tg_le(out, 2, 8);
    tg_gguf_str(out, "general.name");
    tg_le(out, 8, 4);
    tg_gguf_str(out, "synthetic");
    tg_gguf_str(out, "general.alignment");
    tg_le(out, 4, 4);
    tg_le(out, 32, 4);
    for (size_t i = 0; i < m->count; i++) {
        const struct tg_tensor *t = &m->t[i];

        tg_gguf_str(out, t->name);
        tg_le(out, t->ndim, 4);
        for (unsigned d = 0; d < t->ndim; d++)
            tg_le(out, t->shape[t->ndim - 1 - d], 8);
        tg_le(out, t->dtype == TG_F32 ? 0 : 1, 4);
        tg_le(out, at, 8);
        at += (t->len + 31) / 32 * 32;
    }
    tg_pad(out, 32);
    for (size_t i = 0; i < m->count; i++) {
        tg_put(out, m->t[i].data, m->t[i].len);
        tg_pad(out, 32);
    }
}

/* ONNX: protobuf. */
static inline void tg_varint(struct tg_buf *b, uint64_t v)
{
    do {
        unsigned char c = (unsigned char)(v & 0x7f);

        v >>= 7;
        if (v)
            c |= 0x80;
        tg_put(b, &c, 1);
    } while (v);
}

static inline void tg_pb_bytes(struct tg_buf *b, unsigned field, const void *p,
                        size_t n)
{
    tg_varint(b, (uint64_t)field << 3 | 2);
    tg_varint(b, n);
    tg_put(b, p, n);
}

static inline void tg_pb_varint(struct tg_buf *b, unsigned field, uint64_t v)
{
    tg_varint(b, (uint64_t)field << 3);
    tg_varint(b, v);
}

/* TensorProto: dims 1, data_type 2, float_data 4 (packed), name 8,
 * raw_data 9. typed: float_data instead of raw_data. */
static inline void tg_onnx_tensor(const struct tg_tensor *t, int typed,
                           struct tg_buf *out)
{
    for (unsigned d = 0; d < t->ndim; d++)
        tg_pb_varint(out, 1, t->shape[d]);
    tg_pb_varint(out, 2, t->dtype == TG_F32 ? 1 : 10);
    tg_pb_bytes(out, 8, t->name, strlen(t->name));
    tg_pb_bytes(out, typed && t->dtype == TG_F32 ? 4 : 9, t->data, t->len);
}

static inline void tg_onnx(const struct tg_model *m, struct tg_buf *out)
{
    struct tg_buf g = { 0 };

    for (size_t i = 0; i < m->count; i++) {
        struct tg_buf t = { 0 }, node = { 0 }, attr = { 0 };
        char nm[80];

        /* The biases as Constant nodes with float_data; the weights as
         * initializers with raw_data. */
        if (i % 2 == 1) {
            tg_onnx_tensor(&m->t[i], 1, &t);
            tg_pb_bytes(&attr, 1, "value", 5);
            tg_pb_bytes(&attr, 5, t.p, t.len);
            tg_pb_varint(&attr, 20, 4);
            snprintf(nm, sizeof(nm), "%s_out", m->t[i].name);
            tg_pb_bytes(&node, 2, nm, strlen(nm));
            tg_pb_bytes(&node, 4, "Constant", 8);
            tg_pb_bytes(&node, 5, attr.p, attr.len);
            tg_pb_bytes(&g, 1, node.p, node.len);
        } else {
            tg_onnx_tensor(&m->t[i], 0, &t);
            tg_pb_bytes(&g, 5, t.p, t.len);
        }
        free(t.p);
        free(node.p);
        free(attr.p);
    }
    tg_pb_bytes(&g, 2, "synthetic", 9);
    tg_pb_varint(out, 1, 8);
    tg_pb_bytes(out, 2, "tensorgen", 9);
    tg_pb_bytes(out, 7, g.p, g.len);
    free(g.p);
}

/* TFLite: a flatbuffer laid out front to back (every uoffset points
 * forward; each vtable just before its table). */
static inline size_t tg_fb_table(struct tg_buf *b, unsigned nfields,
                          const unsigned *sizes, size_t *field_at)
{
    size_t vt = b->len, tbl, off = 4;

    tg_le(b, 4 + 2 * nfields, 2);
    tg_le(b, 0, 2);               /* table size, patched below */
    for (unsigned i = 0; i < nfields; i++) {
        tg_le(b, sizes[i] ? off : 0, 2);
        off += sizes[i] ? 4 : 0;  /* every field takes a 4-byte slot */
    }
    tg_pad(b, 4);
    tbl = b->len;
    b->p[vt + 2] = (unsigned char)off;
    b->p[vt + 3] = (unsigned char)(off >> 8);
    tg_le(b, (uint32_t)(tbl - vt), 4); /* soffset: vtable = table - it */
    for (unsigned i = 0; i < nfields; i++) {
        field_at[i] = sizes[i] ? b->len : 0;
        if (sizes[i])
            tg_le(b, 0, 4);
    }
    return tbl;
}

static inline void tg_tflite(const struct tg_model *m, struct tg_buf *out)
{
    static const unsigned model_f[5] = { 4, 0, 4, 0, 4 };
    static const unsigned sg_f[1] = { 4 };
    static const unsigned t_f[4] = { 4, 4, 4, 4 };
    static const unsigned b_f[1] = { 4 };
    size_t mf[5], sgf[1], tf[4], bf[1], root, sg, vec;
    size_t *tensor_slots = malloc(m->count * sizeof(size_t));
    size_t *buf_slots = malloc((m->count + 1) * sizeof(size_t));

    if (!tensor_slots || !buf_slots)
        abort();
    tg_le(out, 0, 4);
    tg_str(out, "TFL3");
    root = tg_fb_table(out, 5, model_f, mf);
    tg_patch32(out, 0, (uint32_t)root);
    tg_patch32(out, mf[0], 3);    /* version */
    /* subgraphs: [sg] */
    tg_patch32(out, mf[2], (uint32_t)(out->len - mf[2]));
    tg_le(out, 1, 4);
    vec = out->len;
    tg_le(out, 0, 4);
    sg = tg_fb_table(out, 1, sg_f, sgf);
    tg_patch32(out, vec, (uint32_t)(sg - vec));
    tg_patch32(out, sgf[0], (uint32_t)(out->len - sgf[0]));
    tg_le(out, m->count, 4);
    for (size_t i = 0; i < m->count; i++) {
        tensor_slots[i] = out->len;
        tg_le(out, 0, 4);
    }
    for (size_t i = 0; i < m->count; i++) {
        const struct tg_tensor *t = &m->t[i];
        size_t tt = tg_fb_table(out, 4, t_f, tf);

        tg_patch32(out, tensor_slots[i], (uint32_t)(tt - tensor_slots[i]));
        tg_patch32(out, tf[1], t->dtype == TG_F32 ? 0 : 1);
        tg_patch32(out, tf[2], (uint32_t)(i + 1));
        tg_patch32(out, tf[0], (uint32_t)(out->len - tf[0]));
        tg_le(out, t->ndim, 4);
        for (unsigned d = 0; d < t->ndim; d++)
            tg_le(out, t->shape[d], 4);
        tg_patch32(out, tf[3], (uint32_t)(out->len - tf[3]));
        tg_le(out, strlen(t->name), 4);
        tg_str(out, t->name);
        tg_put(out, "", 1);
        tg_pad(out, 4);
    }
    /* buffers: an empty one first, as converters write */
    tg_patch32(out, mf[4], (uint32_t)(out->len - mf[4]));
    tg_le(out, m->count + 1, 4);
    for (size_t i = 0; i <= m->count; i++) {
        buf_slots[i] = out->len;
        tg_le(out, 0, 4);
    }
    for (size_t i = 0; i <= m->count; i++) {
        size_t bt = tg_fb_table(out, 1, b_f, bf);

        tg_patch32(out, buf_slots[i], (uint32_t)(bt - buf_slots[i]));
        if (i == 0) {
            tg_patch32(out, bf[0], (uint32_t)(out->len - bf[0]));
            tg_le(out, 0, 4);
            continue;
        }
        while ((out->len + 4) % 16)
            tg_put(out, "", 1);
        tg_patch32(out, bf[0], (uint32_t)(out->len - bf[0]));
        tg_le(out, m->t[i - 1].len, 4);
        tg_put(out, m->t[i - 1].data, m->t[i - 1].len);
        tg_pad(out, 4);
    }
    free(tensor_slots);
    free(buf_slots);
}

/* TF.js: the weights (one shard) and the model.json that describes them. */
static inline void tg_tfjs(const struct tg_model *m, struct tg_buf *bin,
                    struct tg_buf *json)
{
    char tmp[256];

    tg_str(json, "{\"format\":\"graph-model\",\"modelTopology\":{},"
                 "\"weightsManifest\":[{\"paths\":[\"group1-shard1of1.bin\"],"
                 "\"weights\":[");
    for (size_t i = 0; i < m->count; i++) {
        const struct tg_tensor *t = &m->t[i];

        snprintf(tmp, sizeof(tmp), "%s{\"name\":\"%s\",\"shape\":[",
                 i ? "," : "", t->name);
        tg_str(json, tmp);
        for (unsigned d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof(tmp), "%s%llu", d ? "," : "",
                     (unsigned long long)t->shape[d]);
            tg_str(json, tmp);
        }
        tg_str(json, t->dtype == TG_F32
                         ? "],\"dtype\":\"float32\"}"
                         : "],\"dtype\":\"float32\",\"quantization\":"
                           "{\"dtype\":\"float16\"}}");
        tg_put(bin, t->data, t->len);
    }
    tg_str(json, "]}]}");
}

#endif
