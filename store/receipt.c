/*
 * Event receipts: what makes a UE's failure report count toward pausing a
 * rollout (README "Event receipts"). The select answer names a version and
 * carries receipt = base64url(HMAC-SHA256(key, "modeld-receipt/1" LF ue
 * LF family LF variant LF version LF digest)); an event that sends it back
 * was sent by a UE id that this catalog's daemons answered with that
 * version. UE ids are printable ASCII and names have no LF, so the fields
 * cannot be shifted into one another.
 *
 * The key is the catalog's: 32 random bytes (hex) in table secrets, made
 * by the first daemon that opens the catalog (INSERT ... ON CONFLICT DO
 * NOTHING, then read back, so daemons starting together agree). Every
 * daemon of a PostgreSQL catalog therefore checks the receipts the others
 * gave, and receipts outlive a restart. Whoever can read the catalog can
 * make receipts; such a party can also pause a version directly.
 *
 * HMAC (RFC 2104) is computed from two SHA-256 states made once, after
 * the key's inner and outer pads: each receipt copies them (OpenSSL's
 * one-shot HMAC() fetches its algorithms on every call, ~7 us; this is
 * under 1 us, on the select path of every report that sends a ue).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "store/internal.h"

#define KEY_NAME "event_receipt_key"
#define KEY_BYTES 32
#define RECEIPT_CHARS 43          /* base64url of 32 bytes, no padding */

static const char *const sql_insert =
    "INSERT INTO secrets(name, value) VALUES ('" KEY_NAME "', ?1) "
    "ON CONFLICT DO NOTHING";
static const char *const sql_select =
    "SELECT value FROM secrets WHERE name = '" KEY_NAME "'";

/* Runs one statement on the writer (at open); the key's hex into hex
 * when it returns a row. */
static enum store_status run_once(struct store *st, const char *sql,
                                  const char *bind, char *hex, size_t size)
{
    struct db_stmt *s = NULL;
    enum store_status rc = STORE_OK;
    int src;

    if (db_prepare(st->db, sql, &s) != 0)
        return store_err_conn(st, st->db, "receipt key: prepare", DB_ERROR);
    if (bind)
        db_bind_text(s, 1, bind);
    src = db_step(s);
    if (src == DB_ROW && hex) {
        const char *t = db_column_text(s, 0);

        snprintf(hex, size, "%s", t ? t : "");
    } else if (src != DB_ROW && src != DB_DONE) {
        rc = store_err_conn(st, st->db, "receipt key", src);
    }
    db_finalize(s);
    return rc;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The two pad states of key, or NULL in both on failure. */
static void pads_make(struct store *st, const unsigned char key[KEY_BYTES])
{
    unsigned char pad[2][64];
    EVP_MD_CTX *ctx[2] = {EVP_MD_CTX_new(), EVP_MD_CTX_new()};
    bool ok = ctx[0] && ctx[1];

    for (size_t i = 0; i < 64; i++) {
        unsigned char k = i < KEY_BYTES ? key[i] : 0;

        pad[0][i] = k ^ 0x36;
        pad[1][i] = k ^ 0x5c;
    }
    for (int p = 0; ok && p < 2; p++)
        ok = EVP_DigestInit_ex(ctx[p], EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx[p], pad[p], 64) == 1;
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok) {
        EVP_MD_CTX_free(ctx[0]);
        EVP_MD_CTX_free(ctx[1]);
        return;
    }
    st->receipt_inner = ctx[0];
    st->receipt_outer = ctx[1];
}

void store_receipt_key_free(struct store *st)
{
    EVP_MD_CTX_free(st->receipt_inner);
    EVP_MD_CTX_free(st->receipt_outer);
    st->receipt_inner = st->receipt_outer = NULL;
}

enum store_status store_receipt_key_load(struct store *st)
{
    unsigned char fresh[KEY_BYTES], key[KEY_BYTES];
    char hex[2 * KEY_BYTES + 1], got[2 * KEY_BYTES + 8] = "";
    enum store_status rc = STORE_OK;

