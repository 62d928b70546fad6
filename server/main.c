/*
 * build/modeld: the subcommand dispatcher and `serve`, the daemon. serve
 * reads the config file, applies the flags, opens the store, reads the
 * admin token and TLS files, starts the HTTP daemon and waits for a
 * signal: SIGTERM/SIGINT stop it gracefully (the listening socket is
 * closed at once, transfers in flight get shutdown_grace_s), SIGHUP
 * reopens the access log file and reloads the TLS certificate and key and
 * the signing keys.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include <curl/curl.h>

#include "server/commands.h"
#include "server/decide.h"
#include "server/file.h"
#include "server/http.h"
#include "server/limits.h"
#include "server/access_log.h"
#include "server/log.h"
#include "server/tls.h"

#define MAX_SECRET_FILE_BYTES (1 << 20)
#define MIN_TOKEN_LEN 16

static void
usage_main(FILE *out)
{
    fprintf(out,
            "usage: modeld COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  serve   run the daemon in the foreground\n"
            "  demo    write the demo catalog into a data directory\n"
            "  patch   apply a delta: modeld patch OLD DELTA OUT\n"
            "  fetch   the UE client: modeld fetch --server URL --family F "
            "--state DIR\n"
            "  select  print the decision for a report, offline\n"
            "  decode  decode an encoded model: modeld decode IN OUT\n"
            "  delta   make a delta: modeld delta OLD NEW OUT\n"
            "  encode  byte-grouped coding: modeld encode IN OUT\n"
            "  replay  replay UE reports through the policy against an "
            "oracle\n"
            "  keygen  write a new Ed25519 signing key: modeld keygen --out "
            "FILE\n"
            "\n"
            "modeld COMMAND --help shows a command's options.\n");
}

static void
usage_serve(FILE *out)
{
    fprintf(out,
            "usage: modeld serve [--config FILE] [--listen HOST:PORT] "
            "[--data DIR]\n"
            "                    [--admin-token-file FILE] [--tls-cert PEM "
            "--tls-key PEM]\n"
            "                    [--catalog postgresql://...]\n"
            "                    [--set KEY=VALUE]... [--log-level LEVEL]\n"
            "                    [--print-config]\n"
            "\n"
            "Runs the daemon in the foreground. Flags override the config "
            "file; --set\n"
            "sets any config key. The admin token comes from "
            "--admin-token-file or\n"
            "MODELD_ADMIN_TOKEN; with neither, admin endpoints answer 403. "
            "Prints\n"
            "\"listening on http://HOST:PORT\" once it accepts connections. "
            "SIGTERM and\n"
            "SIGINT stop it gracefully.\n");
}

/*
 * The admin token file must not be writable by every user (anyone could
 * put their own token in it): refused. Readable by every user (the token
 * leaks) or writable by its group: a warning, since a shared group may be
 * deliberate.
 */
static bool
token_file_risky(const char *file)
{
    struct stat st;

    if (stat(file, &st) != 0)
        return false;  /* the read that follows reports it */
    if (st.st_mode & S_IWOTH) {
        log_msg(LOG_ERROR, 0, "admin token file %s is writable by every "
                              "user (mode %03o): refused; chmod 600 it",
                file, (unsigned)(st.st_mode & 0777));
        return true;
    }
    if (st.st_mode & (S_IROTH | S_IWGRP))
        log_msg(LOG_WARN, 0, "admin token file %s is %s (mode %03o); "
                             "chmod 600 it",
                file,
                st.st_mode & S_IROTH ? "readable by every user"
                                     : "writable by its group",
                (unsigned)(st.st_mode & 0777));
    return false;
}

/* The admin tokens: the single token of admin_token_file or
 * MODELD_ADMIN_TOKEN (named "admin", scope admin) and the named, scoped
 * tokens of admin_tokens_file. */
