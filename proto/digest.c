/*
 * Names, digests and SHA-256: the syntax of family/variant names and of
 * "sha256:<hex>" strings, and a streaming hasher over OpenSSL's EVP API.
 * Reading the bytes to hash is the caller's job.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto/proto.h"

#define DIGEST_PREFIX "sha256:"
#define DIGEST_PREFIX_LEN 7

struct proto_hasher {
    EVP_MD_CTX *ctx;
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

    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        proto_hasher_free(h);
        return NULL;
    }
    return h;
}

enum proto_status proto_hasher_update(struct proto_hasher *h, const void *data,
                                      size_t len)
{
    if (len == 0)
        return PROTO_OK;
    return EVP_DigestUpdate(h->ctx, data, len) == 1 ? PROTO_OK
                                                    : PROTO_NO_MEMORY;
}

enum proto_status proto_hasher_final(struct proto_hasher *h,
                                     char out_hex[PROTO_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;

    if (EVP_DigestFinal_ex(h->ctx, md, &md_len) != 1 || md_len != 32)
        return PROTO_NO_MEMORY;
    for (unsigned i = 0; i < md_len; i++) {
        out_hex[2 * i] = hex[md[i] >> 4];
        out_hex[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out_hex[PROTO_HEX_LEN] = '\0';
    return PROTO_OK;
}

void proto_hasher_reset(struct proto_hasher *h)
{
    if (h)
        (void)EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void proto_hasher_free(struct proto_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}
