/*
 * What the files of client/ share: the state directory's contents, the
 * measured facts, the parsed decision, the HTTP layer and the signature
 * verifier. Not installed; apps include client/client.h only.
 */
#ifndef CLIENT_INTERNAL_H
#define CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "fileio/fileio.h"
#include "proto/proto.h"

#define CLIENT_HISTORY_MAX 16     /* entries of either history sent */
#define CLIENT_MINUTE_S 60        /* device.memory_history_bytes: per minute */
#define CLIENT_DOWNLINK_MAX_AGE_S 1800 /* throughput samples sent this long */
#define CLIENT_RATE_WINDOW_S 60   /* a long transfer: one sample per window */
#define CLIENT_IFACE_SIZE 32
#define CLIENT_URL_SIZE 512
#define CLIENT_VALIDATOR_SIZE 192
#define CLIENT_ERR_SIZE 512
#define CLIENT_KID_SIZE 128

/* ---- state (client/state.c) ------------------------------------------ */

/* A model the state directory holds, by digest. */
struct client_model_ref {
    char hex[PROTO_HEX_SIZE];     /* "" when none */
    char variant[PROTO_NAME_SIZE];
    int64_t version;
    char receipt[PROTO_RECEIPT_SIZE]; /* the select answer's; "" none */
};

/* A transfer in flight: its bytes are in DIR/partial/<name>. */
struct client_inflight {
    bool active;
    bool is_delta;
    char coding[PROTO_TOKEN_SIZE];   /* "" the model's own bytes, else the
                                        delta format or model encoding */
    char target_hex[PROTO_HEX_SIZE]; /* the model it makes */
    char from_hex[PROTO_HEX_SIZE];   /* delta base */
    char url[CLIENT_URL_SIZE];
    uint64_t size_bytes;             /* of what is transferred */
    char validator[CLIENT_VALIDATOR_SIZE]; /* the first answer's ETag */
    uint64_t bytes_done;             /* at the last checkpoint */
    char variant[PROTO_NAME_SIZE];
    int64_t version;
    char receipt[PROTO_RECEIPT_SIZE];  /* the select answer's; "" none */
};

/* A throughput measurement: bits/s of one transfer (or one window of a
 * long one), and when it ended (wall clock, unix seconds). */
struct client_downlink_sample {
    int64_t at_s;
    double bps;
};

/* The slowest compute probe of one clock minute (raw GFLOP/s). */
struct client_compute_minute {
    int64_t minute;
    double low_gflops;
};

/* The lowest free memory seen in one clock minute (unix seconds / 60). */
struct client_memory_minute {
    int64_t minute;
    uint64_t low_bytes;
};

struct client_state {
    char family[PROTO_NAME_SIZE];
    char ue[PROTO_UE_SIZE];
    struct client_model_ref current;
    struct client_model_ref previous;
    bool installed_reported;          /* "installed" sent for current */
    struct client_inflight inflight;
    int64_t generation;               /* highest signed generation seen */
    bool has_generation;
    struct client_downlink_sample downlink[CLIENT_HISTORY_MAX]; /* oldest
                                                                   first */
    size_t downlink_count;
    char downlink_iface[CLIENT_IFACE_SIZE]; /* default route they were
                                               measured on ("" unknown) */
    double rtt_ms;
    bool has_rtt;
    struct client_memory_minute memory[CLIENT_HISTORY_MAX]; /* oldest
                                                               first */
    size_t memory_count;
    double gflops;                    /* cached benchmark, 0: none */
    int64_t gflops_at_s;
    struct client_compute_minute compute[CLIENT_HISTORY_MAX]; /* oldest
                                                                 first */
    size_t compute_count;
    double probe_ref;                 /* the fastest probe lately, 0 none */
    int64_t probe_ref_at_s;
    double probe_last;                /* the newest probe, 0 none */
    int64_t probe_last_at_s;
    char last_action[16];             /* of the last decision */
    int64_t last_decision_at_s;
    unsigned last_recheck_after_s;
    char pinned_kid[CLIENT_KID_SIZE]; /* key pinned from /v1/keys */
    unsigned char pinned_key[32];
    bool has_pinned_key;
};

/* Fresh state for family: everything empty, a random UE id. */
void client_state_init(struct client_state *st, const char *family);

