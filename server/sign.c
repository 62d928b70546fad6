/*
 * Signed answers (RFC 9421 HTTP Message Signatures with Ed25519, RFC 9530
 * Content-Digest) and the keyring behind them: the signing key, the keys
 * still published for verification, and their JWK set, all made once at
 * load. What a signature covers and how the base is built is written out
 * in README.md ("Signed decisions"); a verifier rebuilds the same base
 * from the Signature-Input it receives.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fileio/fileio.h"
#include "proto/proto.h"
#include "server/log.h"
#include "server/file.h"
#include "server/sign.h"

#define MAX_KEY_FILE_BYTES (64 << 10)
#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64
#define B64_SIZE(n) (4 * (((n) + 2) / 3) + 1)
/* The components a signature covers, in order. @method and @path are the
 * request's ("req"), as RFC 9421 section 2.4 asks of a response. */
#define COMPONENTS                                                          \
    "(\"@status\" \"@method\";req \"@path\";req \"content-digest\" "        \
    "\"content-type\")"

struct verify_key {
    unsigned char raw[ED25519_KEY_LEN];
    char kid[SIGN_KID_SIZE];
};

struct keyring {
    EVP_PKEY *sign_key;                       /* NULL: no signing */
    char kid[SIGN_KID_SIZE];
    struct verify_key keys[SIGN_MAX_VERIFY_KEYS + 1];
    size_t key_count;                         /* published, signing first */
    char *jwks;
    char etag[SIGN_KID_SIZE + 2];
    struct keyring *older;                    /* replaced by this one */
};

/* Standard base64 with padding (RFC 4648 section 4). out: B64_SIZE(len). */
static void
b64(const unsigned char *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 members in
 * lexicographic order), base64url. */
static int
thumbprint(const unsigned char raw[ED25519_KEY_LEN], char out[SIGN_KID_SIZE])
{
    char x[B64_SIZE(ED25519_KEY_LEN)];
    char json[128];
    unsigned char md[32];
    unsigned int md_len = 0;
    int n;

    proto_base64url(raw, ED25519_KEY_LEN, x);
    n = snprintf(json, sizeof(json),
                 "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    if (n < 0 || (size_t)n >= sizeof(json) ||
        !EVP_Digest(json, (size_t)n, md, &md_len, EVP_sha256(), NULL))
        return -1;
    proto_base64url(md, md_len, out);
    return 0;
}

/* Reads an Ed25519 key from a PEM file: a private key when want_private,
 * else a public key or the public half of a private one. */
