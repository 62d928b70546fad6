/*
 * The UE report a select sends, built in layers, later winning: what the
 * client measured (client/facts.c and the state's samples), the base report
 * (--report FILE), each --set KEY=VALUE, then what only the client knows
 * (ue, current, fetching, nonce, accept). The result is checked with the
 * server's own parser (proto_report_parse), so a bad override is refused
 * here, naming the field, instead of by the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/internal.h"

/* Report keys --set may name, and whether a plain "a,b" is a list. */
static const struct set_key {
    const char *path;
    bool is_list;
} set_keys[] = {
    { "ue", false },
    { "device.memory_bytes", false },
    { "device.memory_floor_bytes", false },
    { "device.memory_history_bytes", true },
    { "device.gflops", false },
    { "device.gflops_history", true },
    { "device.class", false },
    { "device.formats", true },
    { "device.accelerators", true },
    { "device.battery_percent", false },
    { "device.charging", false },
    { "device.power_mw", false },
    { "network.downlink_bps", false },
    { "network.downlink_history_bps", true },
    { "network.rtt_ms", false },
    { "network.metered", false },
    { "network.load", false },
    { "requirements.max_latency_ms", false },
    { "requirements.min_accuracy", false },
    { "requirements.max_download_s", false },
    { "requirements.max_energy_mj", false },
    { "requirements.horizon_s", false },
    { "preference", false },
    { "explain", false },
    { "accept.delta_formats", true },
    { "accept.encodings", true },
};

/* Objects merge key by key; anything else replaces. */
static int merge(json_t *dst, json_t *src)
{
    const char *key;
    json_t *v;

    json_object_foreach(src, key, v) {
        json_t *d = json_object_get(dst, key);

        if (json_is_object(d) && json_is_object(v)) {
            if (merge(d, v) != 0)
                return -1;
        } else if (json_object_set(dst, key, v) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The value of --set: JSON when it parses as JSON, else a string, or a
 * list of strings split at commas for list keys. */
static json_t *set_value(const char *text, bool is_list)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    json_t *arr;
    const char *p = text;

    if (v) {
        if (is_list && !json_is_array(v) && !json_is_null(v)) {
            arr = json_array();
            if (arr)
                json_array_append_new(arr, v);
            return arr;
        }
        return v;
    }
    if (!is_list)
        return json_string(text);
    arr = json_array();
    while (arr && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        if (n > 0)
            json_array_append_new(arr, json_stringn(p, n));
        p += n + (comma ? 1 : 0);
    }
    return arr;
}

/* Sets dotted path in root, creating objects on the way. */
static int set_path(json_t *root, const char *path, json_t *value)
{
    char buf[128];
    char *seg, *dot;
    json_t *obj = root;

    if (strlen(path) >= sizeof(buf)) {
        json_decref(value);
        return -1;
    }
    memcpy(buf, path, strlen(path) + 1);
    seg = buf;
    while ((dot = strchr(seg, '.')) != NULL) {
        json_t *next;

        *dot = '\0';
        next = json_object_get(obj, seg);
        if (!json_is_object(next)) {
            next = json_object();
            if (!next || json_object_set_new(obj, seg, next) != 0) {
                json_decref(value);
                return -1;
            }
        }
        obj = next;
        seg = dot + 1;
    }
    if (json_is_null(value)) {
        json_decref(value);
        json_object_del(obj, seg);
        return 0;
    }
    return json_object_set_new(obj, seg, value);
}

static int apply_set(json_t *root, const char *kv, char *err, size_t err_len)
{
    const char *eq = strchr(kv, '=');
    char key[128];
    size_t klen;
    bool is_list = false, known = false;

    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
        snprintf(err, err_len, "--set expects KEY=VALUE, got \"%.60s\"", kv);
        return -1;
    }
    klen = (size_t)(eq - kv);
    memcpy(key, kv, klen);
    key[klen] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(set_keys); i++) {
        if (strcmp(set_keys[i].path, key) == 0) {
            known = true;
            is_list = set_keys[i].is_list;
        }
    }
    if (strncmp(key, "context.", 8) == 0 && key[8] && !strchr(key + 8, '.')) {
        known = true;
        is_list = true;
    }
    if (!known) {
        snprintf(err, err_len,
                 "--set %s: not a report field (e.g. device.memory_bytes, "
                 "network.metered, requirements.max_latency_ms, preference, "
                 "context.KEY)",
                 key);
        return -1;
    }
    if (set_path(root, key, set_value(eq + 1, is_list)) != 0) {
        snprintf(err, err_len, "--set %s: out of memory", key);
        return -1;
    }
    return 0;
}

