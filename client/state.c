/*
 * The state directory's JSON file: which model is in use and which one came
 * before it, the transfer in flight, the throughput and memory samples, the
 * cached benchmark, the highest signed generation and a pinned key. Written
 * crash-safely (temp file, fsync, rename, directory fsync) so that after a
 * kill -9 or a power cut the file is the old one or the new one, never a
 * mix. The files it describes (models/, partial/, path) are client/fetch.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "client/internal.h"

#define STATE_FORMAT 1

double client_random(void)
{
    uint64_t v = 0;

    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1) {
        /* Jitter only: a weak source is better than none. */
        v = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
    }
    return (double)(v >> 11) / 9007199254740992.0; /* 2^53 */
}

void client_state_init(struct client_state *st, const char *family)
{
    unsigned char id[16];
    static const char hex[] = "0123456789abcdef";

    memset(st, 0, sizeof(*st));
    snprintf(st->family, sizeof(st->family), "%s", family ? family : "");
    if (RAND_bytes(id, sizeof(id)) != 1) {
        for (size_t i = 0; i < sizeof(id); i++)
            id[i] = (unsigned char)(client_random() * 256);
    }
    memcpy(st->ue, "ue-", 3);
    for (size_t i = 0; i < sizeof(id); i++) {
        st->ue[3 + 2 * i] = hex[id[i] >> 4];
        st->ue[4 + 2 * i] = hex[id[i] & 15];
    }
    st->ue[3 + 2 * sizeof(id)] = '\0';
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *ref_write(const struct client_model_ref *r)
{
    json_t *o;

    if (r->hex[0] == '\0')
        return json_null();
    o = json_pack("{s:s, s:s, s:I}", "digest_hex", r->hex, "variant",
                  r->variant, "version", (json_int_t)r->version);
    if (o && r->receipt[0])
        json_object_set_new(o, "receipt", json_string(r->receipt));
    return o;
}

char *client_state_write(const struct client_state *st)
{
    json_t *root, *hist = json_array(), *mem = json_array();
    char *text = NULL;

    if (!hist || !mem)
        goto out;
    /* Each entry with its time: what is stale is known after a restart. */
    for (size_t i = 0; i < st->downlink_count; i++)
        json_array_append_new(
            hist, json_pack("{s:I, s:f}", "at_s",
                            (json_int_t)st->downlink[i].at_s, "bps",
                            st->downlink[i].bps));
    for (size_t i = 0; i < st->memory_count; i++)
        json_array_append_new(
            mem, json_pack("{s:I, s:I}", "minute",
                           (json_int_t)st->memory[i].minute, "low_bytes",
                           (json_int_t)st->memory[i].low_bytes));
    /* "o" steals hist and mem, also when json_pack fails */
    root = json_pack("{s:i, s:s, s:s, s:o, s:o, s:b, s:o, s:s, s:o}",
                     "format", STATE_FORMAT, "family", st->family, "ue",
                     st->ue, "current", ref_write(&st->current), "previous",
                     ref_write(&st->previous), "installed_reported",
                     st->installed_reported, "downlink_samples", hist,
                     "downlink_iface", st->downlink_iface,
                     "memory_minutes", mem);
    hist = mem = NULL;
    if (!root)
        goto out;
    if (st->inflight.active) {
        const struct client_inflight *f = &st->inflight;

        json_object_set_new(
            root, "inflight",
            json_pack("{s:b, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:I}",
                      "is_delta", f->is_delta, "coding", f->coding,
                      "target_hex", f->target_hex,
                      "from_hex", f->from_hex, "url", f->url, "size_bytes",
                      (json_int_t)f->size_bytes, "validator", f->validator,
                      "bytes_done", (json_int_t)f->bytes_done, "variant",
                      f->variant, "version", (json_int_t)f->version));
        if (f->receipt[0])
            json_object_set_new(json_object_get(root, "inflight"), "receipt",
                                json_string(f->receipt));
    }
    if (st->has_generation)
        json_object_set_new(root, "generation",
                            json_integer((json_int_t)st->generation));
    if (st->has_rtt)
        json_object_set_new(root, "rtt_ms", json_real(st->rtt_ms));
    if (st->gflops > 0) {
        json_object_set_new(root, "gflops", json_real(st->gflops));
        json_object_set_new(root, "gflops_at_s",
                            json_integer((json_int_t)st->gflops_at_s));
    }
    if (st->compute_count > 0 || st->probe_ref > 0) {
        json_t *cm = json_array();

        for (size_t i = 0; cm && i < st->compute_count; i++)
            json_array_append_new(
                cm, json_pack("{s:I, s:f}", "minute",
                              (json_int_t)st->compute[i].minute,
                              "low_gflops", st->compute[i].low_gflops));
        json_object_set_new(root, "compute_minutes", cm ? cm : json_array());
        json_object_set_new(root, "probe_ref",
                            json_pack("{s:f, s:I}", "gflops", st->probe_ref,
                                      "at_s",
                                      (json_int_t)st->probe_ref_at_s));
    }
    if (st->last_action[0]) {
        json_object_set_new(
            root, "last_decision",
            json_pack("{s:s, s:I, s:i}", "action", st->last_action, "at_s",
                      (json_int_t)st->last_decision_at_s, "recheck_after_s",
                      (int)st->last_recheck_after_s));
    }
    if (st->has_pinned_key) {
        char x[64];

        client_base64_encode(st->pinned_key, sizeof(st->pinned_key), x);
        json_object_set_new(root, "pinned_key",
                            json_pack("{s:s, s:s}", "kid", st->pinned_kid,
                                      "x", x));
    }
    text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(root);
out:
    json_decref(hist);
    json_decref(mem);
    return text;
}

static bool copy_str(json_t *obj, const char *key, char *out, size_t cap,
                     bool required)
{
    json_t *v = json_object_get(obj, key);
    const char *s;

    if (!v)
        return !required;
    s = json_string_value(v);
    if (!s || strlen(s) >= cap)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static bool get_u64(json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool ref_parse(json_t *v, struct client_model_ref *r)
{
    json_t *ver;

    memset(r, 0, sizeof(*r));
    if (!v || json_is_null(v))
        return true;
    if (!json_is_object(v) ||
        !copy_str(v, "digest_hex", r->hex, sizeof(r->hex), true) ||
        !proto_hex_is_valid(r->hex, strlen(r->hex)) ||
        !copy_str(v, "variant", r->variant, sizeof(r->variant), false) ||
        !copy_str(v, "receipt", r->receipt, sizeof(r->receipt), false))
        return false;
    ver = json_object_get(v, "version");
    r->version = json_is_integer(ver) ? json_integer_value(ver) : 0;
    return true;
}

enum client_status client_state_parse(const char *text,
                                      struct client_state *out)
{
    struct client_state st;
    json_t *root = json_loads(text, 0, NULL), *v;
    enum client_status rc = CLIENT_LOCAL_ERROR;
    size_t i;

    memset(&st, 0, sizeof(st));
    if (!json_is_object(root) ||
        json_integer_value(json_object_get(root, "format")) != STATE_FORMAT ||
        !copy_str(root, "family", st.family, sizeof(st.family), true) ||
        !copy_str(root, "ue", st.ue, sizeof(st.ue), true) ||
        !ref_parse(json_object_get(root, "current"), &st.current) ||
        !ref_parse(json_object_get(root, "previous"), &st.previous))
        goto out;
    st.installed_reported =
        json_is_true(json_object_get(root, "installed_reported"));
    v = json_object_get(root, "inflight");
    if (json_is_object(v)) {
        struct client_inflight *f = &st.inflight;
        json_t *ver = json_object_get(v, "version");

        f->active = true;
        f->is_delta = json_is_true(json_object_get(v, "is_delta"));
        if (!copy_str(v, "target_hex", f->target_hex, sizeof(f->target_hex),
                      true) ||
            !proto_hex_is_valid(f->target_hex, strlen(f->target_hex)) ||
            !copy_str(v, "from_hex", f->from_hex, sizeof(f->from_hex),
                      false) ||
            !copy_str(v, "coding", f->coding, sizeof(f->coding), false) ||
            !copy_str(v, "url", f->url, sizeof(f->url), true) ||
            !copy_str(v, "validator", f->validator, sizeof(f->validator),
                      false) ||
            !copy_str(v, "variant", f->variant, sizeof(f->variant), false) ||
            !copy_str(v, "receipt", f->receipt, sizeof(f->receipt), false) ||
            !get_u64(v, "size_bytes", &f->size_bytes) ||
            !get_u64(v, "bytes_done", &f->bytes_done))
            goto out;
        if (f->is_delta && !proto_hex_is_valid(f->from_hex,
                                               strlen(f->from_hex)))
            goto out;
        f->version = json_is_integer(ver) ? json_integer_value(ver) : 0;
    }
    v = json_object_get(root, "generation");
    if (json_is_integer(v)) {
        st.has_generation = true;
        st.generation = json_integer_value(v);
    }
    v = json_object_get(root, "rtt_ms");
    if (json_is_number(v)) {
        st.has_rtt = true;
        st.rtt_ms = json_number_value(v);
    }
    v = json_object_get(root, "gflops");
    if (json_is_number(v) && json_number_value(v) > 0) {
        st.gflops = json_number_value(v);
        st.gflops_at_s =
            json_integer_value(json_object_get(root, "gflops_at_s"));
    }
    /* The histories: entries without a time (the arrays of an older
     * client, "downlink_history_bps" and "memory_history_bytes") are of
     * unknown age and not read; entries that are not ours are skipped. */
    copy_str(root, "downlink_iface", st.downlink_iface,
             sizeof(st.downlink_iface), false);
    json_array_foreach(json_object_get(root, "downlink_samples"), i, v) {
        json_t *at = json_object_get(v, "at_s"), *bps = json_object_get(v, "bps");

        if (!json_is_integer(at) || !json_is_number(bps) ||
            !(json_number_value(bps) >= 0) || json_number_value(bps) > 1e12)
            continue;
        size_t slot = client_history_slot(st.downlink, &st.downlink_count,
                                          sizeof(st.downlink[0]));
        st.downlink[slot].at_s = json_integer_value(at);
        st.downlink[slot].bps = json_number_value(bps);
    }
    json_array_foreach(json_object_get(root, "memory_minutes"), i, v) {
        json_t *m = json_object_get(v, "minute");
        json_t *low = json_object_get(v, "low_bytes");

        if (!json_is_integer(m) || !json_is_integer(low) ||
            json_integer_value(low) <= 0 ||
            (st.memory_count > 0 && json_integer_value(m) <=
                                        st.memory[st.memory_count - 1].minute))
            continue;
        size_t slot = client_history_slot(st.memory, &st.memory_count,
                                          sizeof(st.memory[0]));
        st.memory[slot].minute = json_integer_value(m);
        st.memory[slot].low_bytes =
            (uint64_t)json_integer_value(low);
    }
    /* The compute probe's minutes (raw probe GFLOP/s) and reference. */
    json_array_foreach(json_object_get(root, "compute_minutes"), i, v) {
        json_t *m = json_object_get(v, "minute");
        json_t *low = json_object_get(v, "low_gflops");

        if (!json_is_integer(m) || !json_is_number(low) ||
            !(json_number_value(low) > 0) || json_number_value(low) > 1e9 ||
            (st.compute_count > 0 &&
             json_integer_value(m) <= st.compute[st.compute_count - 1].minute))
            continue;
        size_t slot = client_history_slot(st.compute, &st.compute_count,
                                          sizeof(st.compute[0]));
        st.compute[slot].minute = json_integer_value(m);
        st.compute[slot].low_gflops = json_number_value(low);
    }
    v = json_object_get(root, "probe_ref");
    if (json_is_number(json_object_get(v, "gflops")) &&
        json_number_value(json_object_get(v, "gflops")) > 0 &&
        json_number_value(json_object_get(v, "gflops")) <= 1e9 &&
        json_is_integer(json_object_get(v, "at_s"))) {
        st.probe_ref = json_number_value(json_object_get(v, "gflops"));
        st.probe_ref_at_s = json_integer_value(json_object_get(v, "at_s"));
    }
    v = json_object_get(root, "last_decision");
    if (json_is_object(v)) {
        copy_str(v, "action", st.last_action, sizeof(st.last_action), false);
        st.last_decision_at_s = json_integer_value(json_object_get(v, "at_s"));
        st.last_recheck_after_s =
            (unsigned)json_integer_value(json_object_get(v, "recheck_after_s"));
    }
    v = json_object_get(root, "pinned_key");
    if (json_is_object(v)) {
        const char *x = json_string_value(json_object_get(v, "x"));

        if (!copy_str(v, "kid", st.pinned_kid, sizeof(st.pinned_kid), true) ||
            !x || client_base64_decode(x, strlen(x), st.pinned_key,
                                       sizeof(st.pinned_key)) != 32)
            goto out;
        st.has_pinned_key = true;
    }
    *out = st;
    rc = CLIENT_OK;
out:
    json_decref(root);
    return rc;
}

/* ---- files ------------------------------------------------------------- */

enum client_status client_state_load(const char *dir, const char *family,
                                     struct client_state *st, char *err,
                                     size_t err_len)
{
    char path[4096];
    FILE *f;
    char *text = NULL;
    long size;
    enum client_status rc = CLIENT_LOCAL_ERROR;

    snprintf(path, sizeof(path), "%s/state.json", dir);
    f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) {
            snprintf(err, err_len, "cannot read %s: %s", path,
                     strerror(errno));
            return CLIENT_LOCAL_ERROR;
        }
        client_state_init(st, family);
        return CLIENT_OK;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        size > (1 << 20) || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, err_len, "%s: unreadable or over 1 MiB", path);
        goto out;
    }
    text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        snprintf(err, err_len, "cannot read %s", path);
        goto out;
    }
    text[size] = '\0';
    if (client_state_parse(text, st) != CLIENT_OK) {
        snprintf(err, err_len, "%s is not a modeld client state file", path);
        goto out;
    }
    if (strcmp(st->family, family) != 0) {
        snprintf(err, err_len,
                 "%s holds family %s, not %s: use one state directory per "
                 "family",
                 dir, st->family, family);
        goto out;
    }
    rc = CLIENT_OK;
out:
    free(text);
    fclose(f);
    return rc;
}

enum client_status client_state_save(const char *dir,
                                     const struct client_state *st,
                                     char *err, size_t err_len)
{
    char path[4096];
    char *text = client_state_write(st);

    if (!text) {
        snprintf(err, err_len, "out of memory");
        return CLIENT_LOCAL_ERROR;
    }
    snprintf(path, sizeof(path), "%s/state.json", dir);
    if (fileio_put(path, text, strlen(text), 0600, false) != 0) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        free(text);
        return CLIENT_LOCAL_ERROR;
    }
    free(text);
    return CLIENT_OK;
}