static EVP_PKEY *
read_key(const char *path, bool want_private, char *err, size_t err_len)
{
    size_t len = 0;
    char *pem = file_read_small(path, MAX_KEY_FILE_BYTES, &len);
    EVP_PKEY *key = NULL;
    BIO *bio;

    if (!pem) {
        log_errbuf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio) {
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        if (!key && !want_private) {
            (void)BIO_reset(bio);
            key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        }
        BIO_free(bio);
    }
    file_secret_free(pem, len);
    if (!key) {
        log_errbuf(err, err_len, "%s: not a PEM %s key", path,
             want_private ? "private" : "public or private");
        return NULL;
    }
    if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        log_errbuf(err, err_len, "%s: not an Ed25519 key", path);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* Adds key's public half to the published keys (once). */
static int
publish(struct keyring *kr, EVP_PKEY *key, const char *path, char *err,
        size_t err_len)
{
    struct verify_key vk;
    size_t len = sizeof(vk.raw);

    if (EVP_PKEY_get_raw_public_key(key, vk.raw, &len) != 1 ||
        len != sizeof(vk.raw) || thumbprint(vk.raw, vk.kid) != 0) {
        log_errbuf(err, err_len, "%s: cannot read the public key", path);
        return -1;
    }
    for (size_t i = 0; i < kr->key_count; i++)
        if (strcmp(kr->keys[i].kid, vk.kid) == 0)
            return 0;
    if (kr->key_count >= sizeof(kr->keys) / sizeof(kr->keys[0])) {
        log_errbuf(err, err_len, "verify_keys: at most %d keys",
             SIGN_MAX_VERIFY_KEYS);
        return -1;
    }
    kr->keys[kr->key_count++] = vk;
    return 0;
}

static int
make_jwks(struct keyring *kr)
{
    size_t cap = 16 + kr->key_count * 160;
    size_t len = 0;
    unsigned char md[32];
    unsigned int md_len = 0;
    char etag[SIGN_KID_SIZE];

    kr->jwks = malloc(cap);
    if (!kr->jwks)
        return -1;
    len += (size_t)snprintf(kr->jwks, cap, "{\"keys\":[");
    for (size_t i = 0; i < kr->key_count; i++) {
        char x[B64_SIZE(ED25519_KEY_LEN)];

        proto_base64url(kr->keys[i].raw, ED25519_KEY_LEN, x);
        len += (size_t)snprintf(kr->jwks + len, cap - len,
                                "%s{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                                "\"kid\":\"%s\",\"x\":\"%s\",\"alg\":"
                                "\"EdDSA\",\"use\":\"sig\"}",
                                i ? "," : "", kr->keys[i].kid, x);
    }
    len += (size_t)snprintf(kr->jwks + len, cap - len, "]}");
    if (len >= cap ||
        !EVP_Digest(kr->jwks, len, md, &md_len, EVP_sha256(), NULL))
        return -1;
    proto_base64url(md, 16, etag);
    snprintf(kr->etag, sizeof(kr->etag), "\"%s\"", etag);
    return 0;
}

int
sign_keyring_load(const char *signing_key, const char *verify_keys,
                  struct keyring **out, char *err, size_t err_len)
{
    struct keyring *kr = calloc(1, sizeof(*kr));
    const char *p = verify_keys ? verify_keys : "";

    if (!kr) {
        log_errbuf(err, err_len, "out of memory");
        return -1;
    }
    if (signing_key && signing_key[0]) {
        kr->sign_key = read_key(signing_key, true, err, err_len);
        if (!kr->sign_key ||
            publish(kr, kr->sign_key, signing_key, err, err_len) != 0)
            goto fail;
        snprintf(kr->kid, sizeof(kr->kid), "%s", kr->keys[0].kid);
    }
    while (*p) {
        char path[1024];
        size_t n = strcspn(p, ",");
        size_t s = 0, e = n;
        EVP_PKEY *key;
        int rc;

        while (s < e && (p[s] == ' ' || p[s] == '\t'))
            s++;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e - s >= sizeof(path)) {
            log_errbuf(err, err_len, "verify_keys: a path is too long");
            goto fail;
        }
        memcpy(path, p + s, e - s);
        path[e - s] = '\0';
        p += n + (p[n] == ',');
        if (!path[0])
            continue;
        key = read_key(path, false, err, err_len);
        if (!key)
            goto fail;
        rc = publish(kr, key, path, err, err_len);
        EVP_PKEY_free(key);
        if (rc != 0)
            goto fail;
    }
    if (make_jwks(kr) != 0) {
        log_errbuf(err, err_len, "out of memory");
        goto fail;
    }
    *out = kr;
    return 0;
fail:
    sign_keyring_free(kr);
    return -1;
}

void
sign_keyring_free(struct keyring *kr)
{
    while (kr) {
        struct keyring *older = kr->older;

        EVP_PKEY_free(kr->sign_key);
        free(kr->jwks);
        free(kr);
        kr = older;
    }
}

void
sign_keyring_replaces(struct keyring *kr, struct keyring *old)
{
    kr->older = old;
}

bool
sign_keyring_can_sign(const struct keyring *kr)
{
    return kr && kr->sign_key;
}

const char *
sign_keyring_kid(const struct keyring *kr)
{
    return kr ? kr->kid : "";
}

const char *
sign_keyring_jwks(const struct keyring *kr)
{
    return kr && kr->jwks ? kr->jwks : "{\"keys\":[]}";
}

const char *
sign_keyring_jwks_etag(const struct keyring *kr)
{
    return kr ? kr->etag : "\"none\"";
}

/* A value that may stand in a header and a signature base line. */
static bool
is_header_safe(const char *s, bool in_quotes)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c > 0x7e || (in_quotes && (c == '"' || c == '\\')))
            return false;
    }
    return true;
}

int
sign_base_write(const struct sign_message *msg, const char *content_digest,
                const char *kid, char *out, size_t out_size,
                char *out_params, size_t out_params_size)
{
    size_t path_len = strcspn(msg->path, "?");
    int n, m;

    if (!is_header_safe(msg->method, false) ||
        !is_header_safe(msg->path, false) ||
        !is_header_safe(msg->content_type, false) ||
        !is_header_safe(content_digest, false) || !is_header_safe(kid, true))
        return -1;
    m = snprintf(out_params, out_params_size,
                 COMPONENTS ";created=%" PRId64 ";expires=%" PRId64
                            ";keyid=\"%s\";alg=\"ed25519\"",
                 msg->created_s, msg->expires_s, kid);
    if (m < 0 || (size_t)m >= out_params_size)
        return -1;
    n = snprintf(out, out_size,
                 "\"@status\": %u\n"
                 "\"@method\";req: %s\n"
                 "\"@path\";req: %.*s\n"
                 "\"content-digest\": %s\n"
                 "\"content-type\": %s\n"
                 "\"@signature-params\": %s",
                 msg->status, msg->method, (int)path_len, msg->path,
                 content_digest, msg->content_type, out_params);
    if (n < 0 || (size_t)n >= out_size)
        return -1;
    return n;
}

