/*
 * `modeld fetch`: the UE client on the command line. Parses the flags into
 * client_options and calls libmodeld-client (client/client.h), which does
 * all the work; this file only prints: one line per event, and on a
 * terminal a progress bar (bytes, rate, ETA) on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "server/commands.h"

#define MAX_SETS 64
#define MAX_REPORT_BYTES (64 * 1024)

static const char usage_text[] =
    "usage: modeld fetch --server URL --family F --state DIR [options]\n"
    "\n"
    "Keeps DIR on the model of family F that the server picks for this\n"
    "device: select, download or delta, verify, switch. DIR/path names the\n"
    "model to load.\n"
    "\n"
    "  --report FILE          base UE report (JSON); measured facts fill in\n"
    "  --set KEY=VALUE        override a report field (repeatable), e.g.\n"
    "                         device.memory_bytes=60000000 device.class=x\n"
    "                         device.formats=tflite,onnx network.metered=true\n"
    "  --once                 one decision and its transfer (default)\n"
    "  --watch                keep rechecking: at recheck_after_s (with\n"
    "                         jitter), on SIGHUP/SIGUSR1, or when free memory\n"
    "                         moves by 25%; SIGINT/SIGTERM stop\n"
    "  --max-bytes N          defer a transfer of more than N bytes\n"
    "  --wifi-only            defer transfers on a metered link\n"
    "  --print-report         print the report it would send and exit\n"
    "  --rollback             switch back to the previous model (load failed)\n"
    "  --ca-file PEM          trust only these CAs for https (pinning)\n"
    "  --pin-pubkey SPEC      curl public key pin (sha256//BASE64 or PEM)\n"
    "  --verify-key FILE      Ed25519 key (PEM or JWKS): ask for signed\n"
    "                         answers and refuse any that do not verify\n"
    "  --verify-kid KID       require this keyid (alone: pin the key of\n"
    "                         this kid from GET /v1/keys on first use)\n"
    "  --connect-timeout-ms N (10000)   --stall-timeout-s N (30)\n"
    "  --deadline-s N         a fetch's transfer ends (exit 3, its bytes\n"
    "                         kept for a resume) after 60 s plus the\n"
    "                         missing bytes at --min-rate-bps, at most N s\n"
    "                         (21600; 0: no cap)\n"
    "  --min-rate-bps N       bits/s (64000; 0: --deadline-s alone)\n"
    "  --retries N (6)        --backoff-ms N (500, doubled each retry)\n"
    "  --facts-interval-s N   sample free memory every N s (10; --watch\n"
    "                         and during transfers)\n"
    "  --rate-window-s N      a throughput sample per N s of a long\n"
    "                         transfer (60)\n"
    "  --no-benchmark         do not measure gflops (set device.gflops;\n"
    "                         no probe, no device.gflops_history)\n"
    "  --compute-probe FILE   read the compute probe's GFLOP/s from FILE\n"
    "                         (tests)\n"
    "  --meminfo FILE         read MemAvailable from FILE (tests)\n"
    "  --power-supply DIR     read batteries from DIR (tests)\n"
    "  --quiet                no event lines\n"
    "\n"
    "Exit status: 0 a verified model is in place (new or kept), 1 local\n"
    "failure (state directory, disk, lock), 2 bad arguments, 3 network\n"
    "(no answer after retries), 4 verification refused (digest or\n"
    "signature; nothing switched), 5 refused by the server (4xx, or no\n"
    "variant fits and no model is in place), 6 transfer deferred\n"
    "(--max-bytes, --wifi-only).\n";

static volatile sig_atomic_t stop_flag, wake_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_wake(int sig)
{
    (void)sig;
    wake_flag = 1;
}

struct ui {
    bool quiet;
    bool tty;               /* stderr is a terminal: draw the bar */
    bool bar_shown;
    double last_draw;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void clear_bar(struct ui *u)
{
    if (u->bar_shown) {
        fputs("\r\033[K", stderr);
        u->bar_shown = false;
    }
}

static void on_event(void *ctx, const char *line)
{
    struct ui *u = ctx;
    struct timespec ts;
    struct tm tm;
    char stamp[32];

    if (u->quiet)
        return;
    clear_bar(u);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03ldZ %s\n", stamp, ts.tv_nsec / 1000000, line);
    fflush(stdout);
}

