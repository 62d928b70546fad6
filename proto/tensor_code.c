/*
 * The tensor codings `modeld-tensor/1` (a delta) and `modeld-bg/1` (a full
 * model), byte for byte as proto/tensor_format.md describes them. Both are
 * one container: a plan (where each tensor of the target lies and how it is
 * coded), the non-tensor bytes as one zstd frame (a patch-from against the
 * base's non-tensor bytes in a delta), then the tensor bytes in batches,
 * each batch split into byte planes by element width and every plane
 * carried by one zstd stream that runs across all batches. The encoder
 * picks per tensor the cheapest of: a copy of an identical old tensor, XOR
 * or difference against its matched old tensor (optionally cast from fp32),
 * the changed elements only (records, or range-coded by proto/tensor_rc.c),
 * or the raw bytes; the plane options are estimated on a sample, the
 * range-coded ones measured exactly. The decoder takes its input in pieces
 * and writes the model in order.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "proto/tensor.h"
#include "proto/tensor_rc.h"

#define HEADER_MAGIC 0x184D2A5Eu
#define HEADER_PAYLOAD_LEN (PROTO_DELTA_HEADER_LEN - 8)
#define TENSOR_TAG "modeld-tensor/1 from=sha256:"
#define BG_TAG "modeld-bg/1 to=sha256:"
#define TO_TAG " to=sha256:"
#define PATCH_TAG "modeld-delta/1 from=sha256:"

#define BATCH_BYTES ((size_t)1 << 20)  /* multiple of 8 */
#define OBUF_BYTES ((size_t)64 << 10)   /* decoder's output gathering */
#define XBUF_BYTES ((size_t)64 << 10)   /* decoder's inverse transform, in
                                           steps (multiple of 8) */
#define RC_JUNCTION (4 * PROTO_TRC_MARGIN) /* decoder: an RC item's bytes
                                              across two pieces */
#define STREAMS 16                     /* planes of widths 1, 2, 4, 8;
                                          the range-coded bytes */
#define RC_STREAM 15
#define STREAM_WINDOW_LOG_MAX 21
/* decoder: a stream this small is decoded into one buffer of its size */
#define STREAM_WHOLE_MAX ((uint64_t)1 << STREAM_WINDOW_LOG_MAX)
#define PLAN_MAX_BYTES ((uint64_t)64 << 20)
#define SAMPLE_CHUNKS 4
#define SAMPLE_CHUNK_BYTES ((uint64_t)16 << 10) /* multiple of 8 */
#define DEFAULT_LEVEL 19
/* RC ops: at most RC_STEPS_PER_4_BYTES coder steps per 4 bytes of tensor
 * (see try_rc). */
#define RC_STEPS_PER_4_BYTES 7

enum op {
    OP_RAW = 0,
    OP_REF = 1,            /* copy of old bytes */
    OP_XOR = 2,
    OP_SUB = 3,            /* zigzag of the element-wise difference */
    OP_XOR_F16 = 4,        /* old fp32 cast to fp16, then XOR */
    OP_XOR_BF16 = 5,
    OP_SUB_F16 = 6,
    OP_SUB_BF16 = 7,
    OP_SPARSE = 8,         /* records (gap, zigzag(new - old)): the changed
                              elements only; the rest copied from old */
    OP_SPARSE_SET = 9,     /* records (gap, new value): the same, values
                              given as they are (pruning: zeros) */
    OP_RC_SUB = 10,        /* range-coded: per element "changed?", and a
                              changed one's difference (proto/tensor_rc.h) */
    OP_RC_SET = 11,        /* the same, with the changed values themselves */
    OP_COUNT
};

static bool is_sparse(unsigned op)
{
    return op == OP_SPARSE || op == OP_SPARSE_SET;
}

static bool is_rc(unsigned op)
{
    return op == OP_RC_SUB || op == OP_RC_SET;
}

static bool op_is_sub(unsigned op)
{
    return op == OP_SUB || op == OP_SUB_F16 || op == OP_SUB_BF16;
}

/* 0: the old bytes as they are; 1: fp32 -> fp16; 2: fp32 -> bf16. */
static unsigned op_cast(unsigned op)
{
    return op == OP_XOR_F16 || op == OP_SUB_F16     ? 1
           : op == OP_XOR_BF16 || op == OP_SUB_BF16 ? 2
                                                    : 0;
}

/* One target tensor in the plan. */
struct item {
    uint64_t offset, len;         /* in the target */
    uint64_t old_offset, old_len; /* the source in the base (not RAW) */
    unsigned op, width;           /* width: of the planes (1 for RC ops) */
    unsigned ew;                  /* RC ops: the elements' width */
    uint64_t clen;                /* bytes in the plane streams: len, or
                                     count * width for OP_SPARSE (0: REF) */
    uint64_t count;               /* OP_SPARSE: records */
    unsigned char *rec;           /* encoder, OP_SPARSE: the records */
};

static unsigned stream_base(unsigned width)
{
    return width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 3 : 7;
}

/* The first stream of an item's bytes. */
static unsigned item_base(const struct item *it)
{
    return is_rc(it->op) ? RC_STREAM : stream_base(it->width);
}

/* ---- numbers ------------------------------------------------------------ */


static uint16_t f32_to_f16(uint32_t x)
{
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff;
    uint32_t man = x & 0x7fffff;
    int e;

    if (exp == 0xff)
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        uint32_t m, half, rest;
        int shift;

        if (e < -10)
            return (uint16_t)sign;
        m = man | 0x800000;
        shift = 14 - e;
        half = 1u << (shift - 1);
        rest = m & ((1u << shift) - 1);
        m >>= shift;
        if (rest > half || (rest == half && (m & 1)))
            m++;
        return (uint16_t)(sign | m);
    }
    {
        uint32_t h = ((uint32_t)e << 10) | (man >> 13);
        uint32_t rest = man & 0x1fff;

        if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
            h++;                  /* may carry into the exponent: right */
        return (uint16_t)(sign | h);
    }
}

static uint16_t f32_to_bf16(uint32_t x)
{
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* The source bytes of element i (width bytes, as an integer). */
static inline uint64_t src_elem(const unsigned char *old, unsigned cast,
                         unsigned width, uint64_t i)
{
    if (cast == 0)
        return proto_le_get(old + i * width, width);
    {
        uint32_t f = (uint32_t)proto_le_get(old + i * 4, 4);

        return cast == 1 ? f32_to_f16(f) : f32_to_bf16(f);
    }
}


/* Transforms n elements of the target (new) against the source into out. */
static void forward(const struct item *it, const unsigned char *old,
                    const unsigned char *new_p, uint64_t first, size_t n,
                    unsigned char *out)
{
    unsigned w = it->width, cast = op_cast(it->op);
    uint64_t mask = proto_width_mask(w);
    const unsigned char *src;

    if (it->op == OP_RAW) {
        memcpy(out, new_p + first * w, n * w);
        return;
    }
    if (is_sparse(it->op) || is_rc(it->op)) {
        memcpy(out, it->rec + first * w, n * w);
        return;
    }
    src = old + it->old_offset;
    for (size_t k = 0; k < n; k++) {
        uint64_t i = first + k;
        uint64_t a = proto_le_get(new_p + i * w, w), b = src_elem(src, cast, w, i);
        uint64_t t;

        if (op_is_sub(it->op)) {
            uint64_t d = (a - b) & mask;
            bool neg = (d >> (8 * w - 1)) & 1;

            t = ((d << 1) ^ (neg ? mask : 0)) & mask;
        } else {
            t = a ^ b;
        }
        proto_le_put(out + k * w, t, w);
    }
}

/* The inverse of forward for one width w (a constant after inlining, so
 * that the element loads and stores are whole words). */
static inline void inverse_w(const struct item *it, const unsigned char *old,
                             uint64_t first, size_t n, unsigned char *buf,
                             unsigned w)
{
    unsigned cast = op_cast(it->op);
    uint64_t mask = proto_width_mask(w);
    const unsigned char *src = old + it->old_offset;

    for (size_t k = 0; k < n; k++) {
        uint64_t t = proto_le_get(buf + k * w, w), b = src_elem(src, cast, w,
                                                          first + k);
        uint64_t a;

        if (op_is_sub(it->op)) {
            uint64_t d = (t >> 1) ^ ((t & 1) ? mask : 0);

            a = (b + d) & mask;
        } else {
            a = t ^ b;
        }
        proto_le_put(buf + k * w, a, w);
    }
}

/* The inverse of forward, in place on buf (n elements from first). */
static void inverse(const struct item *it, const unsigned char *old,
                    uint64_t first, size_t n, unsigned char *buf)
{
    if (it->op == OP_RAW)
        return;
    switch (it->width) {
    case 1: inverse_w(it, old, first, n, buf, 1); break;
    case 2: inverse_w(it, old, first, n, buf, 2); break;
    case 4: inverse_w(it, old, first, n, buf, 4); break;
    default: inverse_w(it, old, first, n, buf, 8); break;
    }
}

/* ---- varints and the plan ------------------------------------------------ */

struct buf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
};