/*
 * Reads DIR/state.json. CLIENT_OK with *st filled; a missing file gives a
 * fresh state. A file that is not ours: CLIENT_LOCAL_ERROR with err set.
 */
CLIENT_MUST_CHECK enum client_status
client_state_load(const char *dir, const char *family,
                  struct client_state *st, char *err, size_t err_len);

/* Writes DIR/state.json crash-safely: temp file, fsync, rename, dir fsync. */
CLIENT_MUST_CHECK enum client_status
client_state_save(const char *dir, const struct client_state *st,
                  char *err, size_t err_len);

/* The JSON text of a state (caller frees) and back; exposed for tests. */
char *client_state_write(const struct client_state *st);
CLIENT_MUST_CHECK enum client_status
client_state_parse(const char *text, struct client_state *out);

/* The slot for a new newest entry of a history of *count entries of size
 * bytes each at base (at most CLIENT_HISTORY_MAX): the oldest is dropped
 * when it is full. Returns the slot's index; *count includes it. */
size_t client_history_slot(void *base, size_t *count, size_t size);

/*
 * The histories (client/history.c). Time is passed in (wall clock, unix
 * seconds) so that the rules are table-tested.
 *
 * Throughput: each sample is kept with the time it was measured and the
 * interface of the default route it was measured on; the newest 16 are
 * kept. A sample on another interface than the one given now, older than
 * CLIENT_DOWNLINK_MAX_AGE_S or from the future (the clock went back) is
 * stale: never sent. A sample on a new interface forgets the others.
 */
void client_state_add_downlink(struct client_state *st, int64_t now_s,
                               const char *iface, double bps);
/* The fresh samples, oldest first; their count. */
size_t client_state_fresh_downlink(const struct client_state *st,
                                   int64_t now_s, const char *iface,
                                   double out[CLIENT_HISTORY_MAX]);
/* The downlink estimate: median of the fresh samples; -1 when none. */
double client_state_downlink_estimate(const struct client_state *st,
                                      int64_t now_s, const char *iface);

/*
 * Free memory: one entry per clock minute (now_s / 60), the lowest sample
 * seen in it, at most 16 (the newest). A minute before the last 16 clock
 * minutes (now's included) is stale; minutes without a sample (the client
 * did not run) are absent, not guessed. A minute after now's (the clock
 * went back) is dropped. true when the state changed (a new minute or a
 * lower low): the caller saves it.
 */
bool client_state_add_memory(struct client_state *st, int64_t now_s,
                             uint64_t bytes);
/* The fresh minutes' lows, oldest first; their count. */
size_t client_state_fresh_memory(const struct client_state *st,
                                 int64_t now_s,
                                 uint64_t out[CLIENT_HISTORY_MAX]);
/* The lowest of the fresh minutes' lows; 0 when none. */
uint64_t client_state_memory_floor(const struct client_state *st,
                                   int64_t now_s);

/*
 * Compute (device.gflops_history): each probe (raw GFLOP/s of the probe
 * kernel) goes into its clock minute's low, kept and staled exactly as the
 * memory minutes are, and raises the reference, the fastest probe seen;
 * a reference older than CLIENT_PROBE_REF_MAX_AGE_S (or from the future)
 * is replaced by the next probe. true when the state changed.
 */
#define CLIENT_PROBE_REF_MAX_AGE_S (7 * 24 * 3600)
#define CLIENT_PROBE_NOISE 0.1 /* a share above 0.9 of the reference: 1 */
bool client_state_add_compute(struct client_state *st, int64_t now_s,
                              double probe_gflops);
/* The fresh minutes' lows as GFLOP/s of this device: low / reference x
 * peak (at most peak), oldest first; their count. */
size_t client_state_fresh_compute(const struct client_state *st,
                                  int64_t now_s, double peak,
                                  double out[CLIENT_HISTORY_MAX]);
/* The newest probe (of the last CLIENT_MINUTE_S) likewise; -1 none. */
double client_state_compute_now(const struct client_state *st,
                                int64_t now_s, double peak);

/* Files are written with fileio/ (write-all, pwrite-all, fsync of a
 * directory, crash-safe put, mapping): the copies the daemon uses. */

