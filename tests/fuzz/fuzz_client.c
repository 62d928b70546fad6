/*
 * libFuzzer target for what the UE client (client/) parses from the
 * network and its own state directory: a select answer, a JWK set, a
 * state file, the Signature-Input / Signature / Content-Digest headers of
 * a signed answer, Content-Range (resume) and Retry-After. A server or a
 * path in between may send anything; each parser must refuse it cleanly.
 * Input: up to five strings separated by '\n' (the headers, then the
 * body); the whole input is also given to each body parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_S 1800000000

/* Splits copy at '\n' into at most n strings; the rest stays in the
 * last. */
static size_t split(char *copy, char **out, size_t n)
{
    size_t k = 0;
    char *p = copy;

    out[k++] = p;
    while (k < n && (p = strchr(p, '\n')) != NULL) {
        *p++ = '\0';
        out[k++] = p;
    }
    return k;
}

static void check_signature(char **parts, size_t count)
{
    struct client_keyring ring;
    struct client_signed s;
    char err[CLIENT_ERR_SIZE];
    const char *body = count > 3 ? parts[3] : "";
    enum client_status rc;

    memset(&ring, 0, sizeof(ring));
    ring.count = 1;
    snprintf(ring.keys[0].kid, sizeof(ring.keys[0].kid), "k");
    memset(ring.keys[0].key, 0x5a, sizeof(ring.keys[0].key));
    memset(&s, 0, sizeof(s));
    s.status = 200;
    s.method = "POST";
    s.path = "/v1/families/f/select";
    s.content_type = "application/json";
    s.signature_input = parts[0];
    s.signature = count > 1 ? parts[1] : NULL;
    s.content_digest = count > 2 ? parts[2] : NULL;
    s.body = body;
    s.body_len = strlen(body);
    err[0] = '\0';
    rc = client_signature_verify(&s, &ring, NULL, NOW_S, err, sizeof(err));
    /* No input is signed with a key of all 0x5a bytes' private half. */
    REQUIRE(rc != CLIENT_OK);
    REQUIRE(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
}

static void check_resume(const char *content_range)
{
    static const long statuses[] = { 200, 206, 416, 500 };

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        uint64_t total = 0;
        enum client_resume r = client_resume_decide(statuses[i],
                                                    content_range, 100, 1000,
                                                    &total);

        if (r == CLIENT_RESUME_APPEND || r == CLIENT_RESUME_COMPLETE)
            REQUIRE(total == 1000);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char *parts[5];
    size_t count;
    char err[CLIENT_ERR_SIZE];
    struct client_decision d;
    struct client_keyring ring;
    struct client_state st;
    long ra;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    (void)client_decision_parse((const char *)data, size, &d, err,
                                sizeof(err));
    (void)client_keyring_parse((const char *)data, size, NULL, &ring, err,
                               sizeof(err));
    REQUIRE(ring.count <= sizeof(ring.keys) / sizeof(ring.keys[0]));
    (void)client_state_parse(copy, &st);
    (void)client_rfc3339_parse(copy);
    count = split(copy, parts, 5);
    check_signature(parts, count);
    check_resume(parts[0]);
    ra = client_retry_after_parse(parts[0], NOW_S);
    REQUIRE(ra >= -1);
    free(copy);
    return 0;
}
