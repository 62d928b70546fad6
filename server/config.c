/*
 * The configuration table: every key the daemon reads, with its type,
 * default, range and a line of documentation. Files are "key = value"
 * lines; flags on the command line go through config_set as well. The
 * modules get their settings as plain structs; nothing here is global.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/log.h"
#include "server/config.h"

enum key_type {
    KEY_STRING,
    KEY_UINT,
    KEY_U64,
    KEY_SIZE,
    KEY_INT,
    KEY_DOUBLE,
    KEY_BOOL,
    KEY_LISTEN,
    KEY_CHOICE,           /* one of choices, stored as its index */
};

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    size_t size;          /* KEY_STRING: buffer size */
    double min;
    double max;
    const char *doc;
};

/* The values of each KEY_CHOICE key, NULL-terminated, by key name. */
static const char *const sign_modes[] = {"requested", "always", NULL};
static const struct {
    const char *key;
    const char *const *choices;
} choice_keys[] = {
    {"sign_decisions", sign_modes},
};

static const char *const *
choices_of(const char *key)
{
    for (size_t i = 0; i < sizeof(choice_keys) / sizeof(choice_keys[0]); i++)
        if (strcmp(choice_keys[i].key, key) == 0)
            return choice_keys[i].choices;
    return NULL;
}

#define OFF(field) offsetof(struct config, field)
#define STR(field) OFF(field), sizeof(((struct config *)0)->field)