/* ---- resume arithmetic (client/http.c) ------------------------------- */

enum client_resume {
    CLIENT_RESUME_APPEND,    /* 206 from exactly the bytes we have */
    CLIENT_RESUME_RESTART,   /* 200: the whole body, truncate first */
    CLIENT_RESUME_COMPLETE,  /* 416 and we hold every byte already */
    CLIENT_RESUME_RETRY_FROM_ZERO, /* 416 or a range we did not ask for */
    CLIENT_RESUME_FAIL,      /* any other status */
};

/*
 * What to do with an answer to "Range: bytes=HAVE-": status, the
 * Content-Range value (NULL when absent), what we hold and the size the
 * decision announced (0: unknown). On APPEND *out_total is the full size.
 */
enum client_resume client_resume_decide(long status,
                                        const char *content_range,
                                        uint64_t have, uint64_t expected,
                                        uint64_t *out_total);

/*
 * How long one fetch may spend bringing over missing_bytes (README
 * "Transfer deadline"): CLIENT_DEADLINE_GRACE_S plus the time the bytes
 * take at min_rate_bps (bits/s), at most cap_s. min_rate_bps 0: cap_s
 * alone; cap_s 0: no cap; both 0: 0, no deadline.
 */
#define CLIENT_DEADLINE_GRACE_S 60
double client_transfer_deadline_s(uint64_t missing_bytes, double min_rate_bps,
                                  unsigned cap_s);

/* Parses "Retry-After" (delta-seconds or an HTTP date) against now;
 * -1 when absent or invalid. */
long client_retry_after_parse(const char *value, int64_t now_s);

/*
 * Backoff before retry number attempt (0-based): a uniform random time in
 * [cap/2, cap] with cap = min(max_ms, base_ms * 2^attempt) ("equal
 * jitter"); r is a uniform random number in [0, 1).
 */
unsigned client_backoff_ms(unsigned attempt, unsigned base_ms,
                           unsigned max_ms, double r);

/* A uniform random number in [0, 1) from the OS's generator. */
double client_random(void);

/* ---- HTTP (client/http.c) -------------------------------------------- */

/* One keep-alive libcurl handle with the options' TLS and timeouts. */
struct client_http {
    void *curl;                   /* CURL * */
    const struct client_options *o;
    char base[CLIENT_URL_SIZE];   /* server_url without a trailing '/' */
};

enum client_http_rc {
    CLIENT_HTTP_ANSWERED = 0,     /* a status arrived: see answer.status */
    CLIENT_HTTP_NETWORK,          /* no (complete) answer: retry */
    CLIENT_HTTP_LOCAL,            /* our side failed (disk, memory) */
    CLIENT_HTTP_TOO_LONG,         /* more body than announced: cut */
    CLIENT_HTTP_DEADLINE,         /* the download's deadline passed: cut
                                     (the bytes so far stay in fd) */
};

/* An answer: status, a few headers (64 KiB of them at most), a body of
 * at most 1 MiB (memory). */
struct client_answer {
    long status;
    char *body;                   /* NUL-terminated, caller frees */
    size_t body_len;
    char content_type[128];
    char content_digest[256];
    char signature_input[1024];
    char signature[512];
    char retry_after[64];
    char etag[CLIENT_VALIDATOR_SIZE];
    char content_range[128];
    double rtt_ms;                /* TCP connect time, -1 when reused */
    char error[256];              /* curl's message on NETWORK */
};

/* A resumable download into fd (the partial file). */
struct client_download {
    int fd;
    uint64_t have;                /* bytes already in fd: ask from there */
    uint64_t expected;            /* full size announced: no body byte
                                     beyond it is written (the download
                                     ends CLIENT_HTTP_TOO_LONG) */
    char validator[CLIENT_VALIDATOR_SIZE]; /* If-Range; updated */
    bool validator_changed;       /* set when the answer brought a new one */
    /* Called with the new validator before the first byte is written,
     * so that the state names it before bytes exist that need it. */
    void (*on_validator)(void *ctx, const char *validator);
    /* A throughput measurement (bits/s): one per rate_window_s of body
     * and one for the rest when the request ends (long enough to say
     * something: 16 KiB, or a second). */
    void (*on_sample)(void *ctx, double bps);
    /* Called now and then (about once a second) while bytes flow. */
    void (*on_tick)(void *ctx);
    void *cb_ctx;
    double rate_window_s;         /* 0: CLIENT_RATE_WINDOW_S */
    double deadline_s;            /* monotonic seconds: the request is cut
                                     then (CLIENT_HTTP_DEADLINE); 0 none */
    bool deadline_hit;
    uint64_t received;            /* body bytes this request */
    bool complete;                /* fd holds every byte */
    enum client_resume how;
};

