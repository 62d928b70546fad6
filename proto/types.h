/*
 * The domain's plain structs: families, variant versions, deltas, UE
 * reports and selection decisions. Shared by every module; no library
 * headers, no allocation: every string and list has a fixed bound so that
 * a struct can be copied, compared and freed as one block.
 */
#ifndef PROTO_TYPES_H
#define PROTO_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_HEX_LEN 64          /* lowercase hex of a SHA-256 */
#define PROTO_HEX_SIZE 65         /* with the NUL */
#define PROTO_DIGEST_LEN 71       /* "sha256:" + 64 hex */
#define PROTO_DIGEST_SIZE 72
#define PROTO_NAME_SIZE 65        /* family/variant: [a-z0-9][a-z0-9._-]{0,63} */
#define PROTO_TOKEN_SIZE 33       /* formats, techniques, classes, tags: 1..32 */
#define PROTO_TEXT_SIZE 257       /* task, description: up to 256 bytes */
#define PROTO_UE_SIZE 129         /* opaque UE id: 1..128 bytes */
#define PROTO_NONCE_SIZE 65       /* report nonce: 16..64 of [A-Za-z0-9_-] */
#define PROTO_RECEIPT_SIZE 65     /* event receipt: 1..64 of [A-Za-z0-9_-] */

#define PROTO_MAX_TECHNIQUES 8
#define PROTO_MAX_LATENCIES 16    /* measured latency/energy per class */
#define PROTO_MAX_EXITS 8
#define PROTO_MAX_TAGS 16         /* context key/value pairs */
#define PROTO_MAX_ACCELERATORS 8
#define PROTO_MAX_FORMATS 8
#define PROTO_MAX_REASONS 8
#define PROTO_REASON_SIZE 160
#define PROTO_MAX_HISTORY 16      /* network.downlink_history_bps and
                                     device.memory_history_bytes samples */

/*
 * FNV-1a 64 (Fowler, Noll, Vo; draft-eastlake-fnv): the one copy of the
 * hash, for the rollout bucket (stable across replicas, so it must stay
 * the published function) and for internal hash tables. Start from
 * PROTO_FNV1A64_OFFSET, feed bytes with proto_fnv1a64_add().
 */
#define PROTO_FNV1A64_OFFSET UINT64_C(14695981039346656037)
#define PROTO_FNV1A64_PRIME UINT64_C(1099511628211)

static inline uint64_t
proto_fnv1a64_add(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * PROTO_FNV1A64_PRIME;
    return h;
}

/* FNV-1a 64 of a NUL-terminated string, continuing from h. */
static inline uint64_t
proto_fnv1a64_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * PROTO_FNV1A64_PRIME;
    return h;
}

/* A measured number for one device class: "npu-class-a": 4.0 */
struct proto_class_value {
    char device_class[PROTO_TOKEN_SIZE];
    double value;
};

/* One early exit: running the network only up to here. */
struct proto_exit {
    double flops;
    double accuracy;
};

/* A context tag: {"scene": ["night", "dusk"]} is two tags, scene=night and
 * scene=dusk. */
struct proto_tag {
    char key[PROTO_TOKEN_SIZE];
    char value[PROTO_TOKEN_SIZE];
};

/*
 * Variant metadata as published by an admin (PUT .../variants/{v}) plus the
 * fields the server fills in (family, name, version, size, created time).
 * Absent optional numbers are 0 with their has_ flag false.
 */
struct proto_variant {
    /* What the policy reads for every variant of every select comes first,
     * in a few cache lines (a family's variants are scanned per select);
     * the arrays, each used only when its count says so, follow. */
    char name[PROTO_NAME_SIZE];
    int64_t version;              /* 1, 2, ...; 0 before publishing */
    char blob_hex[PROTO_HEX_SIZE];
    uint64_t size_bytes;          /* filled by the server from the blob */
    double flops;                         /* required, > 0 */
    double accuracy;                      /* required, 0..1 */
    uint64_t memory_bytes;                /* 0 when not given: use size */
    char format[PROTO_TOKEN_SIZE];        /* "" when not given */
    unsigned rollout_percent;             /* 0..100, default 100 */
    bool paused;                          /* rollout paused (PATCH or the
                                             failure share): offered only
                                             to UEs that hold it */
    bool retired;                         /* this version withdrawn */
    size_t latency_count;
    size_t energy_count;
    size_t exit_count;
    size_t context_count;
    size_t accelerator_count;             /* requires.accelerators */
    size_t technique_count;