static const struct key keys[] = {
    {"listen", KEY_LISTEN, 0, 0, 0, 0,
     "HOST:PORT to listen on; port 0 picks a free port"},
    {"data", KEY_STRING, STR(data_dir), 0, 0, "data directory"},
    {"admin_token_file", KEY_STRING, STR(admin_token_file), 0, 0,
     "file holding the admin bearer token (else MODELD_ADMIN_TOKEN)"},
    {"tls_cert", KEY_STRING, STR(tls_cert), 0, 0,
     "PEM certificate chain; with tls_key serves HTTPS"},
    {"tls_key", KEY_STRING, STR(tls_key), 0, 0, "PEM private key"},
    {"tls_priorities", KEY_STRING, STR(tls_priorities), 0, 0,
     "GnuTLS priority string"},
    {"threads", KEY_UINT, OFF(threads), 0, 0, 64,
     "HTTP worker threads (epoll thread pool, poll(2) with TLS; 0: four "
     "per core, 4-64)"},
    {"max_connections", KEY_UINT, OFF(max_connections), 0, 0, 100000,
     "total connections (at most 125 per thread are used; 0: 125 per "
     "thread, within the open-file limit)"},
    {"max_connections_per_ip", KEY_UINT, OFF(max_connections_per_ip), 0, 0,
     100000, "connections from one client address (0: no limit)"},
    {"connection_timeout_s", KEY_UINT, OFF(connection_timeout_s), 0, 1, 3600,
     "idle connection timeout"},
    {"min_download_bytes_per_s", KEY_UINT, OFF(min_download_bytes_per_s), 0,
     0, 1e9, "a large answer acknowledged slower than this on average over "
             "connection_timeout_s is cut (0: only a stall cuts)"},
    {"request_timeout_s", KEY_UINT, OFF(request_timeout_s), 0, 0, 3600,
     "a request's headers must arrive within this many seconds of the "
     "connection opening or the previous response (0: off)"},
    {"shutdown_grace_s", KEY_UINT, OFF(shutdown_grace_s), 0, 0, 3600,
     "on SIGTERM, how long transfers in flight may finish"},
    {"connection_memory_bytes", KEY_SIZE, OFF(connection_memory_bytes), 0,
     8192, 1048576,
     "libmicrohttpd's memory per connection: the request line and headers "
     "must fit in it (up to ~15 KiB of 16 KiB); zeroed on every request"},
    {"access_log", KEY_STRING, STR(access_log), 0, 0,
     "file the access log (a line per request) is appended to, reopened "
     "on SIGHUP; empty: stderr, with the other log lines"},
    {"access_log_buffer_bytes", KEY_SIZE, OFF(access_log_buffer_bytes), 0,
     0, 16777216,
     "each HTTP thread buffers its access-log lines up to this size (0: a "
     "write per line)"},
    {"access_log_flush_ms", KEY_UINT, OFF(access_log_flush_ms), 0, 1,
     60000, "buffered access-log lines are written at least this often"},
    {"max_upload_bytes", KEY_U64, OFF(max_upload_bytes), 0, 1, 1e15,
     "largest model upload"},
    {"max_json_bytes", KEY_U64, OFF(max_json_bytes), 0, 64, 16777216,
     "largest admin JSON body"},
    {"max_select_bytes", KEY_U64, OFF(max_select_bytes), 0, 64, 1048576,
     "largest select body"},
    {"max_json_depth", KEY_SIZE, OFF(limits.max_depth), 0, 2, 64,
     "deepest JSON nesting accepted"},
    {"policy_hysteresis_accuracy", KEY_DOUBLE,
     OFF(policy.hysteresis_accuracy), 0, 0, 1,
     "quality: keep the current model within this accuracy of the best"},
    {"policy_hysteresis_score", KEY_DOUBLE, OFF(policy.hysteresis_score), 0,
     0, 10, "balanced/saver: keep the current model within this score"},
    {"policy_low_battery_percent", KEY_DOUBLE,
     OFF(policy.low_battery_percent), 0, 0, 100,
     "below it, not charging: balanced acts as saver"},
    {"policy_high_load", KEY_DOUBLE, OFF(policy.high_load), 0, 0, 1,
     "network load at or above it weighs transfer more"},
    {"policy_transfer_boost", KEY_DOUBLE, OFF(policy.transfer_boost), 0, 1,
     100, "byte cost multiplier on metered or loaded links"},
    {"policy_default_downlink_bps", KEY_DOUBLE,
     OFF(policy.default_downlink_bps), 0, 1, 1e12,
     "downlink assumed when a report gives none"},
    {"policy_balanced_accuracy", KEY_DOUBLE, OFF(policy.balanced.accuracy),
     0, 0, 100, "balanced: weight of accuracy"},
    {"policy_balanced_latency", KEY_DOUBLE, OFF(policy.balanced.latency), 0,
     0, 100, "balanced: weight of latency"},
    {"policy_balanced_energy", KEY_DOUBLE, OFF(policy.balanced.energy), 0, 0,
     100, "balanced: weight of energy"},
    {"policy_balanced_transfer", KEY_DOUBLE, OFF(policy.balanced.transfer),
     0, 0, 100, "balanced: multiplier of the byte cost"},
    {"policy_saver_accuracy", KEY_DOUBLE, OFF(policy.saver.accuracy), 0, 0,
     100, "saver: weight of accuracy"},
    {"policy_saver_latency", KEY_DOUBLE, OFF(policy.saver.latency), 0, 0,
     100, "saver: weight of latency"},
    {"policy_saver_energy", KEY_DOUBLE, OFF(policy.saver.energy), 0, 0, 100,
     "saver: weight of energy"},
    {"policy_saver_transfer", KEY_DOUBLE, OFF(policy.saver.transfer), 0, 0,
     100, "saver: multiplier of the byte cost"},
    {"recheck_after_s", KEY_UINT, OFF(policy.recheck_after_s), 0, 1, 604800,
     "recheck_after_s of a decision"},
    {"recheck_degraded_s", KEY_UINT, OFF(policy.recheck_degraded_s), 0, 1,
     604800, "recheck_after_s of a degraded or none decision"},
    {"policy_horizon_s", KEY_DOUBLE, OFF(policy.horizon_s), 0, 1, 1e7,
     "seconds a decision is weighed over (a report's horizon_s wins)"},
    {"policy_transfer_cost_per_mb", KEY_DOUBLE,
     OFF(policy.transfer_cost_per_mb), 0, 0, 1e6,
     "cost of 1e6 bytes moved, in accuracy-seconds"},
    {"policy_throughput_safety", KEY_DOUBLE, OFF(policy.throughput_safety), 0,
     0.01, 1, "share of the throughput estimate downloads are planned with"},
    {"policy_memory_margin", KEY_DOUBLE, OFF(policy.memory_margin), 0, 0,
     0.99, "share of free memory that may vanish (without memory_floor_bytes)"},
    {"policy_runner_ups", KEY_UINT, OFF(policy.runner_ups), 0, 0, 100000,
     "candidates listed in a decision (explain=all lists every one)"},
    {"recheck_outage_s", KEY_UINT, OFF(policy.recheck_outage_s), 0, 1, 604800,
     "recheck_after_s when there is no throughput (downlink_bps 0)"},
    {"worker", KEY_BOOL, OFF(store.run_worker), 0, 0, 1,
     "make deltas and compressed copies in the background"},
    {"delta_level", KEY_INT, OFF(store.delta_level), 0, 1, 22,
     "zstd level of deltas"},
    {"compress_level", KEY_INT, OFF(store.compress_level), 0, 1, 22,
     "zstd level of compressed blob copies"},
    {"delta_max_fraction", KEY_DOUBLE, OFF(store.delta_max_fraction), 0,
     0.01, 1, "offer a delta only under this fraction of the full size"},
    {"delta_cross_variants", KEY_BOOL, OFF(store.delta_cross_variants), 0, 0,
     1, "also try deltas between variants of a family"},
    {"delta_cross_max_bytes", KEY_U64, OFF(store.delta_cross_max_bytes), 0,
     0, 1e15, "largest model tried for cross-variant deltas"},
    {"delta_versions", KEY_UINT, OFF(store.delta_versions), 0, 1, 64,
     "make deltas from each of a variant's last K versions"},
    {"delta_storage_max_bytes", KEY_U64, OFF(store.delta_storage_max_bytes),
     0, 0, 1e15,
     "bound of ready delta files, least recently served evicted; 0: none"},
    {"tensor_coding", KEY_BOOL, OFF(store.tensor_coding), 0, 0, 1,
     "also make modeld-tensor/1 deltas and modeld-bg/1 copies"},
    {"worker_retry_base_ms", KEY_UINT, OFF(store.retry_base_ms), 0, 1,
     3600000, "first wait before a job that failed transiently is retried"},
    {"worker_retry_max_ms", KEY_UINT, OFF(store.retry_max_ms), 0, 1,
     86400000, "longest wait between retries (the wait doubles)"},
    {"worker_retry_attempts", KEY_UINT, OFF(store.retry_attempts), 0, 1,
     1000, "attempts of a job before a transient failure is final"},
    {"sqlite_read_connections", KEY_UINT, OFF(store.read_connections), 0, 0,
     64, "read-only SQLite connections beside the writer (0: share it)"},
    {"sqlite_busy_timeout_ms", KEY_INT, OFF(store.busy_timeout_ms), 0, 0,
     600000, "SQLite busy timeout"},
    {"blob_origin", KEY_STRING, STR(blob_origin), 0, 0,
     "edge mode: base URL of the origin (a central modeld, or any HTTP "
     "server holding /v1/blobs/) that missing blobs are fetched from, "
     "verified against their digest before they are kept"},
    {"blob_cache_max_bytes", KEY_U64, OFF(blob_cache_max_bytes), 0, 0, 1e15,
     "edge mode: bound on the blobs kept (least recently used out; 0: no "
     "bound)"},
    {"catalog_url", KEY_STRING, STR(store.catalog_url), 0, 0,
     "postgresql://... puts the catalog on PostgreSQL (libpq URL; "
     "several hosts with target_session_attrs=read-write follow a "
     "failover); empty: SQLite in the data directory"},
    {"catalog_read_url", KEY_STRING, STR(store.catalog_read_url), 0, 0,
     "PostgreSQL server that snapshots are read from (a streaming "
     "replica); empty: catalog_url"},
    {"catalog_poll_ms", KEY_UINT, OFF(store.catalog_poll_ms), 0, 50, 600000,
     "how often a PostgreSQL catalog's generation is checked "
     "(LISTEN/NOTIFY wakes it sooner on a primary)"},
    {"sign_decisions", KEY_CHOICE, OFF(sign_decisions), 0, 0, 0,
     "sign select answers: requested (when the report sends a nonce or "
     "accept.signed) or always"},
    {"signing_key", KEY_STRING, STR(signing_key), 0, 0,
     "PEM Ed25519 private key that signs answers (modeld keygen); "
     "reloaded on SIGHUP"},
    {"verify_keys", KEY_STRING, STR(verify_keys), 0, 0,
     "comma-separated PEM files of older keys still listed in /v1/keys"},
    {"decision_ttl_s", KEY_UINT, OFF(decision_ttl_s), 0, 1, 604800,
     "a signed answer expires this many seconds after it is issued"},
    {"admin_tokens_file", KEY_STRING, STR(admin_tokens_file), 0, 0,
     "file of named admin tokens with scopes: NAME SCOPE TOKEN lines"},
    {"rollout_max_failure_share", KEY_DOUBLE,
     OFF(store.rollout_max_failure_share), 0, 0, 1,
     "pause a version when this share of its reporting UEs failed"},
    {"rollout_min_reports", KEY_UINT, OFF(store.rollout_min_reports), 0, 1,
     1000000, "... once at least this many distinct UEs reported on it"},
    {"rollout_pause_needs_receipt", KEY_BOOL,
     OFF(store.pause_needs_receipt), 0, 0, 1,
     "only events carrying the select answer's receipt count toward the "
     "automatic pause"},
    {"latency_min_reports", KEY_UINT, OFF(store.latency_min_reports), 0, 1,
     1000000,
     "measured latency replaces a class's estimate after this many UEs"},
    {"events_per_minute_per_ip", KEY_UINT, OFF(events_per_minute_per_ip), 0,
     1, 1000000, "event reports accepted per client address and minute"},
    {"admission_load", KEY_DOUBLE, OFF(admission_load), 0, 0, 2,
     "reported network load at or above which transfers are deferred "
     "(above 1: never)"},
    {"admission_recheck_s", KEY_UINT, OFF(admission_recheck_s), 0, 1, 86400,
     "recheck_after_s of a deferred decision"},
    {"max_transfers", KEY_UINT, OFF(max_transfers), 0, 0, 1000000,
     "concurrent blob and delta downloads (0: no limit); beyond, 503"},
    {"transfer_retry_after_s", KEY_UINT, OFF(transfer_retry_after_s), 0, 1,
     3600, "Retry-After of a 503 beyond max_transfers"},
};

