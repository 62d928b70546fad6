/*
 * Unit tests of server/sign.c: the exact RFC 9421 signature base, a
 * signature that OpenSSL verifies over it (and refuses over anything
 * else), the Content-Digest, keygen's file, the keyring's JWK set and
 * its refusals; and the report's nonce and accept.signed (proto).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "proto/proto.h"
#include "server/config.h"
#include "server/sign.h"

static char dir[64];

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/modeld-sign-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const struct sign_message msg = {
    .status = 200,
    .method = "POST",
    .path = "/v1/families/f/select?x=1",
    .content_type = "application/json",
    .created_s = 1700000000,
    .expires_s = 1700000300,
};

START_TEST(test_sign_base_write_exact)
{
    char base[2048], params[640];
    int n = sign_base_write(&msg, "sha-256=:abc=:", "kid1", base,
                            sizeof(base), params, sizeof(params));

    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(
        base,
        "\"@status\": 200\n"
        "\"@method\";req: POST\n"
        "\"@path\";req: /v1/families/f/select\n"
        "\"content-digest\": sha-256=:abc=:\n"
        "\"content-type\": application/json\n"
        "\"@signature-params\": (\"@status\" \"@method\";req \"@path\";req "
        "\"content-digest\" \"content-type\");created=1700000000;"
        "expires=1700000300;keyid=\"kid1\";alg=\"ed25519\"");
    ck_assert_int_eq(n, (int)strlen(base));
    ck_assert_str_eq(params,
                     "(\"@status\" \"@method\";req \"@path\";req "
                     "\"content-digest\" \"content-type\");created="
                     "1700000000;expires=1700000300;keyid=\"kid1\";"
                     "alg=\"ed25519\"");
}
END_TEST

START_TEST(test_sign_base_write_refuses_unsafe)
{
    char base[2048], params[640];
    struct sign_message m = msg;

    m.path = "/a\nb";
    ck_assert_int_eq(sign_base_write(&m, "d", "k", base, sizeof(base),
                                     params, sizeof(params)),
                     -1);
    ck_assert_int_eq(sign_base_write(&msg, "d", "k\"", base, sizeof(base),
                                     params, sizeof(params)),
                     -1);
    ck_assert_int_eq(sign_base_write(&msg, "d", "k", base, 10, params,
                                     sizeof(params)),
                     -1);
}
END_TEST

static int
b64_decode(const char *in, size_t len, unsigned char *out)
{
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);

    if (n >= 0 && len >= 2 && in[len - 1] == '=')
        n -= in[len - 2] == '=' ? 2 : 1;
    return n;
}

START_TEST(test_sign_response_verifies)
{
    char path[128], kid[SIGN_KID_SIZE], err[256];
    struct keyring *kr = NULL;
    struct sign_headers h;
    const char body[] = "{\"action\":\"keep\"}";
    char base[2048], params[640];
    unsigned char sig[128], md[32], want_md[32];
    unsigned int md_len = 0;
    EVP_PKEY *pub;
    EVP_MD_CTX *ctx;
    FILE *f;
    int n, sig_len;

    snprintf(path, sizeof(path), "%s/k.pem", dir);
    ck_assert_int_eq(sign_keygen(path, kid, err, sizeof(err)), 0);
    ck_assert_int_eq(sign_keyring_load(path, "", &kr, err, sizeof(err)), 0);
    ck_assert(sign_keyring_can_sign(kr));
    ck_assert_str_eq(sign_keyring_kid(kr), kid);
    ck_assert_int_eq(sign_response(kr, &msg, body, strlen(body), &h), 0);

    /* Content-Digest is the body's SHA-256. */
    ck_assert(strncmp(h.content_digest, "sha-256=:", 9) == 0);
    n = b64_decode(h.content_digest + 9, strlen(h.content_digest) - 10, md);
    ck_assert_int_eq(n, 32);
    EVP_Digest(body, strlen(body), want_md, &md_len, EVP_sha256(), NULL);
    ck_assert_mem_eq(md, want_md, 32);

    ck_assert(strncmp(h.signature_input, "modeld=", 7) == 0);
    ck_assert(strncmp(h.signature, "modeld=:", 8) == 0);
    sig_len = b64_decode(h.signature + 8, strlen(h.signature) - 9, sig);
    ck_assert_int_eq(sig_len, 64);
    n = sign_base_write(&msg, h.content_digest, kid, base, sizeof(base),
                        params, sizeof(params));
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(h.signature_input + 7, params);

    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    pub = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(pub);
    ctx = EVP_MD_CTX_new();
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub), 1);
    ck_assert_int_eq(EVP_DigestVerify(ctx, sig, 64, (unsigned char *)base,
                                      (size_t)n),
                     1);
    /* One byte of the base changed: refused. */
    base[20] ^= 1;
    EVP_MD_CTX_reset(ctx);
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub), 1);
    ck_assert_int_ne(EVP_DigestVerify(ctx, sig, 64, (unsigned char *)base,
                                      (size_t)n),
                     1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    sign_keyring_free(kr);
}
END_TEST

