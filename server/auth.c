/*
 * Named admin tokens with scopes: the tokens file, the single token of
 * admin_token_file / MODELD_ADMIN_TOKEN (an "admin" entry of scope admin)
 * and the check of a Bearer header against them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "server/log.h"
#include "server/auth.h"
#include "server/file.h"

#define MAX_TOKENS_FILE_BYTES (1 << 20)
#define MIN_TOKEN_LEN 16

static const char *const scope_names[] = {
    [AUTH_PUBLIC] = "public",
    [AUTH_PUBLISH] = "publish",
    [AUTH_ROLLOUT] = "rollout",
    [AUTH_ADMIN] = "admin",
};

const char *
auth_scope_name(enum auth_scope scope)
{
    return (unsigned)scope <= AUTH_ADMIN ? scope_names[scope] : "unknown";
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
auth_tokens_add(struct auth_tokens *t, const char *name,
                enum auth_scope scope, const char *token, size_t len,
                char *err, size_t err_len)
{
    unsigned char sha256[32];
    unsigned int md_len = 0;

    while (len && is_space(*token)) {
        token++;
        len--;
    }
    while (len && is_space(token[len - 1]))
        len--;
    if (len < MIN_TOKEN_LEN) {
        log_errbuf(err, err_len, "token \"%s\" must be at least %d characters",
             name, MIN_TOKEN_LEN);
        return -1;
    }
    if (!EVP_Digest(token, len, sha256, &md_len, EVP_sha256(), NULL) ||
        md_len != sizeof(sha256)) {
        log_errbuf(err, err_len, "cannot hash the token");
        return -1;
    }
    return auth_tokens_add_sha256(t, name, scope, sha256, err, err_len);
}

int
auth_tokens_add_sha256(struct auth_tokens *t, const char *name,
                       enum auth_scope scope, const unsigned char sha256[32],
                       char *err, size_t err_len)
{
    struct auth_token *e;

    if (t->count >= AUTH_MAX_TOKENS) {
        log_errbuf(err, err_len, "at most %d tokens", AUTH_MAX_TOKENS);
        return -1;
    }
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->tokens[i].name, name) == 0) {
            log_errbuf(err, err_len, "token name \"%s\" is used twice", name);
            return -1;
        }
    }
    e = &t->tokens[t->count++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->scope = scope;
    memcpy(e->sha256, sha256, sizeof(e->sha256));
    return 0;
}

static bool
name_is_valid(const char *s, size_t len)
{
    if (len == 0 || len >= AUTH_NAME_SIZE)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* One "NAME SCOPE TOKEN" line (NUL-terminated, may be changed). */
static int
parse_line(struct auth_tokens *t, char *line, char *err, size_t err_len)
{
    char *fields[3];
    size_t n = 0;
    char *p = line;
    enum auth_scope scope = AUTH_PUBLIC;

    while (n < 3) {
        while (*p && is_space(*p))
            p++;
        if (!*p)
            break;
        fields[n++] = p;
        if (n == 3)
            break;
        while (*p && !is_space(*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (n < 3) {
        log_errbuf(err, err_len, "expected \"NAME SCOPE TOKEN\"");
        return -1;
    }
    if (!name_is_valid(fields[0], strlen(fields[0]))) {
        log_errbuf(err, err_len, "a name is 1 to 64 of [A-Za-z0-9._-]");
        return -1;
    }
    for (unsigned s = AUTH_PUBLISH; s <= AUTH_ADMIN; s++)
        if (strcmp(fields[1], scope_names[s]) == 0)
            scope = (enum auth_scope)s;
    if (scope == AUTH_PUBLIC) {
        log_errbuf(err, err_len, "scope must be publish, rollout or admin");
        return -1;
    }
    for (const char *q = fields[2]; *q; q++) {
        if (is_space(*q) && q[strspn(q, " \t\r\n")] != '\0') {
            log_errbuf(err, err_len, "a token holds no whitespace");
            return -1;
        }
    }
    return auth_tokens_add(t, fields[0], scope, fields[2], strlen(fields[2]),
                           err, err_len);
}

int
auth_tokens_load(struct auth_tokens *t, const char *path, char *err,
                 size_t err_len)
{
    size_t len = 0;
    char *text = file_read_small(path, MAX_TOKENS_FILE_BYTES, &len);
    char *line;
    unsigned lineno = 0;
    char msg[256];
    int rc = 0;

    if (!text) {
        log_errbuf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (char *p = text; p && *p && rc == 0; p = line) {
        char *nl = strchr(p, '\n');
        char *s = p;

        line = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        while (is_space(*s))
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        if (parse_line(t, s, msg, sizeof(msg)) != 0) {
            log_errbuf(err, err_len, "%s:%u: %s", path, lineno, msg);
            rc = -1;
        }
    }
    file_secret_free(text, len);
    return rc;
}

static bool
grants(enum auth_scope have, enum auth_scope need)
{
    return have == AUTH_ADMIN || have == need;
}

enum auth_result
auth_check(const struct auth_tokens *t, const char *header,
           enum auth_scope scope, const struct auth_token **out_token)
{
    const struct auth_token *found = NULL;
    unsigned char got[32];
    unsigned int got_len = 0;
    size_t len;

    if (t->count == 0)
        return AUTH_NO_TOKENS;
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return AUTH_MISSING;
    /* RFC 9110 allows optional whitespace around the credentials. */
    header += 7;
    while (*header == ' ' || *header == '\t')
        header++;
    len = strlen(header);
    while (len && (header[len - 1] == ' ' || header[len - 1] == '\t'))
        len--;
    if (!EVP_Digest(header, len, got, &got_len, EVP_sha256(), NULL) ||
        got_len != sizeof(got))
        return AUTH_UNKNOWN;
    /* Every entry is compared: the time does not say which one matched. */
    for (size_t i = 0; i < t->count; i++)
        if (CRYPTO_memcmp(got, t->tokens[i].sha256, sizeof(got)) == 0)
            found = &t->tokens[i];
    if (!found)
        return AUTH_UNKNOWN;
    *out_token = found;
    return grants(found->scope, scope) ? AUTH_OK : AUTH_OUT_OF_SCOPE;
}
