/*
 * Admin tokens with names and scopes. A token is kept only as its SHA-256;
 * a presented token is hashed once and compared in constant time with
 * every configured one, so neither which token matched nor any secret's
 * content or length leaks through timing.
 */
#ifndef SERVER_AUTH_H
#define SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_NAME_SIZE 65
#define AUTH_MAX_TOKENS 64

/* What a route needs; a token's scope grants its own routes (admin: all). */
enum auth_scope {
    AUTH_PUBLIC = 0,
    AUTH_PUBLISH,         /* blobs, families, variants */
    AUTH_ROLLOUT,         /* rollout changes, retiring versions */
    AUTH_ADMIN,           /* everything, the audit log */
};

struct auth_token {
    char name[AUTH_NAME_SIZE];
    enum auth_scope scope;
    unsigned char sha256[32];
};

struct auth_tokens {
    struct auth_token tokens[AUTH_MAX_TOKENS];
    size_t count;
};

/* "publish", "rollout", "admin" ("public" for AUTH_PUBLIC). */
const char *auth_scope_name(enum auth_scope scope);

/*
 * Adds a token (surrounding whitespace trimmed, at least 16 characters).
 * Returns 0, or -1 with a message in err (too short, too many, a name
 * used twice).
 */
int auth_tokens_add(struct auth_tokens *t, const char *name,
                    enum auth_scope scope, const char *token, size_t len,
                    char *err, size_t err_len);

/* Adds a token by its SHA-256 (the single admin token, hashed as it was
 * read). Returns 0, or -1 with a message in err. */
int auth_tokens_add_sha256(struct auth_tokens *t, const char *name,
                           enum auth_scope scope,
                           const unsigned char sha256[32], char *err,
                           size_t err_len);

/*
 * Reads a tokens file: one "NAME SCOPE TOKEN" line per token (NAME
 * [A-Za-z0-9._-]{1,64}, SCOPE publish | rollout | admin), '#' comments and
 * blank lines. Returns 0, or -1 with "FILE:LINE: message" in err (the
 * token itself is never quoted).
 */
int auth_tokens_load(struct auth_tokens *t, const char *path, char *err,
                     size_t err_len);

enum auth_result {
    AUTH_OK = 0,
    AUTH_NO_TOKENS,       /* none configured: 403 */
    AUTH_MISSING,         /* no Bearer header: 401 */
    AUTH_UNKNOWN,         /* no such token: 403 */
    AUTH_OUT_OF_SCOPE,    /* known token, scope too narrow: 403 */
};

/*
 * Checks an Authorization header value (NULL when absent) for a route
 * needing scope. On AUTH_OK and AUTH_OUT_OF_SCOPE *out_token is the
 * matching entry.
 */
enum auth_result auth_check(const struct auth_tokens *t, const char *header,
                            enum auth_scope scope,
                            const struct auth_token **out_token);

#endif