/* The thread's signing context follows the keyring: alternating keyrings
 * (a SIGHUP and back) each sign with their own key, many times. */
static bool
verifies(const char *key_path, const struct sign_headers *h)
{
    char base[2048], params[640], kid[SIGN_KID_SIZE] = "";
    unsigned char sig[128];
    EVP_PKEY *k;
    EVP_MD_CTX *ctx;
    FILE *f = fopen(key_path, "r");
    const char *q;
    int n, sig_len;
    bool ok;

    ck_assert_ptr_nonnull(f);
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    q = strstr(h->signature_input, "keyid=\"");
    ck_assert_ptr_nonnull(q);
    memcpy(kid, q + 7, 43);
    n = sign_base_write(&msg, h->content_digest, kid, base, sizeof(base),
                        params, sizeof(params));
    sig_len = b64_decode(h->signature + 8, strlen(h->signature) - 9, sig);
    ctx = EVP_MD_CTX_new();
    ok = n > 0 && sig_len == 64 &&
         EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
         EVP_DigestVerify(ctx, sig, 64, (unsigned char *)base, (size_t)n) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return ok;
}

START_TEST(test_sign_response_follows_keyring)
{
    char p1[128], p2[128], kid[SIGN_KID_SIZE], err[256];
    struct keyring *k1 = NULL, *k2 = NULL;
    struct sign_headers h;
    const char body[] = "{}";

    snprintf(p1, sizeof(p1), "%s/k1.pem", dir);
    snprintf(p2, sizeof(p2), "%s/k2.pem", dir);
    ck_assert_int_eq(sign_keygen(p1, kid, err, sizeof(err)), 0);
    ck_assert_int_eq(sign_keygen(p2, kid, err, sizeof(err)), 0);
    ck_assert_int_eq(sign_keyring_load(p1, "", &k1, err, sizeof(err)), 0);
    ck_assert_int_eq(sign_keyring_load(p2, "", &k2, err, sizeof(err)), 0);
    for (int i = 0; i < 6; i++) {
        const struct keyring *kr = i % 3 == 2 ? k2 : k1;

        ck_assert_int_eq(sign_response(kr, &msg, body, 2, &h), 0);
        ck_assert(verifies(kr == k1 ? p1 : p2, &h));
        ck_assert(!verifies(kr == k1 ? p2 : p1, &h));
    }
    sign_keyring_free(k1);
    sign_keyring_free(k2);
}
END_TEST

START_TEST(test_sign_keygen_file)
{
    char path[128], kid[SIGN_KID_SIZE], err[256];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/k.pem", dir);
    ck_assert_int_eq(sign_keygen(path, kid, err, sizeof(err)), 0);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_uint_eq(strlen(kid), 43);
    /* Never over an existing file, which stays as it was. */
    ck_assert_int_eq(sign_keygen(path, kid, err, sizeof(err)), -1);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, 0);
}
END_TEST

START_TEST(test_sign_keyring_jwks)
{
    char k1[128], k2[128], list[300], kid1[SIGN_KID_SIZE],
        kid2[SIGN_KID_SIZE], err[256], want[128];
    struct keyring *kr = NULL;
    const char *jwks;

    snprintf(k1, sizeof(k1), "%s/k1.pem", dir);
    snprintf(k2, sizeof(k2), "%s/k2.pem", dir);
    ck_assert_int_eq(sign_keygen(k1, kid1, err, sizeof(err)), 0);
    ck_assert_int_eq(sign_keygen(k2, kid2, err, sizeof(err)), 0);
    /* k1 twice: listed once. */
    snprintf(list, sizeof(list), " %s , %s,", k2, k1);
    ck_assert_int_eq(sign_keyring_load(k1, list, &kr, err, sizeof(err)), 0);
    jwks = sign_keyring_jwks(kr);
    snprintf(want, sizeof(want), "\"kid\":\"%s\"", kid1);
    ck_assert_ptr_nonnull(strstr(jwks, want));
    ck_assert_ptr_null(strstr(strstr(jwks, want) + 1, want));
    snprintf(want, sizeof(want), "\"kid\":\"%s\"", kid2);
    ck_assert(strstr(jwks, want) > strstr(jwks, kid1));
    ck_assert(strncmp(jwks, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\"",
                      37) == 0);
    ck_assert_ptr_nonnull(strstr(jwks, "\"alg\":\"EdDSA\",\"use\":\"sig\"}"));
    ck_assert_int_eq(sign_keyring_jwks_etag(kr)[0], '"');
    sign_keyring_free(kr);

    /* Verify keys only: publishes, cannot sign. */
    ck_assert_int_eq(sign_keyring_load("", k2, &kr, err, sizeof(err)), 0);
    ck_assert(!sign_keyring_can_sign(kr));
    ck_assert_str_eq(sign_keyring_kid(kr), "");
    sign_keyring_free(kr);
}
END_TEST

