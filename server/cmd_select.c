/*
 * `modeld select`: the decision POST /v1/families/{family}/select would
 * give for a report file, offline, straight from a data directory. Glue
 * only: proto parses and writes, store gives the snapshot, policy decides.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy.h"
#include "proto/proto.h"
#include "server/commands.h"
#include "server/config.h"
#include "server/decide.h"
#include "store/store.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: modeld select [--config FILE] [--data DIR] FAMILY REPORT.json\n"
    "\n"
    "Prints the decision that POST /v1/families/FAMILY/select would answer\n"
    "for the UE report in REPORT.json (\"-\" for stdin), using the catalog\n"
    "in DIR (--data, else the config's data_dir) and the config's policy\n"
    "keys. An invalid report prints its problem+json.\n"
    "\n"
    "Exit status: 0 decision printed, 1 failure, 2 usage error.\n";

/* Reads at most max_len bytes; *out_too_large when the file holds more.
 * Returns a malloc'd NUL-terminated buffer, or NULL (reported). */
static char *
read_report(const char *path, uint64_t max_len, size_t *out_len,
            bool *out_too_large)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = (size_t)max_len + 1;
    char *buf = NULL;
    size_t len;

    *out_too_large = false;
    if (!f) {
        perror(path);
        return NULL;
    }
    buf = malloc(cap + 1);
    if (!buf) {
        fprintf(stderr, "modeld select: out of memory\n");
        goto out;
    }
    len = fread(buf, 1, cap, f);
    if (ferror(f)) {
        fprintf(stderr, "modeld select: cannot read %s\n", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[len] = '\0';
    *out_len = len;
    *out_too_large = len > max_len;
out:
    if (f != stdin)
        fclose(f);
    return buf;
}

/* Prints the problem+json of err to stdout. */
static void
print_problem(const struct proto_error *err)
{
    char *json = proto_problem_write(err);

    if (json)
        printf("%s\n", json);
    else
        fprintf(stderr, "modeld select: out of memory\n");
    free(json);
}

/* Decides (the daemon's pipeline, server/decide.c) and prints; returns
 * the exit code. */
static int
select_print(const struct config *cfg, const char *dir, const char *family,
             const char *body, size_t body_len)
{
    struct store_options opt = cfg->store;
    const struct store_snapshot *snap = NULL;
    struct policy_admission adm = {cfg->admission_load,
                                   cfg->admission_recheck_s};
    struct decision_run *run = calloc(1, sizeof(*run));
    struct proto_candidate *cands = NULL;
    struct proto_reasons *reasons = NULL;
    struct store *st = NULL;
    struct proto_report report;
    struct proto_error err;
    enum decide_status drc;
    enum store_status rc;
    char *json = NULL;
    int status = 1;

    if (!run) {
        fprintf(stderr, "modeld select: out of memory\n");
        return 1;
    }
    if (proto_report_parse(body, body_len, &cfg->limits, &report, &err) !=
        PROTO_OK) {
        print_problem(&err);
        goto out;
    }
    /* Read-only: works beside a daemon serving the same directory. */
    opt.run_worker = false;
    opt.read_only = true;
    opt.snapshot_derive = decide_snapshot_table;
    opt.snapshot_derived_free = decide_snapshot_table_free;
    rc = store_open(dir, &opt, &st);
    if (rc != STORE_OK) {
        fprintf(stderr, "modeld select: cannot open %s: %s\n", dir,
                store_errmsg(NULL));
        goto out;
    }
    rc = store_snapshot_get(st, family, &snap);
    if (rc != STORE_OK) {
        if (rc == STORE_NOT_FOUND)
            fprintf(stderr, "modeld select: family \"%.64s\" does not exist\n",
                    family);
        else
            fprintf(stderr, "modeld select: reading %s: %s\n", family,
                    store_errmsg(st));
        goto out;
    }
    cands = calloc(snap->variant_count + 1, sizeof(*cands));
    reasons = calloc(snap->variant_count + 1, sizeof(*reasons));
    if (!cands || !reasons) {
        fprintf(stderr, "modeld select: out of memory\n");
        goto out;
    }
    drc = decide_run(&cfg->policy, &adm, snap, &report, cands, reasons, run);
    if (drc != DECIDE_OK) {
        fprintf(stderr, "modeld select: %s\n",
                drc == DECIDE_NO_MEMORY ? "out of memory"
                                        : "BUG: policy refused its input");
        goto out;
    }
    json = proto_decision_write(&run->d, snap->family.name, run->variants,
                                snap->deltas);
    if (!json) {
        fprintf(stderr, "modeld select: out of memory\n");
        goto out;
    }
    printf("%s\n", json);
    status = 0;
out:
    free(json);
    decide_run_free(run);
    free(run);
    free(cands);
    free(reasons);
    store_snapshot_release(snap);
    store_close(st);
    return status;
}

int
cmd_select(int argc, char **argv)
{
    const char *config_path = NULL, *dir = NULL, *args[2];
    size_t arg_count = 0, body_len = 0;
    struct proto_error perr;
    struct config cfg;
    bool too_large;
    char *body;
    int status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "modeld select: unknown or incomplete option "
                            "\"%.64s\"\n%s", argv[i], usage_text);
            return EXIT_USAGE;
        } else if (arg_count < 2) {
            args[arg_count++] = argv[i];
        } else {
            fprintf(stderr, "modeld select: too many arguments\n%s",
                    usage_text);
            return EXIT_USAGE;
        }
    }
    if (arg_count != 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }

    if (cmd_config_load("modeld select", config_path, &cfg, &dir) != 0)
        return 1;
    if (!dir[0]) {
        fprintf(stderr, "modeld select: --data DIR is required\n%s",
                usage_text);
        return EXIT_USAGE;
    }
    body = read_report(args[1], cfg.max_select_bytes, &body_len, &too_large);
    if (!body)
        return 1;
    if (too_large) {
        proto_error_set(&perr, PROTO_ERR_BODY_TOO_LARGE, "",
                        "the report is over max_select_bytes %llu",
                        (unsigned long long)cfg.max_select_bytes);
        print_problem(&perr);
        free(body);
        return 1;
    }
    status = select_print(&cfg, dir, args[0], body, body_len);
    free(body);
    return status;
}
