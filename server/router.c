/*
 * The route table: every path pattern modeld serves, with its methods,
 * handlers, authentication and body kind. Matching is by '/'-separated
 * segments, each percent-decoded on its own after the split (so %2F never
 * adds a segment); {family} and {variant} must be valid names, {digest} a
 * sha256 digest, and parameters reach handlers already validated.
 */
#include <stdio.h>
#include <string.h>

#include "server/http.h"

const struct route router_routes[] = {
    {"/healthz", {{"GET", handle_healthz, AUTH_PUBLIC, BODY_NONE}}},
    {"/metrics", {{"GET", handle_metrics, AUTH_PUBLIC, BODY_NONE}}},
    {"/v1/families", {{"GET", handle_families_list, AUTH_PUBLIC, BODY_NONE}}},
    {"/v1/families/{family}",
     {{"GET", handle_family_get, AUTH_PUBLIC, BODY_NONE},
      {"PUT", handle_family_put, AUTH_PUBLISH, BODY_JSON},
      {"DELETE", handle_family_delete, AUTH_PUBLISH, BODY_NONE}}},
    {"/v1/families/{family}/select",
     {{"POST", handle_select, AUTH_PUBLIC, BODY_SELECT}}},
    {"/v1/families/{family}/variants/{variant}",
     {{"PUT", handle_variant_put, AUTH_PUBLISH, BODY_JSON},
      {"DELETE", handle_variant_delete, AUTH_PUBLISH, BODY_NONE}}},
    {"/v1/families/{family}/variants/{variant}/versions",
     {{"GET", handle_variant_versions, AUTH_PUBLIC, BODY_NONE}}},
    {"/v1/blobs/{digest}",
     {{"GET", handle_blob_get, AUTH_PUBLIC, BODY_NONE},
      {"HEAD", handle_blob_get, AUTH_PUBLIC, BODY_NONE},
      {"PUT", handle_blob_put, AUTH_PUBLISH, BODY_BLOB}}},
    {"/v1/deltas/{digest}/{digest}",
     {{"GET", handle_delta_get, AUTH_PUBLIC, BODY_NONE},
      {"HEAD", handle_delta_get, AUTH_PUBLIC, BODY_NONE}}},
    {"/v1/keys", {{"GET", handle_keys, AUTH_PUBLIC, BODY_NONE}}},
    {"/v1/families/{family}/events",
     {{"POST", handle_events_post, AUTH_PUBLIC, BODY_SELECT}}},
    {"/v1/families/{family}/variants/{variant}/versions/{version}",
     {{"PATCH", handle_version_patch, AUTH_ROLLOUT, BODY_JSON},
      {"DELETE", handle_version_delete, AUTH_ROLLOUT, BODY_NONE}}},
    {"/v1/audit", {{"GET", handle_audit, AUTH_ADMIN, BODY_NONE}}},
    {"/v1/jobs/retry", {{"POST", handle_jobs_retry, AUTH_ADMIN, BODY_NONE}}},
};

const size_t router_route_count = ARRAY_SIZE(router_routes);

/* Next segment of s (after a '/'), its length in *len; NULL at the end. */
static const char *
next_segment(const char *s, size_t *len)
{
    const char *slash;

    if (*s != '/')
        return NULL;
    s++;
    slash = strchr(s, '/');
    *len = slash ? (size_t)(slash - s) : strlen(s);
    return s;
}

/* The longest pattern has 7 segments; a path with more matches nothing. */
#define PATH_MAX_SEGMENTS 8
/* Decoding never lengthens a segment; a longer path matches nothing (the
 * longest valid path, fully percent-encoded, is under 700 bytes). */
#define PATH_MAX_BYTES 2048

/* A request path split on '/' and then percent-decoded segment by
 * segment: seg[i] points into buf, len[i] bytes, not NUL-terminated. */
