/*
 * libFuzzer target for the UE event and rollout bodies (POST .../events,
 * PATCH .../versions/{n}): proto_event_parse() and
 * proto_rollout_patch_parse() on arbitrary bytes. A parsed body must
 * respect the bounds of proto/json_in.c; a refused one must name a 4xx
 * code and yield a valid problem body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const struct proto_event *e)
{
    REQUIRE(memchr(e->ue, '\0', sizeof(e->ue)) && e->ue[0] != '\0');
    REQUIRE(proto_name_is_valid(e->variant, strlen(e->variant)));
    REQUIRE(e->version >= 1);
    REQUIRE((unsigned)e->kind < PROTO_EVENT_KINDS);
    REQUIRE(memchr(e->device_class, '\0', sizeof(e->device_class)));
    REQUIRE(!e->has_digest ||
            proto_hex_is_valid(e->digest_hex, strlen(e->digest_hex)));
    REQUIRE(!e->has_latency_ms ||
            (e->latency_ms > 0 && e->latency_ms <= 3.6e6));
    REQUIRE(!e->has_energy_mj || (e->energy_mj >= 0 && e->energy_mj <= 1e9));
}

static void check(enum proto_status rc, const struct proto_error *err)
{
    if (rc == PROTO_BAD_INPUT)
        fuzz_check_refusal(err);
    else
        REQUIRE(rc == PROTO_OK || rc == PROTO_NO_MEMORY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_limits lim;
    struct proto_event e;
    struct proto_rollout_patch p;
    struct proto_error err;
    enum proto_status rc;

    proto_limits_default(&lim);
    memset(&err, 0, sizeof(err));
    rc = proto_event_parse((const char *)data, size, &lim, &e, &err);
    check(rc, &err);
    if (rc == PROTO_OK)
        check_event(&e);
    memset(&err, 0, sizeof(err));
    rc = proto_rollout_patch_parse((const char *)data, size, &lim, &p, &err);
    check(rc, &err);
    if (rc == PROTO_OK) {
        REQUIRE(p.has_rollout_percent || p.has_paused);
        REQUIRE(!p.has_rollout_percent || p.rollout_percent <= 100);
    }
    return 0;
}
