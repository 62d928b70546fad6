/*
 * libFuzzer target for proto/jdom.c: arbitrary bytes parsed by it and by
 * jansson (tests/fuzz/jdom_diff.h), which must agree on accepting, on
 * every value and on the line of a fault. The arena is exactly the bound,
 * so ASan catches a write past it.
 */
#include <stdint.h>
#include <stdio.h>

#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/jdom_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = jdom_diff((const char *)data, size);

    if (why) {
        fprintf(stderr, "jdom and jansson differ: %s\n", why);
        abort();
    }
    return 0;
}
