/*
 * The policy's compact view of one family (internal to policy/): what the
 * per-variant checks of a select read, one 64-byte row per variant (and
 * per older version, policy_input.older, after them), with
 * every string the checks compare (formats, accelerators, device classes,
 * context tags, blob digests, names) replaced by its index in one sorted
 * list of the family's distinct strings. A select maps the report's few
 * strings to indexes once (policy_table_find) and then compares integers.
 * Built once per catalog snapshot (policy_table_build, policy.h), read by
 * any number of selects.
 */
#ifndef POLICY_TABLE_H
#define POLICY_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/* The relative tolerance of every comparison with a limit (policy.c's
 * REL_EPS). */
#define POLICY_REL_EPS 1e-9

/* The index of a string the family does not contain. */
#define POLICY_ID_NONE UINT32_MAX
/* A family's distinct hard requirements (format and accelerators) up to
 * this many get an index each (policy_row.req): a select decides each
 * once, and a variant's format and accelerator rules take one lookup. */
#define POLICY_REQ_MAX 64
/* policy_row.req of a variant whose requirements have no index. */
#define POLICY_REQ_NONE UINT8_MAX

/* Device classes with per-class values that get a column each in a
 * table (policy_table.col_flags): a select then finds a variant's
 * latency and energy on its class with one load each. */
#define POLICY_CLASS_SLOTS 8
/* Families of at least this many variants get the columns. */
#define POLICY_COLUMNS_MIN 32
/* policy_table.col_flags bits */
#define POLICY_COL_LATENCY 1u     /* a latency on the slot's class */
#define POLICY_COL_ENERGY 2u      /* an energy on the slot's class */
#define POLICY_COL_EXITS 4u       /* has_exits */

/* One distinct pair of a format and the accelerators a variant needs. */
struct policy_req {
    uint32_t format;              /* as policy_row.format */
    uint32_t accelerator_first;   /* into accelerators[] */
    uint8_t accelerator_count;
    uint32_t variant_count;       /* variants of these requirements */
};

struct policy_class_value {
    uint32_t device_class;        /* string index */
    double value;
};

struct policy_tag {
    uint32_t key;                 /* string indexes */
    uint32_t value;
};

/* One variant: the fields of struct proto_variant every select reads, in
 * the same order as the input's variants. Counts are clamped as the
 * policy clamps them (PROTO_MAX_*). */
struct policy_row {
    uint64_t size_bytes;
    uint64_t memory_bytes;        /* memory_bytes, else size_bytes */
    double flops;
    double accuracy;
    uint32_t name;                /* string index: ranks as strcmp does */
    uint32_t blob;                /* string index of blob_hex */
    uint32_t format;              /* POLICY_ID_NONE when "" */
    uint32_t accelerator_first;   /* into accelerators[] */
    uint32_t tag_first;           /* into tags[] */
    uint32_t class_first;         /* into class_values[]: the latencies,
                                     then the energies */
    uint8_t accelerator_count;
    uint8_t tag_count;
    uint8_t latency_count;
    uint8_t energy_count;
    uint8_t rollout_percent;
    bool starts_name;             /* the first (newest) version of a name */
    bool has_exits;
    uint8_t req;                  /* into reqs[], else POLICY_REQ_NONE */
};

struct policy_table {
    const struct proto_variant *variants;  /* what it was built from */
    size_t variant_count;
    /* policy_input.older: rows[variant_count + j] is older[j]'s. Never
     * walked, listed or counted (no column, no req_bits, no req): read
     * only to value a held version that is not offered (policy.c,
     * old_weigh) with the same rules as every other row. */
    const struct proto_variant *older;
    size_t older_count;
    size_t delta_count;
    struct policy_row *rows;      /* variant_count + older_count */
    const char **strings;         /* sorted (strcmp), distinct; borrowed
                                     from the variants and deltas */
    size_t string_count;
    uint32_t *accelerators;
    struct policy_tag *tags;
    struct policy_class_value *class_values;
    uint32_t *delta_from;         /* per delta: string index of from_hex */
    uint32_t *delta_to;           /* ... and of to_hex */
    struct policy_req reqs[POLICY_REQ_MAX];
    size_t req_count;
    /* The screen's columns (structure of arrays, one entry per variant,
     * as the rows): what a screened select reads of every variant, in
     * arrays it walks in order. Only families of POLICY_COLUMNS_MIN
     * variants or more have them (has_columns): a shorter walk gains
     * less than a larger table costs. */
    bool has_columns;
    uint8_t *col_req;             /* row.req */
    bool req_all;                 /* no row.req is POLICY_REQ_NONE */
    uint64_t *col_memory;         /* row.memory_bytes */
    double *col_flops;
    double *col_accuracy;
    /* accuracy + REL_EPS |accuracy| (policy.c's over(): the soft rule's
     * limit, the same expression), size_bytes as a double (times 8.0,
     * exactly download_time's bits) */
    double *col_accuracy_over;
    double *col_bytes;
    uint32_t *col_blob;
    /* per requirement q (policy_req), req_words words from q * req_words:
     * bit i % 64 of word i / 64 set when variant i's row.req is q (a
     * select visits the variants of the requirements the device meets
     * only) */
    uint64_t *req_bits;
    size_t req_words;
    /* the first POLICY_CLASS_SLOTS distinct device classes of the class
     * values (string indexes), each a slot s: col_flags[s * n + i] says
     * whether variant i has a latency / energy on it, col_latency and
     * col_energy at the same place hold the value (the first, as
     * class_value finds it). Slot class_slots: no class (exits only).
     * class_overflow: some class has no slot. */
    uint32_t class_ids[POLICY_CLASS_SLOTS];
    size_t class_slots;
    bool class_overflow;
    uint8_t *col_flags;           /* (class_slots + 1) * n */
    double *col_latency;          /* class_slots * n */
    double *col_energy;
    /* every variant is the only version of its name and fully rolled
     * out: each is offered to every UE */
    bool all_offered;
};

/* policy_select with every offered version's entry kept in full (as for
 * explain all and families above the screen's size): the reference the
 * screened default answer is tested against (tests only). */
POLICY_MUST_CHECK enum policy_status
policy_select_full(const struct policy_config *cfg,
                   const struct policy_input *in,
                   const struct proto_report *report,
                   struct proto_decision *out);

/* The index of s among t's strings, or POLICY_ID_NONE. */
uint32_t policy_table_find(const struct policy_table *t, const char *s);

#endif