static void buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        unsigned char *q;

        while (cap - b->len < n)
            cap *= 2;
        q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_varint(struct buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;

    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    buf_put(b, tmp, n);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

struct cursor {
    const unsigned char *p;
    size_t len, pos;
    bool bad;
};

static uint64_t cur_varint(struct cursor *c)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        unsigned char b;

        if (c->pos >= c->len) {
            c->bad = true;
            return 0;
        }
        b = c->p[c->pos++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = true;
    return 0;
}

static unsigned cur_byte(struct cursor *c)
{
    if (c->pos >= c->len) {
        c->bad = true;
        return 0;
    }
    return c->p[c->pos++];
}

/* ---- the header ----------------------------------------------------------- */

static void header_build(unsigned char out[PROTO_DELTA_HEADER_LEN],
                         const char *from_hex, const char *to_hex)
{
    char *line = (char *)out + 8;
    size_t n = 0;

    memset(out, 0, PROTO_DELTA_HEADER_LEN);
    proto_le_put(out, HEADER_MAGIC, 4);
    proto_le_put(out + 4, HEADER_PAYLOAD_LEN, 4);
    if (from_hex) {
        memcpy(line, TENSOR_TAG, strlen(TENSOR_TAG));
        n = strlen(TENSOR_TAG);
        memcpy(line + n, from_hex, PROTO_HEX_LEN);
        n += PROTO_HEX_LEN;
        memcpy(line + n, TO_TAG, strlen(TO_TAG));
        n += strlen(TO_TAG);
    } else {
        memcpy(line, BG_TAG, strlen(BG_TAG));
        n = strlen(BG_TAG);
    }
    memcpy(line + n, to_hex, PROTO_HEX_LEN);
    n += PROTO_HEX_LEN;
    line[n] = '\n';
}

/* Parses "TAG<hex>[ to=sha256:<hex>]\n" and the NUL padding. */
static bool header_line(const char *line, const char *tag, bool two,
                        char *out_a, char *out_b)
{
    size_t n = strlen(tag), to_n = strlen(TO_TAG);

    if (memcmp(line, tag, n) != 0 ||
        !proto_hex_is_valid(line + n, PROTO_HEX_LEN))
        return false;
    memcpy(out_a, line + n, PROTO_HEX_LEN);
    out_a[PROTO_HEX_LEN] = '\0';
    n += PROTO_HEX_LEN;
    if (two) {
        if (memcmp(line + n, TO_TAG, to_n) != 0 ||
            !proto_hex_is_valid(line + n + to_n, PROTO_HEX_LEN))
            return false;
        memcpy(out_b, line + n + to_n, PROTO_HEX_LEN);
        out_b[PROTO_HEX_LEN] = '\0';
        n += to_n + PROTO_HEX_LEN;
    }
    if (line[n] != '\n')
        return false;
    for (size_t i = n + 1; i < HEADER_PAYLOAD_LEN; i++)
        if (line[i] != '\0')
            return false;
    return true;
}

enum proto_coded_kind proto_coded_kind(const void *head, size_t len,
                                       char out_from_hex[PROTO_HEX_SIZE],
                                       char out_to_hex[PROTO_HEX_SIZE])
{
    const unsigned char *p = head;
    const char *line;

    out_from_hex[0] = out_to_hex[0] = '\0';
    if (!p || len < 4)
        return PROTO_CODED_UNKNOWN;
    if (proto_le_get(p, 4) == ZSTD_MAGICNUMBER)
        return PROTO_CODED_ZSTD;
    if (len < PROTO_DELTA_HEADER_LEN || proto_le_get(p, 4) != HEADER_MAGIC ||
        proto_le_get(p + 4, 4) != HEADER_PAYLOAD_LEN)
        return PROTO_CODED_UNKNOWN;
    line = (const char *)p + 8;
    if (header_line(line, TENSOR_TAG, true, out_from_hex, out_to_hex))
        return PROTO_CODED_TENSOR;
    if (header_line(line, PATCH_TAG, true, out_from_hex, out_to_hex))
        return PROTO_CODED_ZSTD_PATCH;
    if (header_line(line, BG_TAG, false, out_to_hex, NULL)) {
        out_from_hex[0] = '\0';
        return PROTO_CODED_BG;
    }
    out_from_hex[0] = out_to_hex[0] = '\0';
    return PROTO_CODED_UNKNOWN;
}

/* ---- batches (shared by both sides) ---------------------------------------- */

/*
 * Walks the coded (non-REF) items in plan order, cutting them into pieces
 * that fill batches of at most BATCH_BYTES, whole elements each. Both
 * sides run this same walk, so batch boundaries are never transmitted.
 */
struct walk {
    const struct item *items;
    size_t count;
    size_t i;                     /* current item */
    uint64_t done;                /* bytes of it already placed */
    size_t fill;                  /* bytes in the current batch */
};

/* The next piece of the current batch: false when the batch is full (or
 * everything is placed: then *out_end is true). */
static bool walk_next(struct walk *w, size_t *out_item, uint64_t *out_at,
                      size_t *out_n, bool *out_end)
{
    *out_end = false;
    while (w->i < w->count &&
           (w->items[w->i].op == OP_REF ||
            w->done == w->items[w->i].clen)) {
        w->i++;
        w->done = 0;
    }
    if (w->i == w->count) {
        *out_end = true;
        return false;
    }
    {
        const struct item *it = &w->items[w->i];
        uint64_t rem = it->clen - w->done;
        size_t room = (BATCH_BYTES - w->fill) / it->width * it->width;
        size_t take = rem < room ? (size_t)rem : room;

        if (take == 0)
            return false;
        *out_item = w->i;
        *out_at = w->done;
        *out_n = take;
        w->done += take;
        w->fill += take;
        return true;
    }
}

/* ---- the encoder ---------------------------------------------------------- */

struct enc {
    const unsigned char *old, *cur;
    size_t old_len, new_len;
    struct item *items;
    size_t count;
    int level;
    proto_sink_fn sink;
    void *sink_ctx;
    bool sink_failed;
    ZSTD_CCtx *cs[STREAMS];
    uint64_t stream_total[STREAMS];
    uint64_t stream_done[STREAMS];
    struct buf planes[STREAMS];
    unsigned char *xbuf;
    unsigned char *zbuf;
    size_t zcap;
    ZSTD_CCtx *est;               /* for estimates */
    struct proto_trc_model *rcm;  /* RC ops: the model after the last */
};

static enum proto_status emit(struct enc *e, const void *p, size_t n)
{
    if (n && e->sink(e->sink_ctx, p, n) != 0) {
        e->sink_failed = true;
        return PROTO_SINK_FAILED;
    }
    return PROTO_OK;
}

/*
 * Estimated coded size of it: a sample of SAMPLE_CHUNKS runs of
 * SAMPLE_CHUNK_BYTES spread over the tensor (runs, so that the locality
 * zstd exploits survives), transformed, split into planes as the item's
 * width says, and compressed with a fast level; scaled to the whole.
 */
static double estimate(const struct enc *e, const struct item *it,
                       unsigned char *tmp)
{
    unsigned w = it->width;
    uint64_t len = it->clen, chunk = SAMPLE_CHUNK_BYTES;
    unsigned char *planes = tmp + SAMPLE_CHUNKS * SAMPLE_CHUNK_BYTES;
    size_t n = 0, cap = ZSTD_compressBound(SAMPLE_CHUNKS * SAMPLE_CHUNK_BYTES);
    unsigned char *z = planes + SAMPLE_CHUNKS * SAMPLE_CHUNK_BYTES;
    size_t r;

    if (len <= SAMPLE_CHUNKS * chunk) {
        forward(it, e->old, e->cur + it->offset, 0, (size_t)(len / w), tmp);
        n = (size_t)len;
    } else {
        for (unsigned c = 0; c < SAMPLE_CHUNKS; c++) {
            uint64_t at = (len - chunk) / (SAMPLE_CHUNKS - 1) * c / 8 * 8;

            forward(it, e->old, e->cur + it->offset, at / w,
                    (size_t)(chunk / w), tmp + n);
            n += (size_t)chunk;
        }
    }
    if (w > 1) {
        size_t elems = n / w;

        for (unsigned j = 0; j < w; j++)
            for (size_t k = 0; k < elems; k++)
                planes[j * elems + k] = tmp[k * w + j];
    } else {
        memcpy(planes, tmp, n);
    }
    r = ZSTD_compressCCtx(e->est, z, cap, planes, n, 1);
    if (ZSTD_isError(r))
        r = n;
    return (double)r * ((double)len / (double)n);
}

/* Cheap fingerprint to find identical tensors (confirmed by memcmp): the
 * FNV-1a step of proto/types.h over at most ~4096 sampled bytes and the
 * last one, seeded with the length. */
static uint64_t fingerprint(const unsigned char *p, uint64_t len)
{
    uint64_t h = PROTO_FNV1A64_OFFSET ^ len;
    uint64_t step = len > 4096 ? len / 4096 : 1;

    for (uint64_t i = 0; i < len; i += step)
        h = proto_fnv1a64_add(h, p + i, 1);
    return proto_fnv1a64_add(h, p + len - 1, 1);
}

static uint64_t name_key(const struct proto_tensor *t)
{
    return proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, t->name);
}

static uint64_t shape_key(const struct proto_tensor *t)
{
    uint64_t h = proto_fnv1a64_add(PROTO_FNV1A64_OFFSET, &t->dtype,
                                   sizeof(t->dtype));

    h = proto_fnv1a64_add(h, &t->len, sizeof(t->len));
    h = proto_fnv1a64_add(h, &t->ndim, sizeof(t->ndim));
    return proto_fnv1a64_add(h, t->shape, t->ndim * sizeof(t->shape[0]));
}

/* The base's tensors indexed three ways: by content fingerprint, by name
 * and by dtype+shape; each a sorted array of (key, index). */
struct keyed {
    uint64_t key;
    size_t idx;
};

struct index {
    struct keyed *by_fp, *by_name, *by_shape;
    bool *used;
    size_t count;
};

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;

    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* First entry with key, or count. */