    store_receipt_key_free(st);
    if (!st->opt.read_only) {
        if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
            store_err_text("receipt key: no random bytes");
            return STORE_DB_ERROR;
        }
        for (size_t i = 0; i < KEY_BYTES; i++)
            snprintf(hex + 2 * i, 3, "%02x", fresh[i]);
        OPENSSL_cleanse(fresh, sizeof(fresh));
        rc = run_once(st, sql_insert, hex, NULL, 0);
        OPENSSL_cleanse(hex, sizeof(hex));
    }
    if (rc == STORE_OK)
        rc = run_once(st, sql_select, NULL, got, sizeof(got));
    if (rc != STORE_OK || got[0] == '\0') {
        OPENSSL_cleanse(got, sizeof(got));
        return st->opt.read_only ? STORE_OK : (rc != STORE_OK ? rc
                                                              : STORE_DB_ERROR);
    }
    if (strlen(got) != 2 * KEY_BYTES) {
        store_err_text("receipt key in the catalog is not %d hex digits",
                       2 * KEY_BYTES);
        rc = STORE_DB_ERROR;
    }
    for (size_t i = 0; rc == STORE_OK && i < KEY_BYTES; i++) {
        int hi = hex_nibble(got[2 * i]), lo = hex_nibble(got[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            store_err_text("receipt key in the catalog is not hex");
            rc = STORE_DB_ERROR;
            break;
        }
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    OPENSSL_cleanse(got, sizeof(got));
    if (rc == STORE_OK) {
        pads_make(st, key);
        if (!st->receipt_inner) {
            store_err_text("receipt key: SHA-256 unavailable");
            rc = STORE_NO_MEMORY;
        }
    }
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* HMAC-SHA256 of msg under the key whose pad states st holds. */
static bool hmac(const struct store *st, const char *msg, size_t len,
                 unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char inner[32];
    unsigned n1 = 0, n2 = 0;
    bool ok = c && EVP_MD_CTX_copy_ex(c, st->receipt_inner) == 1 &&
              EVP_DigestUpdate(c, msg, len) == 1 &&
              EVP_DigestFinal_ex(c, inner, &n1) == 1 && n1 == 32 &&
              EVP_MD_CTX_copy_ex(c, st->receipt_outer) == 1 &&
              EVP_DigestUpdate(c, inner, 32) == 1 &&
              EVP_DigestFinal_ex(c, out, &n2) == 1 && n2 == 32;

    EVP_MD_CTX_free(c);
    return ok;
}

bool store_receipt_make(const struct store *st, const char *ue,
                        const char *family, const char *variant,
                        int64_t version, const char *digest_hex,
                        char out[PROTO_RECEIPT_SIZE])
{
    char msg[PROTO_UE_SIZE + 2 * PROTO_NAME_SIZE + PROTO_HEX_SIZE + 64];
    unsigned char mac[32];
    int len;

    out[0] = '\0';
    if (!st->receipt_inner)
        return false;
    len = snprintf(msg, sizeof(msg), "modeld-receipt/1\n%s\n%s\n%s\n%lld\n%s",
                   ue, family, variant, (long long)version, digest_hex);
    if (len < 0 || (size_t)len >= sizeof(msg) ||
        !hmac(st, msg, (size_t)len, mac))
        return false;
    proto_base64url(mac, sizeof(mac), out);
    return strlen(out) == RECEIPT_CHARS;
}

bool store_receipt_check(const struct store *st, const char *ue,
                         const char *family, const char *variant,
                         int64_t version, const char *digest_hex,
                         const char *receipt)
{
    char want[PROTO_RECEIPT_SIZE];

    if (!receipt || strlen(receipt) != RECEIPT_CHARS ||
        !store_receipt_make(st, ue, family, variant, version, digest_hex,
                            want))
        return false;
    return CRYPTO_memcmp(want, receipt, RECEIPT_CHARS) == 0;
}
