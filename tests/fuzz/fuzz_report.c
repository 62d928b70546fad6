/*
 * libFuzzer target for the select body: proto_report_parse() on arbitrary
 * bytes. A parsed report must respect the bounds of proto/json_in.c; a
 * refused one must name a 4xx code and yield a problem+json body that is
 * itself valid JSON. What the policy makes of a report is not tested here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static void check_report(const struct proto_report *r)
{
    REQUIRE(r->memory_bytes >= 1);
    REQUIRE(r->gflops > 0 && r->gflops <= 1e6);
    REQUIRE(r->format_count <= PROTO_MAX_FORMATS);
    REQUIRE(r->accelerator_count <= PROTO_MAX_ACCELERATORS);
    REQUIRE(r->context_count <= PROTO_MAX_TAGS);
    REQUIRE(is_terminated(r->ue, sizeof(r->ue)));
    REQUIRE(!r->has_ue || r->ue[0] != '\0');
    REQUIRE(is_terminated(r->device_class, sizeof(r->device_class)));
    REQUIRE(!r->has_current ||
            proto_hex_is_valid(r->current_hex, strlen(r->current_hex)));
    REQUIRE(!r->has_battery_percent ||
            (r->battery_percent >= 0 && r->battery_percent <= 100));
    REQUIRE(!r->has_load || (r->load >= 0 && r->load <= 1));
    REQUIRE(!r->has_min_accuracy ||
            (r->min_accuracy >= 0 && r->min_accuracy <= 1));
    REQUIRE(r->downlink_history_count <= PROTO_MAX_HISTORY);
    for (size_t i = 0; i < r->downlink_history_count; i++)
        REQUIRE(r->downlink_history_bps[i] >= 0 &&
                r->downlink_history_bps[i] <= 1e12);
    REQUIRE(!r->has_downlink_bps ||
            (r->downlink_bps >= 0 && r->downlink_bps <= 1e12));
    REQUIRE(!r->has_horizon_s || (r->horizon_s > 0 && r->horizon_s <= 1e7));
    REQUIRE(!r->has_fetching ||
            proto_hex_is_valid(r->fetching_hex, strlen(r->fetching_hex)));
    for (size_t i = 0; i < r->context_count; i++) {
        REQUIRE(is_terminated(r->context[i].key, PROTO_TOKEN_SIZE));
        REQUIRE(is_terminated(r->context[i].value, PROTO_TOKEN_SIZE));
        REQUIRE(r->context[i].key[0] != '\0');
        REQUIRE(r->context[i].value[0] != '\0');
    }
}

/* A refused body is the client's fault and must become a problem body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_limits lim;
    struct proto_report r;
    struct proto_error err;
    enum proto_status rc;

    memset(&err, 0, sizeof(err));
    proto_limits_default(&lim);
    rc = proto_report_parse((const char *)data, size, &lim, &r, &err);
    if (rc == PROTO_OK)
        check_report(&r);
    else if (rc == PROTO_BAD_INPUT)
        fuzz_check_refusal(&err);
    else
        REQUIRE(rc == PROTO_NO_MEMORY);
    return 0;
}
