/*
 * A strict RFC 8259 JSON parser for request bodies: one pass over the bytes
 * into a compact read-only tree held in one caller-provided arena, with no
 * allocation per value. It accepts and rejects what jansson's json_loadb()
 * does with JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL |
 * JSON_REJECT_DUPLICATES (every number a double, inf rejected, \u0000 and
 * invalid UTF-8 rejected, duplicate keys rejected), except that a NUL byte
 * outside a string is always an error (jansson 2.14 drops one right after a
 * number or literal). What the values mean is for proto/json_in.c.
 *
 * The tree is a preorder array of struct proto_jval: a container is followed
 * by its children, an object's children alternate key (a string) and value,
 * and each value's span counts the nodes of its subtree, so the next sibling
 * of v is v + v->span.
 */
#ifndef PROTO_JDOM_H
#define PROTO_JDOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"

enum proto_jtype {
    PROTO_JNULL,
    PROTO_JFALSE,
    PROTO_JTRUE,
    PROTO_JNUMBER,
    PROTO_JSTRING,
    PROTO_JARRAY,
    PROTO_JOBJECT,
};

/* One value. str is NUL-terminated and holds no NUL; len counts its bytes.
 * For arrays len counts items, for objects members. */
struct proto_jval {
    uint8_t type;
    uint32_t len;
    uint32_t span;
    union {
        double num;
        const char *str;
    } u;
};

enum proto_jdom_status {
    PROTO_JDOM_OK = 0,
    PROTO_JDOM_SYNTAX,   /* not JSON, or JSON jansson refuses; see err */
    PROTO_JDOM_TOO_DEEP, /* arrays and objects nested deeper than allowed */
    PROTO_JDOM_TOO_BIG,  /* arena too small or body over 1 GiB */
};

/* Where and why a body was refused: line and column (1-based, columns
 * count UTF-8 characters) just past the offending token, as jansson
 * reports them, and a sentence such as "'}' expected near ']'". */
struct proto_jdom_error {
    size_t offset;
    int line;
    int column;
    char text[160];
};

#define PROTO_JDOM_MAX_DEPTH 1024

/* Bytes of arena that proto_jdom_parse() needs for a body of body_len
 * bytes (about 27 per body byte); 0 when body_len is over 1 GiB. */
size_t proto_jdom_arena_size(size_t body_len);

/*
 * Parses body[0..len) (not NUL-terminated) into arena, which must hold
 * proto_jdom_arena_size(len) bytes and be aligned for a double. The tree
 * lives in the arena: *out_root is valid until the arena is reused or
 * freed. max_depth (at most PROTO_JDOM_MAX_DEPTH) bounds the nesting of
 * arrays and objects: a top-level object alone is depth 1. On failure
 * out_err (may be NULL) says where and why; *out_root is then untouched.
 */
MUST_CHECK enum proto_jdom_status
proto_jdom_parse(const char *body, size_t len, size_t max_depth, void *arena,
                 size_t arena_size, const struct proto_jval **out_root,
                 struct proto_jdom_error *out_err);

/* The first child of a container (an object's first key), or the end. */
static inline const struct proto_jval *
proto_jdom_first(const struct proto_jval *v)
{
    return v + 1;
}

/* The value after v among its siblings (for an object's value: the next
 * key). */
static inline const struct proto_jval *
proto_jdom_next(const struct proto_jval *v)
{
    return v + v->span;
}

/* The value of key in obj (a PROTO_JOBJECT), or NULL when absent. Keys are
 * compared byte for byte; there is at most one of each. Linear in the
 * object's members. */
static inline const struct proto_jval *
proto_jdom_member(const struct proto_jval *obj, const char *key)
{
    const struct proto_jval *k = proto_jdom_first(obj);
    size_t key_len = strlen(key);

    for (uint32_t i = 0; i < obj->len; i++) {
        if (k->len == key_len && memcmp(k->u.str, key, key_len) == 0)
            return k + 1;
        k = proto_jdom_next(k + 1);
    }
    return NULL;
}

/* Item i of arr (a PROTO_JARRAY), or NULL when i >= arr->len. Linear in i:
 * loops walk with proto_jdom_next() instead. */
static inline const struct proto_jval *
proto_jdom_index(const struct proto_jval *arr, size_t i)
{
    const struct proto_jval *v = proto_jdom_first(arr);

    if (i >= arr->len)
        return NULL;
    while (i-- > 0)
        v = proto_jdom_next(v);
    return v;
}

#endif
