/*
 * Range coding of one tensor against its base, element by element: the
 * coding of modeld-tensor/1's ops RC_SUB and RC_SET (proto/tensor_code.c
 * carries the bytes; proto/tensor_format.md, section "Range-coded ops",
 * defines them bit by bit). For each element one adaptive bit says
 * whether it changed (context: whether the previous one changed and the
 * base element's magnitude class, its 8 bits below the sign: an fp32's
 * exponent), and a changed one's difference (RC_SUB) or new value
 * (RC_SET) follows as an integer binarised by bit length. A sparse
 * fine-tune so costs close to its information: the changes' positions
 * and the bits of each change, no byte planes' or records' overhead.
 * Internal to proto/.
 */
#ifndef PROTO_TENSOR_RC_H
#define PROTO_TENSOR_RC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* Little-endian element access and the mask of a width's bits, shared by
 * the tensor codings (proto/tensor_code.c) and this coder. */
static inline uint64_t proto_le_get(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static inline void proto_le_put(unsigned char *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t proto_width_mask(unsigned width)
{
    return width == 8 ? UINT64_MAX : ((uint64_t)1 << (8 * width)) - 1;
}

/* At most this many coded bytes are read for one element (a changed one:
 * 11 adaptive bits of at most 2 bytes each, 61 direct bits in chunks of
 * at most 8, at most one byte a chunk). */
#define PROTO_TRC_MARGIN 64

/* An adaptive bit: counts of zeros and ones (halved past a limit) and
 * the probability of a 0 they give (in 1/65536). */
struct proto_trc_bit {
    uint16_t n0, n1, p;
};

/* An unsigned integer: its bit length by a 7-level binary tree, the next
 * three bits under the leading one by a tree per bit length, the rest
 * direct. */
struct proto_trc_int {
    struct proto_trc_bit slot[128];
    struct proto_trc_bit mid[65][8];
};

#define PROTO_TRC_COUNT_LIMIT 2048 /* counts halve past this sum */

/* The models; they carry over from one RC tensor to the next in plan
 * order (proto_trc_model_init makes the initial one). recip is not
 * state: the reciprocals the probabilities are computed with. */
struct proto_trc_model {
    struct proto_trc_bit flag[512];
    struct proto_trc_int val;
    uint32_t recip[PROTO_TRC_COUNT_LIMIT + 2];
};

/* Sets m to the initial model. */
void proto_trc_model_init(struct proto_trc_model *m);

/*
 * Codes elems elements of width bytes (1, 2, 4 or 8) of cur against old
 * (set: the changed elements' values instead of their differences),
 * starting from model m and leaving in it the model after them. On
 * PROTO_OK *out (malloc'd, the caller frees) holds *out_len bytes,
 * *out_changed is the number of changed elements and *out_steps the
 * coder's steps (adaptive bits and chunks of direct bits: the decoder's
 * work is about proportional to them).
 */
MUST_CHECK enum proto_status
proto_trc_encode(struct proto_trc_model *m, const unsigned char *old,
                 const unsigned char *cur, uint64_t elems, unsigned width,
                 bool set, unsigned char **out, size_t *out_len,
                 uint64_t *out_changed, uint64_t *out_steps);

/* The decoder of one tensor at a time (the model carries over);
 * resumable between pieces of input. */
struct proto_trc_dec {
    struct proto_trc_model m;
    uint64_t elems, elem, changed;
    uint32_t range, code;
    unsigned width;
    bool set, started, prev;
};

/* Once, before the first tensor: the initial model. */
void proto_trc_dec_new_model(struct proto_trc_dec *t);
/* Before each tensor: resets the coder, keeps the model. */
void proto_trc_dec_init(struct proto_trc_dec *t, uint64_t elems,
                        unsigned width, bool set);

/*
 * Decodes elements from in[*pos .. len) into out (at most out_elems of
 * them), src being the base's elements of the whole tensor. Unless final
 * (the tensor's last coded byte is in in), it stops while fewer than
 * PROTO_TRC_MARGIN bytes are left, so that no element is cut. Sets
 * *out_n to the elements written and advances *pos. PROTO_BAD_INPUT
 * when the bytes are not a valid coding (or would be read past len).
 */
MUST_CHECK enum proto_status
proto_trc_dec_run(struct proto_trc_dec *t, const unsigned char *in,
                  size_t len, size_t *pos, bool final,
                  const unsigned char *src, unsigned char *out,
                  size_t out_elems, size_t *out_n);

#endif