    struct proto_class_value latency_ms[PROTO_MAX_LATENCIES];
    struct proto_class_value energy_mj[PROTO_MAX_LATENCIES];  /* extension */
    struct proto_exit exits[PROTO_MAX_EXITS];
    struct proto_tag context[PROTO_MAX_TAGS];
    char accelerators[PROTO_MAX_ACCELERATORS][PROTO_TOKEN_SIZE];
    char techniques[PROTO_MAX_TECHNIQUES][PROTO_TOKEN_SIZE];
    uint64_t params;                      /* 0 when not given */
    char family[PROTO_NAME_SIZE];
    int64_t created_s;            /* unix seconds, filled by the server */
    char weights_manifest_hex[PROTO_HEX_SIZE]; /* TF.js model.json blob,
                                                  "" when none */
    uint64_t bg_size_bytes;               /* modeld-bg/1 coding's size, 0
                                             when the server has none */
};

struct proto_family {
    char name[PROTO_NAME_SIZE];
    char task[PROTO_TEXT_SIZE];
    char description[PROTO_TEXT_SIZE];
    size_t variant_count;                 /* live (not retired) variants */
};

/* How a delta is coded: zstd with the base as prefix (stock zstd applies
 * it) or the tensor delta (modeld decodes it). */
enum proto_delta_format {
    PROTO_DELTA_ZSTD_PATCH = 0,   /* "zstd-patch" */
    PROTO_DELTA_TENSOR,           /* "modeld-tensor/1" */
};

/* A delta that is ready to serve: turns from_hex into to_hex. */
struct proto_delta {
    char from_hex[PROTO_HEX_SIZE];
    char to_hex[PROTO_HEX_SIZE];
    uint64_t size_bytes;
    enum proto_delta_format format;
};

enum proto_preference {
    PROTO_PREFER_QUALITY = 0,
    PROTO_PREFER_BALANCED,
    PROTO_PREFER_SAVER,
};

/*
 * A UE report (body of select). Only device.memory_bytes and device.gflops
 * are required; every optional field has a has_ flag or a count.
 */
struct proto_report {
    char ue[PROTO_UE_SIZE];
    bool has_ue;

    uint64_t memory_bytes;
    double gflops;
    char device_class[PROTO_TOKEN_SIZE];
    bool has_device_class;
    char formats[PROTO_MAX_FORMATS][PROTO_TOKEN_SIZE];
    size_t format_count;
    bool has_formats;
    char accelerators[PROTO_MAX_ACCELERATORS][PROTO_TOKEN_SIZE];
    size_t accelerator_count;
    double battery_percent;               /* 0..100 */
    bool has_battery_percent;
    bool charging;
    double power_mw;                      /* extension: draw while running */
    bool has_power_mw;

    double downlink_bps;                  /* > 0 */
    bool has_downlink_bps;
    double rtt_ms;
    bool has_rtt_ms;
    bool metered;
    double load;                          /* 0..1 */
    bool has_load;

    double max_latency_ms;
    bool has_max_latency_ms;
    double min_accuracy;
    bool has_min_accuracy;
    double max_download_s;
    bool has_max_download_s;
    double max_energy_mj;
    bool has_max_energy_mj;

    enum proto_preference preference;
    char current_hex[PROTO_HEX_SIZE];
    bool has_current;
    struct proto_tag context[PROTO_MAX_TAGS];
    size_t context_count;

