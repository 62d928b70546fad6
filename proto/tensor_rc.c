/*
 * The range coder behind modeld-tensor/1's RC ops (proto/tensor_rc.h):
 * LZMA's binary range coder (32-bit range, carry through a cached byte)
 * driven by adaptive bits whose probability is the Krichevsky-Trofimov
 * estimate from their counts, so that rare events (a change in one value
 * of a hundred) cost what they carry and not the floor of a shift-based
 * estimator. proto/tensor_format.md has the layout bit by bit; this file
 * is the one both sides use.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/tensor_rc.h"

#define TOP ((uint32_t)1 << 24)
#define PROB_BITS 16
#define PROB_MIN 32u
#define PROB_MAX ((1u << PROB_BITS) - PROB_MIN)
#define COUNT_LIMIT ((uint32_t)PROTO_TRC_COUNT_LIMIT)
#define MID_BITS 3
#define DIRECT_CHUNK 8


void proto_trc_model_init(struct proto_trc_model *m)
{
    struct proto_trc_bit *bits[] = { m->flag, m->val.slot, &m->val.mid[0][0] };
    size_t counts[] = { ARRAY_SIZE(m->flag), ARRAY_SIZE(m->val.slot),
                        sizeof(m->val.mid) / sizeof(m->val.mid[0][0]) };

    memset(m, 0, sizeof(*m));
    for (uint32_t s = 0; s < COUNT_LIMIT + 2; s++)
        m->recip[s] = (uint32_t)(((uint64_t)1 << 32) / (2 * s + 2));
    for (size_t k = 0; k < ARRAY_SIZE(bits); k++)
        for (size_t i = 0; i < counts[k]; i++)
            bits[k][i].p = 1u << (PROB_BITS - 1);
}

/*
 * The probability of a 0, in 1/65536, from the counts: the KT estimate
 * (n0 + 1/2) / (n0 + n1 + 1), as (2 n0 + 1) * floor(2^32 / (2 s + 2))
 * >> 16 with s = n0 + n1 (a multiplication, not a division per bit),
 * kept within [PROB_MIN, PROB_MAX].
 */
static inline uint32_t prob0_of(const struct proto_trc_model *m,
                                 const struct proto_trc_bit *b)
{
    uint32_t p = (uint32_t)(((uint64_t)b->n0 * 2 + 1) *
                                m->recip[(uint32_t)b->n0 + b->n1] >>
                            (32 - PROB_BITS));

    return p < PROB_MIN ? PROB_MIN : p > PROB_MAX ? PROB_MAX : p;
}

/* Counts the bit and computes the probability its next use codes with
 * (kept in the bit, off the decoder's critical path). */
static inline void learn(const struct proto_trc_model *m,
                         struct proto_trc_bit *b, unsigned bit)
{
    if (bit)
        b->n1++;
    else
        b->n0++;
    if ((uint32_t)b->n0 + b->n1 > COUNT_LIMIT) {
        b->n0 = (uint16_t)((b->n0 + 1) / 2);
        b->n1 = (uint16_t)((b->n1 + 1) / 2);
    }
    b->p = (uint16_t)prob0_of(m, b);
}

/* The context of an element's "changed" bit. */
static inline unsigned flag_ctx(uint64_t base, unsigned width, bool prev)
{
    unsigned mag = width == 1 ? (unsigned)(base & 0xff)
                              : (unsigned)(base >> (8 * width - 9)) & 0xff;

    return (prev ? 256u : 0u) | mag;
}

static unsigned bit_length(uint64_t z)
{
    unsigned n = 0;

    while (z) {
        n++;
        z >>= 1;
    }
    return n;
}

static uint64_t zigzag_w(uint64_t d, unsigned width)
{
    uint64_t mask = proto_width_mask(width);
    bool neg = (d >> (8 * width - 1)) & 1;

    return ((d << 1) ^ (neg ? mask : 0)) & mask;
}

static uint64_t unzigzag_w(uint64_t z, unsigned width)
{
    return ((z >> 1) ^ ((z & 1) ? proto_width_mask(width) : 0)) & proto_width_mask(width);
}

/* ---- encoder ---- */

struct enc {
    const struct proto_trc_model *m;
    unsigned char *p;
    size_t len, cap;
    bool oom;
    uint64_t low;
    uint32_t range;
    unsigned char cache;
    uint64_t cache_size;
    uint64_t steps;               /* coder steps: adaptive bits, chunks */
};

static void out_byte(struct enc *e, unsigned char b)
{
    if (e->oom)
        return;
    if (e->len == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 4096;
        unsigned char *q = realloc(e->p, cap);

        if (!q) {
            e->oom = true;
            return;
        }
        e->p = q;
        e->cap = cap;
    }
    e->p[e->len++] = b;
}