void
config_default(struct config *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->listen_host, sizeof(out->listen_host), "127.0.0.1");
    out->listen_port = 8080;
    snprintf(out->data_dir, sizeof(out->data_dir), "var");
    /* Every version, cipher and group offered here is acceptable, so the
     * client's preference decides (as nginx does by default). With
     * %SERVER_PRECEDENCE, GnuTLS answered any client whose key share was
     * not its own first group (SECURE256: P-384; OpenSSL, curl and
     * browsers send X25519) with a HelloRetryRequest: a second round trip
     * and a P-384 exchange, about 3x the handshake's cost. */
    snprintf(out->tls_priorities, sizeof(out->tls_priorities),
             "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
             "-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"
             "-SHA1:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA");
    out->threads = 0;
    out->max_connections = 0;
    out->max_connections_per_ip = 128;
    out->connection_timeout_s = 30;
    out->request_timeout_s = 15;
    out->min_download_bytes_per_s = 512;
    out->shutdown_grace_s = 10;
    out->connection_memory_bytes = 16 << 10;
    out->access_log_buffer_bytes = 64 << 10;
    out->access_log_flush_ms = 1000;
    out->max_upload_bytes = 4ULL << 30;
    out->max_json_bytes = 1 << 20;
    out->max_select_bytes = 16 << 10;
    proto_limits_default(&out->limits);
    policy_config_default(&out->policy);
    store_options_default(&out->store);
    out->store.run_worker = true;
    out->store.catalog_poll_ms = 1000;
    out->sign_decisions = CONFIG_SIGN_REQUESTED;
    out->decision_ttl_s = 300;
    out->events_per_minute_per_ip = 60;
    out->admission_load = 0.9;
    out->admission_recheck_s = 60;
    out->max_transfers = 0;
    out->transfer_retry_after_s = 5;
}

