/*
 * The trust and control resources: GET /v1/keys (the public signing keys
 * as a JWK set). Signing itself is server/sign.c's; the select handler
 * signs its answers.
 */
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

/* The JWK set changes only on SIGHUP: cacheable for a few minutes, and
 * revalidated cheaply by its ETag. */
enum MHD_Result
handle_keys(struct MHD_Connection *c, struct request *rq)
{
    const struct keyring *kr = atomic_load(&rq->app->keyring);
    const char *etag = sign_keyring_jwks_etag(kr);
    const char *inm = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    const char *const headers[] = {
        "Cache-Control", "public, max-age=300",
        "ETag", etag,
        NULL,
    };

    if (inm && proto_etag_list_matches(inm, etag)) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

        if (resp) {
            MHD_add_response_header(resp, "Cache-Control",
                                    "public, max-age=300");
            MHD_add_response_header(resp, "ETag", etag);
        }
        return http_queue(c, rq, 304, resp, 0);
    }
    return http_reply_json_with(c, rq, 200, strdup(sign_keyring_jwks(kr)),
                                headers);
}