static size_t keyed_find(const struct keyed *k, size_t count, uint64_t key)
{
    size_t lo = 0, hi = count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (k[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < count && k[lo].key == key ? lo : count;
}

static void index_free(struct index *ix)
{
    free(ix->by_fp);
    free(ix->by_name);
    free(ix->by_shape);
    free(ix->used);
}

static enum proto_status index_build(struct index *ix,
                                     const struct proto_tensor_map *om,
                                     const unsigned char *old)
{
    size_t n = om ? om->count : 0;

    ix->count = n;
    ix->by_fp = calloc(n ? n : 1, sizeof(struct keyed));
    ix->by_name = calloc(n ? n : 1, sizeof(struct keyed));
    ix->by_shape = calloc(n ? n : 1, sizeof(struct keyed));
    ix->used = calloc(n ? n : 1, sizeof(bool));
    if (!ix->by_fp || !ix->by_name || !ix->by_shape || !ix->used)
        return PROTO_NO_MEMORY;
    for (size_t k = 0; k < n; k++) {
        const struct proto_tensor *t = &om->tensors[k];

        ix->by_fp[k] = (struct keyed){ fingerprint(old + t->offset, t->len),
                                       k };
        ix->by_name[k] = (struct keyed){ name_key(t), k };
        ix->by_shape[k] = (struct keyed){ shape_key(t), k };
    }
    if (n) {
        qsort(ix->by_fp, n, sizeof(struct keyed), keyed_cmp);
        qsort(ix->by_name, n, sizeof(struct keyed), keyed_cmp);
        qsort(ix->by_shape, n, sizeof(struct keyed), keyed_cmp);
    }
    return PROTO_OK;
}

static bool same_shape(const struct proto_tensor *a,
                       const struct proto_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (unsigned i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* Tries ops against match (NULL: none) and keeps the cheapest in *it.
 * XOR and RAW are byte-wise, so each is also tried unsplit (width 1):
 * sparse changes keep their locality that way. */
static void try_ops(const struct enc *e, const struct proto_tensor *match,
                    const unsigned *ops, size_t n_ops, double *best,
                    struct item *it, unsigned char *tmp)
{
    struct item cand = *it;
    unsigned width = it->width; /* the tensor's: *it changes below */

    if (match) {
        cand.old_offset = match->offset;
        cand.old_len = match->len;
    }
    for (size_t k = 0; k < n_ops; k++) {
        double c;

        cand.op = ops[k];
        cand.width = op_cast(ops[k]) ? 2 : width;
        for (int split = 1; split >= 0; split--) {
            if (!split) {
                if (cand.width == 1 || (ops[k] != OP_XOR && ops[k] != OP_RAW))
                    break;
                cand.width = 1;
            }
            c = estimate(e, &cand, tmp);
            if (c < *best) {
                *best = c;
                *it = cand;
            }
        }
    }
}

/*
 * The changed elements only, for a tensor that kept most of its values
 * (a sparse fine-tune): one record of 2 e bytes per changed element, the
 * number of unchanged elements before it (low e bytes) and the zigzag of
 * its difference (high e bytes), so that the byte planes hold the gaps
 * apart from the values. A gap too long for e bytes takes filler records
 * (the longest gap, difference 0: one more unchanged element). Tried when
 * at most 3/4 of the elements changed; kept when its estimate is the
 * best. OP_SPARSE_SET gives the new values as they are (pruned weights:
 * zeros), OP_SPARSE their difference (a sparse fine-tune).
 */
static void try_sparse(const struct enc *e, const struct proto_tensor *match,
                       unsigned op, double *best, struct item *it,
                       unsigned char *tmp)
{
    unsigned w = match->elem_bytes;   /* *it may be an unsplit option */
    uint64_t elems, nnz = 0, count = 0, last = 0, max_gap;
    const unsigned char *a, *b;
    struct item cand = *it;
    unsigned char *rec;
    double c;

    if (w != 2 && w != 4)
        return;
    elems = it->len / w;
    max_gap = proto_width_mask(w);
    a = e->cur + it->offset;
    b = e->old + match->offset;
    for (uint64_t i = 0; i < elems; i++)
        if (memcmp(a + i * w, b + i * w, w) != 0)
            nnz++;
    if (nnz == 0 || nnz > elems / 4 * 3)
        return;
    /* fillers: at most one per max_gap + 1 elements */
    rec = malloc((size_t)(nnz + elems / (max_gap + 1) + 1) * 2 * w);
    if (!rec)
        return;
    for (uint64_t i = 0; i < elems; i++) {
        uint64_t gap, d, z;

        if (memcmp(a + i * w, b + i * w, w) == 0)
            continue;
        gap = i - last;
        while (gap > max_gap) {
            proto_le_put(rec + count * 2 * w, max_gap, w);
            proto_le_put(rec + count * 2 * w + w, 0, w);
            count++;
            gap -= max_gap + 1;
        }
        d = (proto_le_get(a + i * w, w) - proto_le_get(b + i * w, w)) & max_gap;
        z = op == OP_SPARSE_SET
                ? proto_le_get(a + i * w, w)
                : ((d << 1) ^ (((d >> (8 * w - 1)) & 1) ? max_gap : 0)) &
                      max_gap;
        proto_le_put(rec + count * 2 * w, gap, w);
        proto_le_put(rec + count * 2 * w + w, z, w);
        count++;
        last = i + 1;
    }
    cand.op = op;
    cand.width = 2 * w;
    cand.old_offset = match->offset;
    cand.old_len = match->len;
    cand.count = count;
    cand.clen = count * 2 * w;
    cand.rec = rec;
    c = estimate(e, &cand, tmp);
    if (c < *best) {
        free(it->rec);            /* a sparse option tried before */
        *best = c;
        *it = cand;
    } else {
        free(rec);
    }
}

/*
 * The range-coded ops (proto/tensor_rc.h), for a tensor of the match's
 * length and width: the whole tensor is coded, so the size compared is
 * exact, not an estimate. Its elements' changes cost about their
 * information (their positions, then each change's significant bits),
 * where the byte planes pay for whole bytes and per-plane tables.
 */
static void try_rc(const struct enc *e, const struct proto_tensor *match,
                   unsigned op, double *best, struct item *it,
                   struct proto_trc_model *out_m)
{
    unsigned w = match->elem_bytes;
    struct item cand = *it;
    unsigned char *rec = NULL;
    size_t n = 0;
    uint64_t changed = 0, elems = it->len / w, steps = 0;
    struct proto_trc_model *m;

    m = malloc(sizeof(*m));
    if (!m)
        return;
    memcpy(m, e->rcm, sizeof(*m));
    if (proto_trc_encode(m, e->old + match->offset, e->cur + it->offset,
                         elems, w, op == OP_RC_SET, &rec, &n,
                         &changed, &steps) != PROTO_OK) {
        free(m);
        return;
    }
    /* The apply must stay within twice zstd's time. Measured (24 MiB,
     * CPU time): a coder step costs the decoder about what zstd -d
     * --patch-from spends on one output byte, and the two SHA-256 (base,
     * result) about a quarter of zstd's time; so at most 1.75 steps a
     * byte. Where most elements changed by many bits (a full fine-tune,
     * ~13 steps an fp32) that rules RC out; the planes code those nearly
     * as well (what is left is the values' own bits). A 10% fine-tune
     * takes ~0.6 steps a byte, pruning half the values ~1.25. */
    if (changed == 0 || n > it->len + 64 || (double)n >= *best ||
        steps * 4 > (uint64_t)RC_STEPS_PER_4_BYTES * it->len) {
        free(rec);
        free(m);
        return;
    }
    memcpy(out_m, m, sizeof(*m));
    free(m);
    free(it->rec);                /* a sparse option tried before */
    cand.op = op;
    cand.width = 1;
    cand.ew = w;
    cand.old_offset = match->offset;
    cand.old_len = match->len;
    cand.count = changed;
    cand.clen = n;
    cand.rec = rec;
    *best = (double)n;
    *it = cand;
}

/*
 * Chooses how to code new tensor t: REF to an identical old tensor, else
 * the cheapest estimate among RAW and the transforms against its match
 * (by name, else the first unused old tensor of the same dtype and shape).
 */
static void choose(const struct enc *e, const struct proto_tensor_map *om,
                   struct index *ix, const struct proto_tensor *t,
                   struct item *it, unsigned char *tmp,
                   struct proto_trc_model *rc_after)
{
    const struct proto_tensor *match = NULL;
    uint64_t key;
    size_t at;
    double best;

    memset(it, 0, sizeof(*it));
    it->offset = t->offset;
    it->len = t->len;
    it->clen = t->len;
    it->op = OP_RAW;
    it->width = t->elem_bytes;
    if (!om || ix->count == 0) {
        static const unsigned raw[] = { OP_RAW };

        best = estimate(e, it, tmp);
        try_ops(e, NULL, raw, 1, &best, it, tmp);
        return;
    }
    key = fingerprint(e->cur + t->offset, t->len);
    for (at = keyed_find(ix->by_fp, ix->count, key);
         at < ix->count && ix->by_fp[at].key == key; at++) {
        const struct proto_tensor *o = &om->tensors[ix->by_fp[at].idx];

        if (o->len == t->len &&
            memcmp(e->old + o->offset, e->cur + t->offset, t->len) == 0) {
            it->op = OP_REF;
            it->old_offset = o->offset;
            it->old_len = o->len;
            it->clen = 0;
            ix->used[ix->by_fp[at].idx] = true;
            return;
        }
    }
    key = name_key(t);
    for (at = keyed_find(ix->by_name, ix->count, key);
         t->name[0] && at < ix->count && ix->by_name[at].key == key; at++)
        if (strcmp(om->tensors[ix->by_name[at].idx].name, t->name) == 0) {
            match = &om->tensors[ix->by_name[at].idx];
            ix->used[ix->by_name[at].idx] = true;
            break;
        }
    key = shape_key(t);
    for (at = keyed_find(ix->by_shape, ix->count, key);
         !match && at < ix->count && ix->by_shape[at].key == key; at++) {
        size_t k = ix->by_shape[at].idx;
        const struct proto_tensor *o = &om->tensors[k];

        if (!ix->used[k] && o->dtype == t->dtype && o->len == t->len &&
            same_shape(o, t)) {
            match = o;
            ix->used[k] = true;
        }
    }
    /* A re-export to fp16 or bf16 that also renamed its tensors: the
     * first unused fp32 tensor of the same shape, for the casts. */
    if (!match && (t->dtype == PROTO_DTYPE_F16 || t->dtype == PROTO_DTYPE_BF16)) {
        struct proto_tensor as32 = *t;

        as32.dtype = PROTO_DTYPE_F32;
        as32.len = 2 * t->len;
        key = shape_key(&as32);
        for (at = keyed_find(ix->by_shape, ix->count, key);
             !match && at < ix->count && ix->by_shape[at].key == key; at++) {
            size_t k = ix->by_shape[at].idx;
            const struct proto_tensor *o = &om->tensors[k];

            if (!ix->used[k] && o->dtype == PROTO_DTYPE_F32 &&
                o->len == as32.len && same_shape(o, t)) {
                match = o;
                ix->used[k] = true;
            }
        }
    }
    best = estimate(e, it, tmp);
    if (!match) {
        static const unsigned raw[] = { OP_RAW };

        try_ops(e, NULL, raw, 1, &best, it, tmp);
        return;
    }
    if (match->len == t->len && match->elem_bytes == t->elem_bytes) {
        static const unsigned ops[] = { OP_RAW, OP_XOR, OP_SUB };

        try_ops(e, match, ops, ARRAY_SIZE(ops), &best, it, tmp);
        try_sparse(e, match, OP_SPARSE, &best, it, tmp);
        try_sparse(e, match, OP_SPARSE_SET, &best, it, tmp);
        try_rc(e, match, OP_RC_SUB, &best, it, rc_after);
        try_rc(e, match, OP_RC_SET, &best, it, rc_after);
    } else if (match->dtype == PROTO_DTYPE_F32 && match->len == 2 * t->len &&
               t->elem_bytes == 2) {
        static const unsigned f16[] = { OP_XOR_F16, OP_SUB_F16 };
        static const unsigned bf16[] = { OP_XOR_BF16, OP_SUB_BF16 };

        if (t->dtype == PROTO_DTYPE_F16)
            try_ops(e, match, f16, ARRAY_SIZE(f16), &best, it, tmp);
        else if (t->dtype == PROTO_DTYPE_BF16)
            try_ops(e, match, bf16, ARRAY_SIZE(bf16), &best, it, tmp);
    }
}

/* Compresses src (with prefix, may be empty) into one zstd frame in a new
 * buffer. */
static enum proto_status frame_make(const void *src, size_t n,
                                    const void *prefix, size_t prefix_len,
                                    int level, struct buf *out)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(n), r;
    int wlog = 10;

    if (!cc)
        return PROTO_NO_MEMORY;
    while (wlog < 31 && ((size_t)1 << wlog) < n + prefix_len)
        wlog++;
    if (wlog > ZSTD_WINDOWLOG_MAX)
        wlog = ZSTD_WINDOWLOG_MAX;
    out->p = malloc(cap ? cap : 1);
    out->cap = cap;
    out->len = 0;
    if (!out->p) {
        ZSTD_freeCCtx(cc);
        return PROTO_NO_MEMORY;
    }
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
    if (prefix_len) {
        ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_enableLongDistanceMatching, 1);
        ZSTD_CCtx_refPrefix(cc, prefix, prefix_len);
    }
    r = ZSTD_compress2(cc, out->p, cap, n ? src : "", n);
    ZSTD_freeCCtx(cc);
    if (ZSTD_isError(r))
        return PROTO_NO_MEMORY;
    out->len = r;
    return PROTO_OK;
}

/* Gathers the bytes outside the ranges (sorted, non-overlapping) of a
 * map, or everything when map is NULL. */
static enum proto_status gaps_gather(const unsigned char *p, size_t len,
                                     const struct item *items, size_t count,
                                     bool old_side, struct buf *out)
{
    uint64_t at = 0;

    for (size_t i = 0; i < count; i++) {
        uint64_t off = old_side ? items[i].old_offset : items[i].offset;
        uint64_t n = old_side ? items[i].old_len : items[i].len;

        if (off > at)
            buf_put(out, p + at, (size_t)(off - at));
        at = off + n;
    }
    if (len > at)
        buf_put(out, p + at, len - (size_t)at);
    return out->oom ? PROTO_NO_MEMORY : PROTO_OK;
}

static enum proto_status stream_open(struct enc *e, unsigned s)
{
    int wlog = 10;

    if (e->cs[s])
        return PROTO_OK;
    e->cs[s] = ZSTD_createCCtx();
    if (!e->cs[s])
        return PROTO_NO_MEMORY;
    while (wlog < STREAM_WINDOW_LOG_MAX &&
           ((uint64_t)1 << wlog) < e->stream_total[s])
        wlog++;
    /* The range-coded bytes are entropy-coded already: level 1 only
     * frames them. */
    ZSTD_CCtx_setParameter(e->cs[s], ZSTD_c_compressionLevel,
                           s == RC_STREAM ? 1 : e->level);
    ZSTD_CCtx_setParameter(e->cs[s], ZSTD_c_windowLog, wlog);
    ZSTD_CCtx_setParameter(e->cs[s], ZSTD_c_contentSizeFlag, 0);
    return PROTO_OK;
}

/* Codes the planes gathered for one batch: per stream with bytes, a
 * 4-byte length and the stream's output up to a flush (its end when the
 * stream has no more bytes after this batch). */
static enum proto_status batch_flush(struct enc *e)
{
    for (unsigned s = 0; s < STREAMS; s++) {
        struct buf *pl = &e->planes[s];
        ZSTD_inBuffer in = { pl->p, pl->len, 0 };
        ZSTD_EndDirective mode;
        size_t left, total = 0;
        unsigned char lenb[4];
        enum proto_status rc;

        if (pl->len == 0)
            continue;
        if ((rc = stream_open(e, s)) != PROTO_OK)
            return rc;
        e->stream_done[s] += pl->len;
        mode = e->stream_done[s] == e->stream_total[s] ? ZSTD_e_end
                                                       : ZSTD_e_flush;
        do {
            ZSTD_outBuffer out = { e->zbuf + total, e->zcap - total, 0 };

            left = ZSTD_compressStream2(e->cs[s], &out, &in, mode);
            if (ZSTD_isError(left))
                return PROTO_NO_MEMORY;
            total += out.pos;
            if (left && total == e->zcap)
                return PROTO_NO_MEMORY; /* cannot happen: zcap is the bound */
        } while (left != 0);
        if (total > UINT32_MAX)
            return PROTO_NO_MEMORY;
        proto_le_put(lenb, total, 4);
        if ((rc = emit(e, lenb, 4)) != PROTO_OK ||
            (rc = emit(e, e->zbuf, total)) != PROTO_OK)
            return rc;
        pl->len = 0;
    }
    return PROTO_OK;
}

static enum proto_status batches_write(struct enc *e)
{
    struct walk w = { e->items, e->count, 0, 0, 0 };
    enum proto_status rc = PROTO_OK;
    bool end = false;

    while (!end && rc == PROTO_OK) {
        size_t idx, n;
        uint64_t at;

        while (walk_next(&w, &idx, &at, &n, &end)) {
            const struct item *it = &e->items[idx];
            unsigned wd = it->width, base = item_base(it);
            size_t elems = n / wd;

            forward(it, e->old, e->cur + it->offset, at / wd, elems, e->xbuf);
            for (unsigned j = 0; j < wd; j++) {
                struct buf *pl = &e->planes[base + j];
                size_t start = pl->len;

                if (pl->cap - pl->len < elems) {
                    unsigned char *q = realloc(pl->p, pl->len + elems);

                    if (!q)
                        return PROTO_NO_MEMORY;
                    pl->p = q;
                    pl->cap = pl->len + elems;
                }
                for (size_t k = 0; k < elems; k++)
                    pl->p[start + k] = e->xbuf[k * wd + j];
                pl->len += elems;
            }
        }
        rc = batch_flush(e);
        w.fill = 0;
    }
    return rc;
}

/* The plan bytes (see tensor_format.md). */
static void plan_write(const struct enc *e, const struct proto_tensor_map *om,
                       struct buf *b)
{
    uint64_t at = 0, old_at = 0;

    buf_varint(b, e->new_len);
    buf_varint(b, e->old_len);
    buf_varint(b, om ? om->count : 0);
    for (size_t i = 0; om && i < om->count; i++) {
        buf_varint(b, om->tensors[i].offset - at);
        buf_varint(b, om->tensors[i].len);
        at = om->tensors[i].offset + om->tensors[i].len;
    }
    at = 0;
    buf_varint(b, e->count);
    for (size_t i = 0; i < e->count; i++) {
        const struct item *it = &e->items[i];
        unsigned char ow[2] = { (unsigned char)it->op,
                                (unsigned char)(is_rc(it->op) ? it->ew
                                                              : it->width) };

        buf_varint(b, it->offset - at);
        buf_varint(b, it->len);
        buf_put(b, ow, 2);
        if (it->op != OP_RAW) {
            buf_varint(b, zigzag((int64_t)(it->old_offset - old_at)));
            old_at = it->old_offset + it->old_len;
        }
        if (is_sparse(it->op))
            buf_varint(b, it->count);
        if (is_rc(it->op)) {
            buf_varint(b, it->count);
            buf_varint(b, it->clen);
        }
        at = it->offset + it->len;
    }
}

static enum proto_status encode(const void *old, size_t old_len,
                                const struct proto_tensor_map *old_map,
                                const void *new_data, size_t new_len,
                                const struct proto_tensor_map *new_map,
                                const char *from_hex, const char *to_hex,
                                const struct proto_tensor_options *opt,
                                proto_sink_fn sink, void *sink_ctx)
{
    struct enc e = { 0 };
    unsigned char header[PROTO_DELTA_HEADER_LEN], lenb[8];
    struct buf plan = { 0 }, plan_z = { 0 }, nt_new = { 0 }, nt_old = { 0 },
               nt_z = { 0 };
    struct item *old_items = NULL;
    struct index ix = { 0 };
    unsigned char *tmp = NULL;
    struct proto_trc_model *rc_after = NULL;
    enum proto_status rc = PROTO_NO_MEMORY;
    size_t nc = new_map ? new_map->count : 0;
    size_t oc = old_map ? old_map->count : 0;

    if ((old_len && !old) || (new_len && !new_data) || !sink ||
        !proto_hex_is_valid(to_hex, PROTO_HEX_LEN) ||
        (from_hex && !proto_hex_is_valid(from_hex, PROTO_HEX_LEN)))
        return PROTO_BAD_INPUT;
    for (size_t i = 0; i < nc; i++)
        if (new_map->tensors[i].offset + new_map->tensors[i].len > new_len ||
            (i && new_map->tensors[i].offset <
                      new_map->tensors[i - 1].offset +
                          new_map->tensors[i - 1].len))
            return PROTO_BAD_INPUT;
    for (size_t i = 0; i < oc; i++)
        if (old_map->tensors[i].offset + old_map->tensors[i].len > old_len ||
            (i && old_map->tensors[i].offset <
                      old_map->tensors[i - 1].offset +
                          old_map->tensors[i - 1].len))
            return PROTO_BAD_INPUT;
    e.old = old;
    e.cur = new_data;
    e.old_len = old_len;
    e.new_len = new_len;
    e.level = opt && opt->level > 0 ? opt->level : DEFAULT_LEVEL;
    e.sink = sink;
    e.sink_ctx = sink_ctx;
    e.count = nc;
    e.items = calloc(nc ? nc : 1, sizeof(*e.items));
    old_items = calloc(oc ? oc : 1, sizeof(*old_items));
    /* sample, its planes, their compression */
    tmp = malloc(2 * SAMPLE_CHUNKS * SAMPLE_CHUNK_BYTES +
                 ZSTD_compressBound(SAMPLE_CHUNKS * SAMPLE_CHUNK_BYTES));
    e.est = ZSTD_createCCtx();
    e.rcm = malloc(sizeof(*e.rcm));
    rc_after = malloc(sizeof(*rc_after));
    e.xbuf = malloc(BATCH_BYTES);
    e.zcap = ZSTD_compressBound(BATCH_BYTES) + 64;
    e.zbuf = malloc(e.zcap);
    if (!e.items || !old_items || !tmp || !e.est || !e.rcm || !rc_after ||
        !e.xbuf || !e.zbuf ||
        index_build(&ix, oc ? old_map : NULL, e.old) != PROTO_OK)
        goto out;
    proto_trc_model_init(e.rcm);
    for (size_t k = 0; k < oc; k++) {
        old_items[k].old_offset = old_map->tensors[k].offset;
        old_items[k].old_len = old_map->tensors[k].len;
    }
    for (size_t i = 0; i < nc; i++) {
        struct item *it = &e.items[i];

        choose(&e, oc ? old_map : NULL, &ix, &new_map->tensors[i], it, tmp,
               rc_after);
        if (is_rc(it->op))
            memcpy(e.rcm, rc_after, sizeof(*rc_after));
        if (it->op != OP_REF)
            e.stream_total[item_base(it)] += it->clen / it->width;
    }
    /* Every plane of a width gets the same number of bytes. */
    for (unsigned wd = 2; wd <= 8; wd *= 2)
        for (unsigned j = 1; j < wd; j++)
            e.stream_total[stream_base(wd) + j] =
                e.stream_total[stream_base(wd)];

    plan_write(&e, oc ? old_map : NULL, &plan);
    if (plan.oom)
        goto out;
    if ((rc = frame_make(plan.p, plan.len, NULL, 0, e.level, &plan_z)) !=
            PROTO_OK ||
        (rc = gaps_gather(e.cur, new_len, e.items, nc, false, &nt_new)) !=
            PROTO_OK ||
        (rc = gaps_gather(e.old, old_len, old_items, oc, true, &nt_old)) !=
            PROTO_OK ||
        (rc = frame_make(nt_new.p, nt_new.len, nt_old.p, nt_old.len, e.level,
                         &nt_z)) != PROTO_OK)
        goto out;
    header_build(header, from_hex, to_hex);
    proto_le_put(lenb, plan_z.len, 4);
    if ((rc = emit(&e, header, sizeof(header))) != PROTO_OK ||
        (rc = emit(&e, lenb, 4)) != PROTO_OK ||
        (rc = emit(&e, plan_z.p, plan_z.len)) != PROTO_OK)
        goto out;
    proto_le_put(lenb, nt_z.len, 8);
    if ((rc = emit(&e, lenb, 8)) != PROTO_OK ||
        (rc = emit(&e, nt_z.p, nt_z.len)) != PROTO_OK)
        goto out;
    rc = batches_write(&e);
out:
    for (unsigned s = 0; s < STREAMS; s++) {
        ZSTD_freeCCtx(e.cs[s]);
        free(e.planes[s].p);
    }
    free(plan.p);
    free(plan_z.p);
    free(nt_new.p);
    free(nt_old.p);
    free(nt_z.p);
    free(old_items);
    index_free(&ix);
    free(tmp);
    free(e.xbuf);
    free(e.zbuf);
    free(e.rcm);
    free(rc_after);
    ZSTD_freeCCtx(e.est);
    for (size_t i = 0; e.items && i < e.count; i++)
        free(e.items[i].rec);
    free(e.items);
    if (rc == PROTO_OK && e.sink_failed)
        rc = PROTO_SINK_FAILED;
    return rc;
}

enum proto_status proto_tensor_delta_make(
    const void *old, size_t old_len, const struct proto_tensor_map *old_map,
    const void *new_data, size_t new_len,
    const struct proto_tensor_map *new_map,
    const char from_hex[PROTO_HEX_SIZE], const char to_hex[PROTO_HEX_SIZE],
    const struct proto_tensor_options *opt, proto_sink_fn sink,
    void *sink_ctx)
{
    if (!from_hex || !to_hex)
        return PROTO_BAD_INPUT;
    return encode(old, old_len, old_map, new_data, new_len, new_map,
                  from_hex, to_hex, opt, sink, sink_ctx);
}

enum proto_status proto_tensor_bg_make(const void *data, size_t len,
                                       const struct proto_tensor_map *map,
                                       const char hex[PROTO_HEX_SIZE],
                                       const struct proto_tensor_options *opt,
                                       proto_sink_fn sink, void *sink_ctx)
{
    if (!hex)
        return PROTO_BAD_INPUT;
    return encode(NULL, 0, NULL, data, len, map, NULL, hex, opt, sink,
                  sink_ctx);
}

/* ---- the decoder ------------------------------------------------------------ */

enum dstate {
    D_HEADER,
    D_PLAN_LEN,
    D_PLAN,
    D_NT_LEN,
    D_NT,
    D_CHUNK_LEN,
    D_CHUNK,
    D_DONE,
    D_FAILED,
};

struct proto_tensor_dec {
    const unsigned char *old;
    size_t old_len;
    proto_sink_fn sink;
    void *sink_ctx;
    enum dstate state;
    enum proto_status failure;
    bool bg;
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    struct proto_hasher *hasher;

    /* the unit being gathered */
    unsigned char *in;
    size_t in_len, in_cap, need;

    uint64_t new_len;
    struct item *items;
    size_t count;
    struct item *holes;           /* the base's tensors (old side) */
    size_t hole_count;
    unsigned char *nt;            /* the target's non-tensor bytes */
    uint64_t nt_len, nt_pos;

    /* output progress */
    size_t out_item;              /* next item to emit */
    uint64_t out_done;            /* bytes of it emitted */
    uint64_t written;

    /* the batch being read */
    struct walk walk;
    uint64_t batch_bytes[STREAMS];  /* per stream, in this batch */
    unsigned next_stream;
    ZSTD_DCtx *ds[STREAMS];
    uint64_t stream_total[STREAMS], stream_done[STREAMS];
    /* One batch's planes, each stream's chunk decoded into its plane as
     * the chunk's bytes arrive. A stream of at most STREAM_WHOLE_MAX
     * bytes is decoded into a buffer of its own that holds all of it
     * (whole[s]): zstd then keeps no window of its own (its window would
     * hold as much) and the stream's planes are slices of it. The other
     * streams' planes are one after the other in one arena (a batch's
     * stream bytes are at most BATCH_BYTES in all). */
    unsigned char *planes[STREAMS];
    unsigned char *whole[STREAMS];
    unsigned char *arena;
    size_t arena_cap;
    size_t chunk_out;             /* bytes of the current chunk's plane */
    size_t chunk_r;               /* ZSTD_decompressStream's last answer */
    unsigned char *xbuf;          /* XBUF_BYTES */
    uint64_t peak;
    uint64_t held;
    uint64_t sp_elem;             /* OP_SPARSE: elements of the item out */
    struct proto_trc_dec *trc;    /* RC ops: the item's range decoder */
    unsigned char *rcbuf;         /* RC_JUNCTION: what the range decoder
                                     left of the last piece
                                     (< PROTO_TRC_MARGIN) and the head of
                                     the next */
    size_t rc_len, rc_pos;
    bool base_trusted;            /* proto_tensor_dec_trust_base */
    char base_hex[PROTO_HEX_SIZE];
    unsigned char obuf[OBUF_BYTES];
    size_t obuf_len;
};

static void dec_fail(struct proto_tensor_dec *d, enum proto_status rc)
{
    if (d->state != D_FAILED) {
        d->state = D_FAILED;
        d->failure = rc;
    }
}

static void *dec_alloc(struct proto_tensor_dec *d, size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p) {
        d->held += n;
        if (d->held > d->peak)
            d->peak = d->held;
    }
    return p;
}

/* Hashes and hands out what the output buffer holds. */
static enum proto_status out_flush(struct proto_tensor_dec *d)
{
    size_t n = d->obuf_len;

    d->obuf_len = 0;
    if (n == 0)
        return PROTO_OK;
    if (proto_hasher_update(d->hasher, d->obuf, n) != PROTO_OK)
        return PROTO_NO_MEMORY;
    if (d->sink(d->sink_ctx, d->obuf, n) != 0)
        return PROTO_SINK_FAILED;
    return PROTO_OK;
}

/* Writes output bytes: small pieces (a sparse tensor's elements) gather
 * in a buffer, large ones go straight through. */
static enum proto_status out_write(struct proto_tensor_dec *d, const void *p,
                                   uint64_t n)
{
    enum proto_status rc;

    if (n == 0)
        return PROTO_OK;
    if (d->written + n > d->new_len)
        return PROTO_BAD_INPUT;
    d->written += n;
    if (n <= OBUF_BYTES - d->obuf_len) {
        memcpy(d->obuf + d->obuf_len, p, (size_t)n);
        d->obuf_len += (size_t)n;
        return PROTO_OK;
    }
    if ((rc = out_flush(d)) != PROTO_OK)
        return rc;
    if (n < OBUF_BYTES / 2) {
        memcpy(d->obuf, p, (size_t)n);
        d->obuf_len = (size_t)n;
        return PROTO_OK;
    }
    if (proto_hasher_update(d->hasher, p, (size_t)n) != PROTO_OK)
        return PROTO_NO_MEMORY;
    if (d->sink(d->sink_ctx, p, (size_t)n) != 0)
        return PROTO_SINK_FAILED;
    return PROTO_OK;
}

/* Emits non-tensor bytes up to the target offset 'to'. */
static enum proto_status out_gap_to(struct proto_tensor_dec *d, uint64_t to)
{
    uint64_t n;

    if (to < d->written)
        return PROTO_BAD_INPUT;
    n = to - d->written;
    if (n > d->nt_len - d->nt_pos)
        return PROTO_BAD_INPUT;
    d->nt_pos += n;
    return out_write(d, d->nt + d->nt_pos - n, n);
}

/* Emits REF items (and the gaps before them) until the next coded item. */
static enum proto_status out_refs(struct proto_tensor_dec *d)
{
    enum proto_status rc;

    while (d->out_item < d->count) {
        const struct item *it = &d->items[d->out_item];

        if (d->out_done == 0 && (rc = out_gap_to(d, it->offset)) != PROTO_OK)
            return rc;
        if (it->op != OP_REF)
            return PROTO_OK;
        if ((rc = out_write(d, d->old + it->old_offset, it->len)) != PROTO_OK)
            return rc;
        d->out_item++;
        d->out_done = 0;
    }
    return PROTO_OK;
}

static bool plan_parse(struct proto_tensor_dec *d, const unsigned char *p,
                       size_t len)
{
    struct cursor c = { p, len, 0, false };
    uint64_t old_len, at = 0, old_at = 0, tensor_bytes = 0;
    uint64_t hc, tc;

    d->new_len = cur_varint(&c);
    old_len = cur_varint(&c);
    if (c.bad || old_len != d->old_len || (d->bg && old_len != 0))
        return false;
    hc = cur_varint(&c);
    if (c.bad || hc > len / 2 || hc > PROTO_TENSOR_MAX_COUNT)
        return false;
    d->holes = dec_alloc(d, (size_t)(hc ? hc : 1) * sizeof(*d->holes));
    if (!d->holes)
        return false;
    d->hole_count = (size_t)hc;
    for (size_t i = 0; i < d->hole_count; i++) {
        uint64_t gap = cur_varint(&c), n = cur_varint(&c);

        if (c.bad || gap > old_len - at || n > old_len - at - gap)
            return false;
        d->holes[i].old_offset = at + gap;
        d->holes[i].old_len = n;
        at += gap + n;
    }
    tc = cur_varint(&c);
    if (c.bad || tc > len / 4 || tc > PROTO_TENSOR_MAX_COUNT)
        return false;
    d->items = dec_alloc(d, (size_t)(tc ? tc : 1) * sizeof(*d->items));
    if (!d->items)
        return false;
    d->count = (size_t)tc;
    at = 0;
    for (size_t i = 0; i < d->count; i++) {
        struct item *it = &d->items[i];
        uint64_t gap = cur_varint(&c), n = cur_varint(&c);

        unsigned elem;

        it->op = cur_byte(&c);
        it->width = cur_byte(&c);
        it->old_offset = it->old_len = 0;
        it->count = 0;
        it->rec = NULL;
        /* A sparse item's records are twice its elements' width; an RC
         * item's width is its elements' (its bytes are a stream's). */
        elem = is_sparse(it->op) ? it->width / 2 : it->width;
        it->ew = it->width;
        if (c.bad || gap > d->new_len - at || n > d->new_len - at - gap ||
            n == 0 || it->op >= OP_COUNT ||
            (it->width != 1 && it->width != 2 && it->width != 4 &&
             it->width != 8) ||
            (is_sparse(it->op) && it->width != 4 && it->width != 8) ||
            n % elem != 0)
            return false;
        it->clen = it->op == OP_REF ? 0 : n;
        it->offset = at + gap;
        it->len = n;
        at += gap + n;
        tensor_bytes += n;
        if (it->op != OP_RAW) {
            int64_t delta = unzigzag(cur_varint(&c));
            uint64_t src;

            if (c.bad || d->bg)
                return false;
            src = old_at + (uint64_t)delta;
            it->old_len = op_cast(it->op) ? 2 * n : n;
            if (op_cast(it->op) && it->width != 2)
                return false;
            if (src > d->old_len || it->old_len > d->old_len - src)
                return false;
            it->old_offset = src;
            old_at = src + it->old_len;
        }
        if (is_sparse(it->op)) {
            /* each record stands for at least one element */
            it->count = cur_varint(&c);
            if (c.bad || it->count == 0 || it->count > n / elem)
                return false;
            it->clen = it->count * it->width;
        }
        if (is_rc(it->op)) {
            /* changed elements, then the coded bytes (the range coder's 5
             * at least; never more than the tensor's bytes and 64) */
            it->count = cur_varint(&c);
            it->clen = cur_varint(&c);
            if (c.bad || it->count == 0 || it->count > n / elem ||
                it->clen < 5 || it->clen > n + 64)
                return false;
            it->width = 1;
        }
        if (it->op != OP_REF)
            d->stream_total[item_base(it)] += it->clen / it->width;
    }
    if (c.bad || c.pos != len)
        return false;
    for (unsigned wd = 2; wd <= 8; wd *= 2)
        for (unsigned j = 1; j < wd; j++)
            d->stream_total[stream_base(wd) + j] =
                d->stream_total[stream_base(wd)];
    d->nt_len = d->new_len - tensor_bytes;
    d->walk.items = d->items;
    d->walk.count = d->count;
    return true;
}

/* Decompresses one whole frame of exactly want bytes (with prefix). */
static enum proto_status frame_read(struct proto_tensor_dec *d,
                                    const unsigned char *src, size_t n,
                                    const void *prefix, size_t prefix_len,
                                    uint64_t want, unsigned char **out)
{
    unsigned long long size = ZSTD_getFrameContentSize(src, n);
    ZSTD_DCtx *dc;
    size_t r;

    if (size != want || ZSTD_findFrameCompressedSize(src, n) != n)
        return PROTO_BAD_INPUT;
    *out = dec_alloc(d, (size_t)want);
    dc = ZSTD_createDCtx();
    if (!*out || !dc) {
        ZSTD_freeDCtx(dc);
        return PROTO_NO_MEMORY;
    }
    ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, 31);
    if (prefix_len)
        ZSTD_DCtx_refPrefix(dc, prefix, prefix_len);
    r = ZSTD_decompressDCtx(dc, *out, (size_t)want, src, n);
    ZSTD_freeDCtx(dc);
    return ZSTD_isError(r) || r != want ? PROTO_BAD_INPUT : PROTO_OK;
}