static int
parse_number(const char *value, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(value, &end);
    if (end == value || *end != '\0' || errno != 0 || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int
parse_listen(struct config *cfg, const char *value, char *err,
             size_t err_len)
{
    const char *colon = strrchr(value, ':');
    const char *host = value;
    size_t host_len;
    double port;

    if (!colon) {
        log_errbuf(err, err_len, "expected HOST:PORT, got \"%s\"", value);
        return -1;
    }
    host_len = (size_t)(colon - value);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    if (host_len == 0 || host_len >= sizeof(cfg->listen_host)) {
        log_errbuf(err, err_len, "bad host in \"%s\"", value);
        return -1;
    }
    if (parse_number(colon + 1, &port) != 0 || port < 0 || port > 65535 ||
        port != floor(port)) {
        log_errbuf(err, err_len, "bad port in \"%s\" (0..65535)", value);
        return -1;
    }
    memcpy(cfg->listen_host, host, host_len);
    cfg->listen_host[host_len] = '\0';
    cfg->listen_port = (unsigned)port;
    return 0;
}

int
config_set(struct config *cfg, const char *key, const char *value, char *err,
           size_t err_len)
{
    const struct key *k = NULL;
    char *base = (char *)cfg;
    double v = 0;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, key) == 0)
            k = &keys[i];
    if (!k) {
        log_errbuf(err, err_len, "unknown key \"%s\"", key);
        return -1;
    }
    switch (k->type) {
    case KEY_LISTEN:
        return parse_listen(cfg, value, err, err_len);
    case KEY_CHOICE:
        for (unsigned i = 0; choices_of(key)[i]; i++) {
            if (strcmp(choices_of(key)[i], value) == 0) {
                *(unsigned *)(base + k->offset) = i;
                return 0;
            }
        }
        log_errbuf(err, err_len, "%s: \"%s\" is not one of the choices", key,
             value);
        return -1;
    case KEY_STRING:
        if (strlen(value) >= k->size) {
            log_errbuf(err, err_len, "%s: value longer than %zu bytes", key,
                 k->size - 1);
            return -1;
        }
        memcpy(base + k->offset, value, strlen(value) + 1);
        return 0;
    case KEY_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
            strcmp(value, "1") == 0) {
            *(bool *)(base + k->offset) = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                   strcmp(value, "0") == 0) {
            *(bool *)(base + k->offset) = false;
        } else {
            log_errbuf(err, err_len, "%s: expected true or false, got \"%s\"", key,
                 value);
            return -1;
        }
        return 0;
    default:
        break;
    }
    if (parse_number(value, &v) != 0) {
        log_errbuf(err, err_len, "%s: expected a number, got \"%s\"", key, value);
        return -1;
    }
    if (v < k->min || v > k->max) {
        log_errbuf(err, err_len, "%s: %s is out of range %g..%g", key, value,
             k->min, k->max);
        return -1;
    }
    if (k->type != KEY_DOUBLE && v != floor(v)) {
        log_errbuf(err, err_len, "%s: expected an integer, got \"%s\"", key, value);
        return -1;
    }
    switch (k->type) {
    case KEY_UINT:
        *(unsigned *)(base + k->offset) = (unsigned)v;
        break;
    case KEY_U64:
        *(uint64_t *)(base + k->offset) = (uint64_t)v;
        break;
    case KEY_SIZE:
        *(size_t *)(base + k->offset) = (size_t)v;
        break;
    case KEY_INT:
        *(int *)(base + k->offset) = (int)v;
        break;
    case KEY_DOUBLE:
        *(double *)(base + k->offset) = v;
        break;
    default:
        break;
    }
    return 0;
}