static void shift_low(struct enc *e)
{
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        unsigned char carry = (unsigned char)(e->low >> 32);
        unsigned char temp = e->cache;

        do {
            out_byte(e, (unsigned char)(temp + carry));
            temp = 0xFF;
        } while (--e->cache_size != 0);
        e->cache = (unsigned char)(e->low >> 24);
    }
    e->cache_size++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static void enc_bit(struct enc *e, struct proto_trc_bit *b, unsigned bit)
{
    uint32_t bound = (e->range >> PROB_BITS) * b->p;

    e->steps++;
    if (bit) {
        e->low += bound;
        e->range -= bound;
    } else {
        e->range = bound;
    }
    learn(e->m, b, bit);
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

/* n bits of v, high first, each of probability 1/2. */
static void enc_direct(struct enc *e, uint64_t v, unsigned n)
{
    while (n > 0) {
        unsigned k = n < DIRECT_CHUNK ? n : DIRECT_CHUNK;
        uint32_t part = (uint32_t)(v >> (n - k)) & ((1u << k) - 1);

        e->steps++;
        e->range >>= k;
        e->low += (uint64_t)e->range * part;
        while (e->range < TOP) {
            e->range <<= 8;
            shift_low(e);
        }
        n -= k;
    }
}

static void enc_tree(struct enc *e, struct proto_trc_bit *probs,
                     unsigned levels, unsigned v)
{
    unsigned node = 1;

    for (unsigned i = levels; i-- > 0;) {
        unsigned bit = (v >> i) & 1;

        enc_bit(e, &probs[node], bit);
        node = node * 2 + bit;
    }
}

static void enc_int(struct enc *e, struct proto_trc_int *m, uint64_t z)
{
    unsigned slot = bit_length(z), nb, t;

    enc_tree(e, m->slot, 7, slot);
    if (slot < 2)
        return;
    nb = slot - 1;
    t = nb < MID_BITS ? nb : MID_BITS;
    enc_tree(e, m->mid[slot], t, (unsigned)(z >> (nb - t)) & ((1u << t) - 1));
    enc_direct(e, z, nb - t);
}

enum proto_status proto_trc_encode(struct proto_trc_model *m,
                                   const unsigned char *old,
                                   const unsigned char *cur, uint64_t elems,
                                   unsigned width, bool set,
                                   unsigned char **out, size_t *out_len,
                                   uint64_t *out_changed,
                                   uint64_t *out_steps)
{
    struct enc e = { m, NULL, 0, 0, false, 0, 0xFFFFFFFFu, 0, 1, 0 };
    uint64_t mask = proto_width_mask(width), changed = 0;
    bool prev = false;

    if (width != 1 && width != 2 && width != 4 && width != 8)
        return PROTO_BAD_INPUT;
    for (uint64_t i = 0; i < elems; i++) {
        uint64_t a = proto_le_get(cur + i * width, width);
        uint64_t b = proto_le_get(old + i * width, width);
        bool ch = a != b;

        enc_bit(&e, &m->flag[flag_ctx(b, width, prev)], ch);
        if (ch) {
            enc_int(&e, &m->val, set ? a : zigzag_w((a - b) & mask, width));
            changed++;
        }
        prev = ch;
    }
    for (int i = 0; i < 5; i++)
        shift_low(&e);
    if (e.oom) {
        free(e.p);
        return PROTO_NO_MEMORY;
    }
    *out = e.p;
    *out_len = e.len;
    *out_changed = changed;
    *out_steps = e.steps;
    return PROTO_OK;
}

/* ---- decoder ---- */

/* The coder's state while decoding, in a local (copied from and back to
 * the proto_trc_dec), so that it stays in registers across the output's
 * byte stores. */
struct dec {
    struct proto_trc_dec *t;
    const unsigned char *in;
    size_t len, pos;
    bool bad;
    uint32_t range, code;
};

static inline unsigned char in_byte(struct dec *d)
{
    if (d->pos >= d->len) {
        d->bad = true;
        return 0;
    }
    return d->in[d->pos++];
}

/* At most two bytes: a step shrinks the range by at most 2^16 / PROB_MIN
 * (an adaptive bit) or 2^DIRECT_CHUNK. */
static inline void normalize(struct dec *d)
{
    if (d->range < TOP) {
        d->range <<= 8;
        d->code = d->code << 8 | in_byte(d);
        if (d->range < TOP) {
            d->range <<= 8;
            d->code = d->code << 8 | in_byte(d);
        }
    }
}

static inline unsigned dec_bit(struct dec *d, struct proto_trc_bit *b)
{
    uint32_t bound = (d->range >> PROB_BITS) * b->p;
    unsigned bit;

    if (d->code < bound) {
        d->range = bound;
        bit = 0;
    } else {
        d->code -= bound;
        d->range -= bound;
        bit = 1;
    }
    learn(&d->t->m, b, bit);
    normalize(d);
    return bit;
}

static inline uint64_t dec_direct(struct dec *d, unsigned n)
{
    uint64_t v = 0;

    while (n > 0) {
        unsigned k = n < DIRECT_CHUNK ? n : DIRECT_CHUNK;
        uint32_t part;

        d->range >>= k;
        part = d->code / d->range;
        if (part >> k) {
            d->bad = true; /* outside every interval the encoder makes */
            return 0;
        }
        d->code -= part * d->range;
        v = v << k | part;
        normalize(d);
        n -= k;
    }
    return v;
}

static inline unsigned dec_tree(struct dec *d, struct proto_trc_bit *probs,
                         unsigned levels)
{
    unsigned node = 1;

    for (unsigned i = 0; i < levels; i++)
        node = node * 2 + dec_bit(d, &probs[node]);
    return node - (1u << levels);
}

static inline uint64_t dec_int(struct dec *d, struct proto_trc_int *m,
                        unsigned max_bits)
{
    unsigned slot = dec_tree(d, m->slot, 7), nb, t;
    uint64_t z;

    if (slot > max_bits) {
        d->bad = true;
        return 0;
    }
    if (slot < 2)
        return slot;
    nb = slot - 1;
    t = nb < MID_BITS ? nb : MID_BITS;
    z = (uint64_t)1 << t | dec_tree(d, m->mid[slot], t);
    return z << (nb - t) | dec_direct(d, nb - t);
}

void proto_trc_dec_new_model(struct proto_trc_dec *t)
{
    proto_trc_model_init(&t->m);
}

void proto_trc_dec_init(struct proto_trc_dec *t, uint64_t elems,
                        unsigned width, bool set)
{
    t->elem = t->changed = 0;
    t->range = t->code = 0;
    t->started = t->prev = false;
    t->elems = elems;
    t->width = width;
    t->set = set;
}

/*
 * The element loop for one width (a constant after inlining, so that the
 * loads and stores are whole words). Returns the elements written.
 */
static inline size_t run_width(struct dec *d, unsigned w, bool final,
                               const unsigned char *src, unsigned char *out,
                               size_t out_elems)
{
    struct proto_trc_dec *t = d->t;
    uint64_t mask = proto_width_mask(w), elem = t->elem, elems = t->elems;
    uint64_t changed = t->changed;
    bool prev = t->prev, set = t->set;
    size_t n = 0;

    while (elem < elems && n < out_elems &&
           (final || d->len - d->pos >= PROTO_TRC_MARGIN)) {
        uint64_t b = proto_le_get(src + elem * w, w), a = b;
        bool ch = dec_bit(d, &t->m.flag[flag_ctx(b, w, prev)]) != 0;

        if (ch) {
            uint64_t z = dec_int(d, &t->m.val, 8 * w);

            a = set ? z : (b + unzigzag_w(z, w)) & mask;
            if (a == b)
                d->bad = true; /* a "change" to the same value */
            changed++;
        }
        if (d->bad)
            break;
        proto_le_put(out + n * w, a, w);
        prev = ch;
        elem++;
        n++;
    }
    t->elem = elem;
    t->changed = changed;
    t->prev = prev;
    return n;
}

enum proto_status proto_trc_dec_run(struct proto_trc_dec *t,
                                    const unsigned char *in, size_t len,
                                    size_t *pos, bool final,
                                    const unsigned char *src,
                                    unsigned char *out, size_t out_elems,
                                    size_t *out_n)
{
    struct dec d = { t, in, len, *pos, false, t->range, t->code };
    size_t n = 0;

    *out_n = 0;
    if (!t->started) {
        if (!final && len - d.pos < PROTO_TRC_MARGIN)
            return PROTO_OK;
        /* The encoder's first byte is its empty cache: 0. */
        if (in_byte(&d) != 0)
            return PROTO_BAD_INPUT;
        d.range = 0xFFFFFFFFu;
        d.code = 0;
        for (int i = 0; i < 4; i++)
            d.code = d.code << 8 | in_byte(&d);
        if (d.bad || d.code == d.range)
            return PROTO_BAD_INPUT;
        t->started = true;
    }
    switch (t->width) {
    case 1: n = run_width(&d, 1, final, src, out, out_elems); break;
    case 2: n = run_width(&d, 2, final, src, out, out_elems); break;
    case 4: n = run_width(&d, 4, final, src, out, out_elems); break;
    case 8: n = run_width(&d, 8, final, src, out, out_elems); break;
    default: return PROTO_BAD_INPUT;
    }
    if (d.bad)
        return PROTO_BAD_INPUT;
    t->range = d.range;
    t->code = d.code;
    *pos = d.pos;
    *out_n = n;
    return PROTO_OK;
}
