/*
 * Verifies signed select answers: an RFC 9421 HTTP message signature
 * labelled "modeld" (Signature-Input / Signature, alg ed25519) over the
 * components API.md fixes ("@method" "@path" "content-digest"
 * "content-type"), and the RFC 9530 Content-Digest (sha-256) that binds the
 * body to it. The components are read from Signature-Input as the signer
 * listed them (a "@method";req form included), the signature base is
 * rebuilt per RFC 9421 section 2.5, and anything not understood is refused.
 * Keys are raw Ed25519 public keys (PEM or JWKS); OpenSSL EVP checks.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "client/internal.h"

#define LABEL "modeld"
#define MAX_COMPONENTS 16
#define CLOCK_SKEW_S 60

/* ---- base64 -------------------------------------------------------------- */

static int b64_value(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

long client_base64_decode(const char *in, size_t in_len, unsigned char *out,
                          size_t out_cap)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0, i;

    while (in_len > 0 && in[in_len - 1] == '=')
        in_len--;
    for (i = 0; i < in_len; i++) {
        int v = b64_value((unsigned char)in[i]);

        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == out_cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
        return -1; /* a dangling character or non-zero padding bits */
    return (long)n;
}

void client_base64_encode(const unsigned char *in, size_t len, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
                     in[i + 2];

        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
        out[o++] = t[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < len ? t[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* ---- keys ---------------------------------------------------------------- */

static int add_key(struct client_keyring *r, const char *kid,
                   const unsigned char key[32])
{
    if (r->count == ARRAY_SIZE(r->keys) || strlen(kid) >= CLIENT_KID_SIZE)
        return -1;
    snprintf(r->keys[r->count].kid, CLIENT_KID_SIZE, "%s", kid);
    memcpy(r->keys[r->count].key, key, 32);
    r->count++;
    return 0;
}

static enum client_status pem_key(const char *text, size_t len,
                                  const char *kid, struct client_keyring *out,
                                  char *err, size_t err_len)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *pk = NULL;
    unsigned char raw[32];
    size_t raw_len = sizeof(raw);
    enum client_status rc = CLIENT_BAD_ARGS;

    if (!bio)
        return CLIENT_LOCAL_ERROR;
    pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pk) {
        /* A private key file (modeld keygen) holds the public key too. */
        (void)BIO_reset(bio);
        pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    }
    if (!pk || EVP_PKEY_id(pk) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(pk, raw, &raw_len) != 1 ||
        raw_len != 32) {
        snprintf(err, err_len, "verify key: not an Ed25519 PEM key");
        goto out;
    }
    if (add_key(out, kid ? kid : "", raw) != 0) {
        snprintf(err, err_len, "verify key: kid too long");
        goto out;
    }
    rc = CLIENT_OK;
out:
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rc;
}

enum client_status client_keyring_parse(const char *text, size_t len,
                                        const char *kid_hint,
                                        struct client_keyring *out, char *err,
                                        size_t err_len)
{
    json_t *root, *k;
    size_t i;
    enum client_status rc = CLIENT_BAD_ARGS;

    memset(out, 0, sizeof(*out));
    if (len > 0 && memchr(text, '{', len) == NULL)
        return pem_key(text, len, kid_hint, out, err, err_len);
    root = json_loadb(text, len, 0, NULL);
    if (!json_is_array(json_object_get(root, "keys"))) {
        snprintf(err, err_len, "verify key: neither PEM nor a JWKS");
        goto out;
    }
    json_array_foreach(json_object_get(root, "keys"), i, k) {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *crv = json_string_value(json_object_get(k, "crv"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *x = json_string_value(json_object_get(k, "x"));
        unsigned char raw[32];

        if (!kty || !crv || !x || strcmp(kty, "OKP") != 0 ||
            strcmp(crv, "Ed25519") != 0)
            continue;
        if (client_base64_decode(x, strlen(x), raw, sizeof(raw)) != 32 ||
            add_key(out, kid ? kid : "", raw) != 0) {
            snprintf(err, err_len, "verify key: a bad Ed25519 JWK");
            goto out;
        }
    }
    if (out->count == 0) {
        snprintf(err, err_len, "verify key: no Ed25519 key in the JWKS");
        goto out;
    }
    rc = CLIENT_OK;
out:
    json_decref(root);
    return rc;
}

/* ---- structured fields (RFC 8941), the little the headers need ---------- */

/* The value of member label in a dictionary header, outside quotes and
 * parentheses; *out_len its length. NULL when absent. */
static const char *dict_member(const char *h, const char *label,
                               size_t *out_len)
{
    size_t llen = strlen(label);
    const char *p = h;

    while (p && *p) {
        const char *key, *val;
        int depth = 0;
        bool quoted = false;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        key = p;
        while (*p && *p != '=' && *p != ',')
            p++;
        if (*p != '=')
            return NULL;
        val = ++p;
        for (; *p; p++) {
            if (quoted) {
                if (*p == '\\' && p[1])
                    p++;
                else if (*p == '"')
                    quoted = false;
            } else if (*p == '"') {
                quoted = true;
            } else if (*p == '(') {
                depth++;
            } else if (*p == ')') {
                depth--;
            } else if (*p == ',' && depth == 0) {
                break;
            }
        }
        if ((size_t)(val - 1 - key) == llen && strncmp(key, label, llen) == 0) {
            const char *end = p;

            while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *out_len = (size_t)(end - val);
            return val;
        }
    }
    return NULL;
}

/* An sf-string at *p ("..."); copies it unescaped. */
static bool sf_string(const char **pp, const char *end, char *out, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;

    if (p >= end || *p != '"')
        return false;
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\') {
            if (++p >= end || (*p != '"' && *p != '\\'))
                return false;
        }
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e ||
            n + 1 >= cap)
            return false;
        out[n++] = *p;
    }
    if (p >= end)
        return false;
    out[n] = '\0';
    *pp = p + 1;
    return true;
}

struct sig_params {
    struct {
        char name[64];
        bool req;
        const char *text;     /* the item as serialised in the list */
        size_t text_len;
    } comp[MAX_COMPONENTS];
    size_t comp_count;
    bool has_created, has_expires;
    int64_t created, expires;
    char keyid[CLIENT_KID_SIZE];
    char alg[32];
};

/* Parses '("a" "b";req);created=1;keyid="k";...'. */
static bool sig_params_parse(const char *v, size_t len, struct sig_params *sp)
{
    const char *p = v, *end = v + len;

    memset(sp, 0, sizeof(*sp));
    if (p >= end || *p != '(')
        return false;
    p++;
    for (;;) {
        const char *item = p;

        while (p < end && *p == ' ')
            p++;
        if (p < end && *p == ')') {
            p++;
            break;
        }
        item = p;
        if (sp->comp_count == MAX_COMPONENTS ||
            !sf_string(&p, end, sp->comp[sp->comp_count].name,
                       sizeof(sp->comp[0].name)))
            return false;
        while (p < end && *p == ';') {
            const char *k = ++p;

            while (p < end && (islower((unsigned char)*p) || *p == '-'))
                p++;
            if ((size_t)(p - k) == 3 && strncmp(k, "req", 3) == 0 &&
                (p >= end || *p != '='))
                sp->comp[sp->comp_count].req = true;
            else
                return false; /* sf, key, bs, tr, name: not supported */
        }
        sp->comp[sp->comp_count].text = item;
        sp->comp[sp->comp_count].text_len = (size_t)(p - item);
        sp->comp_count++;
        if (p < end && *p == ' ')
            continue;
        if (p < end && *p == ')') {
            p++;
            break;
        }
        return false;
    }
    while (p < end) {
        char key[16];
        size_t kn = 0;

        if (*p != ';')
            return false;
        p++;
        while (p < end && (islower((unsigned char)*p) || *p == '-') &&
               kn + 1 < sizeof(key))
            key[kn++] = *p++;
        key[kn] = '\0';
        if (p >= end || *p != '=')
            return false;
        p++;
        if (strcmp(key, "created") == 0 || strcmp(key, "expires") == 0) {
            char *num_end;
            long long n;

            if (p >= end || !isdigit((unsigned char)*p))
                return false;
            n = strtoll(p, &num_end, 10);
            if (num_end > end)
                return false;
            p = num_end;
            if (key[0] == 'c') {
                sp->created = n;
                sp->has_created = true;
            } else {
                sp->expires = n;
                sp->has_expires = true;
            }
        } else if (strcmp(key, "keyid") == 0) {
            if (!sf_string(&p, end, sp->keyid, sizeof(sp->keyid)))
                return false;
        } else if (strcmp(key, "alg") == 0) {
            if (!sf_string(&p, end, sp->alg, sizeof(sp->alg)))
                return false;
        } else if (strcmp(key, "nonce") == 0 || strcmp(key, "tag") == 0) {
            char skip[256];

            if (!sf_string(&p, end, skip, sizeof(skip)))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* The value of one covered component; NULL when we cannot know it. */
static const char *component_value(const struct client_signed *s,
                                   const char *name, bool req,
                                   char *buf, size_t cap)
{
    if (strcmp(name, "@status") == 0 && !req && s->status > 0) {
        snprintf(buf, cap, "%ld", s->status);
        return buf;
    }
    if (strcmp(name, "@method") == 0)
        return s->method;
    if (strcmp(name, "@path") == 0)
        return s->path;
    if (req) /* request headers: the only one we send is content-type */
        return strcmp(name, "content-type") == 0 ? "application/json" : NULL;
    if (strcmp(name, "content-type") == 0)
        return s->content_type;
    if (strcmp(name, "content-digest") == 0)
        return s->content_digest;
    return NULL;
}

static bool covers(const struct sig_params *sp, const char *name)
{
    for (size_t i = 0; i < sp->comp_count; i++)
        if (strcmp(sp->comp[i].name, name) == 0 &&
            (!sp->comp[i].req || name[0] == '@'))
            return true;
    return false;
}

static enum client_status check_content_digest(const struct client_signed *s,
                                               char *err, size_t err_len)
{
    unsigned char want[SHA256_DIGEST_LENGTH], got[64];
    const char *v;
    size_t vlen;
    long n;

    v = s->content_digest ? dict_member(s->content_digest, "sha-256", &vlen)
                          : NULL;
    if (!v || vlen < 2 || v[0] != ':' || v[vlen - 1] != ':') {
        snprintf(err, err_len, "signed answer: no Content-Digest sha-256");
        return CLIENT_VERIFY_FAILED;
    }
    n = client_base64_decode(v + 1, vlen - 2, got, sizeof(got));
    SHA256(s->body, s->body_len, want);
    if (n != SHA256_DIGEST_LENGTH ||
        CRYPTO_memcmp(want, got, SHA256_DIGEST_LENGTH) != 0) {
        snprintf(err, err_len,
                 "signed answer: Content-Digest is not the body's");
        return CLIENT_VERIFY_FAILED;
    }
    return CLIENT_OK;
}

static bool ed25519_ok(const unsigned char key[32], const void *msg,
                       size_t len, const unsigned char sig[64])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key,
                                               32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = false;

    if (pk && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
        EVP_DigestVerify(ctx, sig, 64, msg, len) == 1)
        ok = true;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok;
}

enum client_status client_signature_verify(const struct client_signed *s,
                                           const struct client_keyring *ring,
                                           const char *want_kid,
                                           int64_t now_s, char *err,
                                           size_t err_len)
{
    static const char *const required[] = { "@method", "@path",
                                            "content-digest",
                                            "content-type" };
    struct sig_params sp;
    const char *in, *sv;
    size_t in_len, sv_len, base_len = 0;
    unsigned char sig[64];
    const unsigned char *key = NULL;
    char *base = NULL;
    size_t base_cap = 8192;
    enum client_status rc = CLIENT_VERIFY_FAILED;

#define FAIL(...)                                                             \
    do {                                                                      \
        snprintf(err, err_len, "signed answer: " __VA_ARGS__);                \
        goto out;                                                             \
    } while (0)

    if (!s->signature_input || !s->signature)
        FAIL("no Signature-Input/Signature headers");
    in = dict_member(s->signature_input, LABEL, &in_len);
    sv = dict_member(s->signature, LABEL, &sv_len);
    if (!in || !sv)
        FAIL("no signature labelled \"" LABEL "\"");
    if (!sig_params_parse(in, in_len, &sp))
        FAIL("Signature-Input is malformed or uses unsupported parameters");
    if (strcmp(sp.alg, "ed25519") != 0)
        FAIL("alg is \"%s\", not \"ed25519\"", sp.alg);
    if (!sp.keyid[0] || !sp.has_created || !sp.has_expires)
        FAIL("keyid, created and expires are required");
    for (size_t i = 0; i < ARRAY_SIZE(required); i++)
        if (!covers(&sp, required[i]))
            FAIL("\"%s\" is not covered", required[i]);
    if (sp.expires <= now_s)
        FAIL("expired (expires %lld, now %lld)", (long long)sp.expires,
             (long long)now_s);
    if (sp.created > now_s + CLOCK_SKEW_S)
        FAIL("created in the future (%lld)", (long long)sp.created);
    if (want_kid && want_kid[0] && strcmp(want_kid, sp.keyid) != 0)
        FAIL("keyid \"%s\" is not the pinned \"%s\"", sp.keyid, want_kid);
    for (size_t i = 0; i < ring->count && !key; i++)
        if (strcmp(ring->keys[i].kid, sp.keyid) == 0 ||
            (ring->keys[i].kid[0] == '\0' && ring->count == 1))
            key = ring->keys[i].key;
    if (!key)
        FAIL("no key for keyid \"%s\"", sp.keyid);
    if (sv_len < 2 || sv[0] != ':' || sv[sv_len - 1] != ':' ||
        client_base64_decode(sv + 1, sv_len - 2, sig, sizeof(sig)) != 64)
        FAIL("Signature is not a 64-byte byte sequence");
    if (check_content_digest(s, err, err_len) != CLIENT_OK)
        goto out;

    /* RFC 9421 section 2.5: one line per component, then the params. */
    base = malloc(base_cap);
    if (!base) {
        rc = CLIENT_LOCAL_ERROR;
        FAIL("out of memory");
    }
    for (size_t i = 0; i < sp.comp_count; i++) {
        char num[24];
        const char *val = component_value(s, sp.comp[i].name, sp.comp[i].req,
                                          num, sizeof(num));
        int n;

        if (!val)
            FAIL("cannot check covered component \"%s\"", sp.comp[i].name);
        n = snprintf(base + base_len, base_cap - base_len, "%.*s: %s\n",
                     (int)sp.comp[i].text_len, sp.comp[i].text, val);
        if (n < 0 || (size_t)n >= base_cap - base_len)
            FAIL("covered components too long");
        base_len += (size_t)n;
    }
    {
        int n = snprintf(base + base_len, base_cap - base_len,
                         "\"@signature-params\": %.*s", (int)in_len, in);

        if (n < 0 || (size_t)n >= base_cap - base_len)
            FAIL("Signature-Input too long");
        base_len += (size_t)n;
    }
    if (!ed25519_ok(key, base, base_len, sig))
        FAIL("the Ed25519 signature does not verify (key \"%s\")", sp.keyid);
    rc = CLIENT_OK;
out:
#undef FAIL
    free(base);
    return rc;
}