static int
load_tokens(struct app *app)
{
    const char *file = app->cfg.admin_token_file;
    char *env = getenv("MODELD_ADMIN_TOKEN");
    unsigned char sha256[32];
    char err[512];
    int rc;

    if (file[0] && token_file_risky(file))
        return -1;
    if (file[0])
        rc = file_token_sha256_read(file, MAX_SECRET_FILE_BYTES,
                                    MIN_TOKEN_LEN, sha256);
    else if (env && env[0])
        rc = file_token_sha256(env, MIN_TOKEN_LEN, sha256);
    else
        rc = 1;     /* no single token */
    /* Only its hash is kept: the token itself leaves the environment
     * (wiped in place, where /proc/PID/environ and a core dump show it). */
    if (env) {
        explicit_bzero(env, strlen(env));
        unsetenv("MODELD_ADMIN_TOKEN");
    }
    if (rc == -1)
        log_msg(LOG_ERROR, 0, "admin token file %s: %s", file,
                strerror(errno));
    else if (rc == -2)
        log_msg(LOG_ERROR, 0, "the admin token must be at least %d "
                              "characters", MIN_TOKEN_LEN);
    else if (rc < 0)
        log_msg(LOG_ERROR, 0, "cannot hash the admin token");
    if (rc < 0)
        return -1;
    if (rc == 0 &&
        auth_tokens_add_sha256(&app->tokens, "admin", AUTH_ADMIN, sha256,
                               err, sizeof(err)) != 0) {
        log_msg(LOG_ERROR, 0, "the admin token: %s", err);
        return -1;
    }
    if (app->cfg.admin_tokens_file[0] &&
        token_file_risky(app->cfg.admin_tokens_file))
        return -1;
    if (app->cfg.admin_tokens_file[0] &&
        auth_tokens_load(&app->tokens, app->cfg.admin_tokens_file, err,
                         sizeof(err)) != 0) {
        log_msg(LOG_ERROR, 0, "admin tokens file: %s", err);
        return -1;
    }
    if (app->tokens.count == 0)
        log_msg(LOG_WARN, 0, "no admin token configured: admin endpoints "
                             "answer 403");
    return 0;
}

