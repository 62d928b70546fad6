/*
 * libFuzzer target for the route table: router_match() from server/router.c
 * on arbitrary paths. A matched route's parameters must reach handlers
 * valid (names as [a-z0-9][a-z0-9._-]{0,63}, digests as 64 lowercase hex);
 * a malformed one must be a 400 naming a name or digest error; and the path
 * rebuilt from the pattern and the parameters must match the same way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATH_REBUILT_SIZE 512

/* Writes pattern with each {param} replaced by its value (a digest as
 * "sha256:<hex>"); returns the number of parameters. */
static int rebuild(const char *pattern,
                   char params[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE], char *out,
                   size_t out_size)
{
    size_t n = 0;
    int count = 0;

    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            bool digest = strncmp(p, "{digest}", 8) == 0;
            int w;

            REQUIRE(close != NULL && count < ROUTE_MAX_PARAMS);
            w = snprintf(out + n, out_size - n, "%s%s",
                         digest ? "sha256:" : "", params[count]);
            REQUIRE(w > 0 && (size_t)w < out_size - n);
            n += (size_t)w;
            count++;
            p = close + 1;
        } else {
            REQUIRE(n + 1 < out_size);
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return count;
}

static void check_params(const char *pattern,
                         char params[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE])
{
    int i = 0;

    for (const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{')) {
        const char *v = params[i];

        REQUIRE(i < ROUTE_MAX_PARAMS);
        REQUIRE(memchr(v, '\0', PROTO_HEX_SIZE) != NULL);
        if (strncmp(p, "{digest}", 8) == 0)
            REQUIRE(proto_hex_is_valid(v, strlen(v)));
        else
            REQUIRE(proto_name_is_valid(v, strlen(v)));
        i++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char params[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE];
    char again[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE];
    char rebuilt[PATH_REBUILT_SIZE];
    struct proto_error err;
    bool bad = true;
    char *path;
    int route, route2;

    path = malloc(size + 1);
    REQUIRE(path != NULL);
    memcpy(path, data, size);
    path[size] = '\0';
    memset(&err, 0, sizeof(err));
    memset(params, 0, sizeof(params));

    route = router_match(path, params, &err, &bad);
    REQUIRE(route >= -1 && route < (int)router_route_count);
    if (route < 0) {
        REQUIRE(!bad);
        goto out;
    }
    if (bad) {
        REQUIRE(err.code == PROTO_ERR_BAD_NAME ||
                err.code == PROTO_ERR_BAD_DIGEST);
        REQUIRE(proto_code_status(err.code) == 400);
        REQUIRE(memchr(err.field, '\0', sizeof(err.field)) != NULL);
        goto out;
    }
    check_params(router_routes[route].pattern, params);

    (void)rebuild(router_routes[route].pattern, params, rebuilt,
                  sizeof(rebuilt));
    memset(again, 0, sizeof(again));
    route2 = router_match(rebuilt, again, &err, &bad);
    REQUIRE(route2 == route && !bad);
    REQUIRE(memcmp(again, params, sizeof(again)) == 0);
    /* Without percent-escapes (each segment is decoded on its own), the
     * path the server saw is exactly the rebuilt one. */
    if (!strchr(path, '%'))
        REQUIRE(strcmp(rebuilt, path) == 0);
out:
    free(path);
    return 0;
}
