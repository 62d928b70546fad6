/*
 * Scenario lines of `modeld replay` (JSON lines): when a UE report is
 * sent, the report itself (a select body, checked by proto_report_parse)
 * and optionally the throughput the link gives until the next line. What
 * a replay does with them is policy/replay.c's business.
 *
 *   {"t_s": 0, "report": {...}, "bps": 2e7}    t_s 0..1e9, bps 0..1e12
 *   {"end_s": 3600}                            the scenario's end
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/proto.h"

#define MAX_TIME_S 1e9
#define MAX_BPS 1e12

static bool
number_in(const json_t *v, double lo, double hi, double *out)
{
    double x;

    if (!json_is_number(v))
        return false;
    x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

enum proto_status
proto_scenario_line_parse(const char *line, size_t len,
                          const struct proto_limits *lim,
                          struct proto_scenario_line *out,
                          struct proto_error *err)
{
    struct proto_scenario_line sl;
    enum proto_status rc = PROTO_BAD_INPUT;
    json_error_t jerr;
    json_t *root, *v;
    char *body = NULL;

    memset(&sl, 0, sizeof(sl));
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        proto_error_set(err, PROTO_ERR_BAD_JSON, "",
                        "a scenario line must be a JSON object");
        goto out;
    }
    if ((v = json_object_get(root, "end_s")) != NULL) {
        if (!number_in(v, 0, MAX_TIME_S, &sl.t_s)) {
            proto_error_set(err, PROTO_ERR_BAD_FIELD, "end_s",
                            "end_s must be a number 0..1e9");
            goto out;
        }
        sl.is_end = true;
        *out = sl;
        rc = PROTO_OK;
        goto out;
    }
    if (!number_in(json_object_get(root, "t_s"), 0, MAX_TIME_S, &sl.t_s)) {
        proto_error_set(err, PROTO_ERR_BAD_FIELD, "t_s",
                        "t_s must be a number 0..1e9");
        goto out;
    }
    if ((v = json_object_get(root, "bps")) != NULL) {
        if (!number_in(v, 0, MAX_BPS, &sl.bps)) {
            proto_error_set(err, PROTO_ERR_BAD_FIELD, "bps",
                            "bps must be a number 0..1e12");
            goto out;
        }
        sl.has_bps = true;
    }
    v = json_object_get(root, "report");
    if (!json_is_object(v)) {
        proto_error_set(err, PROTO_ERR_MISSING_FIELD, "report",
                        "report must be a UE report object");
        goto out;
    }
    body = json_dumps(v, JSON_COMPACT);
    if (!body) {
        proto_error_set(err, PROTO_ERR_INTERNAL, "", "out of memory");
        goto out;
    }
    rc = proto_report_parse(body, strlen(body), lim, &sl.report, err);
    if (rc != PROTO_OK) {
        char field[PROTO_FIELD_SIZE + 8];

        snprintf(field, sizeof(field), "report%s%s", err->field[0] ? "." : "",
                 err->field);
        snprintf(err->field, sizeof(err->field), "%.*s",
                 (int)sizeof(err->field) - 1, field);
        goto out;
    }
    *out = sl;
out:
    free(body);
    json_decref(root);
    return rc;
}
