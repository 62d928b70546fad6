/*
 * proto: every wire format and nothing else. JSON <-> the plain structs of
 * proto/types.h (request bodies read by proto/jdom.c, the rest jansson),
 * validation with errors that name the field, RFC 9457 problem bodies,
 * sha256 digests, HTTP Range and ETag matching,
 * and the delta format (zstd with the old model as prefix dictionary).
 * No I/O: callers hand in bytes and get bytes or structs back.
 */
#ifndef PROTO_PROTO_H
#define PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/types.h"

#if defined(__GNUC__)
#define MUST_CHECK __attribute__((warn_unused_result))
#else
#define MUST_CHECK
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum proto_status {
    PROTO_OK = 0,
    PROTO_BAD_INPUT,     /* the bytes are not what they should be; see err */
    PROTO_NO_MEMORY,
    PROTO_SINK_FAILED,   /* the caller's sink returned non-zero */
    PROTO_MISMATCH,      /* delta: base or target digest is not the named one */
};

/* Client-visible error codes from proto/errors.def. */
enum proto_code {
#define PROTO_ERR(num, name, status, title) PROTO_ERR_##name = num,
#include "proto/errors.def"
#undef PROTO_ERR
};

#define PROTO_FIELD_SIZE 96
#define PROTO_DETAIL_SIZE 320

/* What was wrong with client input: code, the JSON path of the field
 * ("device.memory_bytes", "" when none) and a sentence for a person. */
struct proto_error {
    enum proto_code code;
    char field[PROTO_FIELD_SIZE];
    char detail[PROTO_DETAIL_SIZE];
};