static void human(double bytes, char *out, size_t cap)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    size_t i = 0;

    while (bytes >= 1024 && i + 1 < sizeof(unit) / sizeof(unit[0])) {
        bytes /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", bytes, unit[i]);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total,
                        double rate_bps)
{
    struct ui *u = ctx;
    char d[32], t[32], r[32], eta[32] = "--:--";
    double now = now_s(), frac;
    int width = 30, fill;

    if (u->quiet || !u->tty || (now - u->last_draw < 0.1 && done < total))
        return;
    u->last_draw = now;
    frac = total ? (double)done / (double)total : 0;
    if (frac > 1)
        frac = 1;
    fill = (int)(frac * width);
    human((double)done, d, sizeof(d));
    human((double)total, t, sizeof(t));
    human(rate_bps / 8, r, sizeof(r));
    if (rate_bps > 0 && total > done) {
        double s = (double)(total - done) * 8 / rate_bps;

        snprintf(eta, sizeof(eta), "%d:%02d", (int)(s / 60), (int)s % 60);
    }
    fprintf(stderr, "\r[%.*s%s%*s] %3d%%  %s / %s  %s/s  ETA %s\033[K", fill,
            "==============================", fill < width ? ">" : "",
            width - fill - (fill < width ? 1 : 0), "", (int)(frac * 100), d,
            t, r, eta);
    u->bar_shown = true;
}

