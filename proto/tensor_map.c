/*
 * Tensor maps: where a model file keeps its tensors. One strict, bounded
 * reader per format (safetensors, GGUF, ONNX protobuf, TFLite flatbuffer,
 * TF.js weightsManifest); every offset and count is checked against the
 * bytes before use, and any doubt makes the file "unknown format"
 * (PROTO_BAD_INPUT), which only means its delta is made without tensors.
 * The readers collect candidates; one common step sorts them by offset and
 * drops empty and overlapping ones.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/tensor.h"

#define MAX_JSON_HEADER_BYTES ((uint64_t)64 << 20)
#define ONNX_MAX_DEPTH 8

/* ---- the collection ------------------------------------------------------ */

struct collect {
    struct proto_tensor *t;
    size_t count, cap;
    bool failed_memory;
};

static unsigned dtype_width(enum proto_dtype d)
{
    switch (d) {
    case PROTO_DTYPE_F32:
    case PROTO_DTYPE_I32:
    case PROTO_DTYPE_U32:
        return 4;
    case PROTO_DTYPE_F16:
    case PROTO_DTYPE_BF16:
    case PROTO_DTYPE_I16:
    case PROTO_DTYPE_U16:
        return 2;
    case PROTO_DTYPE_F64:
    case PROTO_DTYPE_I64:
    case PROTO_DTYPE_U64:
        return 8;
    default:
        return 1;
    }
}

/* Adds a tensor; false when the map is over its bounds or memory is out. */
static bool add(struct collect *c, const char *name, size_t name_len,
                enum proto_dtype dtype, const uint64_t *shape, unsigned ndim,
                uint64_t offset, uint64_t len)
{
    struct proto_tensor *t;

    if (c->count >= PROTO_TENSOR_MAX_COUNT)
        return false;
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct proto_tensor *n = realloc(c->t, cap * sizeof(*n));

        if (!n) {
            c->failed_memory = true;
            return false;
        }
        c->t = n;
        c->cap = cap;
    }
    t = &c->t[c->count++];
    memset(t, 0, sizeof(*t));
    if (name_len >= PROTO_TENSOR_NAME_SIZE)
        name_len = PROTO_TENSOR_NAME_SIZE - 1;
    if (name_len)
        memcpy(t->name, name, name_len);
    t->dtype = dtype;
    t->elem_bytes = dtype_width(dtype);
    if (ndim > PROTO_TENSOR_MAX_DIMS)
        ndim = PROTO_TENSOR_MAX_DIMS;
    t->ndim = ndim;
    for (unsigned i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->offset = offset;
    t->len = len;
    /* A plane split needs whole elements. */
    if (len % t->elem_bytes != 0)
        t->elem_bytes = 1;
    return true;
}

static int by_offset(const void *a, const void *b)
{
    const struct proto_tensor *x = a, *y = b;

    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* Sorts, drops empty and overlapping entries, hands the array to out. */
static enum proto_status finish(struct collect *c, uint64_t file_len,
                                enum proto_model_format f,
                                struct proto_tensor_map *out)
{
    size_t n = 0;
    uint64_t end = 0;

    if (c->failed_memory) {
        free(c->t);
        return PROTO_NO_MEMORY;
    }
    if (c->count)
        qsort(c->t, c->count, sizeof(*c->t), by_offset);
    for (size_t i = 0; i < c->count; i++) {
        struct proto_tensor *t = &c->t[i];

        if (t->len == 0 || t->offset > file_len ||
            t->len > file_len - t->offset || t->offset < end)
            continue;
        end = t->offset + t->len;
        c->t[n++] = *t;
    }
    if (n == 0) {
        free(c->t);
        return PROTO_BAD_INPUT;
    }
    out->format = f;
    out->tensors = c->t;
    out->count = n;
    return PROTO_OK;
}

static uint64_t le(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* a * b, false on overflow. */
static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return false;
    *out = a * b;
    return true;
}

/* ---- safetensors --------------------------------------------------------- */

static const struct {
    const char *name;
    enum proto_dtype dtype;
    unsigned bytes;
} st_types[] = {
    { "F32", PROTO_DTYPE_F32, 4 },   { "F16", PROTO_DTYPE_F16, 2 },
    { "BF16", PROTO_DTYPE_BF16, 2 }, { "F64", PROTO_DTYPE_F64, 8 },
    { "I8", PROTO_DTYPE_I8, 1 },     { "U8", PROTO_DTYPE_U8, 1 },
    { "I16", PROTO_DTYPE_I16, 2 },   { "U16", PROTO_DTYPE_U16, 2 },
    { "I32", PROTO_DTYPE_I32, 4 },   { "U32", PROTO_DTYPE_U32, 4 },
    { "I64", PROTO_DTYPE_I64, 8 },   { "U64", PROTO_DTYPE_U64, 8 },
    { "BOOL", PROTO_DTYPE_BOOL, 1 }, { "F8_E4M3", PROTO_DTYPE_OTHER, 1 },
    { "F8_E5M2", PROTO_DTYPE_OTHER, 1 },
};

/* Reads a shape array; false when not an array of at most 2^53 ints. */
static bool json_shape(const json_t *a, uint64_t *shape, unsigned *ndim,
                       uint64_t *out_count)
{
    uint64_t count = 1;
    size_t n;

    if (!json_is_array(a))
        return false;
    n = json_array_size(a);
    if (n > 64)
        return false;
    *ndim = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(a, i);
        json_int_t v;

        if (!json_is_integer(d) || (v = json_integer_value(d)) < 0 ||
            !mul_ok(count, (uint64_t)v, &count))
            return false;
        if (i < PROTO_TENSOR_MAX_DIMS)
            shape[(*ndim)++] = (uint64_t)v;
    }
    *out_count = count;
    return true;
}

