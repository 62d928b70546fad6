/*
 * libFuzzer target for the header and path-segment parsers of proto/:
 * Range, If-None-Match, Accept-Encoding, sha256 digests and names. Input:
 * 8 bytes of body size (little-endian), then a header value; a '\n' in it
 * splits off a second string used as the etag or coding to look for. Each
 * parser's answer is checked against what its contract promises.
 */
#define _GNU_SOURCE /* strcasestr */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STRONG_ETAG                                                            \
    "\"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852" \
    "b855\""

static void check_range(const char *header, uint64_t size)
{
    uint64_t start = UINT64_MAX, len = UINT64_MAX;
    enum proto_range_kind kind = proto_range_parse(header, size, &start, &len);

    switch (kind) {
    case PROTO_RANGE_PARTIAL:
        REQUIRE(len >= 1);
        REQUIRE(start < size);
        REQUIRE(len <= size - start);
        break;
    case PROTO_RANGE_FULL:
    case PROTO_RANGE_UNSATISFIABLE:
        REQUIRE(start == UINT64_MAX && len == UINT64_MAX);
        break;
    default:
        abort();
    }
}

/* A list matches a strong etag ("..." as the server makes them) only
 * through "*" or a tag that contains the etag's opaque part. */
static void check_etag(const char *header, const char *etag)
{
    size_t etag_len = strlen(etag);
    char *inner;

    REQUIRE(etag_len >= 2 && etag[0] == '"' && etag[etag_len - 1] == '"');
    if (!proto_etag_list_matches(header, etag) || strchr(header, '*'))
        return;
    inner = strndup(etag + 1, etag_len - 2);
    REQUIRE(inner != NULL);
    REQUIRE(strstr(header, inner) != NULL);
    free(inner);
}

/* The second string quoted as an etag, or NULL when it holds a quote. */
static char *quoted(const char *s)
{
    size_t len = strlen(s);
    char *q;

    if (strchr(s, '"'))
        return NULL;
    q = malloc(len + 3);
    REQUIRE(q != NULL);
    q[0] = '"';
    memcpy(q + 1, s, len);
    q[len + 1] = '"';
    q[len + 2] = '\0';
    return q;
}

static void check_coding(const char *header, const char *coding)
{
    if (proto_accepts_coding(header, coding))
        REQUIRE(strcasestr(header, coding) != NULL);
}

static bool is_lower_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9][a-z0-9._-]{0,63}, written out independently. */
static bool name_ref(const unsigned char *s, size_t len)
{
    if (len < 1 || len > 64 || !is_lower_alnum(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' &&
            s[i] != '-')
            return false;
    return true;
}

static void check_digest(const char *s, size_t len)
{
    char hex[PROTO_HEX_SIZE];

    memset(hex, 'X', sizeof(hex));
    if (proto_digest_parse(s, len, hex) != PROTO_OK)
        return;
    REQUIRE(len == PROTO_DIGEST_LEN);
    REQUIRE(memcmp(s, "sha256:", 7) == 0);
    REQUIRE(hex[PROTO_HEX_LEN] == '\0');
    REQUIRE(memcmp(hex, s + 7, PROTO_HEX_LEN) == 0);
    REQUIRE(proto_hex_is_valid(hex, PROTO_HEX_LEN));
    for (size_t i = 0; i < PROTO_HEX_LEN; i++)
        REQUIRE((hex[i] >= '0' && hex[i] <= '9') ||
                (hex[i] >= 'a' && hex[i] <= 'f'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t body_size = 0;
    char *header, *second, *etag;
    const uint8_t *rest;
    size_t rest_len, header_len;
    const uint8_t *nl;

    if (size < 8)
        return 0;
    for (int i = 7; i >= 0; i--)
        body_size = body_size << 8 | data[i];
    rest = data + 8;
    rest_len = size - 8;
    nl = memchr(rest, '\n', rest_len);
    header_len = nl ? (size_t)(nl - rest) : rest_len;

    /* Exact-size copies so that ASan sees any read past the NUL. */
    header = malloc(header_len + 1);
    REQUIRE(header != NULL);
    memcpy(header, rest, header_len);
    header[header_len] = '\0';
    second = strndup(nl ? (const char *)nl + 1 : "",
                     nl ? rest_len - header_len - 1 : 0);
    REQUIRE(second != NULL);

    check_range(header, body_size);
    check_range(NULL, body_size);
    check_etag(header, STRONG_ETAG);
    etag = quoted(second);
    if (etag)
        check_etag(header, etag);
    free(etag);
    REQUIRE(!proto_etag_list_matches(NULL, STRONG_ETAG));
    check_coding(header, "zstd");
    if (second[0])
        check_coding(header, second);
    REQUIRE(!proto_accepts_coding(NULL, "zstd"));

    /* Digests and names take (pointer, length): raw bytes, NULs and all. */
    check_digest((const char *)rest, rest_len);
    check_digest(header, strlen(header));
    REQUIRE(proto_name_is_valid((const char *)rest, rest_len) ==
            name_ref(rest, rest_len));
    REQUIRE(proto_name_is_valid(header, header_len) ==
            name_ref((const unsigned char *)header, header_len));
    REQUIRE(proto_hex_is_valid((const char *)rest, rest_len) ==
            (rest_len == PROTO_HEX_LEN &&
             strspn(header, "0123456789abcdef") == PROTO_HEX_LEN &&
             header_len == PROTO_HEX_LEN));

    free(second);
    free(header);
    return 0;
}
