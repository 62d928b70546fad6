/*
 * libmodeld-client: the UE side of modeld. Measures what the device can do,
 * builds the UE report, asks the server which model fits, downloads it (or a
 * delta from the model in use), resumes broken transfers, verifies digests
 * and signed answers, switches the model atomically and keeps the previous
 * one for rollback, all in one state directory owned by one process.
 *
 * Depends on proto/ (wire formats, digests, the delta applier), libcurl,
 * jansson and OpenSSL libcrypto; never on the server, store or policy.
 *
 *     struct client_options o;
 *     struct client *c;
 *     client_options_default(&o);
 *     o.server_url = "https://edge.example:8443";
 *     o.family = "image-classification";
 *     o.state_dir = "/data/models/image-classification";
 *     if (client_open(&o, &c) == CLIENT_OK &&
 *         client_fetch_once(c, NULL) == CLIENT_OK)
 *         load_model(client_model_path(c));   // DIR/path
 *     client_close(c);
 */
#ifndef CLIENT_CLIENT_H
#define CLIENT_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CLIENT_MUST_CHECK __attribute__((warn_unused_result))
#else
#define CLIENT_MUST_CHECK
#endif

/* Every status is also the exit code of `modeld fetch`. */
enum client_status {
    CLIENT_OK = 0,           /* a verified model is in place (new or kept) */
    CLIENT_LOCAL_ERROR = 1,  /* state directory, disk, memory, lock */
    CLIENT_BAD_ARGS = 2,     /* options, report file or --set invalid */
    CLIENT_NETWORK = 3,      /* no answer after every retry, timeouts */
    CLIENT_VERIFY_FAILED = 4,/* digest or signature refused; not switched */
    CLIENT_REFUSED = 5,      /* the server said no: 4xx, or action "none"
                                with no model in place */
    CLIENT_DEFERRED = 6,     /* transfer over max_bytes or on a metered
                                link with wifi_only; nothing changed */
};

/* One line per event ("select action=download variant=... ") for logs. */
typedef void (*client_event_fn)(void *ctx, const char *line);
/* Transfer progress: bytes done of total (0 when unknown), current rate. */
typedef void (*client_progress_fn)(void *ctx, uint64_t done_bytes,
                                   uint64_t total_bytes, double rate_bps);

struct client_options {
    const char *server_url;       /* "http://host:port" or "https://..." */
    const char *family;
    const char *state_dir;        /* created when missing */
    const char *report_json;      /* a base report (JSON text) or NULL */
    const char *const *sets;      /* "KEY=VALUE" report overrides */
    size_t set_count;

    const char *ca_file;          /* PEM: trust only these CAs (pinning) */
    const char *pinned_pubkey;    /* curl's "sha256//base64" or a PEM file */
    const char *verify_key_file;  /* Ed25519 PEM public key or JWKS JSON:
                                     ask for and verify signed answers */
    const char *verify_kid;       /* required keyid; without a key file the
                                     key of this kid from GET /v1/keys is
                                     pinned in the state on first use */

    uint64_t max_bytes;           /* transfer at most this (0: no limit) */
    bool wifi_only;               /* defer transfers on a metered link */

    unsigned connect_timeout_ms;  /* default 10000 */
    unsigned request_timeout_ms;  /* select/events total, default 30000 */
    unsigned stall_timeout_s;     /* a transfer below 1 byte/s this long is
                                     broken, default 30 */
    unsigned deadline_s;          /* one fetch's transfer ends (exit 3, the
                                     bytes kept for a resume) after at most
                                     this long, default 21600 (0: no cap) */
    double min_rate_bps;          /* ... and after 60 s plus the missing
                                     bytes at this rate (bits/s), default
                                     64000 (0: the cap alone) */
    unsigned retries;             /* per operation, default 6 */
    unsigned backoff_base_ms;     /* default 500: 0.5, 1, 2, 4 s ... */
    unsigned backoff_max_ms;      /* default 60000 */
    unsigned max_retry_after_s;   /* longest Retry-After obeyed, default 3600 */
    double recheck_jitter;        /* watch: recheck_after_s x (1 +- this),
                                     default 0.2 */
    unsigned facts_interval_s;    /* sample free memory this often (watch,
                                     and during transfers), default 10 */
    unsigned rate_window_s;       /* a throughput sample per this much of a
                                     long transfer, default 60 */
    double change_margin;         /* watch: re-decide early when free
                                     memory or the compute probe's share
                                     moves by this fraction, 0.25 */

    const char *meminfo_path;     /* default /proc/meminfo */
    const char *power_supply_dir; /* default /sys/class/power_supply */
    bool no_benchmark;            /* do not measure gflops: no benchmark,
                                     no probe, no device.gflops_history */
    const char *compute_probe_path; /* the probe's GFLOP/s read from this
                                       file instead of measured (tests) */

    client_event_fn on_event;
    client_progress_fn on_progress;
    void *cb_ctx;
};

struct client;

/* What one fetch did. */
struct client_result {
    char action[16];              /* download, delta, keep, none */
    char variant[80];
    long long version;
    char digest[72];              /* "sha256:..." of the model in place */
    unsigned recheck_after_s;     /* from the decision (0: none) */
    uint64_t bytes_transferred;   /* body bytes received this time */
    bool switched;
};

void client_options_default(struct client_options *out);

/*
 * Opens the state directory (creating it), takes its lock (one process per
 * directory), loads the state and finishes a switch interrupted by a crash.
 * On CLIENT_OK the caller owns *out (client_close). On failure the reason is
 * in errbuf.
 */
CLIENT_MUST_CHECK enum client_status
client_open(const struct client_options *opts, struct client **out,
            char *errbuf, size_t errbuf_len);

/* Releases the lock and everything else; NULL does nothing. */
void client_close(struct client *c);

/* The last error, for a person. */
const char *client_errmsg(const struct client *c);

/* DIR/path: a symlink naming the verified model to load. */
const char *client_model_path(const struct client *c);

/*
 * The report the next select would send (measured facts, the base report,
 * the overrides, current/fetching). Caller frees *out_json.
 */
CLIENT_MUST_CHECK enum client_status
client_report_build(struct client *c, char **out_json);

/* One decision and its transfer: select -> download or delta -> verify ->
 * switch -> event. out may be NULL. */
CLIENT_MUST_CHECK enum client_status
client_fetch_once(struct client *c, struct client_result *out);

/*
 * Fetches, then sleeps recheck_after_s (with jitter) and fetches again,
 * earlier when *wake becomes non-zero (a signal) or when measured free
 * memory or compute (the probe's share of its reference: throttling)
 * moves by change_margin from the last report's. Returns when *stop becomes non-zero:
 * the status of the last fetch.
 */
enum client_status client_watch(struct client *c,
                                volatile sig_atomic_t *stop,
                                volatile sig_atomic_t *wake);

/*
 * Tells the client whether the app could load the model in place. ok:
 * reports "installed" once and drops older models but the previous one.
 * Not ok: switches back to the previous model ("load_failed",
 * "rolled_back"); CLIENT_LOCAL_ERROR when there is none.
 */
CLIENT_MUST_CHECK enum client_status
client_model_loaded(struct client *c, bool ok, double latency_ms);

#endif