static enum proto_status parse_safetensors(const unsigned char *p, size_t len,
                                           struct proto_tensor_map *out)
{
    struct collect c = { 0 };
    uint64_t hlen, base;
    json_t *root;
    const char *key;
    json_t *val;
    bool ok = true;

    if (len < 10)
        return PROTO_BAD_INPUT;
    hlen = le(p, 8);
    if (hlen < 2 || hlen > MAX_JSON_HEADER_BYTES || hlen > len - 8 ||
        p[8] != '{')
        return PROTO_BAD_INPUT;
    base = 8 + hlen;
    root = json_loadb((const char *)p + 8, (size_t)hlen,
                      JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return PROTO_BAD_INPUT;
    }
    json_object_foreach(root, key, val) {
        const char *dt;
        json_t *offs = json_object_get(val, "data_offsets");
        uint64_t shape[PROTO_TENSOR_MAX_DIMS], count, bytes, b, e;
        unsigned ndim = 0;
        size_t k;

        if (strcmp(key, "__metadata__") == 0)
            continue;
        dt = json_string_value(json_object_get(val, "dtype"));
        if (!dt || !json_is_array(offs) || json_array_size(offs) != 2 ||
            !json_is_integer(json_array_get(offs, 0)) ||
            !json_is_integer(json_array_get(offs, 1)) ||
            !json_shape(json_object_get(val, "shape"), shape, &ndim,
                        &count)) {
            ok = false;
            break;
        }
        for (k = 0; k < ARRAY_SIZE(st_types); k++)
            if (strcmp(st_types[k].name, dt) == 0)
                break;
        if (k == ARRAY_SIZE(st_types)) {
            ok = false;
            break;
        }
        b = (uint64_t)json_integer_value(json_array_get(offs, 0));
        e = (uint64_t)json_integer_value(json_array_get(offs, 1));
        if (json_integer_value(json_array_get(offs, 0)) < 0 || e < b ||
            e > len - base || !mul_ok(count, st_types[k].bytes, &bytes) ||
            bytes != e - b) {
            ok = false;
            break;
        }
        if (!add(&c, key, strlen(key), st_types[k].dtype, shape, ndim,
                 base + b, e - b)) {
            ok = false;
            break;
        }
    }
    json_decref(root);
    if (!ok) {
        enum proto_status rc = c.failed_memory ? PROTO_NO_MEMORY
                                               : PROTO_BAD_INPUT;
        free(c.t);
        return rc;
    }
    return finish(&c, len, PROTO_MODEL_SAFETENSORS, out);
}

/* ---- GGUF ---------------------------------------------------------------- */

struct rd {
    const unsigned char *p;
    size_t len, pos;
    bool bad;
};

static uint64_t rd_le(struct rd *r, unsigned n)
{
    uint64_t v;

    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return 0;
    }
    v = le(r->p + r->pos, n);
    r->pos += n;
    return v;
}

static void rd_skip(struct rd *r, uint64_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return;
    }
    r->pos += (size_t)n;
}