CLIENT_MUST_CHECK int client_http_open(struct client_http *h,
                                       const struct client_options *o,
                                       char *err, size_t err_len);
void client_http_close(struct client_http *h);

/* Full URL of a decision url: absolute http(s) URLs as they are, paths
 * after the server's base. */
void client_http_url(const struct client_http *h, const char *path_or_url,
                     char *out, size_t out_cap);

/* One request; body may be NULL. Caller frees ans->body. */
enum client_http_rc client_http_request(struct client_http *h,
                                        const char *method, const char *path,
                                        const char *content_type,
                                        const char *body,
                                        struct client_answer *ans);

/*
 * GET url with "Range: bytes=HAVE-" and If-Range when bytes are on disk;
 * appends (206), restarts (200) or recognises completion (416 with every
 * byte held). ans gets the status and headers (and a small error body).
 */
enum client_http_rc client_http_download(struct client_http *h,
                                         const char *url,
                                         struct client_download *d,
                                         struct client_answer *ans);

/* ---- facts (client/facts.c) ------------------------------------------ */

struct client_facts {
    uint64_t memory_bytes;        /* MemAvailable, 0: unknown */
    double battery_percent;
    bool has_battery;
    bool charging;
    bool metered;                 /* the default route is a cellular link */
    bool has_metered;
    char route_iface[CLIENT_IFACE_SIZE]; /* its interface, "" unknown */
};

/* Free memory only (MemAvailable), 0 when unknown. */
uint64_t client_facts_memory(const struct client_options *o);

/* Measures what the platform allows; never fails (unknown stays unset). */
void client_facts_measure(const struct client_options *o,
                          struct client_facts *out);

/* A short compute benchmark: GFLOP/s of float multiply-adds (~30 ms). */
double client_benchmark_gflops(void);

/*
 * The compute probe behind device.gflops_history (client/facts.c): blocks
 * of CLIENT_PROBE_ROUNDS 32x32 fp32 matrix products, each block timed with
 * clock_s (NULL: CLOCK_MONOTONIC; tests pass a fake), until
 * CLIENT_PROBE_BUDGET_S passed (CLIENT_PROBE_MIN_BLOCKS at least,
 * CLIENT_PROBE_MAX_BLOCKS at most); GFLOP/s of the fastest block, 0 when
 * no block took measurable time.
 */
#define CLIENT_PROBE_ROUNDS 4
#define CLIENT_PROBE_FLOP_PER_BLOCK (2.0 * 32 * 32 * 32 * CLIENT_PROBE_ROUNDS)
#define CLIENT_PROBE_BUDGET_S 0.002
#define CLIENT_PROBE_MIN_BLOCKS 2
#define CLIENT_PROBE_MAX_BLOCKS 64
double client_compute_probe(double (*clock_s)(void *ctx), void *ctx);
/* The probe's figure: measured, or read from o->compute_probe_path
 * (tests); 0 unknown. */
double client_facts_compute(const struct client_options *o);

/* ---- report (client/report.c) ---------------------------------------- */

/* The inputs of one report besides the state. */
struct client_report_in {
    const struct client_facts *facts;
    const char *base_json;        /* --report, may be NULL */
    const char *const *sets;
    size_t set_count;
    const char *nonce;            /* NULL: no signed answer asked for */
    int64_t now_s;                /* wall clock: what is fresh */
    bool compute;                 /* the compute probe runs: send
                                     device.gflops_history and gflops now */
};

/* device.gflops as the base report and the overrides set it (the peak
 * the probe's ratio scales), 0 when they do not. */
double client_report_gflops_override(const char *base_json,
                                     const char *const *sets,
                                     size_t set_count);