/* Fills err (printf-style detail). Never fails; truncates. */
void proto_error_set(struct proto_error *err, enum proto_code code,
                     const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* HTTP status and title of a code; 500 / "Internal error" when unknown. */
unsigned proto_code_status(enum proto_code code);
const char *proto_code_title(enum proto_code code);

/*
 * The problem+json body for an error: type, title, status, detail, code,
 * field (omitted when empty). Returns a malloc'd NUL-terminated string the
 * caller frees, or NULL when out of memory.
 */
char *proto_problem_write(const struct proto_error *err);

/* ---- names and digests -------------------------------------------- */

/* [a-z0-9][a-z0-9._-]{0,63} */
bool proto_name_is_valid(const char *s, size_t len);

/* Exactly 64 lowercase hex characters. */
bool proto_hex_is_valid(const char *s, size_t len);

/* "sha256:<64 lowercase hex>" -> out_hex. PROTO_BAD_INPUT otherwise. */
MUST_CHECK enum proto_status
proto_digest_parse(const char *s, size_t len, char out_hex[PROTO_HEX_SIZE]);

/* SHA-256 over a stream (libcrypto's SHA256_*, see proto/digest.c). */
struct proto_hasher;
MUST_CHECK struct proto_hasher *proto_hasher_new(void);
MUST_CHECK enum proto_status
proto_hasher_update(struct proto_hasher *h, const void *data, size_t len);
/* Writes the lowercase hex digest. The hasher can be reused after reset. */
MUST_CHECK enum proto_status
proto_hasher_final(struct proto_hasher *h, char out_hex[PROTO_HEX_SIZE]);
void proto_hasher_reset(struct proto_hasher *h);
void proto_hasher_free(struct proto_hasher *h);

/* base64url without padding (RFC 4648 section 5) of len bytes into out,
 * which holds PROTO_B64URL_SIZE(len) (the NUL included). */
#define PROTO_B64URL_SIZE(len) (((len) * 4 + 2) / 3 + 1)
void proto_base64url(const unsigned char *in, size_t len, char *out);

/*
 * A number for people as the JSON writers spell it: "null" when not
 * finite, whole numbers below 1e15 as integers, 1e5..1e15 without
 * decimals, the rest as printf's "%.6g" (by hand for 1e-4..1e5, the
 * estimates of every select answer). Returns the length; out is
 * NUL-terminated.
 */
#define PROTO_NUM_SHORT_SIZE 40
size_t proto_num_short(char out[PROTO_NUM_SHORT_SIZE], double x);
/* "%.<prec>g" of a, 1e-4 <= a < 10^prec, 1 <= prec <= 9, by hand (no
 * sign, no NUL); 0 when the spelling is in doubt (a rounding tie within
 * 1e-6, a decade edge): the caller then asks printf. */
size_t proto_g_fixed(char *out, double a, int prec);
/* The same for 1e-30 <= a < 1e-4, which "%g" spells with an exponent
 * ("5.6e-05"); 0 when in doubt or out of that range. */
size_t proto_g_exp(char *out, double a, int prec);
/* The decimal digits of u (no NUL); returns their count (at most 20). */
size_t proto_put_u64(char *out, uint64_t u);

/* ---- JSON in -------------------------------------------------------- */

/* Bounds applied while parsing client JSON. */
struct proto_limits {
    size_t max_depth;         /* nesting of arrays/objects, default 16 */
};

void proto_limits_default(struct proto_limits *out);

/*
 * Parses and validates a UE report (select body). Unknown top-level and
 * nested fields are ignored. On PROTO_OK *out is filled; on PROTO_BAD_INPUT
 * err names the field (e.g. "device.gflops").
 */
MUST_CHECK enum proto_status
proto_report_parse(const char *body, size_t len,
                   const struct proto_limits *lim, struct proto_report *out,
                   struct proto_error *err);

/*
 * Parses variant metadata (PUT .../variants/{v}). Fills everything but
 * family, name, version, size_bytes and created_s, which stay zero.
 */
MUST_CHECK enum proto_status
proto_variant_parse(const char *body, size_t len,
                    const struct proto_limits *lim, struct proto_variant *out,
                    struct proto_error *err);

/*
 * True when a and b carry the same variant metadata: every field that
 * proto_variant_parse fills (blob, format, techniques, params, flops,
 * accuracy, memory_bytes, latency_ms, energy_mj, exits, context,
 * requires.accelerators, rollout_percent), lists in order. What the
 * server fills in (names, version, size, times, rollout state) is not
 * compared. A new metadata field must be added here too.
 */
bool proto_variant_meta_equal(const struct proto_variant *a,
                              const struct proto_variant *b);

/* Parses a family body {"task": "...", "description": "..."}; both
 * optional strings of at most 256 bytes. Fills task and description. */
MUST_CHECK enum proto_status
proto_family_parse(const char *body, size_t len,
                   const struct proto_limits *lim, struct proto_family *out,
                   struct proto_error *err);

/* One line of a `modeld replay` scenario (JSON lines, proto/scenario.c):
 * {"t_s": N, "report": {...}, "bps": N} or {"end_s": N}. */
struct proto_scenario_line {
    bool is_end;                  /* an {"end_s": N} line */
    double t_s;                   /* report time, or end_s */
    bool has_bps;
    double bps;                   /* link throughput until the next line */
    struct proto_report report;
};

/* Parses one scenario line; err names the field (the report's fields as
 * "report.device.gflops"). */
MUST_CHECK enum proto_status
proto_scenario_line_parse(const char *line, size_t len,
                          const struct proto_limits *lim,
                          struct proto_scenario_line *out,
                          struct proto_error *err);

/* ---- JSON out ------------------------------------------------------- */
/* Each writer returns a malloc'd NUL-terminated string (caller frees), or
 * NULL when out of memory. */

/* One variant version as JSON: its metadata plus family, variant, version,
 * size_bytes, digest ("sha256:..."), url ("/v1/blobs/sha256:...") and
 * created ("2026-11-28T20:00:00Z"). */
char *proto_variant_write(const struct proto_variant *v);

/* {"versions":[<variant>, ...]}: a variant's history. */
char *proto_versions_write(const struct proto_variant *v, size_t count);

/* {"families":[{"name","task","description","variants":N}, ...]} */
char *proto_families_write(const struct proto_family *f, size_t count);

/* {"name","task","description","variants":[<variant>, ...]} */
char *proto_family_write(const struct proto_family *f,
                         const struct proto_variant *v, size_t count);

/*
 * The select answer of API.md. variants and deltas are the arrays the
 * decision's indexes point into; family names the family.
 */
char *proto_decision_write(const struct proto_decision *d, const char *family,
                           const struct proto_variant *variants,
                           const struct proto_delta *deltas);

/* ---- trust and control (proto/json_in.c, proto/json_out.c) ---------- */

/* "download", "delta", "keep", "none": the decision's action as the
   answer, the metrics and `modeld replay` spell it. */
const char *proto_action_name(enum proto_action a);

/* "installed", "load_failed", "verify_failed", "rolled_back". */
const char *proto_event_kind_name(enum proto_event_kind kind);

/*
 * Parses an event report: ue, variant, version and event required; digest,
 * device.class, latency_ms and energy_mj optional. err names the field.
 */
MUST_CHECK enum proto_status
proto_event_parse(const char *body, size_t len,
                  const struct proto_limits *lim, struct proto_event *out,
                  struct proto_error *err);

/* Parses {"rollout_percent": 0..100, "paused": bool}: at least one. */
MUST_CHECK enum proto_status
proto_rollout_patch_parse(const char *body, size_t len,
                          const struct proto_limits *lim,
                          struct proto_rollout_patch *out,
                          struct proto_error *err);

/* failed_ues / ues, 0 without reports. */
double proto_failure_share(const struct proto_version_stats *s);

/* {"versions":[...]} as proto_versions_write, each version with an
 * "events" member from stats[i] (stats may be NULL). */
char *proto_versions_stats_write(const struct proto_variant *v,
                                 const struct proto_version_stats *stats,
                                 size_t count);

/* {"entries":[{"time","token","method","path","status","detail"}]} */
char *proto_audit_write(const struct proto_audit_entry *e, size_t count);

/* An RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.frac]Z" (or a numeric
 * offset) to unix seconds; false when malformed. */
bool proto_time_parse(const char *s, int64_t *out_s);

/* ---- HTTP headers ---------------------------------------------------- */

enum proto_range_kind {
    PROTO_RANGE_FULL = 0,      /* no header, multi-range or invalid: 200 */
    PROTO_RANGE_PARTIAL,       /* one satisfiable range: 206 */
    PROTO_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

/*
 * Parses a Range header value (NULL when absent) for a body of size bytes:
 * "bytes=a-b", "bytes=a-", "bytes=-n". A syntactically invalid or
 * multi-range header is PROTO_RANGE_FULL, as RFC 9110 allows. On
 * PROTO_RANGE_PARTIAL *out_start and *out_len are set.
 */
enum proto_range_kind proto_range_parse(const char *header, uint64_t size,
                                        uint64_t *out_start,
                                        uint64_t *out_len);

/*
 * True when an If-None-Match value (a list, "*", weak or strong tags)
 * matches the strong etag (with its quotes, e.g. "\"sha256:ab..\"").
 */
bool proto_etag_list_matches(const char *header, const char *etag);

/*
 * True when an Accept-Encoding value lists coding (case-insensitive) with
 * a q value above 0. A wildcard does not count.
 */
bool proto_accepts_coding(const char *header, const char *coding);

/*
 * True when a Content-Type value names JSON: application/json or any
 * type whose subtype ends in "+json" (case-insensitive, parameters such
 * as charset ignored). NULL (no Content-Type) is false: the caller
 * decides what an absent type means.
 */
bool proto_media_type_is_json(const char *header);

/* ---- deltas ----------------------------------------------------------- */

/* Output sink: returns 0 on success, non-zero to abort. */
typedef int (*proto_sink_fn)(void *ctx, const void *data, size_t len);

/* Size of the leading skippable frame: magic 0x184D2A5E and payload length
 * (4 bytes each, little-endian), then a 184-byte payload: the ASCII line
 * "modeld-delta/1 from=sha256:<hex> to=sha256:<hex>\n" and NUL padding. */
#define PROTO_DELTA_HEADER_LEN 192

/*
 * Makes a delta: a zstd skippable frame naming both digests, then one zstd
 * frame of new_data compressed with old as prefix dictionary, long-distance
 * matching, a window covering old and new, and the content checksum, so
 * that `zstd -d --long=31 --patch-from=OLD` rebuilds new_data. level is a
 * zstd level (1..19). Output goes to sink in pieces.
 */
MUST_CHECK enum proto_status
proto_delta_make(const void *old, size_t old_len, const void *new_data,
                 size_t new_len, const char from_hex[PROTO_HEX_SIZE],
                 const char to_hex[PROTO_HEX_SIZE], int level,
                 proto_sink_fn sink, void *sink_ctx);

/* Reads the digests from a delta's first bytes; PROTO_BAD_INPUT when the
 * skippable frame is missing or malformed. */
MUST_CHECK enum proto_status
proto_delta_header_parse(const void *delta, size_t len,
                         char out_from_hex[PROTO_HEX_SIZE],
                         char out_to_hex[PROTO_HEX_SIZE]);

/*
 * Applies a delta to old, writing the new model to sink. Checks the
 * header's from digest against old's SHA-256 (PROTO_MISMATCH), zstd's
 * content checksum (PROTO_BAD_INPUT) and the result's SHA-256 against the
 * header's to digest (PROTO_MISMATCH). The sink may have received bytes
 * before a failure: callers write to a temporary file.
 */
MUST_CHECK enum proto_status
proto_delta_apply(const void *old, size_t old_len, const void *delta,
                  size_t delta_len, proto_sink_fn sink, void *sink_ctx);
/*
 * The same for a caller that knows old's SHA-256 (base_hex, 64 lowercase
 * hex; e.g. the name a client installed a verified model under): the
 * header's base digest must be base_hex (PROTO_MISMATCH) and old is not
 * hashed, so only the ranges the delta's matches use are read. The
 * result's SHA-256 is still checked against the header's target digest.
 * PROTO_BAD_INPUT when base_hex is not a hex digest.
 */
MUST_CHECK enum proto_status
proto_delta_apply_trusted(const void *old, size_t old_len,
                          const char *base_hex, const void *delta,
                          size_t delta_len, proto_sink_fn sink,
                          void *sink_ctx);

/* Compresses data as one zstd frame (content coding "zstd", RFC 8878;
 * window at most 8 MiB so any decoder accepts it). */
MUST_CHECK enum proto_status
proto_zstd_compress(const void *data, size_t len, int level,
                    proto_sink_fn sink, void *sink_ctx);

/* Input source: fills up to cap bytes of buf, sets *out_len (0 at the
 * end); returns 0, or non-zero to abort. */
typedef int (*proto_source_fn)(void *ctx, void *buf, size_t cap,
                               size_t *out_len);

/*
 * The same frame as proto_zstd_compress, pulling exactly len bytes from
 * source in pieces: memory stays at zstd's window whatever len is.
 * PROTO_SINK_FAILED when source or sink fails, PROTO_BAD_INPUT when
 * source yields more or fewer than len bytes.
 */
MUST_CHECK enum proto_status
proto_zstd_compress_from(proto_source_fn source, void *source_ctx,
                         uint64_t len, int level, proto_sink_fn sink,
                         void *sink_ctx);

#endif