/* A GGUF string: u64 length and bytes. */
static const char *gguf_str(struct rd *r, size_t *out_len)
{
    uint64_t n = rd_le(r, 8);
    const char *s = (const char *)r->p + r->pos;

    rd_skip(r, n);
    *out_len = r->bad ? 0 : (size_t)n;
    return r->bad ? NULL : s;
}

/* Bytes of one scalar of a GGUF value type; 0 for string, array, bad. */
static unsigned gguf_scalar(uint32_t type)
{
    static const unsigned size[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

    return type < ARRAY_SIZE(size) ? size[type] : 0;
}

static void gguf_skip_value(struct rd *r, uint32_t type, int depth)
{
    size_t n;

    if (type == 8) {
        (void)gguf_str(r, &n);
    } else if (type == 9) {
        uint32_t et = (uint32_t)rd_le(r, 4);
        uint64_t count = rd_le(r, 8);

        if (depth > 2 || r->bad)
            r->bad = true;
        else if (gguf_scalar(et)) {
            uint64_t bytes;

            if (!mul_ok(count, gguf_scalar(et), &bytes))
                r->bad = true;
            rd_skip(r, bytes);
        } else {
            /* Each element takes at least 8 bytes: bounds the loop. */
            if (count > (r->len - r->pos) / 8 + 1)
                r->bad = true;
            for (uint64_t i = 0; i < count && !r->bad; i++)
                gguf_skip_value(r, et, depth + 1);
        }
    } else if (gguf_scalar(type)) {
        rd_skip(r, gguf_scalar(type));
    } else {
        r->bad = true;
    }
}

/* GGML tensor types: dtype and bytes per element; 0 bytes = block
 * quantized, its length is the distance to the next tensor. */
static void gguf_type(uint32_t t, enum proto_dtype *dt, unsigned *bytes)
{
    *dt = PROTO_DTYPE_OTHER;
    *bytes = 0;
    switch (t) {
    case 0: *dt = PROTO_DTYPE_F32; *bytes = 4; break;
    case 1: *dt = PROTO_DTYPE_F16; *bytes = 2; break;
    case 24: *dt = PROTO_DTYPE_I8; *bytes = 1; break;
    case 25: *dt = PROTO_DTYPE_I16; *bytes = 2; break;
    case 26: *dt = PROTO_DTYPE_I32; *bytes = 4; break;
    case 27: *dt = PROTO_DTYPE_I64; *bytes = 8; break;
    case 28: *dt = PROTO_DTYPE_F64; *bytes = 8; break;
    case 30: *dt = PROTO_DTYPE_BF16; *bytes = 2; break;
    default: break;
    }
}

static enum proto_status parse_gguf(const unsigned char *p, size_t len,
                                    struct proto_tensor_map *out)
{
    struct rd r = { p, len, 4, false };
    struct collect c = { 0 };
    uint64_t version, n_tensors, n_kv, align = 32, base;

    version = rd_le(&r, 4);
    n_tensors = rd_le(&r, 8);
    n_kv = rd_le(&r, 8);
    if (r.bad || version < 2 || version > 3 ||
        n_tensors > PROTO_TENSOR_MAX_COUNT || n_kv > len / 12)
        return PROTO_BAD_INPUT;
    for (uint64_t i = 0; i < n_kv && !r.bad; i++) {
        size_t klen;
        const char *key = gguf_str(&r, &klen);
        uint32_t type = (uint32_t)rd_le(&r, 4);

        if (!r.bad && type == 4 && klen == 17 &&
            memcmp(key, "general.alignment", 17) == 0) {
            align = rd_le(&r, 4);
            if (align == 0 || align > 65536 || (align & (align - 1)))
                r.bad = true;
        } else {
            gguf_skip_value(&r, type, 0);
        }
    }
    for (uint64_t i = 0; i < n_tensors && !r.bad; i++) {
        size_t nlen;
        const char *name = gguf_str(&r, &nlen);
        uint32_t ndim = (uint32_t)rd_le(&r, 4);
        uint64_t shape[PROTO_TENSOR_MAX_DIMS], count = 1, off, bytes = 0;
        enum proto_dtype dt;
        unsigned eb;

        if (ndim > PROTO_TENSOR_MAX_DIMS) {
            r.bad = true;
            break;
        }
        for (uint32_t d = 0; d < ndim; d++) {
            shape[d] = rd_le(&r, 8);
            if (!mul_ok(count, shape[d], &count))
                r.bad = true;
        }
        gguf_type((uint32_t)rd_le(&r, 4), &dt, &eb);
        off = rd_le(&r, 8);
        if (r.bad)
            break;
        if (eb && !mul_ok(count, eb, &bytes))
            r.bad = true;
        /* len filled below (relative offsets until then) */
        if (r.bad || !add(&c, name, nlen, dt, shape, ndim, off, bytes)) {
            r.bad = true;
            break;
        }
    }
    if (r.bad) {
        enum proto_status rc = c.failed_memory ? PROTO_NO_MEMORY
                                               : PROTO_BAD_INPUT;
        free(c.t);
        return rc;
    }
    base = ((uint64_t)r.pos + align - 1) / align * align;
    if (base > len) {
        free(c.t);
        return PROTO_BAD_INPUT;
    }
    /* Quantized tensors end where the next one (by offset) begins. */
    if (c.count)
        qsort(c.t, c.count, sizeof(*c.t), by_offset);
    for (size_t i = 0; i < c.count; i++) {
        struct proto_tensor *t = &c.t[i];
        uint64_t next = i + 1 < c.count ? c.t[i + 1].offset : len - base;

        if (t->offset > len - base) {
            t->len = 0;
            continue;
        }
        if (t->len == 0 && next >= t->offset)
            t->len = next - t->offset;
        t->offset += base;
        if (t->len % t->elem_bytes)
            t->elem_bytes = 1;
    }
    return finish(&c, len, PROTO_MODEL_GGUF, out);
}

/* ---- ONNX (protobuf) ------------------------------------------------------ */

/* A protobuf field: its number, wire type and value or payload. */
struct pb_field {
    uint32_t num;
    unsigned wire;
    uint64_t value;               /* varint / fixed */
    size_t at, len;               /* length-delimited payload */
};

static bool pb_varint(const unsigned char *p, size_t end, size_t *pos,
                      uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        unsigned char b;

        if (*pos >= end)
            return false;
        b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Next field of the message [*pos, end); false at the end or on bad
 * bytes (*bad set). */
static bool pb_next(const unsigned char *p, size_t end, size_t *pos,
                    struct pb_field *f, bool *bad)
{
    uint64_t key, n;

    if (*pos >= end)
        return false;
    if (!pb_varint(p, end, pos, &key) || (key >> 3) == 0 ||
        (key >> 3) > 0x1fffffff) {
        *bad = true;
        return false;
    }
    f->num = (uint32_t)(key >> 3);
    f->wire = (unsigned)(key & 7);
    f->value = 0;
    f->at = *pos;
    f->len = 0;
    switch (f->wire) {
    case 0:
        if (!pb_varint(p, end, pos, &f->value))
            *bad = true;
        break;
    case 1:
    case 5: {
        unsigned w = f->wire == 1 ? 8 : 4;

        if (end - *pos < w)
            *bad = true;
        else {
            f->value = le(p + *pos, w);
            *pos += w;
        }
        break;
    }
    case 2:
        if (!pb_varint(p, end, pos, &n) || n > end - *pos)
            *bad = true;
        else {
            f->at = *pos;
            f->len = (size_t)n;
            *pos += (size_t)n;
        }
        break;
    default:
        *bad = true;
    }
    return !*bad;
}

static enum proto_dtype onnx_dtype(uint64_t t)
{
    switch (t) {
    case 1: return PROTO_DTYPE_F32;
    case 2: return PROTO_DTYPE_U8;
    case 3: return PROTO_DTYPE_I8;
    case 4: return PROTO_DTYPE_U16;
    case 5: return PROTO_DTYPE_I16;
    case 6: return PROTO_DTYPE_I32;
    case 7: return PROTO_DTYPE_I64;
    case 9: return PROTO_DTYPE_BOOL;
    case 10: return PROTO_DTYPE_F16;
    case 11: return PROTO_DTYPE_F64;
    case 12: return PROTO_DTYPE_U32;
    case 13: return PROTO_DTYPE_U64;
    case 16: return PROTO_DTYPE_BF16;
    default: return PROTO_DTYPE_OTHER;
    }
}

struct onnx {
    const unsigned char *p;
    struct collect c;
    bool bad;                     /* malformed or external data */
};

/* TensorProto: dims 1, data_type 2, float_data 4, int32_data 5,
 * int64_data 7, name 8, raw_data 9, double_data 10, uint64_data 11,
 * external_data 13, data_location 14. */
static void onnx_tensor(struct onnx *o, size_t at, size_t end)
{
    struct pb_field f;
    size_t pos = at, name_at = 0, name_len = 0;
    uint64_t shape[PROTO_TENSOR_MAX_DIMS], dtype = 0;
    unsigned ndim = 0;
    size_t data_at = 0, data_len = 0;
    unsigned data_width = 0;
    bool have_data = false;

    while (pb_next(o->p, end, &pos, &f, &o->bad)) {
        switch (f.num) {
        case 1:
            if (f.wire == 0) {
                if (ndim < PROTO_TENSOR_MAX_DIMS)
                    shape[ndim++] = f.value;
            } else if (f.wire == 2) {
                size_t q = f.at;
                uint64_t v;

                while (q < f.at + f.len)
                    if (!pb_varint(o->p, f.at + f.len, &q, &v)) {
                        o->bad = true;
                        return;
                    } else if (ndim < PROTO_TENSOR_MAX_DIMS) {
                        shape[ndim++] = v;
                    }
            }
            break;
        case 2:
            dtype = f.value;
            break;
        case 8:
            if (f.wire == 2) {
                name_at = f.at;
                name_len = f.len;
            }
            break;
        case 13:
            o->bad = true;        /* external data: refused */
            return;
        case 14:
            if (f.value == 1) {
                o->bad = true;
                return;
            }
            break;
        case 9:
        case 4:
        case 5:
        case 7:
        case 10:
        case 11:
            if (f.wire != 2 || have_data)
                break;
            have_data = true;
            data_at = f.at;
            data_len = f.len;
            data_width = f.num == 4 ? 4 : f.num == 10 ? 8 : 1;
            if (f.num == 9)
                data_width = 0;   /* from the data type */
            break;
        default:
            break;
        }
    }
    if (o->bad || !have_data || data_len == 0)
        return;
    {
        enum proto_dtype dt = onnx_dtype(dtype);

        /* Varint-coded typed data has no fixed element width. */
        if (data_width == 1)
            dt = PROTO_DTYPE_OTHER;
        else if (data_width == 4 && dt != PROTO_DTYPE_F32)
            dt = PROTO_DTYPE_F32;
        else if (data_width == 8 && dt != PROTO_DTYPE_F64)
            dt = PROTO_DTYPE_F64;
        if (!add(&o->c, (const char *)o->p + name_at, name_len, dt, shape,
                 ndim, data_at, data_len))
            o->bad = true;
    }
}

static void onnx_graph(struct onnx *o, size_t at, size_t end, int depth);

/* AttributeProto: t 5, g 6, tensors 10, graphs 11. */
static void onnx_attribute(struct onnx *o, size_t at, size_t end, int depth,
                           bool constant)
{
    struct pb_field f;
    size_t pos = at;

    while (pb_next(o->p, end, &pos, &f, &o->bad)) {
        if (f.wire != 2)
            continue;
        if ((f.num == 5 && constant) || f.num == 10)
            onnx_tensor(o, f.at, f.at + f.len);
        else if (f.num == 6 || f.num == 11)
            onnx_graph(o, f.at, f.at + f.len, depth + 1);
        if (o->bad)
            return;
    }
}

/* NodeProto: op_type 4, attribute 5. Constant nodes hold tensors; any
 * node's graph attributes (If, Loop, Scan) are subgraphs. */
static void onnx_node(struct onnx *o, size_t at, size_t end, int depth)
{
    struct pb_field f;
    size_t pos = at;
    bool constant = false;

    while (pb_next(o->p, end, &pos, &f, &o->bad))
        if (f.num == 4 && f.wire == 2 && f.len == 8 &&
            memcmp(o->p + f.at, "Constant", 8) == 0)
            constant = true;
    if (o->bad)
        return;
    pos = at;
    while (pb_next(o->p, end, &pos, &f, &o->bad)) {
        if (f.num == 5 && f.wire == 2)
            onnx_attribute(o, f.at, f.at + f.len, depth, constant);
        if (o->bad)
            return;
    }
}

/* GraphProto: node 1, initializer 5. */
static void onnx_graph(struct onnx *o, size_t at, size_t end, int depth)
{
    struct pb_field f;
    size_t pos = at;

    if (depth > ONNX_MAX_DEPTH) {
        o->bad = true;
        return;
    }
    while (pb_next(o->p, end, &pos, &f, &o->bad)) {
        if (f.wire != 2)
            continue;
        if (f.num == 1)
            onnx_node(o, f.at, f.at + f.len, depth);
        else if (f.num == 5)
            onnx_tensor(o, f.at, f.at + f.len);
        if (o->bad)
            return;
    }
}

/* ModelProto: ir_version 1 (varint, first in every exporter's output),
 * graph 7. */
static enum proto_status parse_onnx(const unsigned char *p, size_t len,
                                    struct proto_tensor_map *out)
{
    struct onnx o = { p, { 0 }, false };
    struct pb_field f;
    size_t pos = 0;
    bool graph = false, ir = false;

    if (len < 2 || p[0] != 0x08)
        return PROTO_BAD_INPUT;
    while (pb_next(p, len, &pos, &f, &o.bad)) {
        if (f.num == 1 && f.wire == 0)
            ir = f.value > 0 && f.value < 100;
        if (f.num == 7 && f.wire == 2) {
            graph = true;
            onnx_graph(&o, f.at, f.at + f.len, 0);
        }
        if (o.bad)
            break;
    }
    if (o.bad || !graph || !ir) {
        enum proto_status rc = o.c.failed_memory ? PROTO_NO_MEMORY
                                                 : PROTO_BAD_INPUT;
        free(o.c.t);
        return rc;
    }
    return finish(&o.c, len, PROTO_MODEL_ONNX, out);
}

/* ---- TFLite (flatbuffer) --------------------------------------------------- */

struct fb {
    const unsigned char *p;
    size_t len;
    bool bad;
};

static uint64_t fb_u(struct fb *b, uint64_t at, unsigned n)
{
    if (b->bad || at > b->len || b->len - at < n) {
        b->bad = true;
        return 0;
    }
    return le(b->p + at, n);
}

/* Position of field i's value in the table at t, 0 when absent. */
static uint64_t fb_field(struct fb *b, uint64_t t, unsigned i)
{
    int32_t so = (int32_t)(uint32_t)fb_u(b, t, 4);
    int64_t vt = (int64_t)t - so;
    uint64_t vlen, off;

    if (b->bad || vt < 0 || (uint64_t)vt >= b->len) {
        b->bad = true;
        return 0;
    }
    vlen = fb_u(b, (uint64_t)vt, 2);
    if (b->bad || 4 + 2 * (uint64_t)i + 2 > vlen)
        return 0;
    off = fb_u(b, (uint64_t)vt + 4 + 2 * i, 2);
    return off ? t + off : 0;
}

/* The object an offset field points to (table, vector, string). */
static uint64_t fb_deref(struct fb *b, uint64_t at)
{
    uint64_t target = at + fb_u(b, at, 4);

    if (b->bad || target >= b->len) {
        b->bad = true;
        return 0;
    }
    return target;
}

/* A vector field: position of its first element and its length. */
static bool fb_vector(struct fb *b, uint64_t t, unsigned i, unsigned elem,
                      uint64_t *out_at, uint64_t *out_n)
{
    uint64_t f = fb_field(b, t, i), v, n;

    if (!f || b->bad)
        return false;
    v = fb_deref(b, f);
    n = fb_u(b, v, 4);
    if (b->bad || n > (b->len - v - 4) / elem) {
        b->bad = true;
        return false;
    }
    *out_at = v + 4;
    *out_n = n;
    return true;
}

static enum proto_dtype tflite_dtype(uint64_t t)
{
    switch (t) {
    case 0: return PROTO_DTYPE_F32;
    case 1: return PROTO_DTYPE_F16;
    case 2: return PROTO_DTYPE_I32;
    case 3: return PROTO_DTYPE_U8;
    case 4: return PROTO_DTYPE_I64;
    case 6: return PROTO_DTYPE_BOOL;
    case 7: return PROTO_DTYPE_I16;
    case 9: return PROTO_DTYPE_I8;
    case 10: return PROTO_DTYPE_F64;
    case 12: return PROTO_DTYPE_U64;
    case 15: return PROTO_DTYPE_U32;
    case 16: return PROTO_DTYPE_U16;
    default: return PROTO_DTYPE_OTHER;
    }
}

/* What a buffer's first tensor says about it. */
struct tfl_info {
    uint64_t name_at, name_len;
    enum proto_dtype dtype;
    uint64_t shape[PROTO_TENSOR_MAX_DIMS];
    unsigned ndim;
    bool set;
};

/* Model: subgraphs 2, buffers 4. SubGraph: tensors 0. Tensor: shape 0,
 * type 1, buffer 2, name 3. Buffer: data 0, offset 1, size 2. */
static enum proto_status parse_tflite(const unsigned char *p, size_t len,
                                      struct proto_tensor_map *out)
{
    struct fb b = { p, len, false };
    struct collect c = { 0 };
    struct tfl_info *info = NULL;
    uint64_t root, bufs_at, nbufs, subs_at, nsubs;
    enum proto_status rc = PROTO_BAD_INPUT;

    if (len < 16 || memcmp(p + 4, "TFL3", 4) != 0)
        return PROTO_BAD_INPUT;
    root = fb_deref(&b, 0);
    if (b.bad || !fb_vector(&b, root, 4, 4, &bufs_at, &nbufs) ||
        nbufs > PROTO_TENSOR_MAX_COUNT)
        return PROTO_BAD_INPUT;
    info = calloc(nbufs ? nbufs : 1, sizeof(*info));
    if (!info)
        return PROTO_NO_MEMORY;
    if (fb_vector(&b, root, 2, 4, &subs_at, &nsubs)) {
        for (uint64_t s = 0; s < nsubs && !b.bad; s++) {
            uint64_t sg = fb_deref(&b, subs_at + 4 * s), ts_at, nts;

            if (b.bad || !fb_vector(&b, sg, 0, 4, &ts_at, &nts))
                continue;
            for (uint64_t k = 0; k < nts && !b.bad; k++) {
                uint64_t t = fb_deref(&b, ts_at + 4 * k), f, bi, sh_at, nsh;
                struct tfl_info *in;

                if (b.bad)
                    break;
                f = fb_field(&b, t, 2);
                bi = f ? fb_u(&b, f, 4) : 0;
                if (b.bad || bi >= nbufs || info[bi].set)
                    continue;
                in = &info[bi];
                in->set = true;
                f = fb_field(&b, t, 1);
                in->dtype = tflite_dtype(f ? fb_u(&b, f, 1) : 0);
                if (fb_vector(&b, t, 0, 4, &sh_at, &nsh))
                    for (uint64_t d = 0; d < nsh &&
                                         in->ndim < PROTO_TENSOR_MAX_DIMS;
                         d++)
                        in->shape[in->ndim++] =
                            (uint64_t)(int64_t)(int32_t)fb_u(&b, sh_at + 4 * d,
                                                             4);
                f = fb_field(&b, t, 3);
                if (f) {
                    uint64_t s_at = fb_deref(&b, f);
                    uint64_t n = fb_u(&b, s_at, 4);

                    if (!b.bad && n <= len - s_at - 4) {
                        in->name_at = s_at + 4;
                        in->name_len = n;
                    }
                }
            }
        }
    }
    for (uint64_t i = 0; i < nbufs && !b.bad; i++) {
        uint64_t buf = fb_deref(&b, bufs_at + 4 * i), d_at, n, off = 0, sz = 0;
        uint64_t f;
        const struct tfl_info *in = &info[i];
        enum proto_dtype dt = in->set ? in->dtype : PROTO_DTYPE_OTHER;

        if (b.bad)
            break;
        if (fb_vector(&b, buf, 0, 1, &d_at, &n)) {
            off = d_at;
            sz = n;
        } else if ((f = fb_field(&b, buf, 1)) != 0) {
            off = fb_u(&b, f, 8);
            f = fb_field(&b, buf, 2);
            sz = f ? fb_u(&b, f, 8) : 0;
        }
        if (b.bad || sz == 0)
            continue;
        if (off > len || sz > len - off) {
            b.bad = true;
            break;
        }
        if (!add(&c, in->set ? (const char *)p + in->name_at : "",
                 in->set ? (size_t)in->name_len : 0, dt, in->shape,
                 in->set ? in->ndim : 0, off, sz)) {
            b.bad = true;
            break;
        }
    }
    free(info);
    if (b.bad) {
        rc = c.failed_memory ? PROTO_NO_MEMORY : PROTO_BAD_INPUT;
        free(c.t);
        return rc;
    }
    return finish(&c, len, PROTO_MODEL_TFLITE, out);
}

/* ---- TF.js ------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum proto_dtype dtype;
    unsigned bytes;
} tfjs_types[] = {
    { "float32", PROTO_DTYPE_F32, 4 }, { "int32", PROTO_DTYPE_I32, 4 },
    { "bool", PROTO_DTYPE_BOOL, 1 },   { "float16", PROTO_DTYPE_F16, 2 },
    { "uint8", PROTO_DTYPE_U8, 1 },    { "uint16", PROTO_DTYPE_U16, 2 },
    { "int8", PROTO_DTYPE_I8, 1 },     { "int16", PROTO_DTYPE_I16, 2 },
};

/* A weight's stored dtype: its quantization's when quantized. */
static bool tfjs_type(const json_t *w, enum proto_dtype *dt, unsigned *bytes)
{
    const json_t *q = json_object_get(w, "quantization");
    const char *name = json_string_value(
        json_object_get(json_is_object(q) ? q : w, "dtype"));

    if (!name)
        return false;
    for (size_t k = 0; k < ARRAY_SIZE(tfjs_types); k++)
        if (strcmp(tfjs_types[k].name, name) == 0) {
            *dt = tfjs_types[k].dtype;
            *bytes = tfjs_types[k].bytes;
            /* uint8/uint16 quantization stores codes; float16 stores
             * halves (still floats). */
            return true;
        }
    return false;
}

static enum proto_status parse_tfjs(const unsigned char *p, size_t len,
                                    const void *manifest, size_t manifest_len,
                                    struct proto_tensor_map *out)
{
    struct collect c = { 0 };
    json_t *root, *groups;
    uint64_t at = 0;
    bool ok = true;

    (void)p;                      /* the shards hold nothing but weights */
    if (manifest_len > MAX_JSON_HEADER_BYTES)
        return PROTO_BAD_INPUT;
    root = json_loadb(manifest, manifest_len, JSON_REJECT_DUPLICATES, NULL);
    groups = json_object_get(root, "weightsManifest");
    if (!json_is_array(groups)) {
        json_decref(root);
        return PROTO_BAD_INPUT;
    }
    for (size_t g = 0; g < json_array_size(groups) && ok; g++) {
        json_t *ws = json_object_get(json_array_get(groups, g), "weights");

        if (!json_is_array(ws)) {
            ok = false;
            break;
        }
        for (size_t i = 0; i < json_array_size(ws) && ok; i++) {
            json_t *w = json_array_get(ws, i);
            const char *name = json_string_value(json_object_get(w, "name"));
            uint64_t shape[PROTO_TENSOR_MAX_DIMS], count, bytes;
            unsigned ndim = 0, eb;
            enum proto_dtype dt;

            if (!name || !tfjs_type(w, &dt, &eb) ||
                !json_shape(json_object_get(w, "shape"), shape, &ndim,
                            &count) ||
                !mul_ok(count, eb, &bytes) || bytes > len - at ||
                !add(&c, name, strlen(name), dt, shape, ndim, at, bytes))
                ok = false;
            else
                at += bytes;
        }
    }
    json_decref(root);
    if (!ok) {
        enum proto_status rc = c.failed_memory ? PROTO_NO_MEMORY
                                               : PROTO_BAD_INPUT;
        free(c.t);
        return rc;
    }
    return finish(&c, len, PROTO_MODEL_TFJS, out);
}

/* ---- entry -------------------------------------------------------------- */

enum proto_status proto_tensor_map_parse(const void *data, size_t len,
                                         const void *manifest,
                                         size_t manifest_len,
                                         struct proto_tensor_map *out)
{
    const unsigned char *p = data;

    if (!out || (len > 0 && !data) || (manifest_len > 0 && !manifest))
        return PROTO_BAD_INPUT;
    memset(out, 0, sizeof(*out));
    if (manifest)
        return parse_tfjs(p, len, manifest, manifest_len, out);
    if (len >= 8 && memcmp(p, "GGUF", 4) == 0)
        return parse_gguf(p, len, out);
    if (len >= 8 && memcmp(p + 4, "TFL3", 4) == 0)
        return parse_tflite(p, len, out);
    if (len >= 10 && p[8] == '{')
        return parse_safetensors(p, len, out);
    return parse_onnx(p, len, out);
}

void proto_tensor_map_free(struct proto_tensor_map *m)
{
    if (!m)
        return;
    free(m->tensors);
    m->tensors = NULL;
    m->count = 0;
}

const char *proto_model_format_name(enum proto_model_format f)
{
    static const char *const names[] = {
        [PROTO_MODEL_UNKNOWN] = "unknown",
        [PROTO_MODEL_SAFETENSORS] = "safetensors",
        [PROTO_MODEL_GGUF] = "gguf",
        [PROTO_MODEL_ONNX] = "onnx",
        [PROTO_MODEL_TFLITE] = "tflite",
        [PROTO_MODEL_TFJS] = "tfjs",
    };

    return (unsigned)f < ARRAY_SIZE(names) ? names[f] : "unknown";
}
