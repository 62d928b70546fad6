/*
 * Writes the seed corpus of fuzz_delta: real deltas made by
 * proto_delta_make(), each stored as fuzz_delta reads its input (2 bytes of
 * old length, little-endian, the old model, then the delta). Run once with
 * `make fuzz-seeds`; the files are committed and stay under 64 KiB each.
 * Usage: make_seeds DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define SEED_MAX_BYTES (64u << 10)

struct buf {
    unsigned char data[SEED_MAX_BYTES];
    size_t len;
};

static int buf_sink(void *ctx, const void *data, size_t len)
{
    struct buf *b = ctx;

    if (len > sizeof(b->data) - b->len)
        return 1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static int sha256_hex(const void *data, size_t len, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();
    int rc = -1;

    if (h && proto_hasher_update(h, data, len) == PROTO_OK &&
        proto_hasher_final(h, out) == PROTO_OK)
        rc = 0;
    proto_hasher_free(h);
    return rc;
}

/* Deterministic bytes that look a little like float weights. */
static void fill(unsigned char *p, size_t len, uint32_t seed)
{
    uint32_t x = seed;

    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i % 4 == 3) ? 0x3f : (unsigned char)(x >> 16);
    }
}

static int write_seed(const char *dir, const char *name,
                      const unsigned char *old, size_t old_len,
                      const unsigned char *new_data, size_t new_len,
                      int level)
{
    static struct buf b;
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    char path[512];
    unsigned char len_le[2] = {(unsigned char)old_len,
                               (unsigned char)(old_len >> 8)};
    FILE *f;
    int ok;

    b.len = 0;
    if (old_len > UINT16_MAX || sha256_hex(old, old_len, from_hex) != 0 ||
        sha256_hex(new_data, new_len, to_hex) != 0 ||
        proto_delta_make(old, old_len, new_data, new_len, from_hex, to_hex,
                         level, buf_sink, &b) != PROTO_OK)
        return -1;
    if (2 + old_len + b.len > SEED_MAX_BYTES)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f)
        return -1;
    ok = fwrite(len_le, 1, 2, f) == 2 &&
         fwrite(old, 1, old_len, f) == old_len &&
         fwrite(b.data, 1, b.len, f) == b.len;
    if (fclose(f) != 0 || !ok)
        return -1;
    printf("%s: old %zu, delta %zu bytes\n", path, old_len, b.len);
    return 0;
}

int main(int argc, char **argv)
{
    static unsigned char old[8192], new_data[8192];
    const char *text_old = "the quick brown fox jumps over the lazy dog\n"
                           "the quick brown fox jumps over the lazy dog\n";
    const char *text_new = "the quick brown cat jumps over the lazy dog\n"
                           "the quick brown fox jumps over the lazy dog!\n";
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    fill(old, sizeof(old), 1);
    memcpy(new_data, old, sizeof(new_data));
    for (size_t i = 100; i < sizeof(new_data); i += 977)
        new_data[i] ^= 0x5a;

    rc |= write_seed(argv[1], "text", (const unsigned char *)text_old,
                     strlen(text_old), (const unsigned char *)text_new,
                     strlen(text_new), 3);
    rc |= write_seed(argv[1], "weights_8k", old, sizeof(old), new_data,
                     sizeof(new_data), 19);
    rc |= write_seed(argv[1], "weights_grow", old, 1024, new_data, 3000, 1);
    rc |= write_seed(argv[1], "empty_old", old, 0,
                     (const unsigned char *)text_new, strlen(text_new), 3);
    rc |= write_seed(argv[1], "empty_new", (const unsigned char *)text_old,
                     strlen(text_old), new_data, 0, 3);
    rc |= write_seed(argv[1], "same", old, 512, old, 512, 3);
    if (rc != 0)
        fprintf(stderr, "make_seeds: a seed could not be written\n");
    return rc != 0;
}
