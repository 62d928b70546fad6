/*
 * libFuzzer target for the delta applier: proto_delta_apply(),
 * proto_delta_apply_trusted() and proto_delta_header_parse() on arbitrary
 * bytes. Input: 2 bytes (little-
 * endian) whose value modulo the rest's length + 1 is the length of the
 * old model, then the old model, then the delta. The output is hashed and
 * dropped; on PROTO_OK it must hash to the header's "to" digest, and the
 * old model to its "from" digest. Making deltas is covered by the seeds
 * (tests/fuzz/make_seeds.c), not here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop decoding past this much output: a tiny frame can claim gigabytes,
 * which is slow rather than wrong. */
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

static void sha256_hex(const void *data, size_t len, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();

    REQUIRE(h != NULL);
    REQUIRE(proto_hasher_update(h, data, len) == PROTO_OK);
    REQUIRE(proto_hasher_final(h, out) == PROTO_OK);
    proto_hasher_free(h);
}

/* An exact-size heap copy, so that ASan sees any read past the end. */
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
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    char got_hex[PROTO_HEX_SIZE];
    struct sink_state s = {NULL, 0};
    unsigned char *old, *delta;
    size_t rest_len, old_len, delta_len;
    enum proto_status rc, header_rc;

    if (size < 2)
        return 0;
    rest_len = size - 2;
    old_len = ((size_t)data[0] | (size_t)data[1] << 8) % (rest_len + 1);
    delta_len = rest_len - old_len;
    old = copy(data + 2, old_len);
    delta = copy(data + 2 + old_len, delta_len);

    header_rc = proto_delta_header_parse(delta, delta_len, from_hex, to_hex);
    REQUIRE(header_rc == PROTO_OK || header_rc == PROTO_BAD_INPUT);
    if (header_rc == PROTO_OK) {
        REQUIRE(proto_hex_is_valid(from_hex, strlen(from_hex)));
        REQUIRE(proto_hex_is_valid(to_hex, strlen(to_hex)));
    }

    s.h = proto_hasher_new();
    REQUIRE(s.h != NULL);
    rc = proto_delta_apply(old, old_len, delta, delta_len, hash_sink, &s);
    switch (rc) {
    case PROTO_OK:
        REQUIRE(header_rc == PROTO_OK);
        REQUIRE(proto_hasher_final(s.h, got_hex) == PROTO_OK);
        REQUIRE(memcmp(got_hex, to_hex, PROTO_HEX_LEN) == 0);
        sha256_hex(old, old_len, got_hex);
        REQUIRE(memcmp(got_hex, from_hex, PROTO_HEX_LEN) == 0);
        break;
    case PROTO_BAD_INPUT:
        break;
    case PROTO_MISMATCH:
    case PROTO_SINK_FAILED:
    case PROTO_NO_MEMORY:
        REQUIRE(header_rc == PROTO_OK);
        break;
    default:
        abort();
    }
    proto_hasher_free(s.h);

    /* proto_delta_apply_trusted told the header's own base digest: old is
     * not hashed, so whatever old holds reaches the decoder (a client's
     * base changed on disk); the result must still be the target. */
    if (header_rc == PROTO_OK) {
        s.h = proto_hasher_new();
        s.total = 0;
        REQUIRE(s.h != NULL);
        rc = proto_delta_apply_trusted(old, old_len, from_hex, delta,
                                       delta_len, hash_sink, &s);
        if (rc == PROTO_OK) {
            REQUIRE(proto_hasher_final(s.h, got_hex) == PROTO_OK);
            REQUIRE(memcmp(got_hex, to_hex, PROTO_HEX_LEN) == 0);
        } else {
            REQUIRE(rc == PROTO_BAD_INPUT || rc == PROTO_MISMATCH ||
                    rc == PROTO_SINK_FAILED || rc == PROTO_NO_MEMORY);
        }
        proto_hasher_free(s.h);
    }
    free(delta);
    free(old);
    return 0;
}
