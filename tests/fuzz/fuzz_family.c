/*
 * libFuzzer target for family bodies: proto_family_parse() on arbitrary
 * bytes. A parsed family keeps task and description within 256 bytes; a
 * refused body yields a 4xx problem+json body that is valid JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_limits lim;
    struct proto_family f;
    struct proto_error err;
    enum proto_status rc;

    memset(&err, 0, sizeof(err));
    memset(&f, 0x5a, sizeof(f));
    proto_limits_default(&lim);
    rc = proto_family_parse((const char *)data, size, &lim, &f, &err);
    if (rc == PROTO_OK) {
        REQUIRE(memchr(f.task, '\0', sizeof(f.task)) != NULL);
        REQUIRE(memchr(f.description, '\0', sizeof(f.description)) != NULL);
    } else if (rc == PROTO_BAD_INPUT) {
        fuzz_check_refusal(&err);
    } else {
        REQUIRE(rc == PROTO_NO_MEMORY);
    }
    return 0;
}