START_TEST(test_sign_keyring_refusals)
{
    char path[128], pub[128], err[256];
    struct keyring *kr = NULL;
    EVP_PKEY *rsa;
    FILE *f;

    snprintf(path, sizeof(path), "%s/none.pem", dir);
    ck_assert_int_eq(sign_keyring_load(path, "", &kr, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "none.pem"));
    snprintf(path, sizeof(path), "%s/junk.pem", dir);
    f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    ck_assert_int_eq(sign_keyring_load(path, "", &kr, err, sizeof(err)), -1);
    ck_assert_int_eq(sign_keyring_load("", path, &kr, err, sizeof(err)), -1);
    /* An RSA key is not Ed25519. */
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ck_assert_ptr_nonnull(rsa);
    snprintf(path, sizeof(path), "%s/rsa.pem", dir);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    ck_assert_int_eq(sign_keyring_load(path, "", &kr, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "Ed25519"));
    EVP_PKEY_free(rsa);
    /* A public key cannot sign. */
    snprintf(path, sizeof(path), "%s/k.pem", dir);
    snprintf(pub, sizeof(pub), "%s/pub.pem", dir);
    {
        char kid[SIGN_KID_SIZE];
        EVP_PKEY *k;

        ck_assert_int_eq(sign_keygen(path, kid, err, sizeof(err)), 0);
        f = fopen(path, "r");
        k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        f = fopen(pub, "w");
        PEM_write_PUBKEY(f, k);
        fclose(f);
        EVP_PKEY_free(k);
    }
    ck_assert_int_eq(sign_keyring_load(pub, "", &kr, err, sizeof(err)), -1);
    ck_assert_int_eq(sign_keyring_load("", pub, &kr, err, sizeof(err)), 0);
    sign_keyring_free(kr);
}
END_TEST

/* ---- the report's nonce and accept.signed ---------------------------- */

static const struct nonce_case {
    const char *body;
    enum proto_status want;
    const char *field;
    bool has_nonce;
    bool accept_signed;
} nonce_cases[] = {
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"nonce\":\"abcdefghijklmnop\"}", PROTO_OK, "", true, false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"nonce\":\"A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9"
     "A-_9\"}", PROTO_OK, "", true, false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"nonce\":\"A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9A-_9"
     "A-_9x\"}", PROTO_BAD_INPUT, "nonce", false, false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"nonce\":\"abcdefghijklmno\"}", PROTO_BAD_INPUT, "nonce", false, false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"nonce\":\"abcdefghijklmno\\\"\"}", PROTO_BAD_INPUT, "nonce", false,
     false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},\"nonce\":12}",
     PROTO_BAD_INPUT, "nonce", false, false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"accept\":{\"signed\":true}}", PROTO_OK, "", false, true},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},"
     "\"accept\":{\"signed\":\"yes\"}}", PROTO_BAD_INPUT, "accept.signed",
     false, false},
    {"{\"device\":{\"memory_bytes\":1,\"gflops\":1},\"accept\":[]}",
     PROTO_BAD_INPUT, "accept", false, false},
};

START_TEST(test_report_nonce_cases)
{
    const struct nonce_case *c = &nonce_cases[_i];
    struct proto_limits lim;
    struct proto_report r;
    struct proto_error err;

    proto_limits_default(&lim);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(proto_report_parse(c->body, strlen(c->body), &lim, &r,
                                        &err),
                     c->want);
    if (c->want != PROTO_OK) {
        ck_assert_str_eq(err.field, c->field);
        return;
    }
    ck_assert(r.has_nonce == c->has_nonce);
    ck_assert(r.accept_signed == c->accept_signed);
}
END_TEST

START_TEST(test_config_sign_decisions)
{
    struct config cfg;
    char err[256];

    config_default(&cfg);
    ck_assert_uint_eq(cfg.sign_decisions, CONFIG_SIGN_REQUESTED);
    ck_assert_int_eq(config_set(&cfg, "sign_decisions", "always", err,
                                sizeof(err)),
                     0);
    ck_assert_uint_eq(cfg.sign_decisions, CONFIG_SIGN_ALWAYS);
    ck_assert_int_eq(config_set(&cfg, "sign_decisions", "sometimes", err,
                                sizeof(err)),
                     -1);
    ck_assert_uint_eq(cfg.sign_decisions, CONFIG_SIGN_ALWAYS);
}
END_TEST

static Suite *
sign_suite(void)
{
    Suite *s = suite_create("sign");
    TCase *tc = tcase_create("sign");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sign_base_write_exact);
    tcase_add_test(tc, test_sign_base_write_refuses_unsafe);
    tcase_add_test(tc, test_sign_response_verifies);
    tcase_add_test(tc, test_sign_response_follows_keyring);
    tcase_add_test(tc, test_sign_keygen_file);
    tcase_add_test(tc, test_sign_keyring_jwks);
    tcase_add_test(tc, test_sign_keyring_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("report");
    tcase_add_loop_test(tc, test_report_nonce_cases, 0,
                        (int)ARRAY_SIZE(nonce_cases));
    tcase_add_test(tc, test_config_sign_decisions);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sign_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