/* The base's non-tensor bytes: the prefix of the non-tensor frame. */
static enum proto_status old_gaps(struct proto_tensor_dec *d,
                                  struct buf *out)
{
    if (d->hole_count == 0) {
        out->p = NULL;
        out->len = 0;
        return PROTO_OK;
    }
    return gaps_gather(d->old, d->old_len, d->holes, d->hole_count, true,
                       out);
}

/* Starts the next batch: which streams carry how many bytes, and where
 * their planes are in the arena (grown to the largest batch: at most
 * BATCH_BYTES, less for a smaller model). */
static enum proto_status batch_begin(struct proto_tensor_dec *d)
{
    struct walk w = d->walk;
    size_t idx, n, total = 0;
    uint64_t at;
    bool end;

    memset(d->batch_bytes, 0, sizeof(d->batch_bytes));
    w.fill = 0;
    while (walk_next(&w, &idx, &at, &n, &end)) {
        unsigned wd = d->items[idx].width;

        for (unsigned j = 0; j < wd; j++)
            d->batch_bytes[item_base(&d->items[idx]) + j] += n / wd;
    }
    for (unsigned s = 0; s < STREAMS; s++) {
        if (!d->batch_bytes[s])
            continue;
        if (d->stream_total[s] <= STREAM_WHOLE_MAX && !d->whole[s]) {
            d->whole[s] = dec_alloc(d, (size_t)d->stream_total[s]);
            if (!d->whole[s])
                return PROTO_NO_MEMORY;
        }
        if (!d->whole[s])
            total += (size_t)d->batch_bytes[s];
    }
    if (total > d->arena_cap) {
        free(d->arena);
        d->held -= d->arena_cap;
        d->arena_cap = 0;
        d->arena = dec_alloc(d, total);
        if (!d->arena)
            return PROTO_NO_MEMORY;
        d->arena_cap = total;
    }
    total = 0;
    for (unsigned s = 0; s < STREAMS; s++) {
        if (!d->batch_bytes[s]) {
            d->planes[s] = NULL;
        } else if (d->whole[s]) {
            d->planes[s] = d->whole[s] + d->stream_done[s];
        } else {
            d->planes[s] = d->arena + total;
            total += (size_t)d->batch_bytes[s];
        }
    }
    d->next_stream = 0;
    while (d->next_stream < STREAMS && !d->batch_bytes[d->next_stream])
        d->next_stream++;
    return PROTO_OK;
}

