/*
 * What every fuzz target shares: REQUIRE (abort, so libFuzzer reports
 * the input) and the check of a refused input's problem body.
 */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#include <stdlib.h>

#include <jansson.h>

#include "proto/proto.h"

#define REQUIRE(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            abort();                                                           \
    } while (0)

/* A refusal is a client error whose problem body is a JSON object. */
static inline void fuzz_check_refusal(const struct proto_error *err)
{
    unsigned status = proto_code_status(err->code);
    char *body;
    json_t *j;

    REQUIRE(status >= 400 && status < 500);
    body = proto_problem_write(err);
    REQUIRE(body != NULL);
    j = json_loads(body, 0, NULL);
    REQUIRE(j != NULL && json_is_object(j));
    json_decref(j);
    free(body);
}

#endif