    /* accept: what the UE decodes beyond stock tools. Without it (all
     * false), only zstd-patch deltas, as before. */
    bool has_accept;
    bool accept_tensor_delta;             /* "modeld-tensor/1" */
    bool refuse_zstd_patch;               /* delta_formats lacks it */
    bool accept_bg;                       /* encodings has "modeld-bg/1" */
    /* time-aware selection (issue 9); downlink_bps above may be 0 */
    double downlink_history_bps[PROTO_MAX_HISTORY];   /* newest last */
    size_t downlink_history_count;
    double horizon_s;                     /* requirements.horizon_s, > 0 */
    bool has_horizon_s;
    char fetching_hex[PROTO_HEX_SIZE];    /* fetching.digest */
    uint64_t fetching_bytes_done;
    bool has_fetching;
    uint64_t memory_floor_bytes;          /* device.memory_floor_bytes */
    bool has_memory_floor_bytes;
    /* device.memory_history_bytes: the lowest free memory of each of the
     * last minutes, newest (the current, partial minute) last */
    uint64_t memory_history_bytes[PROTO_MAX_HISTORY];
    size_t memory_history_count;
    /* device.gflops_history: the lowest compute of each of the last
     * minutes (thermal throttling), newest (the current minute) last */
    double gflops_history[PROTO_MAX_HISTORY];
    size_t gflops_history_count;
    bool explain_all;                     /* "explain": "all" */
    char nonce[PROTO_NONCE_SIZE];         /* echoed in a signed answer */
    bool has_nonce;
    bool accept_signed;                   /* accept.signed: true */
};

enum proto_action {
    PROTO_ACTION_DOWNLOAD = 0,
    PROTO_ACTION_DELTA,
    PROTO_ACTION_KEEP,
    PROTO_ACTION_NONE,
};
#define PROTO_ACTION_COUNT 4

/* Why one variant lost or was rejected, or which constraints it misses. */
struct proto_reasons {
    size_t count;                         /* first: read without the text */
    char text[PROTO_MAX_REASONS][PROTO_REASON_SIZE];
};

struct proto_estimates {
    double latency_ms;
    double download_s;
    uint64_t memory_bytes;
    double energy_mj;
    bool has_energy_mj;
};

/*
 * Why a candidate that is not listed lost, by its first reason: a hard
 * rule, a soft one, "horizon" (cannot arrive within the horizon) or
 * "outranked" (eligible, but another choice was worth more).
 */
enum proto_cause {
    PROTO_CAUSE_MEMORY = 0,
    PROTO_CAUSE_FORMAT,
    PROTO_CAUSE_ACCELERATOR,
    PROTO_CAUSE_LATENCY,
    PROTO_CAUSE_ACCURACY,
    PROTO_CAUSE_DOWNLOAD,
    PROTO_CAUSE_ENERGY,
    PROTO_CAUSE_HORIZON,
    PROTO_CAUSE_OUTRANKED,
    PROTO_CAUSE_COUNT
};

/*
 * One variant the policy weighed. variant indexes the input array. The
 * policy uses the array as its working storage (one entry per competing
 * variant, evaluated once), so the numbers it ranked by are kept here;
 * the decision lists only the first candidate_count entries (their
 * reasons are in the decision's candidate_reasons).
 */
struct proto_candidate {
    /* What ranking, picking and listing read of every candidate, in its
     * first cache line (a large family's candidates are walked several
     * times per select; this keeps those walks in L1). */
    size_t variant;
    double value;                         /* over the horizon */
    double ready_s;                       /* until it runs (conservative) */
    double violation;
    uint64_t transfer_bytes;              /* still to move (0: held) */
    double cost;                          /* of its bytes, accuracy-seconds */
    enum proto_cause hard_cause;          /* first failed hard rule */
    enum proto_cause soft_cause;          /* first missed soft rule */
    bool feasible;                        /* met every hard and soft rule */
    bool hard_ok;
    bool soft_ok;
    bool is_current;
    bool is_fetching;
    bool at_risk;                         /* may not fit when memory drops */
    bool partial;                         /* hard rule failed: estimates,
                                             transfer and soft rules not
                                             worked out (policy.c) */
    bool has_delta;

    /* what the policy worked out (see policy/policy.c) */
    double utility;                       /* per second while it runs */
    double fit;                           /* expected share of time it fits */
    double dips_per_s;                    /* memory dips under its need */
    double risk;                          /* their expected round trips'
                                             cost over the horizon */
    double accuracy;                      /* the exit's when exit_index >= 0 */
    const struct proto_tag *ctx;          /* first matching context tag */
    struct proto_estimates est;
    size_t delta;
    int exit_index;
};

/*
 * The decision for one report. chosen and delta index the policy's input
 * arrays; the writer (proto_decision_write) resolves them to names and URLs.
 * candidates is caller-provided storage of one entry per input variant.
 */