static bool batches_left(const struct proto_tensor_dec *d)
{
    for (unsigned s = 0; s < STREAMS; s++)
        if (d->stream_done[s] < d->stream_total[s])
            return true;
    return false;
}

/*
 * Decodes n more bytes of one stream's chunk of the current batch into its
 * plane, as they arrive (the compressed chunk is never held whole); last:
 * they end the chunk, whose plane must then be exactly full.
 */
static enum proto_status chunk_feed(struct proto_tensor_dec *d, unsigned s,
                                    const unsigned char *src, size_t n,
                                    bool last)
{
    size_t want = (size_t)d->batch_bytes[s];
    ZSTD_inBuffer in = { src, n, 0 };
    /* A whole-stream buffer is the same output buffer for the whole
     * frame (ZSTD_d_stableOutBuffer), at the stream's position. */
    size_t at = d->whole[s] ? (size_t)d->stream_done[s] : 0;
    ZSTD_outBuffer out = { d->whole[s] ? d->whole[s] : d->planes[s],
                           d->whole[s] ? (size_t)d->stream_total[s] : want,
                           at + d->chunk_out };
    size_t r = d->chunk_r;

    if (!d->ds[s]) {
        d->ds[s] = ZSTD_createDCtx();
        if (!d->ds[s])
            return PROTO_NO_MEMORY;
        ZSTD_DCtx_setParameter(d->ds[s], ZSTD_d_windowLogMax,
                               STREAM_WINDOW_LOG_MAX);
        if (d->whole[s])
            ZSTD_DCtx_setParameter(d->ds[s], ZSTD_d_stableOutBuffer, 1);
    }
    while (in.pos < in.size || (last && out.pos < at + want)) {
        size_t ip = in.pos, op = out.pos;

        r = ZSTD_decompressStream(d->ds[s], &out, &in);
        if (ZSTD_isError(r))
            return PROTO_BAD_INPUT;
        if (in.pos == ip && out.pos == op)
            return PROTO_BAD_INPUT; /* no progress: too little or too much */
        if (r == 0 && in.pos < in.size)
            return PROTO_BAD_INPUT; /* bytes after the stream's end */
    }
    d->chunk_out = out.pos - at;
    d->chunk_r = r;
    {
        /* the peak counts zstd's contexts and windows too */
        uint64_t all = d->held;

        for (unsigned k = 0; k < STREAMS; k++)
            all += d->ds[k] ? ZSTD_sizeof_DCtx(d->ds[k]) : 0;
        if (all > d->peak)
            d->peak = all;
    }
    if (d->chunk_out > want)
        return PROTO_BAD_INPUT; /* more than the batch puts in the stream */
    if (!last)
        return PROTO_OK;
    d->stream_done[s] += want;
    /* The stream's last chunk ends its frame. */
    if (d->stream_done[s] == d->stream_total[s] && r != 0)
        return PROTO_BAD_INPUT;
    return PROTO_OK;
}

