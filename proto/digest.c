/*
 * Names, digests and SHA-256: the syntax of family/variant names and of
 * "sha256:<hex>" strings, and a streaming hasher over OpenSSL's SHA-256.
 * Reading the bytes to hash is the caller's job.
 *
 * The hasher uses libcrypto's SHA256_* functions, not EVP: the same code
 * (SHA-NI/AVX2 where the CPU has them: same speed), but EVP's first use
 * in a process initialises OpenSSL 3's provider machinery (its config
 * file, the default provider, method stores): about 1.8 MB of RSS and
 * 2 ms, more than a small model's whole apply on the UE (`modeld patch`,
 * build/modeld-apply, the client library). The functions are deprecated in
 * OpenSSL 3 in favour of EVP, not removed.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "proto/proto.h"

#define DIGEST_PREFIX "sha256:"
#define DIGEST_PREFIX_LEN 7

struct proto_hasher {
    SHA256_CTX ctx;
};

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool proto_name_is_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > PROTO_NAME_SIZE - 1)
        return false;
    if (!is_lower_alnum(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' &&
            s[i] != '-')
            return false;
    return true;
}

bool proto_hex_is_valid(const char *s, size_t len)
{
    if (!s || len != PROTO_HEX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

enum proto_status proto_digest_parse(const char *s, size_t len,
                                     char out_hex[PROTO_HEX_SIZE])
{
    if (!s || len != PROTO_DIGEST_LEN ||
        memcmp(s, DIGEST_PREFIX, DIGEST_PREFIX_LEN) != 0 ||
        !proto_hex_is_valid(s + DIGEST_PREFIX_LEN, PROTO_HEX_LEN))
        return PROTO_BAD_INPUT;
    memcpy(out_hex, s + DIGEST_PREFIX_LEN, PROTO_HEX_LEN);
    out_hex[PROTO_HEX_LEN] = '\0';
    return PROTO_OK;
}

struct proto_hasher *proto_hasher_new(void)
{
    struct proto_hasher *h = calloc(1, sizeof(*h));

    if (h && SHA256_Init(&h->ctx) != 1) {
        free(h);
        return NULL;
    }
    return h;
}

enum proto_status proto_hasher_update(struct proto_hasher *h, const void *data,
                                      size_t len)
{
    if (len == 0)
        return PROTO_OK;
    return SHA256_Update(&h->ctx, data, len) == 1 ? PROTO_OK
                                                  : PROTO_NO_MEMORY;
}

enum proto_status proto_hasher_final(struct proto_hasher *h,
                                     char out_hex[PROTO_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];

    if (SHA256_Final(md, &h->ctx) != 1)
        return PROTO_NO_MEMORY;
    for (unsigned i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out_hex[2 * i] = hex[md[i] >> 4];
        out_hex[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out_hex[PROTO_HEX_LEN] = '\0';
    return PROTO_OK;
}

void proto_hasher_reset(struct proto_hasher *h)
{
    if (h)
        (void)SHA256_Init(&h->ctx);
}

void proto_hasher_free(struct proto_hasher *h)
{
    free(h);
}

void proto_base64url(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 |
                     in[i + 2];

        out[n++] = alphabet[v >> 18 & 63];
        out[n++] = alphabet[v >> 12 & 63];
        out[n++] = alphabet[v >> 6 & 63];
        out[n++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        out[n++] = alphabet[in[i] >> 2];
        out[n++] = alphabet[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 8 | in[i + 1];

        out[n++] = alphabet[v >> 10 & 63];
        out[n++] = alphabet[v >> 4 & 63];
        out[n++] = alphabet[v << 2 & 63];
    }
    out[n] = '\0';
}
