/*
 * The differential check of proto/jdom.c against jansson, shared by the
 * unit test (tests/unit/check_jdom.c, generated documents) and the fuzz
 * target (tests/fuzz/fuzz_jdom.c, arbitrary bytes): both parse the same
 * bytes, json_in's jansson flags plus JSON_DECODE_ANY, and must agree on
 * accepting, on every value (numbers bit for bit, strings byte for byte,
 * members in order) and, for a refusal, on the line of the fault.
 */
#ifndef TESTS_FUZZ_JDOM_DIFF_H
#define TESTS_FUZZ_JDOM_DIFF_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/jdom.h"

#define JDOM_DIFF_FLAGS                                                        \
    (JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES)

/* jdom's bound on nesting for the comparison. jansson's own bound
 * (JSON_PARSER_MAX_DEPTH, 2048 values, scalars included) is counted
 * differently, so a body deeper than this is not compared. */
#define JDOM_DIFF_MAX_DEPTH 1000

static inline bool jdom_diff_same(const struct proto_jval *v, json_t *j)
{
    const struct proto_jval *c;

    switch ((enum proto_jtype)v->type) {
    case PROTO_JNULL:
        return json_is_null(j);
    case PROTO_JTRUE:
        return json_is_true(j);
    case PROTO_JFALSE:
        return json_is_false(j);
    case PROTO_JNUMBER: {
        double x;

        if (!json_is_real(j))
            return false;
        x = json_real_value(j);
        return memcmp(&x, &v->u.num, sizeof(x)) == 0;
    }
    case PROTO_JSTRING:
        return json_is_string(j) && json_string_length(j) == v->len &&
               memcmp(json_string_value(j), v->u.str, v->len) == 0 &&
               v->u.str[v->len] == '\0';
    case PROTO_JARRAY:
        if (!json_is_array(j) || json_array_size(j) != v->len)
            return false;
        c = proto_jdom_first(v);
        for (size_t i = 0; i < v->len; i++, c = proto_jdom_next(c))
            if (!jdom_diff_same(c, json_array_get(j, i)))
                return false;
        return true;
    case PROTO_JOBJECT: {
        void *it = json_object_iter(j);

        if (!json_is_object(j) || json_object_size(j) != v->len)
            return false;
        c = proto_jdom_first(v);
        for (size_t i = 0; i < v->len; i++, c = proto_jdom_next(c + 1)) {
            if (!it || json_object_iter_key_len(it) != c->len ||
                memcmp(json_object_iter_key(it), c->u.str, c->len) != 0 ||
                !jdom_diff_same(c + 1, json_object_iter_value(it)) ||
                proto_jdom_member(v, c->u.str) != c + 1)
                return false;
            it = json_object_iter_next(j, it);
        }
        return it == NULL;
    }
    }
    return false;
}

/* The one difference on purpose: jansson 2.14 drops a NUL byte that
 * directly follows a number or a literal (its unget of a NUL is lost);
 * proto/jdom.c refuses any NUL outside a string. */
static inline bool jdom_diff_nul_quirk(const char *body, size_t len,
                                       const struct proto_jdom_error *e)
{
    /* The error names the NUL as a one-byte token: offset is past it. */
    return e->offset >= 2 && e->offset <= len &&
           body[e->offset - 1] == '\0' && body[e->offset - 2] != '\0' &&
           strchr("0123456789truefalsn", body[e->offset - 2]) != NULL;
}

/*
 * Parses body with both; returns NULL when they agree, else what differs.
 * The arena is malloc'ed at exactly proto_jdom_arena_size() so that ASan
 * sees any write past the bound.
 */
static inline const char *jdom_diff(const char *body, size_t len)
{
    size_t size = proto_jdom_arena_size(len);
    void *arena = malloc(size ? size : 1);
    const struct proto_jval *root = NULL;
    struct proto_jdom_error e;
    json_error_t je;
    json_t *j = json_loadb(body, len, JDOM_DIFF_FLAGS, &je);
    enum proto_jdom_status st;
    const char *why = NULL;

    if (!arena) {
        json_decref(j);
        return "out of memory";
    }
    memset(&e, 0, sizeof(e));
    st = proto_jdom_parse(body, len, JDOM_DIFF_MAX_DEPTH, arena, size, &root,
                          &e);
    if (st == PROTO_JDOM_OK && !j)
        why = "jdom accepts what jansson refuses";
    else if (st == PROTO_JDOM_SYNTAX && j &&
             !jdom_diff_nul_quirk(body, len, &e))
        why = "jdom refuses what jansson accepts";
    else if (st == PROTO_JDOM_OK && !jdom_diff_same(root, j))
        why = "the values differ";
    else if (st == PROTO_JDOM_SYNTAX && !j && e.line != je.line &&
             !jdom_diff_nul_quirk(body, len, &e))
        why = "the error lines differ";
    else if (st == PROTO_JDOM_TOO_BIG)
        why = "jdom found its arena too small";
    json_decref(j);
    free(arena);
    return why;
}

#endif
