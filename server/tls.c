/*
 * Reloadable TLS credentials. Each load makes a new immutable pair and
 * publishes it with an atomic pointer swap; handshakes read the pointer.
 * Old pairs are kept until tls_unload because GnuTLS may still use them
 * for sessions that started before the reload: the handful of reloads in a
 * daemon's life makes that cheaper than reference counting per session.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "server/file.h"
#include "server/tls.h"

#define MAX_CHAIN 8
#define MAX_PEM_BYTES (1 << 20)

struct pair {
    gnutls_pcert_st chain[MAX_CHAIN];
    unsigned chain_len;
    gnutls_privkey_t key;
    struct pair *older;
};

static _Atomic(struct pair *) current;

/* A PEM file as a GnuTLS datum (free its data with free()). */
static int
read_pem(const char *path, gnutls_datum_t *out, char *err, size_t err_len)
{
    size_t len = 0;
    char *buf = file_read_small(path, MAX_PEM_BYTES, &len);

    if (!buf) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    out->data = (unsigned char *)buf;
    out->size = (unsigned)len;
    return 0;
}

static void
pair_free(struct pair *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->chain_len; i++)
        gnutls_pcert_deinit(&p->chain[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    free(p);
}

/* Does the private key belong to the leaf certificate? */
static int
key_matches(const struct pair *p)
{
    unsigned char a[64], b[64];
    size_t alen = sizeof(a), blen = sizeof(b);
    gnutls_pubkey_t pub = NULL;
    int ok = 0;

    if (gnutls_pubkey_init(&pub) < 0)
        return 0;
    if (gnutls_pubkey_import_privkey(pub, p->key, 0, 0) >= 0 &&
        gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &alen) >=
            0 &&
        gnutls_pubkey_get_key_id(p->chain[0].pubkey, GNUTLS_KEYID_USE_SHA256,
                                 b, &blen) >= 0)
        ok = alen == blen && memcmp(a, b, alen) == 0;
    gnutls_pubkey_deinit(pub);
    return ok;
}

int
tls_load(const char *cert_path, const char *key_path, char *err,
         size_t err_len)
{
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
    struct pair *p = calloc(1, sizeof(*p));
    int rc = -1, grc;

    if (!p) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (read_pem(cert_path, &cert, err, err_len) != 0 ||
        read_pem(key_path, &key, err, err_len) != 0)
        goto out;
    p->chain_len = MAX_CHAIN;
    grc = gnutls_pcert_list_import_x509_raw(p->chain, &p->chain_len, &cert,
                                            GNUTLS_X509_FMT_PEM, 0);
    if (grc < 0 || p->chain_len == 0) {
        p->chain_len = 0;
        snprintf(err, err_len, "%s: not a PEM certificate chain: %s",
                 cert_path, gnutls_strerror(grc));
        goto out;
    }
    if ((grc = gnutls_privkey_init(&p->key)) < 0 ||
        (grc = gnutls_privkey_import_x509_raw(p->key, &key,
                                              GNUTLS_X509_FMT_PEM, NULL,
                                              0)) < 0) {
        snprintf(err, err_len, "%s: not a PEM private key: %s", key_path,
                 gnutls_strerror(grc));
        goto out;
    }
    if (!key_matches(p)) {
        snprintf(err, err_len, "%s and %s do not match: the key is not the "
                               "certificate's",
                 key_path, cert_path);
        goto out;
    }
    p->older = atomic_load(&current);
    atomic_store(&current, p);
    p = NULL;
    rc = 0;
out:
    pair_free(p);
    file_secret_free(key.data, key.size);
    free(cert.data);
    return rc;
}

const char *
tls_validity_warning(long long now, char *buf, size_t len)
{
    struct pair *p = atomic_load(&current);
    gnutls_x509_crt_t crt = NULL;
    const char *warning = NULL;
    long long from, until;

    if (!p || p->chain_len == 0 || gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    if (gnutls_x509_crt_import(crt, &p->chain[0].cert, GNUTLS_X509_FMT_DER) <
        0)
        goto out;
    from = (long long)gnutls_x509_crt_get_activation_time(crt);
    until = (long long)gnutls_x509_crt_get_expiration_time(crt);
    if (until != -1 && now > until) {
        snprintf(buf, len, "the TLS certificate expired %lld s ago; "
                           "clients will refuse it",
                 now - until);
        warning = buf;
    } else if (from != -1 && now < from) {
        snprintf(buf, len, "the TLS certificate is not valid for another "
                           "%lld s; clients will refuse it",
                 from - now);
        warning = buf;
    }
out:
    gnutls_x509_crt_deinit(crt);
    return warning;
}

static int
retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn,
         int nreqs, const gnutls_pk_algorithm_t *pk_algos,
         int pk_algos_length, gnutls_pcert_st **pcert,
         unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    struct pair *p = atomic_load(&current);

    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    if (!p)
        return -1;
    *pcert = p->chain;
    *pcert_length = p->chain_len;
    *pkey = p->key;
    return 0;
}

void *
tls_cert_callback(void)
{
    return (void *)(gnutls_certificate_retrieve_function2 *)retrieve;
}

void
tls_unload(void)
{
    struct pair *p = atomic_exchange(&current, NULL);

    while (p) {
        struct pair *older = p->older;

        pair_free(p);
        p = older;
    }
}
