/*
 * The select answer as the client needs it: action, the chosen model's
 * digest, size and URL, the delta (format, base, size, URL), recheck time
 * and the members of a signed answer (generation, nonce, expires_at).
 * Everything a later step trusts is checked here: digests are sha256:hex,
 * URLs are paths under /v1/ or absolute http(s) URLs, sizes are integers.
 */
#define _XOPEN_SOURCE 700 /* strptime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "client/internal.h"

int64_t client_rfc3339_parse(const char *s)
{
    struct tm tm;
    const char *p;
    time_t t;

    if (!s)
        return -1;
    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.') /* fractions of a second: ignored */
        while (*++p >= '0' && *p <= '9')
            ;
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t;
}

static bool url_ok(const char *u)
{
    if (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0)
        return true;
    if (strncmp(u, "/v1/", 4) != 0)
        return false;
    for (const char *p = u; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static bool get_digest(json_t *obj, const char *key, char out[PROTO_HEX_SIZE])
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s && proto_digest_parse(s, strlen(s), out) == PROTO_OK;
}

static bool get_size(json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool get_url(json_t *obj, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(obj, key));

    if (!s || strlen(s) >= cap || !url_ok(s))
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static bool get_token(json_t *obj, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(obj, key));

    if (!s)
        return true;
    if (strlen(s) >= cap)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

enum client_status client_decision_parse(const char *body, size_t len,
                                         struct client_decision *out,
                                         char *err, size_t err_len)
{
    struct client_decision d;
    json_t *root = json_loadb(body, len, 0, NULL), *model, *delta, *v;
    const char *action, *what = "not a JSON object";

    memset(&d, 0, sizeof(d));
    if (!json_is_object(root))
        goto bad;
    what = "action";
    action = json_string_value(json_object_get(root, "action"));
    if (!action)
        goto bad;
    if (strcmp(action, "download") == 0)
        d.action = PROTO_ACTION_DOWNLOAD;
    else if (strcmp(action, "delta") == 0)
        d.action = PROTO_ACTION_DELTA;
    else if (strcmp(action, "keep") == 0)
        d.action = PROTO_ACTION_KEEP;
    else if (strcmp(action, "none") == 0)
        d.action = PROTO_ACTION_NONE;
    else
        goto bad;
    v = json_object_get(root, "recheck_after_s");
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        d.recheck_after_s = json_integer_value(v) > 604800
                                ? 604800
                                : (unsigned)json_integer_value(v);
    d.degraded = json_is_true(json_object_get(root, "degraded"));
    v = json_object_get(root, "generation");
    if (json_is_integer(v)) {
        d.has_generation = true;
        d.generation = json_integer_value(v);
    }
    what = "receipt";
    if (!get_token(root, "receipt", d.receipt, sizeof(d.receipt)))
        goto bad;
    what = "nonce";
    if (!get_token(root, "nonce", d.nonce, sizeof(d.nonce)))
        goto bad;
    what = "expires_at";
    if (!get_token(root, "expires_at", d.expires_at, sizeof(d.expires_at)))
        goto bad;
    if (d.expires_at[0]) {
        d.expires_at_s = client_rfc3339_parse(d.expires_at);
        if (d.expires_at_s < 0)
            goto bad;
        d.has_expires_at = true;
    }
    if (d.action == PROTO_ACTION_NONE)
        goto ok;

    what = "variant";
    if (!get_token(root, "variant", d.variant, sizeof(d.variant)))
        goto bad;
    v = json_object_get(root, "version");
    d.version = json_is_integer(v) ? json_integer_value(v) : 0;
    model = json_object_get(root, "model");
    what = "model.digest";
    if (!json_is_object(model) || !get_digest(model, "digest", d.model_hex))
        goto bad;
    what = "model.size_bytes";
    if (!get_size(model, "size_bytes", &d.model_size))
        goto bad;
    what = "model.url";
    if (!get_url(model, "url", d.model_url, sizeof(d.model_url)))
        goto bad;
    what = "model.encoding";
    if (!get_token(model, "encoding", d.model_encoding,
                   sizeof(d.model_encoding)))
        goto bad;
    /* With an encoding, size_bytes is the encoded form's; the model's own
     * size bounds its decoding and the plain fall back. */
    what = "model.decoded_size_bytes";
    if (json_object_get(model, "decoded_size_bytes") &&
        !get_size(model, "decoded_size_bytes", &d.model_decoded_size))
        goto bad;
    if (d.action == PROTO_ACTION_DELTA) {
        delta = json_object_get(root, "delta");
        what = "delta";
        if (!json_is_object(delta))
            goto bad;
        d.has_delta = true;
        what = "delta.from";
        if (!get_digest(delta, "from", d.delta_from_hex))
            goto bad;
        what = "delta.size_bytes";
        if (!get_size(delta, "size_bytes", &d.delta_size))
            goto bad;
        what = "delta.url";
        if (!get_url(delta, "url", d.delta_url, sizeof(d.delta_url)))
            goto bad;
        what = "delta.format";
        if (!get_token(delta, "format", d.delta_format,
                       sizeof(d.delta_format)))
            goto bad;
        if (!d.delta_format[0])
            memcpy(d.delta_format, "zstd-patch", sizeof("zstd-patch"));
    }
ok:
    *out = d;
    json_decref(root);
    return CLIENT_OK;
bad:
    snprintf(err, err_len, "the select answer is not a decision: %s", what);
    json_decref(root);
    return CLIENT_REFUSED;
}
