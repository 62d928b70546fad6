/*
 * Builds the policy's compact table of a family (policy/table.h) in
 * memory the caller provides: the sorted list of distinct strings first,
 * then one row per variant with its strings as indexes into that list.
 * Pure; the strings are borrowed from the input.
 */
#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "policy/table.h"

static size_t
clamp(size_t count, size_t max)
{
    return count < max ? count : max;
}

/* How many entries of each array a table of in needs. */
struct table_counts {
    size_t strings;
    size_t accelerators;
    size_t tags;
    size_t class_values;
    size_t class_slots;           /* distinct classes, at most
                                     POLICY_CLASS_SLOTS */
};

/* Adds class to the distinct classes of c (up to POLICY_CLASS_SLOTS). */
static void
class_count(struct table_counts *c, const char **seen, const char *cls)
{
    for (size_t i = 0; i < c->class_slots; i++)
        if (strcmp(seen[i], cls) == 0)
            return;
    if (c->class_slots < POLICY_CLASS_SLOTS)
        seen[c->class_slots++] = cls;
}

/* The older versions of in (none without the array). */
static size_t
older_count_of(const struct policy_input *in)
{
    return in->older ? in->older_count : 0;
}

/* Row i of in: the variants, then the older versions. */
static const struct proto_variant *
input_variant(const struct policy_input *in, size_t i)
{
    return i < in->variant_count ? &in->variants[i]
                                 : &in->older[i - in->variant_count];
}

static struct table_counts
counts_of(const struct policy_input *in)
{
    struct table_counts c = {2 * in->delta_count, 0, 0, 0, 0};
    const char *seen[POLICY_CLASS_SLOTS];
    size_t rows = in->variant_count + older_count_of(in);

    for (size_t i = 0; i < rows; i++) {
        const struct proto_variant *v = input_variant(in, i);
        size_t acc = clamp(v->accelerator_count, PROTO_MAX_ACCELERATORS);
        size_t tags = clamp(v->context_count, PROTO_MAX_TAGS);
        size_t cls = clamp(v->latency_count, PROTO_MAX_LATENCIES) +
                     clamp(v->energy_count, PROTO_MAX_LATENCIES);

        c.accelerators += acc;
        c.tags += tags;
        c.class_values += cls;
        c.strings += 3 + acc + 2 * tags + cls;  /* name, blob, format */
        if (i >= in->variant_count)
            continue;             /* older: no column slots */
        for (size_t j = 0;
             j < clamp(v->latency_count, PROTO_MAX_LATENCIES); j++)
            class_count(&c, seen, v->latency_ms[j].device_class);
        for (size_t j = 0;
             j < clamp(v->energy_count, PROTO_MAX_LATENCIES); j++)
            class_count(&c, seen, v->energy_mj[j].device_class);
    }
    return c;
}

/* Where each array of a table lives in its buffer (byte offsets). */
struct table_layout {
    size_t rows, class_values, strings, accelerators, tags, delta_from,
        delta_to, col_req, col_memory, col_flops, col_accuracy,
        col_accuracy_over, col_bytes, col_blob, col_flags, col_latency,
        col_energy, req_bits, end;
};

static size_t
place(size_t *at, size_t count, size_t size, size_t align)
{
    size_t start = (*at + align - 1) / align * align;

    *at = start + count * size;
    return start;
}

/* The words of a table's req_bits for n variants with columns (0: none):
 * a bit per variant for each requirement it may index. */
static size_t
words_of(size_t n)
{
    return (n + 63) / 64;
}

static size_t
req_bits_count(size_t n)
{
    return (n < POLICY_REQ_MAX ? n : POLICY_REQ_MAX) * words_of(n);
}

