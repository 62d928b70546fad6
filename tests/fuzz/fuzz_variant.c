/*
 * libFuzzer target for variant metadata: proto_variant_parse() on
 * arbitrary bytes, then a round trip. Whatever the parser accepts,
 * proto_variant_write() must spell in a form the parser accepts again, with
 * the same metadata (the server-filled fields the writer adds are ignored
 * on the way back). A refused body must yield a 4xx problem+json body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool tokens_equal(const char (*a)[PROTO_TOKEN_SIZE],
                         const char (*b)[PROTO_TOKEN_SIZE], size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool classes_equal(const struct proto_class_value *a,
                          const struct proto_class_value *b, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(a[i].device_class, b[i].device_class) != 0 ||
            a[i].value != b[i].value)
            return false;
    return true;
}

/* Tags may come back regrouped by key (the writer groups them, keeping
 * first-seen key order): compare as multisets of key=value pairs. */
static bool tags_equal(const struct proto_tag *a, const struct proto_tag *b,
                       size_t count)
{
    bool used[PROTO_MAX_TAGS] = {false};

    for (size_t i = 0; i < count; i++) {
        size_t j;

        for (j = 0; j < count; j++)
            if (!used[j] && strcmp(a[i].key, b[j].key) == 0 &&
                strcmp(a[i].value, b[j].value) == 0)
                break;
        if (j == count)
            return false;
        used[j] = true;
    }
    return true;
}

static void check_same(const struct proto_variant *a,
                       const struct proto_variant *b)
{
    REQUIRE(strcmp(a->blob_hex, b->blob_hex) == 0);
    REQUIRE(strcmp(a->format, b->format) == 0);
    REQUIRE(a->technique_count == b->technique_count);
    REQUIRE(tokens_equal(a->techniques, b->techniques, a->technique_count));
    REQUIRE(a->params == b->params);
    REQUIRE(a->flops == b->flops);
    REQUIRE(a->accuracy == b->accuracy);
    REQUIRE(a->memory_bytes == b->memory_bytes);
    REQUIRE(a->latency_count == b->latency_count);
    REQUIRE(classes_equal(a->latency_ms, b->latency_ms, a->latency_count));
    REQUIRE(a->energy_count == b->energy_count);
    REQUIRE(classes_equal(a->energy_mj, b->energy_mj, a->energy_count));
    REQUIRE(a->exit_count == b->exit_count);
    for (size_t i = 0; i < a->exit_count; i++)
        REQUIRE(a->exits[i].flops == b->exits[i].flops &&
                a->exits[i].accuracy == b->exits[i].accuracy);
    REQUIRE(a->context_count == b->context_count);
    REQUIRE(tags_equal(a->context, b->context, a->context_count));
    REQUIRE(a->accelerator_count == b->accelerator_count);
    REQUIRE(tokens_equal(a->accelerators, b->accelerators,
                         a->accelerator_count));
    REQUIRE(a->rollout_percent == b->rollout_percent);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_limits lim;
    struct proto_variant v, back;
    struct proto_error err;
    enum proto_status rc;
    char *json;

    memset(&err, 0, sizeof(err));
    proto_limits_default(&lim);
    rc = proto_variant_parse((const char *)data, size, &lim, &v, &err);
    if (rc == PROTO_BAD_INPUT) {
        fuzz_check_refusal(&err);
        return 0;
    }
    if (rc != PROTO_OK) {
        REQUIRE(rc == PROTO_NO_MEMORY);
        return 0;
    }
    REQUIRE(v.flops > 0 && v.accuracy >= 0 && v.accuracy <= 1);
    REQUIRE(v.rollout_percent <= 100);
    json = proto_variant_write(&v);
    REQUIRE(json != NULL);
    memset(&err, 0, sizeof(err));
    rc = proto_variant_parse(json, strlen(json), &lim, &back, &err);
    if (rc != PROTO_OK)
        abort(); /* the writer's output was refused: see err.detail */
    check_same(&v, &back);
    free(json);
    return 0;
}