/* device.memory_bytes as the base report and the overrides set it
 * (then the free memory the client samples), 0 when they do not. */
uint64_t client_report_memory_override(const char *base_json,
                                       const char *const *sets,
                                       size_t set_count);

/*
 * Builds the select body: measured facts, then the base report, then each
 * KEY=VALUE (later wins), then ue, current, fetching and the throughput
 * history from the state. Checks the result with proto_report_parse.
 * CLIENT_BAD_ARGS names the field in err. Caller frees *out_json.
 */
CLIENT_MUST_CHECK enum client_status
client_report_make(const struct client_report_in *in,
                   const struct client_state *st, char **out_json,
                   char *err, size_t err_len);

/* ---- decision (client/decision.c) ------------------------------------ */

struct client_decision {
    enum proto_action action;
    char variant[PROTO_NAME_SIZE];
    int64_t version;
    char model_hex[PROTO_HEX_SIZE];
    uint64_t model_size;
    char model_url[CLIENT_URL_SIZE];
    char model_encoding[PROTO_TOKEN_SIZE];   /* "" identity */
    uint64_t model_decoded_size;             /* model.decoded_size_bytes:
                                                the plain size when
                                                encoded, 0 not given */
    bool has_delta;
    char delta_from_hex[PROTO_HEX_SIZE];
    uint64_t delta_size;
    char delta_url[CLIENT_URL_SIZE];
    char delta_format[PROTO_TOKEN_SIZE];     /* "zstd-patch" by default */
    unsigned recheck_after_s;
    bool degraded;
    bool has_generation;
    int64_t generation;
    char nonce[80];
    char receipt[PROTO_RECEIPT_SIZE];     /* "" when the answer has none */
    char expires_at[40];
    int64_t expires_at_s;
    bool has_expires_at;
};

/* Parses a select answer; CLIENT_REFUSED with err when it is not one. */
CLIENT_MUST_CHECK enum client_status
client_decision_parse(const char *body, size_t len,
                      struct client_decision *out, char *err,
                      size_t err_len);

/* RFC 3339 UTC ("2026-12-01T12:00:00Z") to unix seconds; -1 invalid. */
int64_t client_rfc3339_parse(const char *s);

/* ---- signed answers (client/sig.c) ----------------------------------- */

/* Headers of a signed answer and the request they answer. */
struct client_signed {
    long status;                  /* of the answer: 200 */
    const char *method;           /* of the request: "POST" */
    const char *path;             /* of the request: "/v1/families/f/select" */
    const char *content_type;     /* response headers (NULL when absent) */
    const char *content_digest;
    const char *signature_input;
    const char *signature;
    const void *body;
    size_t body_len;
};

/* Verification keys: Ed25519 raw public keys by kid. */
struct client_keyring {
    struct {
        char kid[CLIENT_KID_SIZE];
        unsigned char key[32];
    } keys[8];
    size_t count;
};

/*
 * Loads keys from a PEM public key (kid: the file's, or kid_hint) or a
 * JWKS {"keys":[{"kty":"OKP","crv":"Ed25519","kid","x"}]} text.
 */
CLIENT_MUST_CHECK enum client_status
client_keyring_parse(const char *text, size_t len, const char *kid_hint,
                     struct client_keyring *out, char *err, size_t err_len);

/*
 * Verifies an RFC 9421 signature labelled "modeld": alg ed25519, a keyid
 * in ring (and equal to want_kid when given), covered components including
 * "@method" "@path" "content-digest" "content-type", created <= now + 60 s,
 * expires > now; and the RFC 9530 Content-Digest (sha-256) of the body.
 * CLIENT_VERIFY_FAILED with err saying which check failed.
 */
CLIENT_MUST_CHECK enum client_status
client_signature_verify(const struct client_signed *s,
                        const struct client_keyring *ring,
                        const char *want_kid, int64_t now_s, char *err,
                        size_t err_len);

/* base64 (standard or url alphabet, padding optional) into out;
 * returns the length or -1. */
long client_base64_decode(const char *in, size_t in_len, unsigned char *out,
                          size_t out_cap);
/* Standard base64 with padding; out needs 4 * ceil(len / 3) + 1 bytes. */
void client_base64_encode(const unsigned char *in, size_t len, char *out);

#endif