static char *read_report(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "modeld fetch: cannot read %s: %s\n", path,
                strerror(errno));
        return NULL;
    }
    buf = malloc(MAX_REPORT_BYTES + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, MAX_REPORT_BYTES + 1, f);
    fclose(f);
    if (n > MAX_REPORT_BYTES) {
        fprintf(stderr, "modeld fetch: %s: over %d bytes\n", path,
                MAX_REPORT_BYTES);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static bool parse_uint(const char *s, unsigned long long max,
                       unsigned long long *out)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

int cmd_fetch(int argc, char **argv)
{
    struct client_options o;
    struct client *c = NULL;
    struct ui u = { false, false, false, 0 };
    const char *sets[MAX_SETS];
    const char *report_path = NULL;
    char *report = NULL, err[512];
    bool watch = false, print_report = false, rollback = false;
    int code = CLIENT_BAD_ARGS;
    enum client_status rc;
    struct client_result res;

    client_options_default(&o);
    o.sets = sets;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;

#define NEEDS_VALUE                                                           \
    do {                                                                      \
        if (!v) {                                                             \
            fprintf(stderr, "modeld fetch: %s needs a value\n", a);           \
            goto usage;                                                       \
        }                                                                     \
        i++;                                                                  \
    } while (0)
#define NUMBER(field, max)                                                    \
    do {                                                                      \
        NEEDS_VALUE;                                                          \
        if (!parse_uint(v, (max), &n)) {                                      \
            fprintf(stderr, "modeld fetch: %s: not a number in 0..%llu\n",    \
                    a, (unsigned long long)(max));                            \
            goto usage;                                                       \
        }                                                                     \
        field = n;                                                            \
    } while (0)

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--server") == 0) {
            NEEDS_VALUE;
            o.server_url = v;
        } else if (strcmp(a, "--family") == 0) {
            NEEDS_VALUE;
            o.family = v;
        } else if (strcmp(a, "--state") == 0) {
            NEEDS_VALUE;
            o.state_dir = v;
        } else if (strcmp(a, "--report") == 0) {
            NEEDS_VALUE;
            report_path = v;
        } else if (strcmp(a, "--set") == 0) {
            NEEDS_VALUE;
            if (o.set_count == MAX_SETS) {
                fprintf(stderr, "modeld fetch: at most %d --set\n", MAX_SETS);
                goto usage;
            }
            sets[o.set_count++] = v;
        } else if (strcmp(a, "--once") == 0) {
            watch = false;
        } else if (strcmp(a, "--watch") == 0) {
            watch = true;
        } else if (strcmp(a, "--max-bytes") == 0) {
            NUMBER(o.max_bytes, (unsigned long long)INT64_MAX);
        } else if (strcmp(a, "--wifi-only") == 0) {
            o.wifi_only = true;
        } else if (strcmp(a, "--print-report") == 0) {
            print_report = true;
        } else if (strcmp(a, "--rollback") == 0) {
            rollback = true;
        } else if (strcmp(a, "--ca-file") == 0) {
            NEEDS_VALUE;
            o.ca_file = v;
        } else if (strcmp(a, "--pin-pubkey") == 0) {
            NEEDS_VALUE;
            o.pinned_pubkey = v;
        } else if (strcmp(a, "--verify-key") == 0) {
            NEEDS_VALUE;
            o.verify_key_file = v;
        } else if (strcmp(a, "--verify-kid") == 0) {
            NEEDS_VALUE;
            o.verify_kid = v;
        } else if (strcmp(a, "--connect-timeout-ms") == 0) {
            NUMBER(o.connect_timeout_ms, 600000);
        } else if (strcmp(a, "--stall-timeout-s") == 0) {
            NUMBER(o.stall_timeout_s, 3600);
        } else if (strcmp(a, "--deadline-s") == 0) {
            NUMBER(o.deadline_s, 30 * 24 * 3600);
        } else if (strcmp(a, "--min-rate-bps") == 0) {
            NUMBER(o.min_rate_bps, 1000000000000ULL);
        } else if (strcmp(a, "--retries") == 0) {
            NUMBER(o.retries, 1000);
            if (o.retries == 0)
                o.retries = 1;
        } else if (strcmp(a, "--backoff-ms") == 0) {
            NUMBER(o.backoff_base_ms, 600000);
        } else if (strcmp(a, "--facts-interval-s") == 0) {
            NUMBER(o.facts_interval_s, 3600);
            if (o.facts_interval_s == 0)
                o.facts_interval_s = 1;
        } else if (strcmp(a, "--rate-window-s") == 0) {
            NUMBER(o.rate_window_s, 3600);
            if (o.rate_window_s == 0)
                o.rate_window_s = 1;
        } else if (strcmp(a, "--no-benchmark") == 0) {
            o.no_benchmark = true;
        } else if (strcmp(a, "--meminfo") == 0) {
            NEEDS_VALUE;
            o.meminfo_path = v;
        } else if (strcmp(a, "--compute-probe") == 0) {
            NEEDS_VALUE;
            o.compute_probe_path = v;
        } else if (strcmp(a, "--power-supply") == 0) {
            NEEDS_VALUE;
            o.power_supply_dir = v;
        } else if (strcmp(a, "--quiet") == 0) {
            u.quiet = true;
        } else {
            fprintf(stderr, "modeld fetch: unknown argument %s\n", a);
            goto usage;
        }
#undef NUMBER
#undef NEEDS_VALUE
    }
    if (!o.server_url || !o.family || !o.state_dir) {
        fprintf(stderr, "modeld fetch: --server, --family and --state are "
                        "required\n");
        goto usage;
    }
    if (report_path && !(report = read_report(report_path)))
        return CLIENT_BAD_ARGS;
    o.report_json = report;
    u.tty = isatty(STDERR_FILENO) == 1;
    /* --print-report's stdout is the report alone (a first run's
     * "benchmark" line would come before it). */
    if (print_report)
        u.quiet = true;
    o.on_event = on_event;
    o.on_progress = on_progress;
    o.cb_ctx = &u;

    rc = client_open(&o, &c, err, sizeof(err));
    if (rc != CLIENT_OK) {
        fprintf(stderr, "modeld fetch: %s\n", err);
        code = rc;
        goto out;
    }
    if (print_report) {
        char *json = NULL;

        rc = client_report_build(c, &json);
        if (rc == CLIENT_OK)
            printf("%s\n", json);
        else
            fprintf(stderr, "modeld fetch: %s\n", client_errmsg(c));
        free(json);
        code = rc;
        goto out;
    }
    if (rollback) {
        rc = client_model_loaded(c, false, 0);
        if (rc != CLIENT_OK)
            fprintf(stderr, "modeld fetch: %s\n", client_errmsg(c));
        code = rc;
        goto out;
    }
    if (watch) {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sa.sa_handler = on_wake;
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        rc = client_watch(c, &stop_flag, &wake_flag);
        clear_bar(&u);
        code = stop_flag ? (rc == CLIENT_OK ? 0 : (int)rc) : (int)rc;
        goto out;
    }
    rc = client_fetch_once(c, &res);
    clear_bar(&u);
    if (rc != CLIENT_OK)
        fprintf(stderr, "modeld fetch: %s\n", client_errmsg(c));
    else if (!u.quiet)
        on_event(&u, "done");
    code = rc;
    goto out;
usage:
    fputs(usage_text, stderr);
    code = CLIENT_BAD_ARGS;
out:
    client_close(c);
    free(report);
    return code;
}