static struct table_layout
layout_of(const struct policy_input *in, const struct table_counts *c)
{
    struct table_layout l;
    size_t at = sizeof(struct policy_table);
    size_t n = in->variant_count >= POLICY_COLUMNS_MIN ? in->variant_count
                                                       : 0;

    l.rows = place(&at, in->variant_count + older_count_of(in),
                   sizeof(struct policy_row),
                   alignof(struct policy_row));
    l.class_values =
        place(&at, c->class_values, sizeof(struct policy_class_value),
              alignof(struct policy_class_value));
    l.strings = place(&at, c->strings, sizeof(char *), alignof(char *));
    l.accelerators = place(&at, c->accelerators, sizeof(uint32_t),
                           alignof(uint32_t));
    l.tags = place(&at, c->tags, sizeof(struct policy_tag),
                   alignof(struct policy_tag));
    l.delta_from = place(&at, in->delta_count, sizeof(uint32_t),
                         alignof(uint32_t));
    l.delta_to = place(&at, in->delta_count, sizeof(uint32_t),
                       alignof(uint32_t));
    l.col_memory = place(&at, n, sizeof(uint64_t), alignof(uint64_t));
    l.col_flops = place(&at, n, sizeof(double), alignof(double));
    l.col_accuracy = place(&at, n, sizeof(double), alignof(double));
    l.col_accuracy_over = place(&at, n, sizeof(double), alignof(double));
    l.col_bytes = place(&at, n, sizeof(double), alignof(double));
    l.col_latency = place(&at, c->class_slots * n, sizeof(double),
                          alignof(double));
    l.col_energy = place(&at, c->class_slots * n, sizeof(double),
                         alignof(double));
    l.col_blob = place(&at, n, sizeof(uint32_t), alignof(uint32_t));
    l.col_req = place(&at, n, 1, 1);
    l.col_flags = place(&at, (c->class_slots + 1) * n, 1, 1);
    l.req_bits = place(&at, req_bits_count(n), sizeof(uint64_t),
                       alignof(uint64_t));
    l.end = at;
    return l;
}