/* device.KEY as the base report and the overrides set it; -1 when they
 * do not (or not as a number). */
static double device_number(const char *base_json, const char *const *sets,
                            size_t set_count, const char *key)
{
    json_t *root = base_json ? json_loads(base_json, 0, NULL) : json_object();
    json_t *v;
    double out = -1;
    char err[64];

    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < set_count; i++)
        (void)apply_set(root, sets[i], err, sizeof(err));
    v = json_object_get(json_object_get(root, "device"), key);
    if (json_is_number(v))
        out = json_number_value(v);
    json_decref(root);
    return out;
}

uint64_t client_report_memory_override(const char *base_json,
                                       const char *const *sets,
                                       size_t set_count)
{
    double v = device_number(base_json, sets, set_count, "memory_bytes");

    return v >= 1 && v <= 9007199254740992.0 ? (uint64_t)v : 0;
}

double client_report_gflops_override(const char *base_json,
                                     const char *const *sets,
                                     size_t set_count)
{
    double v = device_number(base_json, sets, set_count, "gflops");

    return v > 0 && v <= 1e6 ? v : 0;
}

static json_t *object_at(json_t *root, const char *key)
{
    json_t *o = json_object_get(root, key);

    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(root, key, o);
    }
    return o;
}

/* The facts layer: only what was measured or is remembered. gflops_now
 * and the compute history are the probe's, calibrated to the device's
 * peak (client_report_make). */
static json_t *measured(const struct client_report_in *in,
                        const struct client_state *st, double gflops_now,
                        const double *compute, size_t nc)
{
    json_t *root = json_object();
    json_t *dev, *net, *hist;
    const struct client_facts *f = in->facts;
    const char *iface = f ? f->route_iface : "";
    double samples[CLIENT_HISTORY_MAX];
    uint64_t lows[CLIENT_HISTORY_MAX];
    size_t n = client_state_fresh_downlink(st, in->now_s, iface, samples);
    size_t nm = client_state_fresh_memory(st, in->now_s, lows);
    double downlink = client_state_downlink_estimate(st, in->now_s, iface);

    if (!root)
        return NULL;
    dev = object_at(root, "device");
    net = object_at(root, "network");
    if (f && f->memory_bytes)
        json_object_set_new(dev, "memory_bytes",
                            json_integer((json_int_t)f->memory_bytes));
    if (gflops_now > 0)
        json_object_set_new(dev, "gflops", json_real(gflops_now));
    else if (st->gflops > 0)
        json_object_set_new(dev, "gflops", json_real(st->gflops));
    if (nc > 0) {
        hist = json_array();
        for (size_t i = 0; i < nc; i++)
            json_array_append_new(hist, json_real(compute[i]));
        json_object_set_new(dev, "gflops_history", hist);
    }
    if (f && f->has_battery) {
        json_object_set_new(dev, "battery_percent",
                            json_real(f->battery_percent));
        json_object_set_new(dev, "charging", json_boolean(f->charging));
    }
    /* Only fresh measurements (client/history.c); 0 is an outage seen. */
    if (downlink >= 0)
        json_object_set_new(net, "downlink_bps", json_real(downlink));
    if (n > 0) {
        hist = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(hist, json_real(samples[i]));
        json_object_set_new(net, "downlink_history_bps", hist);
    }
    if (nm > 0) {
        json_object_set_new(
            dev, "memory_floor_bytes",
            json_integer((json_int_t)client_state_memory_floor(st, in->now_s)));
        hist = json_array();
        for (size_t i = 0; i < nm; i++)
            json_array_append_new(hist, json_integer((json_int_t)lows[i]));
        json_object_set_new(dev, "memory_history_bytes", hist);
    }
    if (st->has_rtt)
        json_object_set_new(net, "rtt_ms", json_real(st->rtt_ms));
    if (f && f->has_metered)
        json_object_set_new(net, "metered", json_boolean(f->metered));
    return root;
}

