/*
 * libFuzzer target for the tensor decoder (modeld-tensor/1, modeld-bg/1)
 * and proto_coded_apply() on arbitrary bytes. Input: 2 bytes (little-
 * endian) whose value modulo the rest's length + 1 is the length of the old
 * model, 1 byte choosing the feed piece size, then the old model, then the
 * coded file. The coded bytes go to the streaming decoder in pieces of
 * that size; the result must be the same as proto_coded_apply's on the
 * whole, and on PROTO_OK the output must hash to the header's target;
 * a delta is decoded once more with its base trusted by digest (not
 * hashed), as the client does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tensor.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUTPUT_MAX_BYTES (16u << 20)

struct sink_state {
    struct proto_hasher *h;
    size_t total;
};

static int hash_sink(void *ctx, const void *data, size_t len)
{
    struct sink_state *s = ctx;

    REQUIRE(len > 0);
    s->total += len;
    if (s->total > OUTPUT_MAX_BYTES)
        return 1;
    return proto_hasher_update(s->h, data, len) == PROTO_OK ? 0 : 1;
}

static unsigned char *copy(const uint8_t *data, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);

    REQUIRE(p != NULL);
    if (len)
        memcpy(p, data, len);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sink_state s1 = { NULL, 0 }, s2 = { NULL, 0 };
    struct proto_tensor_dec *d = NULL;
    char from[PROTO_HEX_SIZE], to[PROTO_HEX_SIZE], have[PROTO_HEX_SIZE];
    enum proto_status rc1, rc2 = PROTO_OK;
    unsigned char *old, *coded;
    size_t old_len, coded_len, piece;

    if (size < 3)
        return 0;
    old_len = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 3 + 1);
    piece = 1 + data[2] * 37u;
    old = copy(data + 3, old_len);
    coded_len = size - 3 - old_len;
    coded = copy(data + 3 + old_len, coded_len);

    s1.h = proto_hasher_new();
    s2.h = proto_hasher_new();
    REQUIRE(s1.h && s2.h);
    rc1 = proto_coded_apply(old, old_len, coded, coded_len, hash_sink, &s1,
                            NULL);
    if (proto_coded_kind(coded, coded_len, from, to) == PROTO_CODED_TENSOR ||
        proto_coded_kind(coded, coded_len, from, to) == PROTO_CODED_BG) {
        bool bg = proto_coded_kind(coded, coded_len, from, to) ==
                  PROTO_CODED_BG;

        REQUIRE(proto_tensor_dec_new(bg ? NULL : old, bg ? 0 : old_len,
                                     hash_sink, &s2, &d) == PROTO_OK);
        for (size_t at = 0; at < coded_len && rc2 == PROTO_OK; at += piece)
            rc2 = proto_tensor_dec_feed(d, coded + at,
                                        coded_len - at < piece ? coded_len - at
                                                               : piece);
        if (rc2 == PROTO_OK)
            rc2 = proto_tensor_dec_finish(d);
        proto_tensor_dec_free(d);
        /* Pieces or the whole: the same verdict (the output cap aside). */
        if (s1.total <= OUTPUT_MAX_BYTES && s2.total <= OUTPUT_MAX_BYTES)
            REQUIRE((rc1 == PROTO_OK) == (rc2 == PROTO_OK));
        if (rc1 == PROTO_OK) {
            REQUIRE(proto_hasher_final(s1.h, have) == PROTO_OK);
            REQUIRE(strcmp(have, to) == 0);
        }
    }
    /* A delta told its own base digest (proto_tensor_dec_trust_base, as
     * the client does): old is not hashed, so whatever it holds reaches
     * the decoder; the result must still be the target. */
    if (proto_coded_kind(coded, coded_len, from, to) == PROTO_CODED_TENSOR) {
        struct sink_state s3 = { proto_hasher_new(), 0 };
        enum proto_status rc3;

        REQUIRE(s3.h != NULL);
        REQUIRE(proto_tensor_dec_new(old, old_len, hash_sink, &s3, &d) ==
                PROTO_OK);
        rc3 = proto_tensor_dec_trust_base(d, from);
        REQUIRE(rc3 == PROTO_OK);
        for (size_t at = 0; at < coded_len && rc3 == PROTO_OK; at += piece)
            rc3 = proto_tensor_dec_feed(d, coded + at,
                                        coded_len - at < piece ? coded_len - at
                                                               : piece);
        if (rc3 == PROTO_OK)
            rc3 = proto_tensor_dec_finish(d);
        proto_tensor_dec_free(d);
        if (rc3 == PROTO_OK) {
            REQUIRE(proto_hasher_final(s3.h, have) == PROTO_OK);
            REQUIRE(strcmp(have, to) == 0);
        }
        proto_hasher_free(s3.h);
    }
    proto_hasher_free(s1.h);
    proto_hasher_free(s2.h);
    free(old);
    free(coded);
    return 0;
}
