/*
 * Client-visible errors: filling a struct proto_error, looking codes up in
 * proto/errors.def and writing the RFC 9457 problem+json body. Which code a
 * request gets is the caller's decision; this file only formats it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/proto.h"

#define TYPE_PREFIX "https://modeld.dev/problems/"

struct code_info {
    enum proto_code code;
    const char *name;
    unsigned status;
    const char *title;
};

static const struct code_info codes[] = {
#define PROTO_ERR(num, name, status, title)                                    \
    {PROTO_ERR_##name, #name, status, title},
#include "proto/errors.def"
#undef PROTO_ERR
};

static const struct code_info *code_find(enum proto_code code)
{
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
        if (codes[i].code == code)
            return &codes[i];
    return NULL;
}

void proto_error_set(struct proto_error *err, enum proto_code code,
                     const char *field, const char *fmt, ...)
{
    /* Formatted into copies first: field or an argument may point into
     * *err itself. */
    char field_buf[PROTO_FIELD_SIZE];
    char detail_buf[PROTO_DETAIL_SIZE] = "";
    va_list ap;

    if (!err)
        return;
    snprintf(field_buf, sizeof(field_buf), "%s", field ? field : "");
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(detail_buf, sizeof(detail_buf), fmt, ap);
        va_end(ap);
    }
    err->code = code;
    memcpy(err->field, field_buf, sizeof(field_buf));
    memcpy(err->detail, detail_buf, sizeof(detail_buf));
}

unsigned proto_code_status(enum proto_code code)
{
    const struct code_info *ci = code_find(code);

    return ci ? ci->status : 500;
}

const char *proto_code_title(enum proto_code code)
{
    const struct code_info *ci = code_find(code);

    return ci ? ci->title : "Internal error";
}

/*
 * A jansson string of s. Details may quote client bytes that were cut in
 * the middle of a UTF-8 sequence; json_string() refuses those, so the
 * fallback replaces every non-ASCII byte with '?'.
 */
static json_t *safe_string(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j)
        return j;
    copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

char *proto_problem_write(const struct proto_error *err)
{
    const struct code_info *ci = code_find(err->code);
    char type[128];
    char *out = NULL;
    json_t *o;
    size_t n;

    if (ci) {
        n = (size_t)snprintf(type, sizeof(type), "%s%s", TYPE_PREFIX,
                             ci->name);
        for (size_t i = strlen(TYPE_PREFIX); i < n && i < sizeof(type); i++) {
            if (type[i] == '_')
                type[i] = '-';
            else if (type[i] >= 'A' && type[i] <= 'Z')
                type[i] = (char)(type[i] - 'A' + 'a');
        }
    } else {
        snprintf(type, sizeof(type), "%sinternal", TYPE_PREFIX);
    }

    o = json_object();
    if (!o)
        return NULL;
    if (json_object_set_new(o, "type", json_string(type)) != 0 ||
        json_object_set_new(o, "title",
                            json_string(proto_code_title(err->code))) != 0 ||
        json_object_set_new(o, "status",
                            json_integer(proto_code_status(err->code))) != 0 ||
        json_object_set_new(o, "detail", safe_string(err->detail)) != 0 ||
        json_object_set_new(o, "code", json_integer(ci ? (json_int_t)err->code
                                                       : 18)) != 0)
        goto out;
    if (err->field[0] &&
        json_object_set_new(o, "field", safe_string(err->field)) != 0)
        goto out;
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(o);
    return out;
}