/* Writes the elements a sparse item's records cover: for each, the
 * unchanged ones before it (copied from the base) and the changed one. */
static enum proto_status sparse_emit(struct proto_tensor_dec *d,
                                     const struct item *it,
                                     const unsigned char *rec, size_t count)
{
    unsigned e = it->width / 2;
    uint64_t elems = it->len / e, mask = proto_width_mask(e);
    const unsigned char *src = d->old + it->old_offset;
    enum proto_status rc;

    for (size_t k = 0; k < count; k++) {
        uint64_t gap = proto_le_get(rec + k * it->width, e);
        uint64_t z = proto_le_get(rec + k * it->width + e, e);
        uint64_t diff = (z >> 1) ^ ((z & 1) ? mask : 0);
        bool set = it->op == OP_SPARSE_SET;
        unsigned char v[8];

        if (gap >= elems - d->sp_elem)
            return PROTO_BAD_INPUT;
        if ((rc = out_write(d, src + d->sp_elem * e, gap * e)) != PROTO_OK)
            return rc;
        d->sp_elem += gap;
        proto_le_put(v, set ? z : (proto_le_get(src + d->sp_elem * e, e) + diff) & mask,
               e);
        if ((rc = out_write(d, v, e)) != PROTO_OK)
            return rc;
        d->sp_elem++;
    }
    return PROTO_OK;
}

/* The rest of a sparse item: unchanged. */
static enum proto_status sparse_tail(struct proto_tensor_dec *d,
                                     const struct item *it)
{
    unsigned e = it->width / 2;
    uint64_t done = d->sp_elem * e;

    d->sp_elem = 0;
    return out_write(d, d->old + it->old_offset + done, it->len - done);
}

/*
 * The common cases in one pass, 4- or 2-byte elements from their planes
 * (XOR or SUB against the base, or raw): gathered, inverted and stored as
 * whole words. False for anything else (the generic loops then run).
 */