enum client_status client_report_make(const struct client_report_in *in,
                                      const struct client_state *st,
                                      char **out_json, char *err,
                                      size_t err_len)
{
    /* The compute probe (README "The histories"): its figures are a share
     * of the fastest probe lately, times the device's peak, the configured
     * device.gflops or else the benchmark's; the configured figure is the
     * peak, what the report sends as device.gflops is the share now. */
    double configured = in->compute ? client_report_gflops_override(
                                          in->base_json, in->sets,
                                          in->set_count)
                                    : 0;
    double peak = configured > 0 ? configured : st->gflops;
    double compute[CLIENT_HISTORY_MAX];
    size_t nc = in->compute ? client_state_fresh_compute(st, in->now_s, peak,
                                                         compute)
                            : 0;
    double gflops_now = in->compute
                            ? client_state_compute_now(st, in->now_s, peak)
                            : -1;
    json_t *root = measured(in, st, gflops_now, compute, nc), *base = NULL,
           *dev, *v;
    struct proto_report parsed;
    struct proto_limits lim;
    struct proto_error perr;
    json_error_t jerr;
    enum client_status rc = CLIENT_BAD_ARGS;
    uint64_t floor, mem;
    char digest[PROTO_DIGEST_SIZE];
    char *text = NULL;

    if (!root) {
        snprintf(err, err_len, "out of memory");
        return CLIENT_LOCAL_ERROR;
    }
    if (in->base_json) {
        base = json_loads(in->base_json, 0, &jerr);
        if (!json_is_object(base)) {
            snprintf(err, err_len, "--report: not a JSON object (line %d: %s)",
                     jerr.line, base ? "not an object" : jerr.text);
            goto out;
        }
        if (merge(root, base) != 0)
            goto nomem;
    }
    for (size_t i = 0; i < in->set_count; i++)
        if (apply_set(root, in->sets[i], err, err_len) != 0)
            goto out;

    if (configured > 0 && gflops_now > 0)
        json_object_set_new(object_at(root, "device"), "gflops",
                            json_real(gflops_now));
    if (!json_object_get(root, "ue"))
        json_object_set_new(root, "ue", json_string(st->ue));
    /* The lowest free memory seen is never above what is reported now. */
    dev = object_at(root, "device");
    mem = (uint64_t)json_integer_value(json_object_get(dev, "memory_bytes"));
    v = json_object_get(dev, "memory_floor_bytes");
    floor = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
    if (floor > mem && mem > 0)
        json_object_set_new(dev, "memory_floor_bytes",
                            json_integer((json_int_t)mem));
    if (st->current.hex[0]) {
        snprintf(digest, sizeof(digest), "sha256:%s", st->current.hex);
        json_object_set_new(root, "current", json_string(digest));
    }
    if (st->inflight.active) {
        snprintf(digest, sizeof(digest), "sha256:%s",
                 st->inflight.target_hex);
        json_object_set_new(
            root, "fetching",
            json_pack("{s:s, s:I}", "digest", digest, "bytes_done",
                      (json_int_t)st->inflight.bytes_done));
    }
    /* What this client decodes (client/fetch.c), unless the report or an
     * override says otherwise. */
    v = object_at(root, "accept");
    if (!json_object_get(v, "delta_formats"))
        json_object_set_new(v, "delta_formats",
                            json_pack("[s, s]", "zstd-patch",
                                      "modeld-tensor/1"));
    if (!json_object_get(v, "encodings"))
        json_object_set_new(v, "encodings", json_pack("[s]", "modeld-bg/1"));
    if (in->nonce) {
        json_object_set_new(root, "nonce", json_string(in->nonce));
        json_object_set_new(v, "signed", json_true());
    }
    if (json_object_size(object_at(root, "network")) == 0)
        json_object_del(root, "network");

    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        goto nomem;
    proto_limits_default(&lim);
    if (proto_report_parse(text, strlen(text), &lim, &parsed, &perr) !=
        PROTO_OK) {
        snprintf(err, err_len, "report: %s%s%s", perr.detail,
                 perr.field[0] && !strstr(perr.detail, perr.field) ? " in "
                                                                   : "",
                 perr.field[0] && !strstr(perr.detail, perr.field)
                     ? perr.field
                     : "");
        goto out;
    }
    *out_json = text;
    text = NULL;
    rc = CLIENT_OK;
    goto out;
nomem:
    snprintf(err, err_len, "out of memory");
    rc = CLIENT_LOCAL_ERROR;
out:
    free(text);
    json_decref(base);
    json_decref(root);
    return rc;
}
