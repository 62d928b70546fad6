/*
 * The daemon's configuration: one table of keys (server/config.c) with
 * defaults and ranges, read from a "key = value" file and overridden by
 * command-line flags. Holds the policy, store and parser settings that the
 * other modules take as arguments.
 */
#ifndef SERVER_CONFIG_H
#define SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "proto/proto.h"
#include "store/store.h"

#define CONFIG_PATH_SIZE 1024

enum config_sign_mode {
    CONFIG_SIGN_REQUESTED = 0,    /* when the report sends nonce or
                                     accept.signed */
    CONFIG_SIGN_ALWAYS,
};

struct config {
    char listen_host[256];
    unsigned listen_port;
    char data_dir[CONFIG_PATH_SIZE];
    char admin_token_file[CONFIG_PATH_SIZE];
    char tls_cert[CONFIG_PATH_SIZE];
    char tls_key[CONFIG_PATH_SIZE];
    char tls_priorities[512];
    unsigned threads;
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned connection_timeout_s;
    unsigned request_timeout_s;   /* headers due within this; 0: off */
    unsigned min_download_bytes_per_s; /* large answers: slower is cut */
    unsigned shutdown_grace_s;
    size_t connection_memory_bytes; /* libmicrohttpd's per-connection pool */
    /* The access log (server/access_log.h): file ("" stderr), per-thread
     * buffer (0: a write per line), how often buffers are written. */
    char access_log[CONFIG_PATH_SIZE];
    size_t access_log_buffer_bytes;
    unsigned access_log_flush_ms;
    uint64_t max_upload_bytes;
    uint64_t max_json_bytes;      /* admin JSON bodies */
    uint64_t max_select_bytes;    /* select bodies */
    /* Trust and control (server/sign.c, handler_events.c, admission). */
    unsigned sign_decisions;      /* CONFIG_SIGN_REQUESTED / _ALWAYS */
    char signing_key[CONFIG_PATH_SIZE];
    char verify_keys[4 * CONFIG_PATH_SIZE];
    unsigned decision_ttl_s;
    char admin_tokens_file[CONFIG_PATH_SIZE];
    unsigned events_per_minute_per_ip;
    double admission_load;        /* defer transfers at this load; >1 off */
    unsigned admission_recheck_s;
    unsigned max_transfers;       /* concurrent blob/delta GETs; 0 off */
    unsigned transfer_retry_after_s;
    /* Edge mode (server/edge.c): empty, or the origin's base URL. */
    char blob_origin[CONFIG_PATH_SIZE];
    uint64_t blob_cache_max_bytes; /* 0: no bound */
    struct policy_config policy;
    struct store_options store;
    struct proto_limits limits;
};

/* Fills every key with its default. */
void config_default(struct config *out);

/*
 * Sets one key from its text value. Returns 0, or -1 with a message in err
 * ("unknown key", "out of range 1..64", ...).
 */
int config_set(struct config *cfg, const char *key, const char *value,
               char *err, size_t err_len);

/*
 * Reads a config file of "key = value" lines ('#' comments, blank lines).
 * Returns 0, or -1 with "FILE:LINE: message" in err.
 */
int config_load_file(struct config *cfg, const char *path, char *err,
                     size_t err_len);

/* Writes every key with its current value, one "key = value" line each,
 * to a malloc'd string (for --help and the docs check). NULL on ENOMEM. */
char *config_dump(const struct config *cfg);

#endif