struct decoded_path {
    size_t count;
    const char *seg[PATH_MAX_SEGMENTS];
    size_t len[PATH_MAX_SEGMENTS];
    char buf[PATH_MAX_BYTES];
};

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one segment into out (room for len bytes). A segment with a
 * malformed escape or one that decodes to NUL is kept as sent: its '%'
 * then fails name and digest validation (400) and every literal (404). */
static size_t
decode_segment(const char *s, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            memcpy(out, s, len);
            return len;
        }
        out[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return n;
}

/* Splits and decodes path into dp; false when it cannot match a route
 * (no leading '/', too many segments, too long). */
static bool
path_decode(const char *path, struct decoded_path *dp)
{
    const char *s = path;
    size_t used = 0, len = 0;

    dp->count = 0;
    if (strlen(path) >= sizeof(dp->buf))
        return false;
    for (const char *seg; (seg = next_segment(s, &len)) != NULL;
         s = seg + len) {
        if (dp->count == PATH_MAX_SEGMENTS)
            return false;
        dp->seg[dp->count] = dp->buf + used;
        dp->len[dp->count] = decode_segment(seg, len, dp->buf + used);
        used += dp->len[dp->count];
        dp->count++;
    }
    return *s == '\0' && dp->count > 0;
}

static bool
segments_fit(const char *pattern, const struct decoded_path *dp)
{
    size_t plen = 0, k = 0;
    const char *p = pattern, *pseg;

    for (; (pseg = next_segment(p, &plen)) != NULL; p = pseg + plen, k++) {
        if (k == dp->count)
            return false;
        if (pseg[0] == '{') {
            if (dp->len[k] == 0)
                return false;
        } else if (plen != dp->len[k] ||
                   memcmp(pseg, dp->seg[k], plen) != 0) {
            return false;
        }
    }
    return k == dp->count;
}

/* Validates one parameter segment into out; "from"/"to" name the two
 * digests of a delta path, "digest" a blob's. */
static bool
take_param(const char *pseg, size_t plen, const char *sseg, size_t slen,
           const char *digest_field, char out[PROTO_HEX_SIZE],
           struct proto_error *err)
{
    char field[PROTO_NAME_SIZE];

    if (plen == 8 && memcmp(pseg, "{digest}", 8) == 0) {
        if (proto_digest_parse(sseg, slen, out) != PROTO_OK) {
            proto_error_set(err, PROTO_ERR_BAD_DIGEST, digest_field,
                            "%s: expected sha256:<64 lowercase hex>",
                            digest_field);
            return false;
        }
        return true;
    }
    snprintf(field, sizeof(field), "%.*s", (int)(plen - 2), pseg + 1);
    if (!proto_name_is_valid(sseg, slen)) {
        proto_error_set(err, PROTO_ERR_BAD_NAME, field,
                        "%s: a name is 1 to 64 of [a-z0-9._-], starting "
                        "with a letter or digit",
                        field);
        return false;
    }
    memcpy(out, sseg, slen);
    out[slen] = '\0';
    return true;
}

int
router_match(const char *path,
             char out_params[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE],
             struct proto_error *err, bool *out_bad_param)
{
    struct decoded_path dp;

    *out_bad_param = false;
    if (!path_decode(path, &dp))
        return -1;
    for (size_t i = 0; i < router_route_count; i++) {
        const char *p = router_routes[i].pattern, *pseg;
        const char *first = strstr(p, "{digest}");
        bool two = first && strstr(first + 1, "{digest}");
        size_t plen = 0, k = 0;
        int n = 0;

        if (!segments_fit(p, &dp))
            continue;
        for (; (pseg = next_segment(p, &plen)) != NULL;
             p = pseg + plen, k++) {
            if (pseg[0] == '{' && !*out_bad_param) {
                const char *dfield = !two ? "digest" : n == 0 ? "from"
                                                               : "to";

                if (!take_param(pseg, plen, dp.seg[k], dp.len[k], dfield,
                                out_params[n], err))
                    *out_bad_param = true;
                n++;
            }
        }
        return (int)i;
    }
    return -1;
}
