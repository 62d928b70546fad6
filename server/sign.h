/*
 * Signed answers: HTTP Message Signatures (RFC 9421, Ed25519) over a
 * response, with its Content-Digest (RFC 9530, sha-256), and the public
 * keys as a JWK set (RFC 7517/8037). Keys are loaded once (start-up and
 * SIGHUP) into an immutable keyring; signing a response then costs one
 * SHA-256 and one Ed25519 signature and reads nothing from disk.
 */
#ifndef SERVER_SIGN_H
#define SERVER_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIGN_LABEL "modeld"
#define SIGN_KID_SIZE 44              /* base64url SHA-256 thumbprint + NUL */
#define SIGN_MAX_VERIFY_KEYS 8

struct keyring;

/*
 * Loads the keyring: signing_key, a PEM Ed25519 private key ("" for none),
 * and verify_keys, a comma-separated list of PEM files holding Ed25519
 * public (or private) keys that are still published for verification.
 * Returns 0 and *out (free with sign_keyring_free), or -1 with a message
 * in err. A keyring without a signing key signs nothing but still
 * publishes its verify keys.
 */
int sign_keyring_load(const char *signing_key, const char *verify_keys,
                      struct keyring **out, char *err, size_t err_len);

/* Frees kr and every keyring it replaced. NULL does nothing. */
void sign_keyring_free(struct keyring *kr);

/* Records that kr replaces old (SIGHUP): old stays valid, for threads
 * that still sign with it, until kr is freed. */
void sign_keyring_replaces(struct keyring *kr, struct keyring *old);

/* True when kr has a private key to sign with. kr may be NULL. */
bool sign_keyring_can_sign(const struct keyring *kr);

/* The signing key's kid (RFC 7638 thumbprint), "" without one. */
const char *sign_keyring_kid(const struct keyring *kr);

/* {"keys":[JWK, ...]}: the signing key's public half first, then the
 * verify keys (duplicates dropped). Owned by kr. */
const char *sign_keyring_jwks(const struct keyring *kr);
/* A strong ETag of the JWK set, with its quotes. */
const char *sign_keyring_jwks_etag(const struct keyring *kr);

/* The three headers of a signed answer. */
struct sign_headers {
    char content_digest[64];          /* sha-256=:<base64>: */
    char signature_input[640];        /* modeld=(...);created=..;... */
    char signature[112];              /* modeld=:<base64>: */
};

/* What a signature covers besides the body. */
struct sign_message {
    unsigned status;                  /* the answer's status */
    const char *method;               /* the request's method */
    const char *path;                 /* the request's path (a query, if
                                         any, is not part of @path) */
    const char *content_type;         /* the answer's Content-Type */
    int64_t created_s;
    int64_t expires_s;
};

/*
 * Writes the RFC 9421 signature base for msg with the given content digest
 * header value and kid into out (NUL-terminated). Returns its length, or
 * -1 when it does not fit or a value holds a byte that cannot appear in a
 * header (CR, LF, NUL, a quote in kid). The signature params string
 * (what follows "modeld=" in Signature-Input) goes to out_params.
 */
int sign_base_write(const struct sign_message *msg,
                    const char *content_digest, const char *kid, char *out,
                    size_t out_size, char *out_params,
                    size_t out_params_size);

/*
 * Signs an answer: Content-Digest of body, the signature base of msg and
 * one Ed25519 signature. Returns 0, or -1 (no signing key, a value that
 * cannot be signed, or an OpenSSL failure).
 */
int sign_response(const struct keyring *kr, const struct sign_message *msg,
                  const void *body, size_t body_len,
                  struct sign_headers *out);

/*
 * Writes a new Ed25519 private key as PEM (PKCS #8) to path, created with
 * mode 0600 and never over an existing file; fsync'ed. Returns 0 with the
 * key's kid in out_kid, or -1 with a message in err.
 */
int sign_keygen(const char *path, char out_kid[SIGN_KID_SIZE], char *err,
                size_t err_len);

#endif