size_t
policy_table_size(const struct policy_input *in)
{
    struct table_counts c = counts_of(in);

    return layout_of(in, &c).end;
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

uint32_t
policy_table_find(const struct policy_table *t, const char *s)
{
    size_t lo = 0, hi = t->string_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->strings[mid], s);

        if (c == 0)
            return (uint32_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return POLICY_ID_NONE;
}

/* Every string a select compares, sorted and made distinct. */
static void
strings_fill(struct policy_table *t, const struct policy_input *in)
{
    size_t n = 0, distinct = 0;

    for (size_t i = 0; i < in->variant_count + older_count_of(in); i++) {
        const struct proto_variant *v = input_variant(in, i);

        t->strings[n++] = v->name;
        t->strings[n++] = v->blob_hex;
        t->strings[n++] = v->format;
        for (size_t j = 0;
             j < clamp(v->accelerator_count, PROTO_MAX_ACCELERATORS); j++)
            t->strings[n++] = v->accelerators[j];
        for (size_t j = 0; j < clamp(v->context_count, PROTO_MAX_TAGS);
             j++) {
            t->strings[n++] = v->context[j].key;
            t->strings[n++] = v->context[j].value;
        }
        for (size_t j = 0; j < clamp(v->latency_count, PROTO_MAX_LATENCIES);
             j++)
            t->strings[n++] = v->latency_ms[j].device_class;
        for (size_t j = 0; j < clamp(v->energy_count, PROTO_MAX_LATENCIES);
             j++)
            t->strings[n++] = v->energy_mj[j].device_class;
    }
    for (size_t i = 0; i < in->delta_count; i++) {
        t->strings[n++] = in->deltas[i].from_hex;
        t->strings[n++] = in->deltas[i].to_hex;
    }
    qsort(t->strings, n, sizeof(*t->strings), str_cmp);
    for (size_t i = 0; i < n; i++)
        if (distinct == 0 || strcmp(t->strings[i], t->strings[distinct - 1]))
            t->strings[distinct++] = t->strings[i];
    t->string_count = distinct;
}

static void
row_fill(struct policy_table *t, const struct policy_input *in, size_t i,
         size_t *acc, size_t *tags, size_t *cls)
{
    const struct proto_variant *v = input_variant(in, i);
    struct policy_row *row = &t->rows[i];

    memset(row, 0, sizeof(*row));
    row->size_bytes = v->size_bytes;
    row->memory_bytes = v->memory_bytes ? v->memory_bytes : v->size_bytes;
    row->flops = v->flops;
    row->accuracy = v->accuracy;
    row->name = policy_table_find(t, v->name);
    row->blob = policy_table_find(t, v->blob_hex);
    row->format = v->format[0] ? policy_table_find(t, v->format)
                               : POLICY_ID_NONE;
    row->rollout_percent =
        (uint8_t)(v->rollout_percent < 100 ? v->rollout_percent : 100);
    /* a name's versions are adjacent and strictly decrease (offered_next);
     * an older version's row is never walked: it starts its own */
    row->starts_name = i == 0 || i >= in->variant_count ||
                       !(v->version < v[-1].version &&
                         strcmp(v->name, v[-1].name) == 0);
    row->has_exits = v->exit_count > 0;

    row->accelerator_first = (uint32_t)*acc;
    row->accelerator_count =
        (uint8_t)clamp(v->accelerator_count, PROTO_MAX_ACCELERATORS);
    for (size_t j = 0; j < row->accelerator_count; j++)
        t->accelerators[(*acc)++] = policy_table_find(t, v->accelerators[j]);

    row->tag_first = (uint32_t)*tags;
    row->tag_count = (uint8_t)clamp(v->context_count, PROTO_MAX_TAGS);
    for (size_t j = 0; j < row->tag_count; j++) {
        t->tags[*tags].key = policy_table_find(t, v->context[j].key);
        t->tags[(*tags)++].value = policy_table_find(t, v->context[j].value);
    }

    row->class_first = (uint32_t)*cls;
    row->latency_count =
        (uint8_t)clamp(v->latency_count, PROTO_MAX_LATENCIES);
    row->energy_count = (uint8_t)clamp(v->energy_count, PROTO_MAX_LATENCIES);
    for (size_t j = 0; j < row->latency_count; j++) {
        t->class_values[*cls].device_class =
            policy_table_find(t, v->latency_ms[j].device_class);
        t->class_values[(*cls)++].value = v->latency_ms[j].value;
    }
    for (size_t j = 0; j < row->energy_count; j++) {
        t->class_values[*cls].device_class =
            policy_table_find(t, v->energy_mj[j].device_class);
        t->class_values[(*cls)++].value = v->energy_mj[j].value;
    }
}

/* The first of count class values from first on device class id. */
static bool
class_find(const struct policy_table *t, size_t first, size_t count,
           uint32_t id, double *out)
{
    for (size_t i = 0; i < count; i++) {
        if (t->class_values[first + i].device_class == id) {
            *out = t->class_values[first + i].value;
            return true;
        }
    }
    return false;
}

/* Gives class id a slot unless it has one or they are all taken. */
static void
class_slot(struct policy_table *t, uint32_t id, size_t slots)
{
    for (size_t s = 0; s < t->class_slots; s++)
        if (t->class_ids[s] == id)
            return;
    if (t->class_slots < slots)
        t->class_ids[t->class_slots++] = id;
    else
        t->class_overflow = true;
}

/* The screen's columns, from the rows and class values; slots: the
 * classes the layout has room for (counts_of, the same count). */
static void
columns_fill(struct policy_table *t, size_t slots)
{
    size_t n = t->variant_count;

    t->req_all = true;
    t->req_words = words_of(n);
    memset(t->req_bits, 0, req_bits_count(n) * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        const struct policy_row *row = &t->rows[i];

        t->col_req[i] = row->req;
        t->req_all = t->req_all && row->req != POLICY_REQ_NONE;
        if (row->req != POLICY_REQ_NONE)
            t->req_bits[row->req * t->req_words + i / 64] |=
                (uint64_t)1 << (i % 64);
        t->col_memory[i] = row->memory_bytes;
        t->col_flops[i] = row->flops;
        t->col_accuracy[i] = row->accuracy;
        t->col_accuracy_over[i] =
            row->accuracy + POLICY_REL_EPS * fabs(row->accuracy);
        t->col_bytes[i] = (double)row->size_bytes;
        t->col_blob[i] = row->blob;
        for (size_t j = 0;
             j < (size_t)row->latency_count + row->energy_count; j++)
            class_slot(t, t->class_values[row->class_first + j].device_class,
                       slots);
    }
    for (size_t i = 0; i < n; i++) {
        const struct policy_row *row = &t->rows[i];
        uint8_t exits = row->has_exits ? POLICY_COL_EXITS : 0;

        for (size_t s = 0; s < t->class_slots; s++) {
            uint8_t f = exits;
            double lat = 0, energy = 0;

            if (class_find(t, row->class_first, row->latency_count,
                           t->class_ids[s], &lat))
                f |= POLICY_COL_LATENCY;
            if (class_find(t, row->class_first + row->latency_count,
                           row->energy_count, t->class_ids[s], &energy))
                f |= POLICY_COL_ENERGY;
            t->col_flags[s * n + i] = f;
            t->col_latency[s * n + i] = lat;
            t->col_energy[s * n + i] = energy;
        }
        t->col_flags[t->class_slots * n + i] = exits;
    }
}

/* The index of row's format and accelerators among t's requirements
 * (added when new and there is room), else POLICY_REQ_NONE. */
static uint8_t
req_of(struct policy_table *t, const struct policy_row *row)
{
    const uint32_t *acc = &t->accelerators[row->accelerator_first];

    for (size_t i = 0; i < t->req_count; i++) {
        const struct policy_req *q = &t->reqs[i];

        if (q->format == row->format &&
            q->accelerator_count == row->accelerator_count &&
            memcmp(&t->accelerators[q->accelerator_first], acc,
                   row->accelerator_count * sizeof(*acc)) == 0)
            return (uint8_t)i;
    }
    if (t->req_count == POLICY_REQ_MAX)
        return POLICY_REQ_NONE;
    t->reqs[t->req_count] = (struct policy_req){
        .format = row->format,
        .accelerator_first = row->accelerator_first,
        .accelerator_count = row->accelerator_count,
    };
    return (uint8_t)t->req_count++;
}

const struct policy_table *
policy_table_build(const struct policy_input *in, void *buf, size_t size)
{
    struct table_counts c;
    struct table_layout l;
    struct policy_table *t = buf;
    unsigned char *base = buf;
    size_t acc = 0, tags = 0, cls = 0;

    if (!in || !buf || (in->variant_count > 0 && !in->variants) ||
        (in->delta_count > 0 && !in->deltas) ||
        (in->older_count > 0 && !in->older))
        return NULL;
    c = counts_of(in);
    l = layout_of(in, &c);
    if (size < l.end)
        return NULL;
    memset(t, 0, sizeof(*t));
    t->variants = in->variants;
    t->variant_count = in->variant_count;
    t->older = in->older;
    t->older_count = older_count_of(in);
    t->delta_count = in->delta_count;
    t->rows = (struct policy_row *)(base + l.rows);
    t->class_values = (struct policy_class_value *)(base + l.class_values);
    t->strings = (const char **)(base + l.strings);
    t->accelerators = (uint32_t *)(base + l.accelerators);
    t->tags = (struct policy_tag *)(base + l.tags);
    t->delta_from = (uint32_t *)(base + l.delta_from);
    t->delta_to = (uint32_t *)(base + l.delta_to);
    t->col_req = base + l.col_req;
    t->col_memory = (uint64_t *)(base + l.col_memory);
    t->col_flops = (double *)(base + l.col_flops);
    t->col_accuracy = (double *)(base + l.col_accuracy);
    t->col_accuracy_over = (double *)(base + l.col_accuracy_over);
    t->col_bytes = (double *)(base + l.col_bytes);
    t->col_blob = (uint32_t *)(base + l.col_blob);
    t->col_flags = base + l.col_flags;
    t->col_latency = (double *)(base + l.col_latency);
    t->col_energy = (double *)(base + l.col_energy);
    t->req_bits = (uint64_t *)(base + l.req_bits);

    strings_fill(t, in);
    t->all_offered = true;
    for (size_t i = 0; i < in->variant_count; i++) {
        row_fill(t, in, i, &acc, &tags, &cls);
        t->rows[i].req = req_of(t, &t->rows[i]);
        if (t->rows[i].req != POLICY_REQ_NONE)
            t->reqs[t->rows[i].req].variant_count++;
        t->all_offered = t->all_offered && t->rows[i].starts_name &&
                         t->rows[i].rollout_percent >= 100;
    }
    /* the older versions' rows: the same fields, read only to value a
     * held one (policy.c, old_weigh); no requirement index (hard_check
     * compares their ids), no column, no bit of req_bits */
    for (size_t i = in->variant_count; i < in->variant_count + t->older_count;
         i++) {
        row_fill(t, in, i, &acc, &tags, &cls);
        t->rows[i].req = POLICY_REQ_NONE;
    }
    t->has_columns = in->variant_count >= POLICY_COLUMNS_MIN;
    if (t->has_columns)
        columns_fill(t, c.class_slots);
    for (size_t i = 0; i < in->delta_count; i++) {
        t->delta_from[i] = policy_table_find(t, in->deltas[i].from_hex);
        t->delta_to[i] = policy_table_find(t, in->deltas[i].to_hex);
    }
    return t;
}