/*
 * Each thread keeps one signing context, initialized with the keyring's key
 * the first time the thread signs with that keyring: a signed answer then
 * costs the signature itself, not a context and a key lookup (OpenSSL 3
 * fetches the algorithm on every init). Ed25519 is one-shot, and a
 * context so initialized signs any number of messages. Keyrings live until
 * exit, so a pointer identifies one; the context is freed when its thread
 * ends.
 */
struct thread_signer {
    const struct keyring *kr;
    EVP_MD_CTX *ctx;
};

static pthread_key_t signer_key;
static pthread_once_t signer_once = PTHREAD_ONCE_INIT;
static bool signer_key_ok;

static void
thread_signer_free(void *p)
{
    struct thread_signer *t = p;

    EVP_MD_CTX_free(t->ctx);
    free(t);
}

static void
signer_key_init(void)
{
    signer_key_ok = pthread_key_create(&signer_key, thread_signer_free) == 0;
}

static EVP_MD_CTX *
thread_ctx(const struct keyring *kr)
{
    struct thread_signer *t;

    pthread_once(&signer_once, signer_key_init);
    if (!signer_key_ok)
        return NULL;
    t = pthread_getspecific(signer_key);
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t)
            return NULL;
        if (pthread_setspecific(signer_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (t->kr != kr || !t->ctx) {
        EVP_MD_CTX_free(t->ctx);
        t->kr = NULL;
        t->ctx = EVP_MD_CTX_new();
        if (!t->ctx ||
            EVP_DigestSignInit(t->ctx, NULL, NULL, NULL, kr->sign_key) != 1) {
            EVP_MD_CTX_free(t->ctx);
            t->ctx = NULL;
            return NULL;
        }
        t->kr = kr;
    }
    return t->ctx;
}

int
sign_response(const struct keyring *kr, const struct sign_message *msg,
              const void *body, size_t body_len, struct sign_headers *out)
{
    unsigned char md[32];
    unsigned int md_len = 0;
    char md_b64[B64_SIZE(32)];
    unsigned char sig[ED25519_SIG_LEN];
    size_t sig_len = sizeof(sig);
    char sig_b64[B64_SIZE(ED25519_SIG_LEN)];
    char params[sizeof(out->signature_input) - sizeof(SIGN_LABEL)];
    char base[4096];
    EVP_MD_CTX *ctx;
    int base_len;

    if (!sign_keyring_can_sign(kr))
        return -1;
    if (!EVP_Digest(body, body_len, md, &md_len, EVP_sha256(), NULL))
        return -1;
    b64(md, md_len, md_b64);
    snprintf(out->content_digest, sizeof(out->content_digest),
             "sha-256=:%s:", md_b64);
    base_len = sign_base_write(msg, out->content_digest, kr->kid, base,
                               sizeof(base), params, sizeof(params));
    if (base_len < 0)
        return -1;
    ctx = thread_ctx(kr);
    /* Ed25519 is one-shot: no digest, the whole base is signed. */
    if (!ctx ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)base,
                       (size_t)base_len) != 1 ||
        sig_len != sizeof(sig))
        return -1;
    b64(sig, sig_len, sig_b64);
    snprintf(out->signature_input, sizeof(out->signature_input),
             SIGN_LABEL "=%s", params);
    snprintf(out->signature, sizeof(out->signature), SIGN_LABEL "=:%s:",
             sig_b64);
    return 0;
}

int
sign_keygen(const char *path, char out_kid[SIGN_KID_SIZE], char *err,
            size_t err_len)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    unsigned char raw[ED25519_KEY_LEN];
    size_t raw_len = sizeof(raw);
    BIO *mem = NULL;
    char *pem = NULL;
    long pem_len;
    int rc = -1;

    if (!key) {
        log_errbuf(err, err_len, "cannot make an Ed25519 key");
        return -1;
    }
    mem = BIO_new(BIO_s_mem());
    if (!mem || PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL,
                                         NULL) != 1 ||
        EVP_PKEY_get_raw_public_key(key, raw, &raw_len) != 1 ||
        thumbprint(raw, out_kid) != 0) {
        log_errbuf(err, err_len, "cannot encode the key");
        goto out;
    }
    pem_len = BIO_get_mem_data(mem, &pem);
    /* Mode 0600, never over an existing file, and never half-written:
     * a key file that is there is whole. */
    if (pem_len <= 0 ||
        fileio_put(path, pem, (size_t)pem_len, 0600, true) != 0) {
        log_errbuf(err, err_len, "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    BIO_free(mem);
    EVP_PKEY_free(key);
    return rc;
}
