/*
 * libFuzzer target for `modeld replay` scenario lines:
 * proto_scenario_line_parse() on arbitrary bytes. A parsed line is an end
 * or a report within the bounds; a refused one names a 4xx code and yields
 * a valid problem body. What replay makes of a scenario is not tested here.
 */
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_scenario_line sl;
    struct proto_limits lim;
    struct proto_error err;
    enum proto_status rc;

    memset(&err, 0, sizeof(err));
    proto_limits_default(&lim);
    rc = proto_scenario_line_parse((const char *)data, size, &lim, &sl, &err);
    if (rc == PROTO_OK) {
        REQUIRE(sl.t_s >= 0 && sl.t_s <= 1e9);
        REQUIRE(!sl.has_bps || (sl.bps >= 0 && sl.bps <= 1e12));
        REQUIRE(sl.is_end || (sl.report.memory_bytes >= 1 &&
                              sl.report.gflops > 0));
    } else if (rc == PROTO_BAD_INPUT) {
        fuzz_check_refusal(&err);
    } else {
        REQUIRE(rc == PROTO_NO_MEMORY);
    }
    return 0;
}