static bool fused_inverse(struct proto_tensor_dec *d, const struct item *it,
                          unsigned base, const size_t *pos, uint64_t first,
                          size_t elems)
{
    const unsigned char *p0, *p1, *p2, *p3, *src;
    unsigned char *out = d->xbuf;

    if ((it->width != 4 && it->width != 2) ||
        (it->op != OP_RAW && it->op != OP_XOR && it->op != OP_SUB))
        return false;
    if (it->width == 2) {
        /* fp16/bf16 weights: the same with 16-bit elements */
        p0 = d->planes[base] + pos[base];
        p1 = d->planes[base + 1] + pos[base + 1];
        src = it->op == OP_RAW ? NULL : d->old + it->old_offset + first * 2;
        for (size_t k = 0; k < elems; k++) {
            uint16_t t = (uint16_t)(p0[k] | p1[k] << 8), a = t;

            if (src) {
                uint16_t v = (uint16_t)(src[2 * k] | src[2 * k + 1] << 8);

                a = it->op == OP_XOR
                        ? (uint16_t)(t ^ v)
                        : (uint16_t)(v + ((t >> 1) ^ (uint16_t)-(t & 1)));
            }
            out[2 * k] = (unsigned char)a;
            out[2 * k + 1] = (unsigned char)(a >> 8);
        }
        return true;
    }
    p0 = d->planes[base] + pos[base];
    p1 = d->planes[base + 1] + pos[base + 1];
    p2 = d->planes[base + 2] + pos[base + 2];
    p3 = d->planes[base + 3] + pos[base + 3];
    src = it->op == OP_RAW ? NULL : d->old + it->old_offset + first * 4;
    for (size_t k = 0; k < elems; k++) {
        uint32_t t = (uint32_t)p0[k] | (uint32_t)p1[k] << 8 |
                     (uint32_t)p2[k] << 16 | (uint32_t)p3[k] << 24;
        uint32_t a = t;

        if (src) {
            const unsigned char *b = src + 4 * k;
            uint32_t v = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                         (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;

            a = it->op == OP_XOR ? t ^ v
                                 : v + ((t >> 1) ^ (uint32_t)-(t & 1));
        }
        out[4 * k] = (unsigned char)a;
        out[4 * k + 1] = (unsigned char)(a >> 8);
        out[4 * k + 2] = (unsigned char)(a >> 16);
        out[4 * k + 3] = (unsigned char)(a >> 24);
    }
    return true;
}

/* Runs the range decoder over in[*pos .. len) as far as it goes,
 * writing what it decodes. */
static enum proto_status rc_run(struct proto_tensor_dec *d,
                                const struct item *it,
                                const unsigned char *in, size_t len,
                                size_t *pos, bool final)
{
    for (;;) {
        size_t got = 0;
        enum proto_status rc =
            proto_trc_dec_run(d->trc, in, len, pos, final,
                              d->old + it->old_offset, d->xbuf,
                              XBUF_BYTES / it->ew, &got);

        if (rc != PROTO_OK)
            return rc;
        if (got == 0)
            return PROTO_OK;
        if ((rc = out_write(d, d->xbuf, (uint64_t)got * it->ew)) != PROTO_OK)
            return rc;
    }
}

/*
 * One piece of an RC item's coded bytes, decoded where it lies (in the
 * batch's plane) as far as it safely goes; what the decoder leaves of a
 * piece (fewer than PROTO_TRC_MARGIN bytes) waits in rcbuf, where the
 * head of the next piece joins it until the decoder is past the seam.
 * The item's last piece is decoded to its end, which must then be
 * exactly where its bytes end.
 */
static enum proto_status rc_piece(struct proto_tensor_dec *d,
                                  const struct item *it,
                                  const unsigned char *p, size_t n)
{
    bool final = d->out_done + n == it->clen;
    size_t rest, pos = 0, left;
    enum proto_status rc;

    if (!d->trc) {
        d->trc = dec_alloc(d, sizeof(*d->trc));
        d->rcbuf = dec_alloc(d, RC_JUNCTION);
        if (!d->trc || !d->rcbuf)
            return PROTO_NO_MEMORY;
        proto_trc_dec_new_model(d->trc);
    }
    if (d->out_done == 0) {
        proto_trc_dec_init(d->trc, it->len / it->ew, it->ew,
                           it->op == OP_RC_SET);
        d->rc_len = d->rc_pos = 0;
    }
    rest = d->rc_len - d->rc_pos;
    if (rest >= PROTO_TRC_MARGIN)
        return PROTO_BAD_INPUT; /* cannot happen: rc_run stops before */
    if (rest > 0) {
        /* The seam: the rest and the piece's head, contiguous. */
        size_t m = n < RC_JUNCTION - rest ? n : RC_JUNCTION - rest;
        size_t jp = 0;

        memmove(d->rcbuf, d->rcbuf + d->rc_pos, rest);
        memcpy(d->rcbuf + rest, p, m);
        if ((rc = rc_run(d, it, d->rcbuf, rest + m, &jp,
                         final && m == n)) != PROTO_OK)
            return rc;
        if (m == n) {
            /* the whole piece went in: what is left stays in rcbuf */
            d->rc_len = rest + m;
            d->rc_pos = jp;
            left = d->rc_len - d->rc_pos;
            goto tail;
        }
        /* With at least 3 margins after the seam, only the item's end
         * stops the decoder before it: and bytes follow. */
        if (jp < rest)
            return PROTO_BAD_INPUT;
        pos = jp - rest; /* past the seam: on in the piece itself */
    }
    if ((rc = rc_run(d, it, p, n, &pos, final)) != PROTO_OK)
        return rc;
    left = n - pos;
    if (!final) {
        if (left >= PROTO_TRC_MARGIN)
            return PROTO_BAD_INPUT; /* cannot happen: rc_run stops before */
        memcpy(d->rcbuf, p + pos, left);
        d->rc_len = left;
        d->rc_pos = 0;
    }
tail:
    if (d->trc->elem == d->trc->elems && !final)
        return PROTO_BAD_INPUT; /* coded bytes after the tensor's end */
    if (final && (d->trc->elem != d->trc->elems || left != 0 ||
                  d->trc->changed != it->count))
        return PROTO_BAD_INPUT;
    return PROTO_OK;
}

/* All chunks of a batch are in: rebuild its pieces and emit them. */
static enum proto_status batch_emit(struct proto_tensor_dec *d)
{
    size_t pos[STREAMS] = { 0 };
    size_t idx, n;
    uint64_t at;
    bool end;
    enum proto_status rc;

    d->walk.fill = 0;
    while (walk_next(&d->walk, &idx, &at, &n, &end)) {
        const struct item *it = &d->items[idx];
        unsigned wd = it->width, base = item_base(it);
        size_t elems = n / wd;

        if ((rc = out_refs(d)) != PROTO_OK)
            return rc;
        if (d->out_item != idx || d->out_done != at)
            return PROTO_BAD_INPUT; /* cannot happen: same walk */
        if (is_rc(it->op)) {
            if ((rc = rc_piece(d, it, d->planes[RC_STREAM] + pos[RC_STREAM],
                               n)) != PROTO_OK)
                return rc;
            pos[RC_STREAM] += n;
            d->out_done += n;
            if (d->out_done == it->clen) {
                d->out_item++;
                d->out_done = 0;
            }
            continue;
        }
        /* In steps of XBUF_BYTES: the piece's elements (records) from
         * their planes, inverted, written. */
        for (size_t done = 0, m; done < elems; done += m) {
            uint64_t first = at / wd + done;

            m = elems - done < XBUF_BYTES / wd ? elems - done
                                               : XBUF_BYTES / wd;
            if (!fused_inverse(d, it, base, pos, first, m)) {
                /* (locals: a store through d->xbuf may alias d itself,
                 * which would reload the pointers every byte) */
                unsigned char *x = d->xbuf;

                for (unsigned j = 0; j < wd; j++) {
                    const unsigned char *pl =
                        d->planes[base + j] + pos[base + j];

                    for (size_t k = 0; k < m; k++)
                        x[k * wd + j] = pl[k];
                }
                if (!is_sparse(it->op))
                    inverse(it, d->old, first, m, d->xbuf);
            }
            for (unsigned j = 0; j < wd; j++)
                pos[base + j] += m;
            if (is_sparse(it->op))
                rc = sparse_emit(d, it, d->xbuf, m);
            else
                rc = out_write(d, d->xbuf, (uint64_t)m * wd);
            if (rc != PROTO_OK)
                return rc;
        }
        d->out_done += n;
        if (d->out_done == it->clen) {
            if (is_sparse(it->op) &&
                (rc = sparse_tail(d, it)) != PROTO_OK)
                return rc;
            d->out_item++;
            d->out_done = 0;
        }
    }
    return out_flush(d);
}

/* Handles one complete unit in d->in; sets the next state and need. */
static enum proto_status unit(struct proto_tensor_dec *d)
{
    enum proto_status rc;
    const unsigned char *p = d->in;
    char have[PROTO_HEX_SIZE];

    switch (d->state) {
    case D_HEADER: {
        enum proto_coded_kind k =
            proto_coded_kind(p, d->in_len, d->from_hex, d->to_hex);

        if (k != PROTO_CODED_TENSOR && k != PROTO_CODED_BG)
            return PROTO_BAD_INPUT;
        d->bg = k == PROTO_CODED_BG;
        if (d->bg && d->old_len)
            return PROTO_BAD_INPUT;
        if (!d->bg && d->base_trusted) {
            if (strcmp(d->base_hex, d->from_hex) != 0)
                return PROTO_MISMATCH;
        } else if (!d->bg) {
            if ((rc = proto_hasher_update(d->hasher, d->old, d->old_len)) !=
                    PROTO_OK ||
                (rc = proto_hasher_final(d->hasher, have)) != PROTO_OK)
                return rc;
            proto_hasher_reset(d->hasher);
            if (strcmp(have, d->from_hex) != 0)
                return PROTO_MISMATCH;
        }
        d->state = D_PLAN_LEN;
        d->need = 4;
        return PROTO_OK;
    }
    case D_PLAN_LEN:
        d->need = (size_t)proto_le_get(p, 4);
        if (d->need == 0 || d->need > PLAN_MAX_BYTES)
            return PROTO_BAD_INPUT;
        d->state = D_PLAN;
        return PROTO_OK;
    case D_PLAN: {
        unsigned long long size = ZSTD_getFrameContentSize(p, d->in_len);
        unsigned char *plan = NULL;
        bool ok;

        if (size == ZSTD_CONTENTSIZE_UNKNOWN ||
            size == ZSTD_CONTENTSIZE_ERROR || size > PLAN_MAX_BYTES ||
            size / ZSTD_BLOCKSIZE_MAX > d->in_len / 3 + 1)
            return PROTO_BAD_INPUT;
        rc = frame_read(d, p, d->in_len, NULL, 0, size, &plan);
        ok = rc == PROTO_OK && plan_parse(d, plan, (size_t)size);
        free(plan);
        d->held -= (size_t)size;
        if (rc != PROTO_OK)
            return rc;
        if (!ok)
            return PROTO_BAD_INPUT;
        d->state = D_NT_LEN;
        d->need = 8;
        return PROTO_OK;
    }
    case D_NT_LEN: {
        uint64_t n = proto_le_get(p, 8);

        /* At most zstd's bound; and each block (<= 128 KiB out) costs at
         * least 3 bytes in, so a claimed size needs the bytes to match. */
        if (n == 0 || d->nt_len > ((uint64_t)1 << 40) ||
            n > ZSTD_compressBound((size_t)d->nt_len) + 64)
            return PROTO_BAD_INPUT;
        if (d->nt_len / ZSTD_BLOCKSIZE_MAX > n / 3 + 1)
            return PROTO_BAD_INPUT;
        d->need = (size_t)n;
        d->state = D_NT;
        return PROTO_OK;
    }
    case D_NT: {
        struct buf og = { 0 };

        if ((rc = old_gaps(d, &og)) != PROTO_OK)
            return rc;
        rc = frame_read(d, p, d->in_len, og.p ? og.p : (const void *)d->old,
                        og.p ? og.len : (d->hole_count ? 0 : d->old_len),
                        d->nt_len, &d->nt);
        free(og.p);
        if (rc != PROTO_OK)
            return rc;
        d->xbuf = dec_alloc(d, XBUF_BYTES);
        if (!d->xbuf)
            return PROTO_NO_MEMORY;
        break; /* to the batches */
    }
    case D_CHUNK_LEN:
        d->need = (size_t)proto_le_get(p, 4);
        if (d->need == 0 || d->need > ZSTD_compressBound(BATCH_BYTES) + 64)
            return PROTO_BAD_INPUT;
        d->state = D_CHUNK;
        d->chunk_out = 0;
        d->chunk_r = 1;
        return PROTO_OK;
    case D_CHUNK:
        /* (its bytes went to chunk_feed as they came) */
        d->next_stream++;
        while (d->next_stream < STREAMS && !d->batch_bytes[d->next_stream])
            d->next_stream++;
        if (d->next_stream < STREAMS) {
            d->state = D_CHUNK_LEN;
            d->need = 4;
            return PROTO_OK;
        }
        if ((rc = batch_emit(d)) != PROTO_OK)
            return rc;
        break; /* the next batch */
    default:
        return PROTO_BAD_INPUT;
    }
    /* After the non-tensor bytes or a batch: the next batch, or the end. */
    if (batches_left(d)) {
        if ((rc = batch_begin(d)) != PROTO_OK)
            return rc;
        d->state = D_CHUNK_LEN;
        d->need = 4;
        return PROTO_OK;
    }
    if ((rc = out_refs(d)) != PROTO_OK ||
        (rc = out_gap_to(d, d->new_len)) != PROTO_OK ||
        (rc = out_flush(d)) != PROTO_OK)
        return rc;
    if (d->out_item != d->count || d->nt_pos != d->nt_len ||
        d->written != d->new_len)
        return PROTO_BAD_INPUT;
    d->state = D_DONE;
    d->need = 0;
    return PROTO_OK;
}

enum proto_status proto_tensor_dec_new(const void *old, size_t old_len,
                                       proto_sink_fn sink, void *sink_ctx,
                                       struct proto_tensor_dec **out)
{
    struct proto_tensor_dec *d;

    if ((old_len && !old) || !sink || !out)
        return PROTO_BAD_INPUT;
    d = calloc(1, sizeof(*d));
    if (!d)
        return PROTO_NO_MEMORY;
    d->hasher = proto_hasher_new();
    if (!d->hasher) {
        free(d);
        return PROTO_NO_MEMORY;
    }
    d->old = old;
    d->old_len = old_len;
    d->sink = sink;
    d->sink_ctx = sink_ctx;
    d->state = D_HEADER;
    d->need = PROTO_DELTA_HEADER_LEN;
    *out = d;
    return PROTO_OK;
}

enum proto_status proto_tensor_dec_feed(struct proto_tensor_dec *d,
                                        const void *data, size_t len)
{
    const unsigned char *p = data;

    if (!d || (len && !data))
        return PROTO_BAD_INPUT;
    while (len > 0) {
        size_t take;
        enum proto_status rc;

        if (d->state == D_FAILED)
            return d->failure;
        if (d->state == D_DONE) {
            dec_fail(d, PROTO_BAD_INPUT); /* bytes after the end */
            return d->failure;
        }
        take = d->need - d->in_len < len ? d->need - d->in_len : len;
        if (d->state == D_CHUNK) {
            /* A chunk goes to its stream's decoder as it comes. */
            bool last = d->in_len + take == d->need;

            rc = chunk_feed(d, d->next_stream, p, take, last);
            d->in_len += take;
            p += take;
            len -= take;
            if (rc == PROTO_OK && last) {
                rc = unit(d);
                d->in_len = 0;
            }
            if (rc != PROTO_OK) {
                dec_fail(d, rc);
                return rc;
            }
            continue;
        }
        /* The buffer grows with the bytes that came, not with the length
         * a unit claims. */
        if (d->in_cap < d->in_len + take) {
            size_t cap = d->in_cap ? d->in_cap : 256;
            unsigned char *q;

            while (cap < d->in_len + take)
                cap *= 2;
            if (cap > d->need)
                cap = d->need;
            q = realloc(d->in, cap);
            if (!q) {
                dec_fail(d, PROTO_NO_MEMORY);
                return d->failure;
            }
            d->held += cap - d->in_cap;
            if (d->held > d->peak)
                d->peak = d->held;
            d->in = q;
            d->in_cap = cap;
        }
        memcpy(d->in + d->in_len, p, take);
        d->in_len += take;
        p += take;
        len -= take;
        if (d->in_len < d->need)
            break;
        rc = unit(d);
        d->in_len = 0;
        if (rc != PROTO_OK) {
            dec_fail(d, rc);
            return rc;
        }
    }
    return d->state == D_FAILED ? d->failure : PROTO_OK;
}

enum proto_status proto_tensor_dec_finish(struct proto_tensor_dec *d)
{
    char have[PROTO_HEX_SIZE];

    if (!d)
        return PROTO_BAD_INPUT;
    if (d->state == D_FAILED)
        return d->failure;
    if (d->state != D_DONE) {
        dec_fail(d, PROTO_BAD_INPUT); /* truncated */
        return d->failure;
    }
    if (proto_hasher_final(d->hasher, have) != PROTO_OK)
        return PROTO_NO_MEMORY;
    if (strcmp(have, d->to_hex) != 0) {
        dec_fail(d, PROTO_MISMATCH);
        return PROTO_MISMATCH;
    }
    return PROTO_OK;
}

enum proto_status proto_tensor_dec_trust_base(struct proto_tensor_dec *d,
                                              const char *from_hex)
{
    if (!d || d->state != D_HEADER || d->in_len != 0 || !from_hex ||
        !proto_hex_is_valid(from_hex, strlen(from_hex)))
        return PROTO_BAD_INPUT;
    memcpy(d->base_hex, from_hex, PROTO_HEX_SIZE);
    d->base_trusted = true;
    return PROTO_OK;
}

uint64_t proto_tensor_dec_peak_bytes(const struct proto_tensor_dec *d)
{
    return d ? d->peak : 0;
}

void proto_tensor_dec_free(struct proto_tensor_dec *d)
{
    if (!d)
        return;
    for (unsigned s = 0; s < STREAMS; s++) {
        ZSTD_freeDCtx(d->ds[s]);
        free(d->whole[s]);
    }
    free(d->arena);
    proto_hasher_free(d->hasher);
    free(d->in);
    free(d->items);
    free(d->holes);
    free(d->nt);
    free(d->xbuf);
    free(d->trc);
    free(d->rcbuf);
    free(d);
}

enum proto_status proto_tensor_apply(const void *old, size_t old_len,
                                     const void *coded, size_t coded_len,
                                     proto_sink_fn sink, void *sink_ctx)
{
    struct proto_tensor_dec *d = NULL;
    enum proto_status rc;

    if (coded_len && !coded)
        return PROTO_BAD_INPUT;
    rc = proto_tensor_dec_new(old, old_len, sink, sink_ctx, &d);
    if (rc != PROTO_OK)
        return rc;
    rc = proto_tensor_dec_feed(d, coded, coded_len);
    if (rc == PROTO_OK)
        rc = proto_tensor_dec_finish(d);
    proto_tensor_dec_free(d);
    return rc;
}

/* ---- any coded file ---------------------------------------------------------- */

/* A plain zstd frame (content coding): no digest to check here. */
static enum proto_status zstd_plain(const void *coded, size_t coded_len,
                                    proto_sink_fn sink, void *sink_ctx)
{
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    size_t cap = ZSTD_DStreamOutSize();
    unsigned char *buf = malloc(cap);
    ZSTD_inBuffer in = { coded, coded_len, 0 };
    enum proto_status rc = PROTO_BAD_INPUT;
    size_t r = 1;

    if (!dc || !buf) {
        rc = PROTO_NO_MEMORY;
        goto out;
    }
    /* The window content coding allows (RFC 8878: 8 MiB). */
    ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, 23);
    for (;;) {
        ZSTD_outBuffer out = { buf, cap, 0 };
        size_t ip = in.pos;

        r = ZSTD_decompressStream(dc, &out, &in);
        if (ZSTD_isError(r))
            goto out;
        if (out.pos && sink(sink_ctx, buf, out.pos) != 0) {
            rc = PROTO_SINK_FAILED;
            goto out;
        }
        if (r == 0 && in.pos == in.size)
            break;
        if (in.pos == ip && out.pos == 0)
            goto out; /* truncated */
    }
    rc = PROTO_OK;
out:
    free(buf);
    ZSTD_freeDCtx(dc);
    return rc;
}