static int
parse_serve_args(int argc, char **argv, struct config *cfg, bool *print_cfg)
{
    static const struct {
        const char *flag;
        const char *key;
    } flag_keys[] = {
        {"--listen", "listen"},
        {"--data", "data"},
        {"--admin-token-file", "admin_token_file"},
        {"--tls-cert", "tls_cert"},
        {"--tls-key", "tls_key"},
        {"--catalog", "catalog_url"},
    };
    char err[512];
    const char *config_file = NULL;

    /* The config file first, wherever --config stands, then the flags. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_file = argv[++i];
    if (config_file && config_load_file(cfg, config_file, err,
                                        sizeof(err)) != 0) {
        fprintf(stderr, "modeld serve: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *key = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage_serve(stdout);
            return -1;
        }
        if (strcmp(a, "--print-config") == 0) {
            *print_cfg = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "modeld serve: unknown or incomplete option "
                            "\"%s\"\n", a);
            usage_serve(stderr);
            return 2;
        }
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--log-level") == 0) {
            int level = log_level_parse(argv[++i]);

            if (level < 0) {
                fprintf(stderr, "modeld serve: --log-level: one of debug, "
                                "info, warn, error\n");
                return 2;
            }
            log_set_level((enum log_level)level);
            continue;
        }
        if (strcmp(a, "--set") == 0) {
            char kv[1200];
            char *eq;

            snprintf(kv, sizeof(kv), "%s", argv[++i]);
            eq = strchr(kv, '=');
            if (!eq) {
                fprintf(stderr, "modeld serve: --set expects KEY=VALUE\n");
                return 2;
            }
            *eq = '\0';
            if (config_set(cfg, kv, eq + 1, err, sizeof(err)) != 0) {
                fprintf(stderr, "modeld serve: --set: %s\n", err);
                return 2;
            }
            continue;
        }
        for (size_t k = 0; k < ARRAY_SIZE(flag_keys); k++)
            if (strcmp(a, flag_keys[k].flag) == 0)
                key = flag_keys[k].key;
        if (!key) {
            fprintf(stderr, "modeld serve: unknown option \"%s\"\n", a);
            usage_serve(stderr);
            return 2;
        }
        if (config_set(cfg, key, argv[++i], err, sizeof(err)) != 0) {
            fprintf(stderr, "modeld serve: %s: %s\n", a, err);
            return 2;
        }
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        fprintf(stderr, "modeld serve: --tls-cert and --tls-key go "
                        "together\n");
        return 2;
    }
    return 0;
}

static void
count_stalled(void *ctx)
{
    struct app *app = ctx;

    metrics_limit(&app->metrics, METRICS_LIMIT_TRANSFER_STALLED);
}

static void
count_timeout(void *ctx)
{
    struct app *app = ctx;

    metrics_limit(&app->metrics, METRICS_LIMIT_REQUEST_TIMEOUT);
}

static void
warn_cert_validity(const struct config *cfg)
{
    char msg[160];
    const char *w = tls_validity_warning((long long)time(NULL), msg,
                                         sizeof(msg));

    if (w)
        log_msg(LOG_WARN, 0, "%s: %s", cfg->tls_cert, w);
}

/* SIGHUP: new handshakes use the certificate and key files as they are
 * now; connections already up keep theirs. A bad pair is refused and the
 * old one stays. */
static void
reload_tls(const struct config *cfg)
{
    char err[512];

    if (!cfg->tls_cert[0]) {
        log_msg(LOG_INFO, 0, "SIGHUP: no TLS configured, nothing to reload");
        return;
    }
    if (tls_load(cfg->tls_cert, cfg->tls_key, err, sizeof(err)) != 0) {
        log_msg(LOG_ERROR, 0, "SIGHUP: TLS reload refused, keeping the "
                              "current certificate: %s",
                err);
        return;
    }
    log_msg(LOG_INFO, 0, "SIGHUP: TLS certificate and key reloaded from %s",
            cfg->tls_cert);
    warn_cert_validity(cfg);
}

/* Loads signing_key and verify_keys into a new keyring and makes it the
 * current one. At start-up a failure stops the daemon; on SIGHUP the old
 * keyring stays. */
static int
load_keys(struct app *app, bool reload)
{
    const struct config *cfg = &app->cfg;
    struct keyring *kr = NULL, *old;
    char err[512];

    if (!cfg->signing_key[0] && !cfg->verify_keys[0]) {
        if (cfg->sign_decisions == CONFIG_SIGN_ALWAYS) {
            log_msg(LOG_ERROR, 0, "sign_decisions = always needs a "
                                  "signing_key");
            return -1;
        }
        return 0;
    }
    if (sign_keyring_load(cfg->signing_key, cfg->verify_keys, &kr, err,
                          sizeof(err)) != 0) {
        log_msg(LOG_ERROR, 0, "%ssigning keys%s: %s",
                reload ? "SIGHUP: " : "",
                reload ? " not reloaded, keeping the current ones" : "",
                err);
        return -1;
    }
    if (cfg->sign_decisions == CONFIG_SIGN_ALWAYS &&
        !sign_keyring_can_sign(kr)) {
        log_msg(LOG_ERROR, 0, "sign_decisions = always needs a "
                              "signing_key");
        sign_keyring_free(kr);
        return -1;
    }
    old = atomic_load(&app->keyring);
    sign_keyring_replaces(kr, old);
    atomic_store(&app->keyring, kr);
    log_msg(LOG_INFO, 0, "%ssigning key %s%s",
            reload ? "SIGHUP: reloaded keys; " : "",
            sign_keyring_can_sign(kr) ? "kid " : "none",
            sign_keyring_kid(kr));
    return 0;
}

/* Waits for SIGTERM/SIGINT (blocked in every thread), then stops. */
static void
wait_for_stop(struct MHD_Daemon *d, struct app *app, const sigset_t *set)
{
    const struct config *cfg = &app->cfg;
    int sig = 0;
    struct timespec deadline, now;
    MHD_socket listen_fd;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            char err[512];

            if (access_log_reopen(err, sizeof(err)) != 0)
                log_msg(LOG_ERROR, 0, "SIGHUP: %s; the access log goes on "
                                      "to the old file", err);
            else if (cfg->access_log[0])
                log_msg(LOG_INFO, 0, "SIGHUP: access log %s reopened",
                        cfg->access_log);
            reload_tls(cfg);
            (void)load_keys(app, true);
            continue;
        }
        break;
    }
    log_msg(LOG_INFO, 0, "signal %d: stopping (grace %us)", sig,
            cfg->shutdown_grace_s);
    listen_fd = MHD_quiesce_daemon(d);
    /* The quiesced socket is ours now. Closed at once, new connections
     * are refused (RST) and a load balancer fails over, instead of
     * completing the handshake into a backlog nobody accepts from. */
    if (listen_fd != MHD_INVALID_SOCKET) {
        close(listen_fd);
        log_msg(LOG_INFO, 0, "listening socket closed; %us for transfers "
                             "in flight",
                cfg->shutdown_grace_s);
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += cfg->shutdown_grace_s;
    for (;;) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!info || info->num_connections == 0 ||
            now.tv_sec > deadline.tv_sec ||
            (now.tv_sec == deadline.tv_sec &&
             now.tv_nsec >= deadline.tv_nsec))
            break;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
}