static char *
trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
                       end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

int
config_load_file(struct config *cfg, const char *path, char *err,
                 size_t err_len)
{
    char line[2048];
    char msg[512];
    unsigned lineno = 0;
    FILE *f = fopen(path, "r");
    int rc = 0;

    if (!f) {
        log_errbuf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s, *eq, *key, *value;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            log_errbuf(err, err_len, "%s:%u: line too long", path, lineno);
            rc = -1;
            break;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            log_errbuf(err, err_len, "%s:%u: expected \"key = value\"", path,
                 lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        key = trim(s);
        value = trim(eq + 1);
        if (config_set(cfg, key, value, msg, sizeof(msg)) != 0) {
            log_errbuf(err, err_len, "%s:%u: %s", path, lineno, msg);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        log_errbuf(err, err_len, "%s: read error", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

static int
key_value(const struct config *cfg, const struct key *k, char *out,
          size_t out_size)
{
    const char *base = (const char *)cfg;

    switch (k->type) {
    case KEY_LISTEN:
        return snprintf(out, out_size, "%s:%u", cfg->listen_host,
                        cfg->listen_port);
    case KEY_STRING:
        return snprintf(out, out_size, "%s", base + k->offset);
    case KEY_CHOICE:
        return snprintf(out, out_size, "%s",
                        choices_of(k->name)[*(const unsigned *)(base +
                                                                k->offset)]);
    case KEY_BOOL:
        return snprintf(out, out_size, "%s",
                        *(const bool *)(base + k->offset) ? "true" : "false");
    case KEY_UINT:
        return snprintf(out, out_size, "%u",
                        *(const unsigned *)(base + k->offset));
    case KEY_SIZE:
        return snprintf(out, out_size, "%zu",
                        *(const size_t *)(base + k->offset));
    case KEY_U64:
        return snprintf(out, out_size, "%llu",
                        (unsigned long long)*(const uint64_t *)(base +
                                                                k->offset));
    case KEY_INT:
        return snprintf(out, out_size, "%d",
                        *(const int *)(base + k->offset));
    case KEY_DOUBLE:
        return snprintf(out, out_size, "%g",
                        *(const double *)(base + k->offset));
    }
    return 0;
}

char *
config_dump(const struct config *cfg)
{
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return NULL;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char value[1100];
        int n;

        key_value(cfg, &keys[i], value, sizeof(value));
        n = snprintf(buf + len, cap - len, "# %s\n%s = %s\n", keys[i].doc,
                     keys[i].name, value);
        if (n < 0 || (size_t)n >= cap - len) {
            free(buf);
            return NULL;
        }
        len += (size_t)n;
    }
    return buf;
}