enum proto_status proto_coded_apply(const void *old, size_t old_len,
                                    const void *coded, size_t coded_len,
                                    proto_sink_fn sink, void *sink_ctx,
                                    char out_to_hex[PROTO_HEX_SIZE])
{
    char from[PROTO_HEX_SIZE], to[PROTO_HEX_SIZE];
    enum proto_coded_kind k = proto_coded_kind(coded, coded_len, from, to);
    enum proto_status rc;

    if (out_to_hex)
        out_to_hex[0] = '\0';
    switch (k) {
    case PROTO_CODED_ZSTD_PATCH:
        rc = proto_delta_apply(old, old_len, coded, coded_len, sink,
                               sink_ctx);
        break;
    case PROTO_CODED_TENSOR:
        rc = proto_tensor_apply(old, old_len, coded, coded_len, sink,
                                sink_ctx);
        break;
    case PROTO_CODED_BG:
        rc = proto_tensor_apply(NULL, 0, coded, coded_len, sink, sink_ctx);
        break;
    case PROTO_CODED_ZSTD:
        to[0] = '\0';
        rc = zstd_plain(coded, coded_len, sink, sink_ctx);
        break;
    default:
        return PROTO_BAD_INPUT;
    }
    if (rc == PROTO_OK && out_to_hex)
        memcpy(out_to_hex, to, PROTO_HEX_SIZE);
    return rc;
}