struct proto_decision {
    enum proto_action action;
    size_t chosen;                        /* valid unless action NONE */
    bool has_delta;                       /* action DELTA */
    size_t delta;                         /* index into the deltas array */
    bool degraded;
    struct proto_reasons violations;
    struct proto_estimates estimates;
    int exit_index;                       /* -1: whole network */
    struct proto_candidate *candidates;
    /* Why each listed candidate lost: candidate_reasons[i] explains
     * candidates[i]. Caller-provided storage like candidates, kept apart
     * (1.3 KB each): the policy evaluates and orders a whole family in
     * candidates but writes reasons only for the candidate_count it lists. */
    struct proto_reasons *candidate_reasons;
    size_t candidate_count;               /* listed */
    size_t omitted[PROTO_CAUSE_COUNT];    /* not listed, by cause */
    size_t omitted_count;
    double horizon_s;                     /* the horizon decided over */
    double throughput_bps;                /* the conservative estimate */
    unsigned recheck_after_s;
    struct proto_reasons reasons;         /* why the chosen one won: context
                                             match, keep, exit, battery... */
    bool model_bg;                        /* model.url serves modeld-bg/1 */
    /* A signed answer's body members (issued_at, expires_at, generation,
     * nonce); written only when is_signed. */
    bool is_signed;
    int64_t issued_at_s;
    int64_t expires_at_s;
    uint64_t generation;
    char nonce[PROTO_NONCE_SIZE];         /* "" when the report sent none */
    /* The event receipt for the chosen version (the report sent "ue");
     * "" for none. */
    char receipt[PROTO_RECEIPT_SIZE];
};

/* ---- trust and control: UE events, rollout changes, version stats ---- */

enum proto_event_kind {
    PROTO_EVENT_INSTALLED = 0,
    PROTO_EVENT_LOAD_FAILED,
    PROTO_EVENT_VERIFY_FAILED,
    PROTO_EVENT_ROLLED_BACK,
    PROTO_EVENT_KINDS
};

/* What happened to a version on a UE (POST .../events). */
struct proto_event {
    char ue[PROTO_UE_SIZE];
    char variant[PROTO_NAME_SIZE];
    int64_t version;
    char digest_hex[PROTO_HEX_SIZE];
    bool has_digest;
    enum proto_event_kind kind;
    char device_class[PROTO_TOKEN_SIZE];  /* "" when not given */
    double latency_ms;
    bool has_latency_ms;
    double energy_mj;
    bool has_energy_mj;
    char receipt[PROTO_RECEIPT_SIZE];     /* from the select answer */
    bool has_receipt;
    /* Set by the server once the receipt checked out, never by the
     * parser: only such events count toward the automatic pause when
     * rollout_pause_needs_receipt is on. */
    bool verified;
};

/* PATCH .../versions/{n}: at least one member. */
struct proto_rollout_patch {
    unsigned rollout_percent;
    bool has_rollout_percent;
    bool paused;
    bool has_paused;
};

/* One admin write in the audit log. */
#define PROTO_AUDIT_TOKEN_SIZE 65
#define PROTO_AUDIT_PATH_SIZE 256
#define PROTO_AUDIT_DETAIL_SIZE 256

struct proto_audit_entry {
    int64_t time_s;
    char token[PROTO_AUDIT_TOKEN_SIZE];   /* the token's name, "auto" */
    char method[16];
    char path[PROTO_AUDIT_PATH_SIZE];
    unsigned status;
    char detail[PROTO_AUDIT_DETAIL_SIZE]; /* what changed */
};

/* Measured latency of one version on one device class (installed events,
 * one per UE): nearest-rank percentiles. */
struct proto_class_latency {
    char device_class[PROTO_TOKEN_SIZE];
    uint64_t count;
    double p50_ms;
    double p90_ms;
    double p99_ms;
};

/* What UEs reported about one version: distinct UEs per event kind, UEs
 * with any event, UEs with a failure (load_failed, verify_failed,
 * rolled_back), latency by device class. */
struct proto_version_stats {
    uint64_t counts[PROTO_EVENT_KINDS];
    uint64_t ues;
    uint64_t failed_ues;
    /* The same two over events that carried a valid receipt. */
    uint64_t verified_ues;
    uint64_t verified_failed_ues;
    struct proto_class_latency latency[PROTO_MAX_LATENCIES];
    size_t latency_count;
};

#endif