int
cmd_serve(int argc, char **argv)
{
    struct app *app = calloc(1, sizeof(*app));
    struct MHD_Daemon *d = NULL;
    bool print_cfg = false;
    sigset_t set;
    unsigned port = 0;
    int rc = 1, prc;
    enum store_status st;

    if (!app)
        return 1;
    config_default(&app->cfg);
    prc = parse_serve_args(argc, argv, &app->cfg, &print_cfg);
    if (prc != 0) {
        rc = prc < 0 ? 0 : prc;
        goto out;
    }
    if (print_cfg) {
        char *dump = config_dump(&app->cfg);

        if (dump)
            fputs(dump, stdout);
        free(dump);
        rc = dump ? 0 : 1;
        goto out;
    }
    limits_resolve(&app->cfg);
    metrics_init(&app->metrics);
    app->event_limit = ratelimit_new();
    if (!app->event_limit)
        goto out;
    if (load_tokens(app) != 0 || load_keys(app, false) != 0)
        goto out;
    if (app->cfg.tls_cert[0]) {
        char err[512];

        if (tls_load(app->cfg.tls_cert, app->cfg.tls_key, err,
                     sizeof(err)) != 0) {
            log_msg(LOG_ERROR, 0, "TLS: %s", err);
            goto out;
        }
        warn_cert_validity(&app->cfg);
        app->tls = true;
    }
    /* Signals are taken by sigwait in this thread only: block them before
     * any other thread (store worker, HTTP pool) exists so that every
     * thread inherits the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    {
        char err[512];

        /* After the mask: its flusher thread takes no signal. */
        if (access_log_open(app->cfg.access_log,
                            app->cfg.access_log_buffer_bytes,
                            app->cfg.access_log_flush_ms, err,
                            sizeof(err)) != 0) {
            log_msg(LOG_ERROR, 0, "%s", err);
            goto out;
        }
    }
    /* every snapshot carries the policy's table, shared by its selects */
    app->cfg.store.snapshot_derive = decide_snapshot_table;
    app->cfg.store.snapshot_derived_free = decide_snapshot_table_free;
    st = store_open(app->cfg.data_dir, &app->cfg.store, &app->store);
    if (st != STORE_OK) {
        log_msg(LOG_ERROR, 0, "data directory %s: %s", app->cfg.data_dir,
                store_errmsg(NULL));
        goto out;
    }
    if (app->cfg.blob_origin[0]) {
        /* Before any thread of ours uses libcurl (it is not thread-safe
         * to initialise). */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            goto out;
        app->edge = edge_new(app->cfg.blob_origin,
                             app->cfg.blob_cache_max_bytes,
                             app->cfg.max_upload_bytes);
        if (!app->edge)
            goto out;
        log_msg(LOG_INFO, 0, "edge mode: missing blobs come from %s",
                app->cfg.blob_origin);
    }
    if (app->cfg.request_timeout_s) {
        app->deadlines = deadlines_start(app->cfg.request_timeout_s * 1000,
                                         count_timeout, app);
        if (!app->deadlines)
            goto out;
        deadlines_watch_transfers(app->deadlines,
                                  app->cfg.connection_timeout_s * 1000,
                                  app->cfg.min_download_bytes_per_s,
                                  count_stalled);
    }
    d = http_start(app, &port);
    if (!d)
        goto out;
    printf("listening on %s://%s%s%s:%u\n", app->tls ? "https" : "http",
           strchr(app->cfg.listen_host, ':') ? "[" : "",
           app->cfg.listen_host,
           strchr(app->cfg.listen_host, ':') ? "]" : "", port);
    fflush(stdout);
    log_msg(LOG_INFO, 0, "modeld serving %s on port %u (%u threads, %u "
                         "connections, %u per address)",
            app->cfg.data_dir, port, app->cfg.threads,
            app->cfg.max_connections, app->cfg.max_connections_per_ip);
    wait_for_stop(d, app, &set);
    /* Wakes every request parked on a pull-through: libmicrohttpd must
     * not be stopped with suspended connections. */
    edge_shutdown(app->edge);
    MHD_stop_daemon(d);
    /* Every request is logged: the buffered lines before "stopped". */
    access_log_close();
    log_msg(LOG_INFO, 0, "stopped");
    rc = 0;
out:
    access_log_close();
    deadlines_stop(app->deadlines);
    store_close(app->store);
    if (app->edge) {
        edge_free(app->edge);
        curl_global_cleanup();
    }
    tls_unload();
    sign_keyring_free(atomic_load(&app->keyring));
    ratelimit_free(app->event_limit);
    free(app);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {
        {"serve", cmd_serve},
        {"demo", cmd_demo},
        {"patch", cmd_patch},
        {"select", cmd_select},
        {"fetch", cmd_fetch},
        {"decode", cmd_decode},
        {"delta", cmd_delta},
        {"encode", cmd_encode},
        {"keygen", cmd_keygen},
        {"replay", cmd_replay},
    };

    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "modeld: unknown command \"%s\"\n", argv[1]);
    usage_main(stderr);
    return 2;
}
