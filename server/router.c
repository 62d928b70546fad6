/*
 * The route table: every path pattern modeld serves, with its methods,
 * handlers, authentication and body kind. Matching is by '/'-separated
 * segments; {family} and {variant} must be valid names, {digest} a
 * sha256 digest, and parameters reach handlers already validated.
 */
#include <stdio.h>
#include <string.h>

#include "server/http.h"

const struct route router_routes[] = {
    {"/healthz", {{"GET", handle_healthz, false, BODY_NONE}}},
    {"/metrics", {{"GET", handle_metrics, false, BODY_NONE}}},
    {"/v1/families", {{"GET", handle_families_list, false, BODY_NONE}}},
    {"/v1/families/{family}",
     {{"GET", handle_family_get, false, BODY_NONE},
      {"PUT", handle_family_put, true, BODY_JSON},
      {"DELETE", handle_family_delete, true, BODY_NONE}}},
    {"/v1/families/{family}/select",
     {{"POST", handle_select, false, BODY_SELECT}}},
    {"/v1/families/{family}/variants/{variant}",
     {{"PUT", handle_variant_put, true, BODY_JSON},
      {"DELETE", handle_variant_delete, true, BODY_NONE}}},
    {"/v1/families/{family}/variants/{variant}/versions",
     {{"GET", handle_variant_versions, false, BODY_NONE}}},
    {"/v1/blobs/{digest}",
     {{"GET", handle_blob_get, false, BODY_NONE},
      {"HEAD", handle_blob_get, false, BODY_NONE},
      {"PUT", handle_blob_put, true, BODY_BLOB}}},
    {"/v1/deltas/{digest}/{digest}",
     {{"GET", handle_delta_get, false, BODY_NONE},
      {"HEAD", handle_delta_get, false, BODY_NONE}}},
    {"/v1/keys", {{"GET", handle_keys, false, BODY_NONE}}},
    {"/v1/jobs/retry", {{"POST", handle_jobs_retry, true, BODY_NONE}}},
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

static bool
segments_fit(const char *pattern, const char *path)
{
    size_t plen = 0, slen = 0;
    const char *p = pattern, *s = path;

    for (;;) {
        const char *pseg = next_segment(p, &plen);
        const char *sseg = next_segment(s, &slen);

        if (!pseg || !sseg)
            return !pseg && !sseg;
        if (pseg[0] == '{') {
            if (slen == 0)
                return false;
        } else if (plen != slen || memcmp(pseg, sseg, plen) != 0) {
            return false;
        }
        p = pseg + plen;
        s = sseg + slen;
    }
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
    *out_bad_param = false;
    for (size_t i = 0; i < router_route_count; i++) {
        const char *p = router_routes[i].pattern, *s = path;
        const char *first = strstr(p, "{digest}");
        bool two = first && strstr(first + 1, "{digest}");
        size_t plen = 0, slen = 0;
        int n = 0;

        if (!segments_fit(p, path))
            continue;
        for (;;) {
            const char *pseg = next_segment(p, &plen);
            const char *sseg = next_segment(s, &slen);

            if (!pseg)
                break;
            if (pseg[0] == '{' && !*out_bad_param) {
                const char *dfield = !two ? "digest" : n == 0 ? "from"
                                                               : "to";

                if (!take_param(pseg, plen, sseg, slen, dfield,
                                out_params[n], err))
                    *out_bad_param = true;
                n++;
            }
            p = pseg + plen;
            s = sseg + slen;
        }
        return (int)i;
    }
    return -1;
}
