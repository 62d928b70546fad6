/*
 * Check suite for the selection policy (policy/policy.c). Every rule has a
 * table row over the demo catalog's numbers (Table 6.1.1-1 of the
 * model-data study) whose expected variant follows from the arithmetic in
 * the comment above it; a few tests check estimates, rollout buckets and
 * argument checks on their own.
 *
 * Latency at 100 GFLOP/s is flops / 1e8 ms:
 *   classification: mobilenet 2.8, efficientnet-b0 3.9, densenet-169 35,
 *                   inception-v3 57, resnet-50 41, vgg-16 160
 *   detection:      ssd300-mobilenet 12, efficientdet-d0 25,
 *                   fasterrcnn-mobilenet 252, ssd300-deeplab 349,
 *                   fasterrcnn-vgg 643, yolov3 710
 * Download at the default 10 Mbit/s is bytes * 8 / 1e7 s.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <stdint.h>

#include "policy/policy.h"
#include "policy/reason_text.h"
#include "policy/table.h"
#include "proto/proto.h"

#define MAX_VARIANTS 16
#define MAX_DELTAS 4
#define CLASSIFICATION "image-classification"
#define DETECTION "object-detection"

static const struct spec {
    const char *name;
    uint64_t params;
    uint64_t memory_bytes;
    double flops;
    double accuracy;
    const char *format;
} classification[] = {
    { "mobilenet-v1-1.0-224", 3300000, 13200000, 0.28e9, 0.706, "tflite" },
    { "efficientnet-b0", 5300000, 21200000, 0.39e9, 0.771, "tflite" },
    { "densenet-169", 14000000, 56000000, 3.5e9, 0.762, "onnx" },
    { "inception-v3", 24000000, 96000000, 5.7e9, 0.779, "onnx" },
    { "resnet-50", 26000000, 104000000, 4.1e9, 0.761, "onnx" },
    { "vgg-16", 138000000, 552000000, 16e9, 0.716, "onnx" },
}, detection[] = {
    { "ssd300-mobilenet", 6800000, 27200000, 1.2e9, 0.210, "tflite" },
    { "efficientdet-d0", 3900000, 15600000, 2.5e9, 0.338, "tflite" },
    { "fasterrcnn-mobilenet", 6100000, 24400000, 25.2e9, 0.328, "tflite" },
    { "ssd300-deeplab", 33100000, 132400000, 34.9e9, 0.232, "onnx" },
    { "fasterrcnn-vgg", 138500000, 554000000, 64.3e9, 0.219, "onnx" },
    { "yolov3", 40500000, 122000000, 71e9, 0.330, "onnx" },
};

struct fixture {
    const char *family;
    struct proto_variant v[MAX_VARIANTS];
    size_t n;
    struct proto_delta d[MAX_DELTAS];
    size_t nd;
    struct proto_variant old[2];  /* older versions (snapshot.older) */
    size_t nold;
    struct proto_report r;
    struct policy_config cfg;
};

static void
hex_of(unsigned id, char out[PROTO_HEX_SIZE])
{
    snprintf(out, PROTO_HEX_SIZE, "%064x", id);
}

static struct proto_variant *
add_variant(struct fixture *f, const struct spec *s)
{
    struct proto_variant *v = &f->v[f->n];

    ck_assert_uint_lt(f->n, MAX_VARIANTS);
    memset(v, 0, sizeof(*v));
    snprintf(v->family, sizeof(v->family), "%s", f->family);
    snprintf(v->name, sizeof(v->name), "%s", s->name);
    v->version = 1;
    hex_of((unsigned)f->n + 1, v->blob_hex);
    v->size_bytes = s->memory_bytes;
    snprintf(v->format, sizeof(v->format), "%s", s->format);
    v->params = s->params;
    v->flops = s->flops;
    v->accuracy = s->accuracy;
    v->memory_bytes = s->memory_bytes;
    v->rollout_percent = 100;
    f->n++;
    return v;
}

/* quality, 1 GB free, 100 GFLOP/s, nothing else. The table of instant
 * rules (constraints, exits, context, hysteresis, ties) runs over an
 * almost endless horizon, 1e7 s, where a download's time and bytes are
 * negligible next to the accuracy that runs after it; every candidate is
 * listed (explain all). The time-aware rules have their own table below,
 * at the default horizon. */
static void
fixture_init(struct fixture *f, const char *family, const struct spec *s,
             size_t count)
{
    memset(f, 0, sizeof(*f));
    f->family = family;
    for (size_t i = 0; i < count; i++)
        add_variant(f, &s[i]);
    policy_config_default(&f->cfg);
    f->r.memory_bytes = 1000000000;
    f->r.gflops = 100;
    f->r.preference = PROTO_PREFER_QUALITY;
    f->r.explain_all = true;
    f->cfg.horizon_s = 1e7;
}

static struct proto_variant *
variant_named(struct fixture *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].name, name) == 0)
            return &f->v[i];
    ck_abort_msg("no variant %s", name);
    return NULL;
}

static void
hold(struct fixture *f, const char *name)
{
    memcpy(f->r.current_hex, variant_named(f, name)->blob_hex,
           PROTO_HEX_SIZE);
    f->r.has_current = true;
}

static void
vgg_exits(struct fixture *f)
{
    /* the demo's exits: 4e9 -> 40 ms, 9e9 -> 90 ms at 100 GFLOP/s */
    struct proto_variant *v = variant_named(f, "vgg-16");

    v->exits[0] = (struct proto_exit){ .flops = 4e9, .accuracy = 0.55 };
    v->exits[1] = (struct proto_exit){ .flops = 9e9, .accuracy = 0.66 };
    v->exit_count = 2;
}

static void
tag(struct proto_tag *t, const char *key, const char *value)
{
    snprintf(t->key, sizeof(t->key), "%s", key);
    snprintf(t->value, sizeof(t->value), "%s", value);
}

static void
set_latency(struct fixture *f, double ms)
{
    f->r.max_latency_ms = ms;
    f->r.has_max_latency_ms = true;
}

static void
set_memory(struct fixture *f, uint64_t bytes)
{
    f->r.memory_bytes = bytes;
}

/* ---- setups, one per table row ---------------------------------------- */

static void
mem_60mb(struct fixture *f)
{
    set_memory(f, 60000000);
}

static void
mem_10mb(struct fixture *f)
{
    set_memory(f, 10000000);
}

static void
lat_100(struct fixture *f)
{
    set_latency(f, 100);
}

static void
hold_efficientnet(struct fixture *f)
{
    mem_60mb(f);
    hold(f, "efficientnet-b0");
}

static void
hold_densenet(struct fixture *f)
{
    mem_60mb(f);
    hold(f, "densenet-169");
}

static void
hold_densenet_wide(struct fixture *f)
{
    hold_densenet(f);
    f->cfg.hysteresis_accuracy = 0.01;
}

static void
tie_transfer(struct fixture *f)
{
    struct spec s = classification[1];
    struct proto_variant *v;

    mem_60mb(f);
    s.name = "efficientnet-b0-big";
    v = add_variant(f, &s);
    v->size_bytes = 30000000;
}

static void
tie_latency(struct fixture *f)
{
    struct spec s = classification[1];

    mem_60mb(f);
    s.name = "efficientnet-b0-slow";
    s.flops = 0.5e9;
    add_variant(f, &s);
}

static void
tie_name(struct fixture *f)
{
    struct spec s = classification[1];

    mem_60mb(f);
    s.name = "efficientnet-b0-copy";
    add_variant(f, &s);
}

static void
degraded_mix(struct fixture *f)
{
    set_latency(f, 3.5);
    f->r.min_accuracy = 0.75;
    f->r.has_min_accuracy = true;
}

static void
degraded_hold_copy(struct fixture *f)
{
    struct spec s = classification[0];

    degraded_mix(f);
    s.name = "mobilenet-v1-1.0-224-copy";
    add_variant(f, &s);
    hold(f, "mobilenet-v1-1.0-224-copy");
}

static void
degraded_hold_efficientnet(struct fixture *f)
{
    degraded_mix(f);
    hold(f, "efficientnet-b0");
}

static void
vgg_lat(struct fixture *f, double ms)
{
    f->n = 0;
    add_variant(f, &classification[5]);
    vgg_exits(f);
    set_latency(f, ms);
}

static void
vgg_lat_100(struct fixture *f)
{
    vgg_lat(f, 100);
}

static void
vgg_lat_50(struct fixture *f)
{
    vgg_lat(f, 50);
}

static void
vgg_lat_30(struct fixture *f)
{
    vgg_lat(f, 30);
}

static void
full_exits_lat_100(struct fixture *f)
{
    vgg_exits(f);
    set_latency(f, 100);
}

static void
tflite_only(struct fixture *f)
{
    snprintf(f->r.formats[0], sizeof(f->r.formats[0]), "tflite");
    f->r.format_count = 1;
    f->r.has_formats = true;
}

static void
inception_needs_npu(struct fixture *f)
{
    struct proto_variant *v = variant_named(f, "inception-v3");

    snprintf(v->accelerators[0], sizeof(v->accelerators[0]), "npu");
    v->accelerator_count = 1;
    snprintf(f->r.accelerators[0], sizeof(f->r.accelerators[0]), "gpu");
    f->r.accelerator_count = 1;
}

static void
inception_has_npu(struct fixture *f)
{
    inception_needs_npu(f);
    snprintf(f->r.accelerators[1], sizeof(f->r.accelerators[1]), "npu");
    f->r.accelerator_count = 2;
}

static void
mobilenet_measured(struct fixture *f)
{
    struct proto_variant *v = variant_named(f, "mobilenet-v1-1.0-224");

    snprintf(v->latency_ms[0].device_class,
             sizeof(v->latency_ms[0].device_class), "npu-class-a");
    v->latency_ms[0].value = 4.0;
    v->latency_count = 1;
    set_latency(f, 3.5);
}

static void
mobilenet_measured_npu(struct fixture *f)
{
    mobilenet_measured(f);
    snprintf(f->r.device_class, sizeof(f->r.device_class), "npu-class-a");
    f->r.has_device_class = true;
}

/* mobilenet v2 (accuracy 0.709) at 30%, newest first, then v1 at 100% */
static void
rollout(struct fixture *f)
{
    struct proto_variant v2 = f->v[0];

    memmove(&f->v[1], &f->v[0], f->n * sizeof(f->v[0]));
    f->n++;
    v2.version = 2;
    v2.accuracy = 0.709;
    v2.rollout_percent = 30;
    hex_of(100, v2.blob_hex);
    f->v[0] = v2;
    set_memory(f, 15000000);
}

static void
rollout_ue(struct fixture *f, const char *ue)
{
    rollout(f);
    snprintf(f->r.ue, sizeof(f->r.ue), "%s", ue);
    f->r.has_ue = true;
}

static void
rollout_in(struct fixture *f)
{
    rollout_ue(f, "ue-1");      /* bucket 2 */
}

static void
rollout_out(struct fixture *f)
{
    rollout_ue(f, "ue-2");      /* bucket 91 */
}

/* The staged rollout above, the UE in it (v2 offered) holding v1, the
 * 100% version that no longer competes for it: v1 runs meanwhile. */
static void
rollout_in_hold_v1(struct fixture *f)
{
    rollout_in(f);
    memcpy(f->r.current_hex, f->v[1].blob_hex, PROTO_HEX_SIZE);
    f->r.has_current = true;
}

/*
 * The UE holds version 1 of name, an older version that store_snapshot
 * keeps in older (offered to nobody), with accuracy; the offered head is
 * the fixture's variant, made version 3.
 */
static struct proto_variant *
hold_old(struct fixture *f, const char *name, double accuracy)
{
    struct proto_variant *head = variant_named(f, name);
    struct proto_variant *v = &f->old[f->nold];

    ck_assert_uint_lt(f->nold, ARRAY_SIZE(f->old));
    *v = *head;
    v->version = 1;
    v->accuracy = accuracy;
    hex_of(200 + (unsigned)f->nold, v->blob_hex);
    head->version = 3;
    f->nold++;
    memcpy(f->r.current_hex, v->blob_hex, PROTO_HEX_SIZE);
    f->r.has_current = true;
    return v;
}

static void
detect_balanced(struct fixture *f)
{
    set_latency(f, 30);
    f->r.preference = PROTO_PREFER_BALANCED;
}

static void
detect_saver(struct fixture *f)
{
    set_latency(f, 30);
    f->r.preference = PROTO_PREFER_SAVER;
}

static void
detect_battery_low(struct fixture *f)
{
    detect_balanced(f);
    f->r.battery_percent = 10;
    f->r.has_battery_percent = true;
}

static void
detect_battery_charging(struct fixture *f)
{
    detect_battery_low(f);
    f->r.charging = true;
}

static void
detect_hold_ssd(struct fixture *f)
{
    detect_balanced(f);
    hold(f, "ssd300-mobilenet");
}

static void
detect_hold_ssd_wide(struct fixture *f)
{
    detect_hold_ssd(f);
    f->cfg.hysteresis_score = 0.1;
}

static void
slow_link(struct fixture *f)
{
    mem_60mb(f);
    f->r.preference = PROTO_PREFER_BALANCED;
    f->r.downlink_bps = 1e6;
    f->r.has_downlink_bps = true;
    f->r.max_download_s = 200;
    f->r.has_max_download_s = true;
    f->r.horizon_s = 1800;
    f->r.has_horizon_s = true;
}

static void
slow_link_metered(struct fixture *f)
{
    slow_link(f);
    f->r.metered = true;
}

static void
slow_link_loaded(struct fixture *f)
{
    slow_link(f);
    f->r.load = 0.9;
    f->r.has_load = true;
}

static void
slow_link_light(struct fixture *f)
{
    slow_link(f);
    f->r.load = 0.5;
    f->r.has_load = true;
}

static void
night_variant(struct fixture *f)
{
    struct spec s = detection[1];
    struct proto_variant *v;

    s.name = "efficientdet-d0-night";
    s.accuracy = 0.3375;
    v = add_variant(f, &s);
    tag(&v->context[0], "scene", "night");
    v->context_count = 1;
    /* the demo's low-light detector */
    v = variant_named(f, "fasterrcnn-mobilenet");
    tag(&v->context[0], "scene", "night");
    v->context_count = 1;
}

static void
night_scene(struct fixture *f)
{
    night_variant(f);
    tag(&f->r.context[0], "scene", "night");
    f->r.context_count = 1;
}

static void
night_scene_balanced(struct fixture *f)
{
    night_scene(f);
    f->r.preference = PROTO_PREFER_BALANCED;
}

static void
day_scene_balanced(struct fixture *f)
{
    night_variant(f);
    tag(&f->r.context[0], "scene", "day");
    f->r.context_count = 1;
    f->r.preference = PROTO_PREFER_BALANCED;
}

static void
delta_from_mobilenet(struct fixture *f)
{
    mem_60mb(f);
    hold(f, "mobilenet-v1-1.0-224");
    memcpy(f->d[0].from_hex, f->r.current_hex, PROTO_HEX_SIZE);
    memcpy(f->d[0].to_hex, variant_named(f, "efficientnet-b0")->blob_hex,
           PROTO_HEX_SIZE);
    f->d[0].size_bytes = 2000000;
    f->nd = 1;
    f->r.rtt_ms = 40;
    f->r.has_rtt_ms = true;
}

static void
energy_budget(struct fixture *f)
{
    mem_60mb(f);
    f->r.max_energy_mj = 6;
    f->r.has_max_energy_mj = true;
}

static void
energy_power(struct fixture *f)
{
    energy_budget(f);
    f->r.power_mw = 2000;
    f->r.has_power_mw = true;
}

static void
energy_measured(struct fixture *f)
{
    struct proto_variant *v = variant_named(f, "efficientnet-b0");

    energy_power(f);
    snprintf(v->energy_mj[0].device_class,
             sizeof(v->energy_mj[0].device_class), "npu-class-a");
    v->energy_mj[0].value = 5.0;
    v->energy_count = 1;
    mobilenet_measured_npu(f);
    f->r.has_max_latency_ms = false;
}

/* ---- the table ---------------------------------------------------------- */

enum reason_in {
    R_NONE = 0,
    R_CANDIDATE,        /* reasons of the candidate named by cand */
    R_VIOLATIONS,       /* the decision's violations */
    R_CHOSEN,           /* the decision's reasons */
};

static const struct select_case {
    const char *what;
    const char *family;
    void (*setup)(struct fixture *f);
    enum proto_action action;
    const char *variant;        /* NULL: none */
    int64_t version;            /* 0: not checked */
    bool degraded;
    int exit_index;
    enum reason_in where;
    const char *cand;
    const char *reason;         /* a reason that must be there, verbatim */
} cases[] = {
    /* 60 MB fits mobilenet 13.2, efficientnet 21.2, densenet 56 MB;
     * highest accuracy of 0.706, 0.771, 0.762 is efficientnet-b0. */
    { "done: 60 MB", CLASSIFICATION, mem_60mb, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_CANDIDATE, "densenet-169",
      "accuracy 0.762 below chosen 0.771" },
    { "done: 60 MB, memory reason", CLASSIFICATION, mem_60mb,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CANDIDATE,
      "vgg-16", "memory: 552000000 bytes over device.memory_bytes 60000000" },
    /* 1 GB fits all; vgg-16 at 160 ms misses 100 ms; the best accuracy
     * of the rest is inception-v3 0.779 at 57 ms. */
    { "done: 1 GB, 100 ms", CLASSIFICATION, lat_100, PROTO_ACTION_DOWNLOAD,
      "inception-v3", 0, false, -1, R_CANDIDATE, "vgg-16",
      "latency: 160 ms over max_latency_ms 100" },
    /* 10 MB: the smallest, mobilenet, needs 13.2 MB. */
    { "done: 10 MB", CLASSIFICATION, mem_10mb, PROTO_ACTION_NONE, NULL, 0,
      false, -1, R_CANDIDATE, "mobilenet-v1-1.0-224",
      "memory: 13200000 bytes over device.memory_bytes 10000000" },
    /* holding efficientnet-b0, the pick of the 60 MB case */
    { "done: keep", CLASSIFICATION, hold_efficientnet, PROTO_ACTION_KEEP,
      "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "keep: current is the chosen version" },
    /* holding densenet 0.762: 0.771 - 0.762 = 0.009 > 0.005: move */
    { "hysteresis: quality, move", CLASSIFICATION, hold_densenet,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CANDIDATE,
      "densenet-169", "accuracy 0.762 below chosen 0.771" },
    /* same with hysteresis_accuracy 0.01: 0.009 <= 0.01: keep */
    { "hysteresis: quality, keep", CLASSIFICATION, hold_densenet_wide,
      PROTO_ACTION_KEEP, "densenet-169", 0, false, -1, R_CANDIDATE,
      "efficientnet-b0",
      "accuracy 0.771 within hysteresis_accuracy 0.01 of current 0.762" },
    /* equal accuracy 0.771: 21.2 MB beats 30 MB to transfer */
    { "tie: transfer", CLASSIFICATION, tie_transfer, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_CANDIDATE, "efficientnet-b0-big",
      "transfer 30000000 bytes over chosen's 21200000" },
    /* equal accuracy and size: 3.9 ms beats 0.5e9 / 1e8 = 5 ms */
    { "tie: latency", CLASSIFICATION, tie_latency, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_CANDIDATE, "efficientnet-b0-slow",
      "latency 5 ms over chosen's 3.9" },
    /* all equal: the name that sorts first */
    { "tie: name", CLASSIFICATION, tie_name, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_CANDIDATE, "efficientnet-b0-copy",
      "ties with chosen; name sorts after it" },
    /* max 3.5 ms, min 0.75: nobody meets both.
     * mobilenet: 2.8 ok, (0.75 - 0.706) / 0.75 = 0.0587
     * efficientnet: (3.9 - 3.5) / 3.5 = 0.1143, accuracy ok
     * densenet 31.5 / 3.5 = 9, inception 15.3, resnet 10.7, vgg 44.7+
     * smallest: mobilenet, degraded. */
    { "degraded: violation", CLASSIFICATION, degraded_mix,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, true, -1,
      R_VIOLATIONS, NULL, "accuracy: 0.706 under min_accuracy 0.75" },
    { "degraded: loser", CLASSIFICATION, degraded_mix, PROTO_ACTION_DOWNLOAD,
      "mobilenet-v1-1.0-224", 0, true, -1, R_CANDIDATE, "efficientnet-b0",
      "violation 0.114286 over chosen's 0.0586667" },
    { "degraded: loser's miss", CLASSIFICATION, degraded_mix,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, true, -1,
      R_CANDIDATE, "efficientnet-b0",
      "latency: 3.9 ms over max_latency_ms 3.5" },
    /* an identical copy ties mobilenet's 0.0587; the UE holds the copy,
     * which has nothing to transfer: kept */
    { "degraded: keep an equal", CLASSIFICATION, degraded_hold_copy,
      PROTO_ACTION_KEEP, "mobilenet-v1-1.0-224-copy", 0, true, -1,
      R_CANDIDATE, "mobilenet-v1-1.0-224",
      "transfer 13200000 bytes over chosen's 0" },
    /* holding efficientnet (0.1143 > 0.0587): move */
    { "degraded: move", CLASSIFICATION, degraded_hold_efficientnet,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, true, -1, R_NONE,
      NULL, NULL },
    /* vgg-16 alone: whole 160 ms > 100; exit 1 9e9 -> 90 ms meets */
    { "exit: latest", CLASSIFICATION, vgg_lat_100, PROTO_ACTION_DOWNLOAD,
      "vgg-16", 0, false, 1, R_CHOSEN, NULL,
      "latency: full network 160 ms over max_latency_ms 100; exit 1 at 90 ms" },
    /* 50 ms: exit 1 90 ms misses, exit 0 4e9 -> 40 ms meets */
    { "exit: earlier", CLASSIFICATION, vgg_lat_50, PROTO_ACTION_DOWNLOAD,
      "vgg-16", 0, false, 0, R_NONE, NULL, NULL },
    /* 30 ms: 40 and 90 ms miss: whole network, degraded */
    { "exit: none meets", CLASSIFICATION, vgg_lat_30, PROTO_ACTION_DOWNLOAD,
      "vgg-16", 0, true, -1, R_VIOLATIONS, NULL,
      "latency: 160 ms over max_latency_ms 30" },
    /* full catalog, 100 ms: vgg at exit 1 is feasible with accuracy 0.66,
     * below inception's 0.779 */
    { "exit: loser's accuracy", CLASSIFICATION, full_exits_lat_100,
      PROTO_ACTION_DOWNLOAD, "inception-v3", 0, false, -1, R_CANDIDATE,
      "vgg-16", "accuracy 0.66 below chosen 0.779" },
    /* tflite only: mobilenet 0.706, efficientnet 0.771 */
    { "hard: format", CLASSIFICATION, tflite_only, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_CANDIDATE, "inception-v3",
      "format: onnx not in device.formats" },
    /* inception needs an npu the UE lacks: next best 0.771 */
    { "hard: accelerator missing", CLASSIFICATION, inception_needs_npu,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CANDIDATE,
      "inception-v3", "accelerator: npu not in device.accelerators" },
    { "hard: accelerator present", CLASSIFICATION, inception_has_npu,
      PROTO_ACTION_DOWNLOAD, "inception-v3", 0, false, -1, R_NONE, NULL,
      NULL },
    /* max 3.5 ms: only mobilenet at 2.8 meets it */
    { "measured: other class", CLASSIFICATION, mobilenet_measured,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_NONE,
      NULL, NULL },
    /* on npu-class-a mobilenet takes a measured 4 ms:
     * (4 - 3.5) / 3.5 = 0.143 > efficientnet (3.9 - 3.5) / 3.5 = 0.114 */
    { "measured: own class", CLASSIFICATION, mobilenet_measured_npu,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, true, -1, R_CANDIDATE,
      "mobilenet-v1-1.0-224", "latency: 4 ms over max_latency_ms 3.5" },
    /* 15 MB fits only mobilenet; v2 at 30% */
    { "rollout: no ue", CLASSIFICATION, rollout, PROTO_ACTION_DOWNLOAD,
      "mobilenet-v1-1.0-224", 1, false, -1, R_NONE, NULL, NULL },
    { "rollout: bucket 2 < 30", CLASSIFICATION, rollout_in,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 2, false, -1, R_NONE,
      NULL, NULL },
    /* bucket 2 < 30: v2 (0.709) offered; v1 (0.706), held, runs
     * meanwhile: gain 0.003 per second, not "nothing runs now" */
    { "rollout: holding v1, v2 offered", CLASSIFICATION, rollout_in_hold_v1,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 2, false, -1, R_CHOSEN,
      NULL,
      "held mobilenet-v1-1.0-224 version 1 runs meanwhile (not offered): "
      "gain 0.003 over" },
    { "rollout: bucket 91 >= 30", CLASSIFICATION, rollout_out,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 1, false, -1, R_NONE,
      NULL, NULL },
    /* max 30 ms: ssd 12 and efficientdet 25 ms meet it. Latency over the
     * requirement 30; energy unknown: latency's share. Per-second score
     * accuracy + w.latency * (1 - 25/30) + w.energy * (same):
     * balanced (1, 0.1, 0.05):
     *   efficientdet .338 + .15 * 5/30 = 0.363
     *   ssd          .210 + .15 * 18/30 = 0.300
     * saver (1, 0.4, 0.4):
     *   efficientdet .338 + .8 * 5/30 = 0.4713
     *   ssd          .210 + .8 * 18/30 = 0.690 */
    { "balanced", DETECTION, detect_balanced, PROTO_ACTION_DOWNLOAD,
      "efficientdet-d0", 0, false, -1, R_CANDIDATE, "ssd300-mobilenet",
      "score 0.3 below chosen 0.363" },
    { "saver", DETECTION, detect_saver, PROTO_ACTION_DOWNLOAD,
      "ssd300-mobilenet", 0, false, -1, R_NONE, NULL, NULL },
    { "battery: low, balanced acts as saver", DETECTION, detect_battery_low,
      PROTO_ACTION_DOWNLOAD, "ssd300-mobilenet", 0, false, -1, R_CHOSEN,
      NULL, "battery: 10% and not charging, balanced acts as saver" },
    { "battery: low but charging", DETECTION, detect_battery_charging,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0", 0, false, -1, R_NONE, NULL,
      NULL },
    /* holding ssd (0.300): efficientdet 0.363 is 0.063 more per second,
     * over 1e7 s far beyond the hysteresis 0.02 * 1e7: move; with 0.1:
     * keep */
    { "hysteresis: score, move", DETECTION, detect_hold_ssd,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0", 0, false, -1, R_CANDIDATE,
      "ssd300-mobilenet", "score 0.3 below chosen 0.363" },
    { "hysteresis: score, keep", DETECTION, detect_hold_ssd_wide,
      PROTO_ACTION_KEEP, "ssd300-mobilenet", 0, false, -1, R_CANDIDATE,
      "efficientdet-d0",
      "score 0.363 within hysteresis_score 0.1 of current 0.3" },
    /* 60 MB, balanced, 1 Mbit/s (planned at 0.9), max 200 s, horizon
     * 1800 s: densenet 448 s misses. Latency over the largest of the
     * variants the device could run with more memory, vgg-16 160 ms:
     * efficientnet .771 + .15 * (1 - 3.9/160) = 0.9173,
     * mobilenet .706 + .15 * (1 - 2.8/160) = 0.8534.
     *   efficientnet: 188.4 s, .9173 * 1611.6 - 6.36 = 1472.0
     *   mobilenet:    117.3 s, .8534 * 1682.7 - 3.96 = 1432.1
     * but mobilenet first, efficientnet while it runs ("small now, better
     * later"): .8534 * 188.4 + .9173 * 1494.3 - 10.32 = 1521.4 > 1472.0 +
     * hysteresis 36. Metered (bytes x3): 1500.8 against 1459.3 + 36:
     * mobilenet first still */
    { "network: plain", CLASSIFICATION, slow_link, PROTO_ACTION_DOWNLOAD,
      "mobilenet-v1-1.0-224", 0, false, -1, R_CANDIDATE, "densenet-169",
      "download: 448 s over max_download_s 200" },
    { "network: metered", CLASSIFICATION, slow_link_metered,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_CHOSEN,
      NULL, "network: metered, transfer cost x3" },
    { "network: load 0.9", CLASSIFICATION, slow_link_loaded,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_CHOSEN,
      NULL, "network: high load, transfer cost x3" },
    { "network: load 0.5", CLASSIFICATION, slow_link_light,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_NONE, NULL,
      NULL },
    /* efficientdet 0.338 vs a night-tuned copy 0.3375: without context
     * accuracy wins; at night they are within 0.001 and the tag wins */
    { "context: none", DETECTION, night_variant, PROTO_ACTION_DOWNLOAD,
      "efficientdet-d0", 0, false, -1, R_CANDIDATE, "efficientdet-d0-night",
      "accuracy 0.3375 below chosen 0.338" },
    { "context: night", DETECTION, night_scene, PROTO_ACTION_DOWNLOAD,
      "efficientdet-d0-night", 0, false, -1, R_CANDIDATE, "efficientdet-d0",
      "context: chosen matches scene=night" },
    { "context: chosen says so", DETECTION, night_scene,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0-night", 0, false, -1,
      R_CHOSEN, NULL, "context: matches scene=night" },
    /* fasterrcnn-mobilenet matches too but 0.328 is 0.0095 below */
    { "context: matching loser", DETECTION, night_scene,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0-night", 0, false, -1,
      R_CANDIDATE, "fasterrcnn-mobilenet", "context: matches scene=night" },
    /* balanced: same costs, 0.3375 + 0.01 bonus beats 0.338 */
    { "context: balanced bonus", DETECTION, night_scene_balanced,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0-night", 0, false, -1,
      R_CANDIDATE, "efficientdet-d0", "below chosen" },
    { "context: other scene", DETECTION, day_scene_balanced,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0", 0, false, -1, R_NONE, NULL,
      NULL },
    /* holding mobilenet with a 2 MB delta to efficientnet-b0 */
    { "delta", CLASSIFICATION, delta_from_mobilenet, PROTO_ACTION_DELTA,
      "efficientnet-b0", 0, false, -1, R_NONE, NULL, NULL },
    /* 2000 mW: mobilenet 2.8 ms -> 5.6 mJ, efficientnet 3.9 -> 7.8 mJ,
     * densenet 70 mJ; budget 6 mJ leaves mobilenet */
    { "energy: from power", CLASSIFICATION, energy_power,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1,
      R_CANDIDATE, "efficientnet-b0", "energy: 7.8 mJ over max_energy_mj 6" },
    /* without power_mw energy is unknown: not checked */
    { "energy: unknown", CLASSIFICATION, energy_budget, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_NONE, NULL, NULL },
    /* npu-class-a: efficientnet measured 5 mJ; mobilenet measured 4 ms ->
     * 8 mJ > 6 */
    { "energy: measured", CLASSIFICATION, energy_measured,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CANDIDATE,
      "mobilenet-v1-1.0-224", "energy: 8 mJ over max_energy_mj 6" },
};

static bool
reasons_have(const struct proto_reasons *rs, const char *text)
{
    for (size_t i = 0; i < rs->count; i++)
        if (strstr(rs->text[i], text))
            return true;
    return false;
}

/* The candidates' reasons of every decision below (written only for the
 * listed ones; at most 200 variants per test). */
static struct proto_reasons cand_reasons[200];

/* in with its policy table (policy_table_build) in one static buffer. */
static void
with_table(struct policy_input *in)
{
    static max_align_t buf[(1 << 20) / sizeof(max_align_t)];

    ck_assert_uint_le(policy_table_size(in), sizeof(buf));
    in->table = policy_table_build(in, buf, sizeof(buf));
    ck_assert_ptr_nonnull(in->table);
}

static void
decide(const struct fixture *f, struct proto_decision *d,
       struct proto_candidate *cands)
{
    struct policy_input in = {
        .family = f->family, .variants = f->v, .variant_count = f->n,
        .deltas = f->d, .delta_count = f->nd,
        .older = f->old, .older_count = f->nold,
    };

    with_table(&in);
    memset(d, 0, sizeof(*d));
    d->candidates = cands;
    d->candidate_reasons = cand_reasons;
    ck_assert_int_eq(policy_select(&f->cfg, &in, &f->r, d), POLICY_OK);
}

static size_t
name_count(const struct fixture *f)
{
    size_t count = 0;

    for (size_t i = 0; i < f->n; i++)
        if (i == 0 || strcmp(f->v[i].name, f->v[i - 1].name) != 0)
            count++;
    return count;
}

static void
fixture_for(const struct select_case *c, struct fixture *f)
{
    if (strcmp(c->family, CLASSIFICATION) == 0)
        fixture_init(f, c->family, classification,
                     ARRAY_SIZE(classification));
    else
        fixture_init(f, c->family, detection, ARRAY_SIZE(detection));
    c->setup(f);
}

/* The reason c names is where c says (found: the candidate c->cand). */
static void
assert_reason(const struct select_case *c, const struct proto_decision *d,
              const struct proto_candidate *found)
{
    const struct proto_reasons *rs;

    switch (c->where) {
    case R_NONE:
        break;
    case R_CANDIDATE:
        ck_assert_msg(found != NULL, "%s: no candidate %s", c->what, c->cand);
        rs = &d->candidate_reasons[found - d->candidates];
        ck_assert_msg(reasons_have(rs, c->reason),
                      "%s: %s lacks \"%s\" (have: \"%s\" | \"%s\")",
                      c->what, c->cand, c->reason,
                      rs->count ? rs->text[0] : "",
                      rs->count > 1 ? rs->text[1] : "");
        break;
    case R_VIOLATIONS:
        ck_assert_msg(reasons_have(&d->violations, c->reason),
                      "%s: violations lack \"%s\"", c->what, c->reason);
        break;
    case R_CHOSEN:
        ck_assert_msg(reasons_have(&d->reasons, c->reason),
                      "%s: reasons lack \"%s\" (have: \"%s\" | \"%s\")",
                      c->what, c->reason,
                      d->reasons.count ? d->reasons.text[0] : "",
                      d->reasons.count > 1 ? d->reasons.text[1] : "");
        break;
    }
}

START_TEST(test_policy_select_cases)
{
    const struct select_case *c = &cases[_i];
    struct proto_candidate cands[MAX_VARIANTS];
    const struct proto_candidate *found = NULL;
    struct proto_decision d;
    struct fixture f;

    fixture_for(c, &f);
    decide(&f, &d, cands);
    ck_assert_msg(d.action == c->action, "%s: action %d, want %d", c->what,
                  d.action, c->action);
    if (c->variant) {
        ck_assert_str_eq(f.v[d.chosen].name, c->variant);
        if (c->version)
            ck_assert_int_eq(f.v[d.chosen].version, c->version);
    }
    ck_assert_int_eq(d.degraded, c->degraded);
    ck_assert_int_eq(d.violations.count > 0, c->degraded);
    ck_assert_int_eq(d.exit_index, c->exit_index);
    if (d.reasons.count > 0 &&
        strncmp(d.reasons.text[0], "small now", 9) == 0)
        /* ask again when the first of the two transfers runs */
        ck_assert(d.recheck_after_s > 0 &&
                  d.recheck_after_s < f.cfg.recheck_after_s);
    else
        ck_assert_uint_eq(d.recheck_after_s,
                          c->degraded || c->action == PROTO_ACTION_NONE
                              ? f.cfg.recheck_degraded_s
                              : f.cfg.recheck_after_s);
    ck_assert_int_eq(d.has_delta, c->action == PROTO_ACTION_DELTA);

    /* one candidate per other variant name, each with a reason */
    ck_assert_uint_eq(d.candidate_count,
                      name_count(&f) - (c->action != PROTO_ACTION_NONE));
    for (size_t i = 0; i < d.candidate_count; i++) {
        const struct proto_variant *v = &f.v[cands[i].variant];

        ck_assert_uint_gt(d.candidate_reasons[i].count, 0);
        if (c->variant)
            ck_assert_str_ne(v->name, c->variant);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(f.v[cands[j].variant].name, v->name);
        if (c->cand && strcmp(v->name, c->cand) == 0)
            found = &cands[i];
    }

    assert_reason(c, &d, found);
}
END_TEST

/* ---- selection over time ------------------------------------------------ */

/*
 * The default horizon (1800 s), byte cost (0.3 per 1e6 bytes) and safety
 * (0.9), and the default listing (runner_ups 5). Quality, 1 GB, 100
 * GFLOP/s, max_latency_ms 100 (vgg-16 out), 10 Mbit/s planned at 9:
 *   efficientnet 21.2 MB: 18.84 s, cost 6.36; inception 96 MB: 85.33 s,
 *   cost 28.8; mobilenet 13.2 MB: 11.73 s, cost 3.96.
 * Holding nothing: V = u * (H - t) - cost:
 *   efficientnet .771 * 1781.16 - 6.36 = 1366.9
 *   inception    .779 * 1714.67 - 28.8 = 1306.9
 *   mobilenet    .706 * 1788.27 - 3.96 = 1258.6
 */
static void
t_base(struct fixture *f)
{
    f->cfg.horizon_s = 1800;
    f->r.explain_all = false;
    set_latency(f, 100);
}

static void
t_hold_efficientnet(struct fixture *f)
{
    t_base(f);
    hold(f, "efficientnet-b0");
}

/* a day: gain .008 * (86400 - 85.3) = 690.5 > 28.8 + .005 * 86400 */
static void
t_hold_efficientnet_day(struct fixture *f)
{
    t_hold_efficientnet(f);
    f->r.horizon_s = 86400;
    f->r.has_horizon_s = true;
}

/*
 * Small now, better later: holding nothing on a 0.7 Mbit/s link (0.63
 * planned), balanced: scores .706 + .15 * (1 - 2.8/100) = .8518 and .771
 * + .15 * (1 - 3.9/100) = .91515. Straight away efficientnet-b0 (269.2 s)
 * is worth .91515 * 1530.8 - 6.36 = 1394.55, over mobilenet's .8518 *
 * 1632.4 - 3.96 = 1386.5. But mobilenet first (167.6 s), then efficientnet
 * (269.2 s more) while it runs: .8518 * 269.2 + .91515 * 1363.2 - 3.96 -
 * 6.36 = 1466.5, over 1394.55 + hysteresis 36; and holding mobilenet the
 * second move gains .0634 * 1530.8 - 6.36 = 90.7 > 36: the UE makes it.
 * Mobilenet now, recheck when it runs (168 s).
 */
static void
t_slow_nothing(struct fixture *f)
{
    t_base(f);
    f->r.downlink_bps = 0.7e6;
    f->r.has_downlink_bps = true;
    f->r.preference = PROTO_PREFER_BALANCED;
}

/* the same, quality: efficientnet-b0 straight away */
static void
t_slow_nothing_quality(struct fixture *f)
{
    t_slow_nothing(f);
    f->r.preference = PROTO_PREFER_QUALITY;
}

/* 100 Mbit/s (90 planned): efficientnet 1.88 s, gain .065 * 1798.1 = 116.9
 * > 6.36 + 9; inception: .706 * 8.53 + .779 * 1791.5 - 28.8 = 1372.8
 * under efficientnet's .706 * 1.88 + .771 * 1798.1 - 6.36 = 1381.3 */
static void
t_hold_mobilenet_fast(struct fixture *f)
{
    t_base(f);
    hold(f, "mobilenet-v1-1.0-224");
    f->r.downlink_bps = 100e6;
    f->r.has_downlink_bps = true;
}

/*
 * Horizon 5000 s. Holding nothing: efficientnet .771 * 4981.16 - 6.36 =
 * 3834.1 beats inception .779 * 4914.67 - 28.8 = 3799.7 ("small now").
 * Holding an older mobilenet (version 1, accuracy 0.70; version 3 is
 * offered), which runs while a download does, adds .70 t: efficientnet
 * 3834.1 + 13.2 = 3847.3, inception 3799.7 + 59.7 = 3859.5: inception.
 */
static void
t_long(struct fixture *f)
{
    t_base(f);
    f->r.horizon_s = 5000;
    f->r.has_horizon_s = true;
}

static void
t_long_hold_old(struct fixture *f)
{
    t_long(f);
    hold_old(f, "mobilenet-v1-1.0-224", 0.70);
}

/* the same older version, built for 2 GB: it does not fit, nothing runs */
static void
t_long_hold_old_big(struct fixture *f)
{
    t_long(f);
    hold_old(f, "mobilenet-v1-1.0-224", 0.70)->memory_bytes = 2000000000;
}

static void
t_outage(struct fixture *f)
{
    t_base(f);
    f->r.downlink_bps = 0;
    f->r.has_downlink_bps = true;
}

/* downlink_bps 9 Mbit/s, but every recent sample moved nothing: the
 * estimate is 0 and the reasons name the samples, not downlink_bps */
static void
t_outage_history(struct fixture *f)
{
    t_base(f);
    f->r.downlink_history_count = 4;
    for (size_t i = 0; i < 4; i++)
        f->r.downlink_history_bps[i] = 0;
}

static void
t_outage_hold(struct fixture *f)
{
    t_outage(f);
    hold(f, "efficientnet-b0");
}

/* 0.1 Mbit/s (0.09 planned), horizon 300 s: mobilenet takes 1173 s */
static void
t_short_horizon(struct fixture *f)
{
    t_base(f);
    f->r.downlink_bps = 1e5;
    f->r.has_downlink_bps = true;
    f->r.horizon_s = 300;
    f->r.has_horizon_s = true;
}

static void
t_short_horizon_hold(struct fixture *f)
{
    t_short_horizon(f);
    hold(f, "mobilenet-v1-1.0-224");
}

static void
fetch(struct fixture *f, const char *name, uint64_t done)
{
    memcpy(f->r.fetching_hex, variant_named(f, name)->blob_hex,
           PROTO_HEX_SIZE);
    f->r.fetching_bytes_done = done;
    f->r.has_fetching = true;
}

/* holding mobilenet, 90 of inception's 96 MB done: 6 MB left, 5.33 s,
 * cost 1.8: .706 * 5.33 + .779 * 1794.67 - 1.8 = 1400.0 over
 * efficientnet's .706 * 18.84 + .771 * 1781.16 - 6.36 = 1380.2 */
static void
t_fetch_resume(struct fixture *f)
{
    t_base(f);
    hold(f, "mobilenet-v1-1.0-224");
    fetch(f, "inception-v3", 90000000);
}

/* holding nothing, 60 of 96 MB done: 36 MB left, 32 s, cost 10.8:
 * .779 * 1768 - 10.8 = 1366.5, 0.4 under efficientnet's 1366.9: within
 * the hysteresis (9), so the download in flight is not aborted */
static void
t_fetch_near_best(struct fixture *f)
{
    t_base(f);
    fetch(f, "inception-v3", 60000000);
}

/* 10 of 96 MB: 86 MB left, cost 25.8: .779 * 1723.6 - 25.8 = 1316.9,
 * 50 under efficientnet: abort */
static void
t_fetch_abort(struct fixture *f)
{
    t_base(f);
    fetch(f, "inception-v3", 10000000);
}

/* fetching in an outage with nothing held: resume when it returns */
static void
t_fetch_outage(struct fixture *f)
{
    t_outage(f);
    fetch(f, "efficientnet-b0", 1000000);
}

/* efficientnet (21.2 MB in memory) against an int8 copy of 15 MB in
 * memory at .767: .767 * 1781.16 - 6.36 = 1359.8, 7.1 under efficientnet
 * (within the hysteresis 9). With a memory floor of 20 MB efficientnet
 * may not fit when memory drops: the copy wins. */
static void
t_int8(struct fixture *f)
{
    struct spec s = classification[1];
    struct proto_variant *v;

    t_base(f);
    s.name = "efficientnet-b0-int8";
    s.accuracy = 0.767;
    v = add_variant(f, &s);
    v->memory_bytes = 15000000;
}

static void
t_int8_floor(struct fixture *f)
{
    t_int8(f);
    f->r.memory_floor_bytes = 20000000;
    f->r.has_memory_floor_bytes = true;
}

/*
 * Memory history: 40 MB free now, holding mobilenet (13.2 MB), 16 minutes
 * of lows at 40 MB but for `dips` separate minutes at `low` bytes.
 * Under 18 MB efficientnet (21.2 MB) misses 2 or 4 minutes; mobilenet,
 * which always fitted, is the fallback (.706, 13.2 MB: cost 3.96).
 * efficientnet, 18.84 s away at 9 Mbit/s, held 1781.16 s:
 *   2 dips: fit 14/16, u = .771 * .875 + .706 * .125 = .762875; dips
 *   2 / 960 s * 1781.16 * (3.96 + 6.36) = 38.3; V = .706 * 18.84 +
 *   .762875 * 1781.16 - 6.36 - 38.3 = 1327.4 > .706 * 1800 = 1270.8 + 9
 *   4 dips: fit 12/16, u = .75475; dips 76.6; V = 1274.7: 3.9 more,
 *   within the hysteresis 9, where the variant that always fitted ranks
 *   first: keep
 * Under 10 MB nothing fits in the dips (no fallback): mobilenet .706 *
 * .75 * 1800 - 4 / 960 * 1800 * 3.96 = 923.4; efficientnet .5295 *
 * 18.84 + .57825 * 1781.16 - 6.36 - 4 / 960 * 1781.16 * 6.36 = 986.4
 */
static void
t_history(struct fixture *f, unsigned dips, uint64_t low)
{
    t_base(f);
    set_memory(f, 40000000);
    hold(f, "mobilenet-v1-1.0-224");
    f->r.memory_history_count = 16;
    for (size_t i = 0; i < 16; i++)
        f->r.memory_history_bytes[i] =
            i % 4 == 1 && i / 4 < dips ? low : 40000000;
}

static void
t_history_2_dips(struct fixture *f)
{
    t_history(f, 2, 18000000);
}

static void
t_history_4_dips(struct fixture *f)
{
    t_history(f, 4, 18000000);
}

static void
t_history_deep_dips(struct fixture *f)
{
    t_history(f, 4, 10000000);
}

/*
 * Holding a model that dips: efficientnet held, 40 MB free now, under
 * 18 MB in 6 single minutes of 16 (1, 3, ..., 11): fit 10/16, 6 dips.
 * Round trips every dip: u = .771 * .625 + .706 * .375 = .746625, V =
 * .746625 * 1800 - 6 / 960 * 1800 * (3.96 + 6.36) = 1343.9 - 116.1 =
 * 1227.8; mobilenet now (11.73 s) .746625 * 11.73 + .706 * 1788.27 - 3.96
 * = 1267.3, 39.5 more: before this rule, a move down ahead of the dips.
 * Keeping efficientnet until its next dip (.01 a second while it fits:
 * in 100 s on average, within the horizon with p = 1 - e^-18) and
 * mobilenet then: .771 * 100 + .706 * 1700 - 3.96 = 1273.34, more than
 * the move: keep. The move pays the same bytes now, and loses 100 s of
 * efficientnet.
 */
static void
t_history_hold_dipping(struct fixture *f)
{
    t_history(f, 0, 40000000);
    hold(f, "efficientnet-b0");
    for (size_t i = 1; i < 12; i += 2)
        f->r.memory_history_bytes[i] = 18000000;
}

/*
 * The same on a slow link, 0.1 Mbit/s (planned at 0.09): mobilenet
 * arrives after 1173.3 s, and efficientnet keeps running (and dipping)
 * until then. Its round trips cost 6 / 960 * 10.32 = .0645 a second
 * while it is held, a download's time too: mobilenet is worth .746625 *
 * 1173.3 - .0645 * 1173.3 + .706 * 626.7 - 3.96 = 1238.8, under keeping
 * it until its dip (1273.34): keep. Counted without them during the
 * download (as if current's dips stopped while mobilenet downloads),
 * 1314.5: a 20-minute move down.
 */
static void
t_history_hold_dipping_slow(struct fixture *f)
{
    t_history_hold_dipping(f);
    f->r.downlink_bps = 100000;
    f->r.has_downlink_bps = true;
}

/*
 * A dip under every variant with a download in flight: nothing held,
 * mobilenet (13.2 MB, the smallest) 5 MB done, 10 MB free now, 40 MB in
 * the 15 minutes before. Nothing meets the hard rules now, but mobilenet
 * fitted in 15 of 16 minutes: the download goes on (none would abort it
 * and lose its 5 MB).
 */
static void
t_dip_in_flight(struct fixture *f)
{
    t_base(f);
    set_memory(f, 10000000);
    fetch(f, "mobilenet-v1-1.0-224", 5000000);
    f->r.memory_history_count = 16;
    for (size_t i = 0; i < 16; i++)
        f->r.memory_history_bytes[i] = i < 15 ? 40000000 : 10000000;
}

/* The same without a memory history: nothing says it is a dip, none. */
static void
t_dip_in_flight_no_history(struct fixture *f)
{
    t_dip_in_flight(f);
    f->r.memory_history_count = 0;
}

/*
 * Degraded under dips. Detection, balanced, 40 MB, 15 GFLOP/s,
 * max_latency_ms 60: every variant misses the latency (all over budget,
 * so the score is the accuracy). ssd300 80 ms, violation 20 / 60 =
 * .3333; efficientdet 166.7 ms, 1.7778; fasterrcnn-mobilenet 1680 ms, 27
 * (the rest need over 40 MB). Degraded utility u / (1 + violation):
 * ssd300 .21 / 1.3333 = .1575, efficientdet .338 / 2.7778 = .12168.
 * Holding efficientdet; 16 minutes of lows at 40 MB but for `dips`
 * separate minutes at 20 MB, under ssd300's 27.2 MB (efficientdet's 15.6
 * always fits: the fallback, cost 4.68). ssd300: 27.2 MB at 9 Mbit/s
 * 24.18 s, cost 8.16; hysteresis .02 * 1800 = 36.
 *   no dips: V = .12168 * 24.18 + .1575 * 1775.82 - 8.16 = 274.5 over
 *     .12168 * 1800 = 219.0 + 36: the smallest violation pays, move
 *   4 dips: fit .75, u = .1575 * .75 + .12168 * .25 = .14855; round trips
 *     4 / 960 * 1775.82 * (4.68 + 8.16) = 95.0; V = 2.94 + 263.8 - 8.16
 *     - 95.0 = 163.6 under 219.0: the move does not pay, keep
 */
static void
t_degraded_dips(struct fixture *f, unsigned dips)
{
    t_base(f);
    set_latency(f, 60);
    set_memory(f, 40000000);
    f->r.gflops = 15;
    f->r.preference = PROTO_PREFER_BALANCED;
    hold(f, "efficientdet-d0");
    f->r.memory_history_count = 16;
    for (size_t i = 0; i < 16; i++)
        f->r.memory_history_bytes[i] =
            i % 4 == 1 && i / 4 < dips ? 20000000 : 40000000;
}

static void
t_degraded_no_dips(struct fixture *f)
{
    t_degraded_dips(f, 0);
}

static void
t_degraded_4_dips(struct fixture *f)
{
    t_degraded_dips(f, 4);
}

/* One dip, hysteresis_score .01 (18): fit 15/16, efficientdet runs in
 * the dip: u = .1575 * .9375 + .12168 * .0625 = .15527; round trips
 * 1 / 960 * 1775.82 * 12.84 = 23.75; V = 2.94 + 275.74 - 8.16 - 23.75 =
 * 246.8, 27.7 over 219.0: move. Were nothing to run in the dip (u =
 * .14766), V = 233.3, under 219.0 + 18. */
static void
t_degraded_1_dip(struct fixture *f)
{
    t_degraded_dips(f, 1);
    f->cfg.hysteresis_score = 0.01;
}

/*
 * Riding out a dip. The same UE holding ssd300, 20 MB free now (the last
 * minute), ssd300 under its need in 4 single minutes of 16 (this one
 * included): fit .75, dips last (1 - .75) / (4 / 960) = 60 s. Moving to
 * efficientdet (13.87 s, cost 4.68) is worth .12168 * 1786.13 - 4.68 =
 * 212.7; riding the dip out .1575 * .75 * (1800 - 60) = 205.5, within
 * the hysteresis 36; efficientdet for the dip only, (.12168 - .02) *
 * (60 - 13.87) = 4.7 (the hysteresis per second), does not pay for
 * 4.68 + 8.16: keep ssd300. One dip
 * of 8 minutes (fit .5, 480 s): riding out .1575 * .5 * 1320 = 104.0,
 * under 212.7 - 36: move.
 */
static void
t_ride(struct fixture *f, unsigned dips, unsigned last)
{
    t_degraded_dips(f, dips);
    hold(f, "ssd300-mobilenet");
    set_memory(f, 20000000);
    for (size_t i = 16 - last; i < 16; i++)
        f->r.memory_history_bytes[i] = 20000000;
}

static void
t_ride_short(struct fixture *f)
{
    t_ride(f, 3, 1);
}

/* The same dip with efficientdet in flight, 5 of 15.6 MB done (9.42 s,
 * cost 3.18 left: .12168 * 1790.58 - 3.18 = 214.7): riding out would
 * still be within the hysteresis, but a download in flight is not
 * aborted for it: resume. */
static void
t_ride_fetching(struct fixture *f)
{
    t_ride_short(f);
    fetch(f, "efficientdet-d0", 5000000);
}

static void
t_ride_long(struct fixture *f)
{
    t_ride(f, 0, 8);
}

/*
 * Quality, 15 MB free now, holding efficientnet (21.2 MB), under it in
 * the last minute only (of 16 at 40 MB): fit 15/16, the dip lasts 60 s.
 * Riding out .771 * .9375 * 1740 = 1257.7 is within the hysteresis 9 of
 * mobilenet's .706 * 1788.27 - 3.96 = 1258.6, but mobilenet runs 60 -
 * 11.73 s of the dip, (.706 - .005) * 48.27 = 33.8 over its 3.96 +
 * efficientnet's 6.36 again: moving for the dip pays.
 */
static void
t_ride_quality(struct fixture *f)
{
    t_history(f, 0, 40000000);
    hold(f, "efficientnet-b0");
    set_memory(f, 15000000);
    f->r.memory_history_bytes[15] = 15000000;
}

/*
 * Thermal throttling. Detection, 1 GB, holding efficientdet, 18 GFLOP/s
 * now; gflops_history 60 but for the last `slow` minutes at 18. Saver,
 * max_latency_ms 200 (energy unknown: its share is latency's, .8 in all):
 *   efficientdet 138.9 ms: .338 + .8 * (1 - .6944) = .58244
 *   ssd300        66.7 ms: .21  + .8 * (1 - .3333) = .74333
 * ssd300 (24.18 s, saver's bytes x3: cost 24.48) gains .16089 a second.
 * 2 slow minutes in one run: slowdowns last 120 s; the move pays only for
 * them: (.16089 - .02) * (120 - 24.18) = 13.5 under 24.48 + efficientdet
 * again 14.04: keep. 15 slow minutes (900 s): 123.4, move.
 */
static void
t_throttle(struct fixture *f, unsigned slow)
{
    t_base(f);
    set_latency(f, 200);
    f->r.preference = PROTO_PREFER_SAVER;
    f->r.gflops = 18;
    hold(f, "efficientdet-d0");
    f->r.gflops_history_count = 16;
    for (size_t i = 0; i < 16; i++)
        f->r.gflops_history[i] = i >= 16 - slow ? 18 : 60;
}

static void
t_throttle_short(struct fixture *f)
{
    t_throttle(f, 2);
}

static void
t_throttle_long(struct fixture *f)
{
    t_throttle(f, 15);
}

/*
 * A slowdown under which every variant misses max_latency_ms (degraded):
 * quality, 200 ms, 5 GFLOP/s now (60 lately), holding efficientdet (500
 * ms, violation 1.5: .338 / 2.5 = .1352 a second; 41.7 ms at 60 GFLOP/s);
 * ssd300 240 ms (violation .2: .21 / 1.2 = .175). Current still runs
 * meanwhile, so the move gains .0398 a second while the slowdown lasts:
 * 2 slow minutes, 120 s, (.0398 - .02) * (120 - 24.18) = 1.9 under 8.16
 * + efficientdet again 4.68: keep. (Before: ssd300 worth .1352 * 24.18 +
 * .175 * 1775.82 - 8.16 = 305.9 over the horizon, as if the slowdown
 * lasted all of it, against keeping's 243.4 + 36: it moved, and moved
 * back when compute returned.) 15 slow minutes, 900 s: 17.3, move.
 */
static void
t_throttle_degraded(struct fixture *f, unsigned slow)
{
    t_throttle(f, slow);
    f->r.preference = PROTO_PREFER_QUALITY;
    f->r.gflops = 5;
    for (size_t i = 16 - slow; i < 16; i++)
        f->r.gflops_history[i] = 5;
}

static void
t_throttle_degraded_short(struct fixture *f)
{
    t_throttle_degraded(f, 2);
}

static void
t_throttle_degraded_long(struct fixture *f)
{
    t_throttle_degraded(f, 15);
}

/*
 * Balanced, max_latency_ms 60, 30 GFLOP/s now (60 lately, 2 slow minutes:
 * 120 s, fit 14/16), metered (bytes x3): efficientdet 83.3 ms misses (41.7
 * at 60 GFLOP/s: only while slow); ssd300 40 ms is the one feasible,
 * .21 + .15 * (1 - 40/60) = .26, worth .338 * 24.18 + .26 * 1775.82 -
 * 24.48 = 445.4; riding the slowdown out .338 * .875 * 1680 = 496.9; ssd300
 * for the slowdown only (.26 - .02) * 95.82 = 23.0 under 24.48 + 14.04:
 * keep efficientdet, saying what it misses.
 */
static void
t_throttle_ride(struct fixture *f)
{
    t_throttle(f, 2);
    set_latency(f, 60);
    f->r.preference = PROTO_PREFER_BALANCED;
    f->r.gflops = 30;
    f->r.metered = true;
    for (size_t i = 14; i < 16; i++)
        f->r.gflops_history[i] = 30;
}

/*
 * The battery rule while charging. Balanced, 1 GB, 15 GFLOP/s,
 * max_latency_ms 30, holding mobilenet (18.67 ms) against efficientnet
 * (26 ms); energy unknown, so its share is latency's:
 *   balanced mobilenet .706 + .15 * (1 - 18.67/30) = .76267
 *            efficientnet .771 + .15 * (1 - 26/30) = .791
 *   saver    mobilenet .706 + .8 * .37778 = 1.00822
 *            efficientnet .771 + .8 * .13333 = .87767
 * Balanced moves: .76267 * 18.84 + .791 * 1781.16 - 6.36 = 1416.9
 * against .76267 * 1800 = 1372.8, 44.1 over the hysteresis 36. At 15 %
 * and charging, saver applies again when the UE is unplugged: as saver
 * the move gains (.87767 - 1.00822) * 1781.16 - 6.36 = -238.9; half each,
 * -97.4: keep mobilenet. At 25 % the UE stays balanced unplugged too:
 * move.
 */
static void
t_charging(struct fixture *f, double battery_percent)
{
    t_base(f);
    set_latency(f, 30);
    f->r.gflops = 15;
    f->r.preference = PROTO_PREFER_BALANCED;
    hold(f, "mobilenet-v1-1.0-224");
    f->r.has_battery_percent = true;
    f->r.battery_percent = battery_percent;
    f->r.charging = true;
}

static void
t_charging_low(struct fixture *f)
{
    t_charging(f, 15);
}

static void
t_charging_high(struct fixture *f)
{
    t_charging(f, 25);
}

/* 60 MB, 1 Mbit/s (0.9 planned), horizon 1800, metered (bytes x3).
 * saver (1, .4, .4, bytes x3, so x9): scores over vgg-16's 160 ms:
 *   efficientnet .771 + .8 * (1 - 3.9/160) = 1.5515, 188.4 s, cost 57.2
 *   mobilenet    .706 + .8 * (1 - 2.8/160) = 1.4920, 117.3 s, cost 35.6
 *   1.5515 * 1611.6 - 57.2 = 2443.2 < 1.4920 * 1682.7 - 35.6 = 2475.0 */
static void
t_saver_metered(struct fixture *f)
{
    slow_link_metered(f);
    f->r.explain_all = false;
    f->r.preference = PROTO_PREFER_SAVER;
}

/* the first row of the README's worked example: the 1 GB UE on the
 * demo's 4G link holding nothing gets efficientnet-b0 now */
static const struct select_case time_cases[] = {
    { "time: nothing held, small now", CLASSIFICATION, t_base,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CANDIDATE,
      "inception-v3",
      "does not pay: 0.779 after 85.3 s (96 MB at 9 Mbit/s, cost 28.8) is "
      "worth 1306.93 over 1800 s, chosen 1366.91" },
    { "time: small now, better later", CLASSIFICATION, t_slow_nothing,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_CHOSEN,
      NULL,
      "small now, better later: runs after 168 s (13.2 MB at 0.63 Mbit/s), "
      "efficientnet-b0 269 s later: worth 1466.5 over 1800 s, at once "
      "1394.55" },
    { "time: small now, better later, the second step", CLASSIFICATION,
      t_slow_nothing, PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0,
      false, -1, R_CANDIDATE, "efficientnet-b0",
      "later, after chosen: small now, this then, worth 1466.5, this at "
      "once 1394.55" },
    { "time: small now, better later, not for quality", CLASSIFICATION,
      t_slow_nothing_quality, PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0,
      false, -1, R_CHOSEN, NULL, "nothing runs now: runs after 269 s" },
    { "time: nothing held, says so", CLASSIFICATION, t_base,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "nothing runs now: runs after 18.8 s (21.2 MB at 9 Mbit/s)" },
    /* holding efficientnet: .771 * 1800 = 1387.8; inception
     * .771 * 85.33 + .779 * 1714.67 - 28.8 = 1372.7: gain .008 * 1714.67
     * = 13.7 does not pay for 28.8 */
    { "time: a switch that does not pay", CLASSIFICATION,
      t_hold_efficientnet, PROTO_ACTION_KEEP, "efficientnet-b0", 0, false,
      -1, R_CANDIDATE, "inception-v3",
      "does not pay: gain 0.008 over 1715 s after 85.3 s (96 MB at 9 "
      "Mbit/s) = 13.7, under cost 28.8 + hysteresis 9" },
    { "time: a day pays for inception", CLASSIFICATION,
      t_hold_efficientnet_day, PROTO_ACTION_DOWNLOAD, "inception-v3", 0,
      false, -1, R_CHOSEN, NULL,
      "switch pays: gain 0.008 over 86315 s after 85.3 s (96 MB at 9 "
      "Mbit/s) = 691 over cost 28.8" },
    { "time: a switch that pays", CLASSIFICATION, t_hold_mobilenet_fast,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "switch pays: gain 0.065 over 1798 s after 1.88 s (21.2 MB at 90 "
      "Mbit/s) = 117 over cost 6.36" },
    { "time: long horizon, nothing held, small now", CLASSIFICATION, t_long,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CHOSEN,
      NULL, "nothing runs now: runs after 18.8 s (21.2 MB at 9 Mbit/s)" },
    { "time: an older version held runs meanwhile", CLASSIFICATION,
      t_long_hold_old, PROTO_ACTION_DOWNLOAD, "inception-v3", 0, false, -1,
      R_CHOSEN, NULL,
      "held mobilenet-v1-1.0-224 version 1 runs meanwhile (not offered): "
      "gain 0.079 over 4915 s after 85.3 s (96 MB at 9 Mbit/s) = 388, cost "
      "28.8" },
    { "time: an older version held that does not fit runs nothing",
      CLASSIFICATION, t_long_hold_old_big, PROTO_ACTION_DOWNLOAD,
      "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "nothing runs now: runs after 18.8 s (21.2 MB at 9 Mbit/s)" },
    { "time: outage, nothing held", CLASSIFICATION, t_outage,
      PROTO_ACTION_NONE, NULL, 0, false, -1, R_CHOSEN, NULL,
      "network: no throughput now (downlink_bps 0); nothing can arrive, "
      "recheck in 15 s" },
    { "time: outage, candidates say why", CLASSIFICATION, t_outage,
      PROTO_ACTION_NONE, NULL, 0, false, -1, R_CANDIDATE, "efficientnet-b0",
      "horizon: no throughput now (downlink_bps 0); 21.2 MB cannot arrive" },
    { "time: outage in the samples, not in downlink_bps", CLASSIFICATION,
      t_outage_history, PROTO_ACTION_NONE, NULL, 0, false, -1, R_CHOSEN, NULL,
      "network: no throughput now (every downlink_history_bps sample 0); "
      "nothing can arrive, recheck in 15 s" },
    { "time: outage, holding", CLASSIFICATION, t_outage_hold,
      PROTO_ACTION_KEEP, "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "network: no throughput now (downlink_bps 0); keep, recheck in 15 s" },
    { "time: outage, in flight", CLASSIFICATION, t_fetch_outage,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "in flight: 1000000 of 21200000 bytes done; resume" },
    { "time: horizon too short", CLASSIFICATION, t_short_horizon,
      PROTO_ACTION_NONE, NULL, 0, false, -1, R_CHOSEN, NULL,
      "horizon: nothing that runs here can arrive within horizon_s 300 at "
      "0.09 Mbit/s" },
    { "time: horizon too short, holding", CLASSIFICATION,
      t_short_horizon_hold, PROTO_ACTION_KEEP, "mobilenet-v1-1.0-224", 0,
      false, -1, R_CANDIDATE, "efficientnet-b0",
      "horizon: 21.2 MB at 0.09 Mbit/s takes 1.88e+03 s, not within "
      "horizon_s 300" },
    { "time: in flight, resume", CLASSIFICATION, t_fetch_resume,
      PROTO_ACTION_DOWNLOAD, "inception-v3", 0, false, -1, R_CHOSEN, NULL,
      "in flight: 90000000 of 96000000 bytes done; resume" },
    { "time: in flight near the best, not aborted", CLASSIFICATION,
      t_fetch_near_best, PROTO_ACTION_DOWNLOAD, "inception-v3", 0, false, -1,
      R_CHOSEN, NULL, "in flight: 60000000 of 96000000 bytes done" },
    { "time: in flight far below the best, aborted", CLASSIFICATION,
      t_fetch_abort, PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1,
      R_NONE, NULL, NULL },
    { "time: memory, no floor", CLASSIFICATION, t_int8,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false, -1, R_NONE, NULL,
      NULL },
    { "time: memory floor", CLASSIFICATION, t_int8_floor,
      PROTO_ACTION_DOWNLOAD, "efficientnet-b0-int8", 0, false, -1,
      R_CANDIDATE, "efficientnet-b0",
      "memory: 21200000 bytes may not fit when memory drops; chosen's "
      "15000000 does" },
    { "time: memory history, 2 dips, the switch pays", CLASSIFICATION,
      t_history_2_dips, PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false,
      -1, R_CHOSEN, NULL,
      "memory: under 21200000 bytes in 2 of 16 minutes, 2 dips; round "
      "trips cost 38.3 over 1781 s" },
    { "time: memory history, 4 dips, the switch does not pay",
      CLASSIFICATION, t_history_4_dips, PROTO_ACTION_KEEP,
      "mobilenet-v1-1.0-224", 0, false, -1, R_CANDIDATE, "efficientnet-b0",
      "memory: under 21200000 bytes in 4 of 16 minutes, 4 dips; round "
      "trips cost 76.6 over 1781 s" },
    { "time: memory history, 4 dips, the one that always fits ranks first",
      CLASSIFICATION, t_history_4_dips, PROTO_ACTION_KEEP,
      "mobilenet-v1-1.0-224", 0, false, -1, R_CANDIDATE, "efficientnet-b0",
      "memory: 21200000 bytes may not fit when memory drops; chosen's "
      "13200000 does" },
    { "time: memory history, dips under every variant", CLASSIFICATION,
      t_history_deep_dips, PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0,
      false, -1, R_CANDIDATE, "mobilenet-v1-1.0-224",
      "memory: under 13200000 bytes in 4 of 16 minutes, 4 dips; round "
      "trips cost 29.7 over 1800 s" },
    { "time: memory history, a held model is kept until its dip",
      CLASSIFICATION, t_history_hold_dipping, PROTO_ACTION_KEEP,
      "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "memory: keeping it until its next dip (in 100 s on average) and the "
      "fallback then is worth 1273.34" },
    { "time: memory history, current's round trips count while a "
      "download runs", CLASSIFICATION, t_history_hold_dipping_slow,
      PROTO_ACTION_KEEP, "efficientnet-b0", 0, false, -1, R_CHOSEN, NULL,
      "memory: keeping it until its next dip (in 100 s on average) and the "
      "fallback then is worth 1273.34" },
    { "time: a dip under every variant, the download in flight goes on",
      CLASSIFICATION, t_dip_in_flight, PROTO_ACTION_DOWNLOAD,
      "mobilenet-v1-1.0-224", 0, true, -1, R_CHOSEN, NULL,
      "memory: needs 13200000 bytes, 10000000 free; nothing fits now, but "
      "it fitted in 94% of the minutes lately: the download in flight goes "
      "on" },
    { "time: nothing fits, no memory history: none", CLASSIFICATION,
      t_dip_in_flight_no_history, PROTO_ACTION_NONE, NULL, 0, false, -1,
      R_NONE, NULL, NULL },
    { "time: degraded, no dips, the smallest violation pays", DETECTION,
      t_degraded_no_dips, PROTO_ACTION_DOWNLOAD, "ssd300-mobilenet", 0, true,
      -1, R_CHOSEN, NULL, "degraded: smallest violation 0.333333" },
    { "time: degraded, 4 dips, the smallest violation does not pay",
      DETECTION, t_degraded_4_dips, PROTO_ACTION_KEEP, "efficientdet-d0", 0,
      true, -1, R_CANDIDATE, "ssd300-mobilenet",
      "memory: under 27200000 bytes in 4 of 16 minutes, 4 dips; round "
      "trips cost 95 over 1776 s" },
    { "time: degraded, the fallback runs in a dip", DETECTION,
      t_degraded_1_dip, PROTO_ACTION_DOWNLOAD, "ssd300-mobilenet", 0, true,
      -1, R_CHOSEN, NULL, "switch pays: gain 0.0336 over 1776 s after 24.2 "
      "s (27.2 MB at 9 Mbit/s) = 59.6 over cost 8.16" },
    { "time: degraded, 4 dips, says so", DETECTION, t_degraded_4_dips,
      PROTO_ACTION_KEEP, "efficientdet-d0", 0, true, -1, R_CANDIDATE,
      "ssd300-mobilenet", "does not pay: gain 0.0269 over 1776 s after 24.2 "
      "s (27.2 MB at 9 Mbit/s) = 47.7, under cost 8.16 + hysteresis 36" },
    { "time: a short dip, ridden out", DETECTION, t_ride_short,
      PROTO_ACTION_KEEP, "ssd300-mobilenet", 0, true, -1, R_CHOSEN, NULL,
      "keep: needs 27200000 bytes, 20000000 free; its dips last 60 s: "
      "riding this out is worth 205.538 over 1800 s, efficientdet-d0 "
      "212.657" },
    { "time: a short dip, the move does not pay", DETECTION, t_ride_short,
      PROTO_ACTION_KEEP, "ssd300-mobilenet", 0, true, -1, R_CANDIDATE,
      "efficientdet-d0",
      "does not pay: worth 212.657 over 1800 s, riding out current's dip "
      "(60 s) 205.538" },
    { "time: a short dip, a download in flight resumes", DETECTION,
      t_ride_fetching, PROTO_ACTION_DOWNLOAD, "efficientdet-d0", 0, true, -1,
      R_CHOSEN, NULL, "in flight: 5000000 of 15600000 bytes done; resume" },
    { "time: a long dip, move", DETECTION, t_ride_long,
      PROTO_ACTION_DOWNLOAD, "efficientdet-d0", 0, true, -1, R_NONE, NULL,
      NULL },
    { "time: a short dip that pays a move", CLASSIFICATION, t_ride_quality,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_NONE,
      NULL, NULL },
    { "time: a short slowdown, the switch it causes does not pay",
      DETECTION, t_throttle_short, PROTO_ACTION_KEEP, "efficientdet-d0", 0,
      false, -1, R_CHOSEN, NULL,
      "keep: 18 GFLOP/s now, 60 lately; slowdowns last 120 s, too short for "
      "ssd300-mobilenet to pay back 24.5 + 14" },
    { "time: a long slowdown, move", DETECTION, t_throttle_long,
      PROTO_ACTION_DOWNLOAD, "ssd300-mobilenet", 0, false, -1, R_NONE, NULL,
      NULL },
    { "time: a short slowdown ridden out", DETECTION, t_throttle_ride,
      PROTO_ACTION_KEEP, "efficientdet-d0", 0, false, -1, R_VIOLATIONS, NULL,
      "latency: 83.3333 ms over max_latency_ms 60" },
    { "time: degraded by a short slowdown, current runs meanwhile: keep",
      DETECTION, t_throttle_degraded_short, PROTO_ACTION_KEEP,
      "efficientdet-d0", 0, true, -1, R_CHOSEN, NULL,
      "keep: 5 GFLOP/s now, 60 lately; slowdowns last 120 s, too short for "
      "ssd300-mobilenet to pay back 8.16 + 4.68" },
    { "time: degraded by a long slowdown, move", DETECTION,
      t_throttle_degraded_long, PROTO_ACTION_DOWNLOAD, "ssd300-mobilenet", 0,
      true, -1, R_NONE, NULL, NULL },
    { "time: low battery, charging: a move saver would undo waits",
      CLASSIFICATION, t_charging_low, PROTO_ACTION_KEEP,
      "mobilenet-v1-1.0-224", 0, false, -1, R_CHOSEN, NULL,
      "keep: battery 15% and charging, saver again when unplugged; "
      "efficientnet-b0 gains 44.1 as balanced, -239 as saver: half each "
      "-97.4, not over hysteresis 36" },
    { "time: charging above the low battery level, move", CLASSIFICATION,
      t_charging_high, PROTO_ACTION_DOWNLOAD, "efficientnet-b0", 0, false,
      -1, R_CHOSEN, NULL, "switch pays: gain 0.0283 over 1781 s" },
    { "time: saver, metered slow link", CLASSIFICATION, t_saver_metered,
      PROTO_ACTION_DOWNLOAD, "mobilenet-v1-1.0-224", 0, false, -1, R_CHOSEN,
      NULL, "network: metered, transfer cost x3" },
    { "time: exit reason", CLASSIFICATION, full_exits_lat_100,
      PROTO_ACTION_DOWNLOAD, "inception-v3", 0, false, -1, R_CANDIDATE,
      "vgg-16",
      "latency: full network 160 ms over max_latency_ms 100; exit 1 at 90 "
      "ms" },
};

static const struct proto_candidate *
candidate_named(const struct fixture *f, const struct proto_decision *d,
                const char *name)
{
    for (size_t i = 0; i < d->candidate_count; i++)
        if (strcmp(f->v[d->candidates[i].variant].name, name) == 0)
            return &d->candidates[i];
    return NULL;
}

START_TEST(test_policy_select_time_cases)
{
    const struct select_case *c = &time_cases[_i];
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_for(c, &f);
    decide(&f, &d, cands);
    ck_assert_msg(d.action == c->action, "%s: action %d, want %d", c->what,
                  d.action, c->action);
    if (c->variant)
        ck_assert_msg(strcmp(f.v[d.chosen].name, c->variant) == 0,
                      "%s: chose %s, want %s", c->what, f.v[d.chosen].name,
                      c->variant);
    ck_assert_int_eq(d.degraded, c->degraded);
    if (f.r.has_downlink_bps && f.r.downlink_bps == 0)
        ck_assert_uint_eq(d.recheck_after_s, f.cfg.recheck_outage_s);
    if (c->setup == t_slow_nothing) /* when mobilenet runs: 167.6 s */
        ck_assert_uint_eq(d.recheck_after_s, 168);
    assert_reason(c, &d, c->cand ? candidate_named(&f, &d, c->cand) : NULL);
}
END_TEST

/* A held version that is not offered (an older one, or one whose rollout
 * no longer covers the UE) runs meanwhile but is never a candidate: every
 * other offered name is listed (explain all), none is the held blob. */
static void (*const held_setups[])(struct fixture *) = {
    rollout_in_hold_v1, t_long_hold_old, t_long_hold_old_big,
};

START_TEST(test_policy_select_held_not_candidate)
{
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    held_setups[_i](&f);
    f.r.explain_all = true;
    decide(&f, &d, cands);
    ck_assert_int_eq(d.action, PROTO_ACTION_DOWNLOAD);
    ck_assert_uint_lt(d.chosen, f.n);
    ck_assert_str_ne(f.v[d.chosen].blob_hex, f.r.current_hex);
    ck_assert_uint_eq(d.candidate_count, name_count(&f) - 1);
    for (size_t i = 0; i < d.candidate_count; i++) {
        ck_assert_uint_lt(cands[i].variant, f.n);
        ck_assert_str_ne(f.v[cands[i].variant].blob_hex, f.r.current_hex);
        ck_assert(!cands[i].is_current);
    }
}
END_TEST

/* ---- a held version that is not offered, when nothing offered starts -- */

/* the older mobilenet held (t_long_hold_old's), at the default horizon */
static struct proto_variant *
old_base(struct fixture *f)
{
    t_base(f);
    return hold_old(f, "mobilenet-v1-1.0-224", 0.70);
}

static void
old_outage(struct fixture *f)
{
    old_base(f);
    f->r.downlink_bps = 0;
    f->r.has_downlink_bps = true;
}

/* 1 kbit/s: 13.2 MB take 1.2e5 s, nothing arrives within 1800 s */
static void
old_slow(struct fixture *f)
{
    old_base(f);
    f->r.downlink_bps = 1000;
    f->r.has_downlink_bps = true;
}

/* built for 2 GB: it does not run on this device */
static void
old_outage_big(struct fixture *f)
{
    old_outage(f);
    f->old[0].memory_bytes = 2000000000;
}

/* its format is not the device's (the offered ones are) */
static void
old_outage_format(struct fixture *f)
{
    old_outage(f);
    snprintf(f->old[0].format, sizeof(f->old[0].format), "coreml");
    snprintf(f->r.formats[0], sizeof(f->r.formats[0]), "tflite");
    snprintf(f->r.formats[1], sizeof(f->r.formats[1]), "onnx");
    f->r.format_count = 2;
    f->r.has_formats = true;
}

/* it needs an accelerator the device lacks (an accelerator the device
 * has is one no offered version names) */
static void
old_outage_accelerator(struct fixture *f)
{
    old_outage(f);
    snprintf(f->old[0].accelerators[0], sizeof(f->old[0].accelerators[0]),
             "npu");
    f->old[0].accelerator_count = 1;
    snprintf(f->r.accelerators[0], sizeof(f->r.accelerators[0]), "dsp");
    f->r.accelerator_count = 1;
}

/* ... and the same version on a device that has it */
static void
old_outage_accelerator_ok(struct fixture *f)
{
    old_outage_accelerator(f);
    snprintf(f->r.accelerators[1], sizeof(f->r.accelerators[1]), "npu");
    f->r.accelerator_count = 2;
}

/* measured at 500 ms on the report's class (max_latency_ms 100): it runs,
 * missing the latency rule; the class only it names */
static void
old_outage_class_latency(struct fixture *f)
{
    old_outage(f);
    snprintf(f->old[0].latency_ms[0].device_class,
             sizeof(f->old[0].latency_ms[0].device_class), "old-class");
    f->old[0].latency_ms[0].value = 500;
    f->old[0].latency_count = 1;
    snprintf(f->r.device_class, sizeof(f->r.device_class), "old-class");
    f->r.has_device_class = true;
}

/* no offered version meets the hard rules here (they are all onnx now),
 * the held tflite one does: the link is fine */
static void
old_no_offered(struct fixture *f)
{
    old_base(f);
    for (size_t i = 0; i < f->n; i++)
        snprintf(f->v[i].format, sizeof(f->v[i].format), "onnx");
    snprintf(f->r.formats[0], sizeof(f->r.formats[0]), "tflite");
    f->r.format_count = 1;
    f->r.has_formats = true;
}

/* the staged rollout's v1, held by a UE the rollout of v2 covers (v1 is
 * not offered to it), in an outage */
static void
old_outage_rollout(struct fixture *f)
{
    rollout_in_hold_v1(f);
    f->cfg.horizon_s = 1800;
    f->r.explain_all = false;
    f->r.downlink_bps = 0;
    f->r.has_downlink_bps = true;
}

static const struct old_keep_case {
    const char *what;
    void (*setup)(struct fixture *);
    enum proto_action action;
    int chosen;                 /* >= 0: f.v index; -1 - j: f.old[j] */
    bool degraded;
    bool outage_recheck;        /* recheck_outage_s, else the action's */
    const char *reason;         /* in the decision's reasons */
    const char *violation;      /* in its violations, or NULL */
} old_keep_cases[] = {
    { "held older, outage: keep it", old_outage, PROTO_ACTION_KEEP, -1,
      false, true,
      "keep: held mobilenet-v1-1.0-224 version 1 runs until a download "
      "can finish (not offered)", NULL },
    { "held older, outage: says why", old_outage, PROTO_ACTION_KEEP, -1,
      false, true,
      "network: no throughput now (downlink_bps 0); keep, recheck in 15 s",
      NULL },
    { "held older, nothing arrives within the horizon: keep it", old_slow,
      PROTO_ACTION_KEEP, -1, false, true,
      "horizon: nothing that runs here can arrive within horizon_s 1800 at "
      "0.0009 Mbit/s", NULL },
    { "held older, nothing offered runs here: keep it", old_no_offered,
      PROTO_ACTION_KEEP, -1, false, false,
      "keep: held mobilenet-v1-1.0-224 version 1 runs (not offered); no "
      "offered version meets the hard rules here", NULL },
    { "held older, measured too slow on its class: keep it, degraded",
      old_outage_class_latency, PROTO_ACTION_KEEP, -1, true, true,
      "keep: held mobilenet-v1-1.0-224 version 1 runs until",
      "latency: 500 ms over max_latency_ms 100" },
    { "held older on a device with its accelerator: keep it",
      old_outage_accelerator_ok, PROTO_ACTION_KEEP, -1, false, true,
      "keep: held mobilenet-v1-1.0-224 version 1 runs until", NULL },
    { "held v1 outside the rollout, outage: keep it", old_outage_rollout,
      PROTO_ACTION_KEEP, 1, false, true,
      "keep: held mobilenet-v1-1.0-224 version 1 runs until", NULL },
    { "held older too big, outage: none", old_outage_big, PROTO_ACTION_NONE,
      0, false, true,
      "network: no throughput now (downlink_bps 0); nothing can arrive",
      NULL },
    { "held older of another format, outage: none", old_outage_format,
      PROTO_ACTION_NONE, 0, false, true,
      "network: no throughput now (downlink_bps 0); nothing can arrive",
      NULL },
    { "held older needing a missing accelerator, outage: none",
      old_outage_accelerator, PROTO_ACTION_NONE, 0, false, true,
      "network: no throughput now (downlink_bps 0); nothing can arrive",
      NULL },
};

/*
 * Nothing offered can start: a held version that is not offered and meets
 * the hard rules is kept (action keep of it, not none, which says nothing
 * runs), with its own estimates; one that misses a hard rule (memory,
 * format, accelerator: compared by the table's ids) is not valued, and
 * the answer stays none. Either way every offered name is listed (explain
 * all) and none of them is the held version.
 */
START_TEST(test_policy_select_old_keep)
{
    const struct old_keep_case *c = &old_keep_cases[_i];
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    c->setup(&f);
    for (int all = 0; all < 2; all++) {
        f.r.explain_all = all;
        decide(&f, &d, cands);
        ck_assert_msg(d.action == c->action, "%s: action %d, want %d",
                      c->what, d.action, c->action);
        ck_assert_msg(reasons_have(&d.reasons, c->reason),
                      "%s: reasons lack \"%s\" (have \"%s\" | \"%s\")",
                      c->what, c->reason,
                      d.reasons.count ? d.reasons.text[0] : "",
                      d.reasons.count > 1 ? d.reasons.text[1] : "");
        ck_assert_int_eq(d.degraded, c->degraded);
        if (c->violation)
            ck_assert_msg(reasons_have(&d.violations, c->violation),
                          "%s: violations lack \"%s\"", c->what,
                          c->violation);
        ck_assert_uint_eq(d.recheck_after_s,
                          c->outage_recheck ? f.cfg.recheck_outage_s
                                            : f.cfg.recheck_degraded_s);
        if (c->action == PROTO_ACTION_KEEP) {
            const struct proto_variant *held =
                c->chosen >= 0 ? &f.v[c->chosen] : &f.old[-1 - c->chosen];

            ck_assert_uint_eq(d.chosen, c->chosen >= 0
                                            ? (size_t)c->chosen
                                            : f.n + (size_t)(-1 - c->chosen));
            ck_assert_str_eq(held->blob_hex, f.r.current_hex);
            ck_assert_uint_eq(d.estimates.memory_bytes, held->memory_bytes);
            ck_assert_double_eq(d.estimates.download_s, 0);
            ck_assert_double_eq(d.estimates.latency_ms,
                                held->latency_count
                                    ? held->latency_ms[0].value
                                    : held->flops / 100e9 * 1000);
        }
        /* all: every offered name listed (none is chosen), none the
         * held version */
        if (all)
            ck_assert_uint_eq(d.candidate_count, name_count(&f));
        for (size_t i = 0; i < d.candidate_count; i++) {
            ck_assert_uint_lt(cands[i].variant, f.n);
            ck_assert_str_ne(f.v[cands[i].variant].blob_hex,
                             f.r.current_hex);
        }
    }
}
END_TEST

/*
 * Older versions get rows in the table (after the variants') but never
 * compete: a 200-variant family (the screened walks, plain and not) whose
 * held older version of m000 is better than every offered one is answered
 * as if it had no row, counting: every offered version listed or counted
 * by cause, the older not; the table's requirement counts and bitmaps
 * cover the 200 variants only. In an outage the held version is kept.
 */
START_TEST(test_policy_select_old_rows_not_walked)
{
    static struct proto_variant vs[200], old[1];
    static struct proto_candidate cands[200];
    static max_align_t buf[(1 << 20) / sizeof(max_align_t)];
    struct policy_config cfg;
    struct proto_report r;
    struct proto_decision d;
    struct policy_input in = { .family = "big", .variants = vs,
                               .variant_count = 200, .older = old,
                               .older_count = 1 };
    const struct policy_table *t;
    size_t offered, bits = 0, reqs = 0;

    policy_config_default(&cfg);
    memset(vs, 0, sizeof(vs));
    for (unsigned i = 0; i < 200; i++) {
        snprintf(vs[i].name, sizeof(vs[i].name), "m%03u", i);
        hex_of(i + 1, vs[i].blob_hex);
        vs[i].version = 2;
        vs[i].size_bytes = 1000000 + 100000 * (uint64_t)i;
        vs[i].memory_bytes = vs[i].size_bytes;
        vs[i].flops = 1e8 * (1 + i % 50);
        vs[i].accuracy = 0.5 + 0.002 * i;
        vs[i].rollout_percent = 100;
        snprintf(vs[i].format, sizeof(vs[i].format), "tflite");
    }
    /* m000 version 1: the best accuracy, another format and class */
    old[0] = vs[0];
    old[0].version = 1;
    old[0].accuracy = 0.99;
    hex_of(999, old[0].blob_hex);
    snprintf(old[0].format, sizeof(old[0].format), "onnx");
    snprintf(old[0].latency_ms[0].device_class,
             sizeof(old[0].latency_ms[0].device_class), "old-class");
    old[0].latency_ms[0].value = 1;
    old[0].latency_count = 1;
    memset(&r, 0, sizeof(r));
    r.memory_bytes = 15000000;
    r.gflops = 100;
    r.max_latency_ms = 30;
    r.has_max_latency_ms = true;
    memcpy(r.current_hex, old[0].blob_hex, PROTO_HEX_SIZE);
    r.has_current = true;

    ck_assert_uint_le(policy_table_size(&in), sizeof(buf));
    t = policy_table_build(&in, buf, sizeof(buf));
    ck_assert_ptr_nonnull(t);
    in.table = t;
    ck_assert(t->has_columns);
    for (size_t q = 0; q < t->req_count; q++) {
        reqs += t->reqs[q].variant_count;
        for (size_t w = 0; w < t->req_words; w++)
            bits += (size_t)__builtin_popcountll(
                t->req_bits[q * t->req_words + w]);
    }
    ck_assert_uint_eq(reqs, 200);
    ck_assert_uint_eq(bits, 200);
    ck_assert_uint_eq(t->req_count, 1);  /* onnx has none */

    for (int outage = 0; outage < 2; outage++) {
        r.downlink_bps = 0;
        r.has_downlink_bps = outage;
        memset(&d, 0, sizeof(d));
        d.candidates = cands;
        d.candidate_reasons = cand_reasons;
        ck_assert_int_eq(policy_select(&cfg, &in, &r, &d), POLICY_OK);
        offered = d.candidate_count + d.omitted_count;
        if (outage) {
            ck_assert_int_eq(d.action, PROTO_ACTION_KEEP);
            ck_assert_uint_eq(d.chosen, 200);
            ck_assert_uint_eq(offered, 200);
            ck_assert(reasons_have(&d.reasons, "keep: held m000 version 1"));
        } else {
            ck_assert_int_eq(d.action, PROTO_ACTION_DOWNLOAD);
            ck_assert_uint_lt(d.chosen, 200);
            ck_assert_uint_eq(offered, 199);
            ck_assert(reasons_have(&d.reasons,
                                   "held m000 version 1 runs meanwhile"));
        }
        for (size_t i = 0; i < d.candidate_count; i++)
            ck_assert_uint_lt(cands[i].variant, 200);
    }
}
END_TEST

static const struct estimate_bps_case {
    double downlink_bps;        /* < 0: absent */
    double history[4];
    size_t history_count;
    double want;
} bps_cases[] = {
    { -1, {0}, 0, 9e6 },                    /* default 10 Mbit/s x 0.9 */
    { 20e6, {0}, 0, 18e6 },
    { 0, {5e6, 5e6}, 2, 0 },                /* an outage now */
    /* harmonic mean of 10 and 1 Mbit/s: 2 / (1e-7 + 1e-6) = 1.818 */
    { 20e6, {10e6, 1e6}, 2, 0.9 * 2 / 1.1e-6 },
    { 1e6, {10e6, 10e6}, 2, 0.9e6 },        /* now is lower */
    /* one of two samples an outage: 10 Mbit/s x 1/2 */
    { -1, {10e6, 0}, 2, 4.5e6 },
    { -1, {0, 0}, 2, 0 },
};

START_TEST(test_policy_throughput_estimate_cases)
{
    const struct estimate_bps_case *c = &bps_cases[_i];
    struct policy_config cfg;
    struct proto_report r;

    policy_config_default(&cfg);
    memset(&r, 0, sizeof(r));
    if (c->downlink_bps >= 0) {
        r.downlink_bps = c->downlink_bps;
        r.has_downlink_bps = true;
    }
    for (size_t i = 0; i < c->history_count; i++)
        r.downlink_history_bps[i] = c->history[i];
    r.downlink_history_count = c->history_count;
    ck_assert_double_eq_tol(policy_throughput_estimate(&cfg, &r), c->want,
                            1e-6 * (c->want + 1));
}
END_TEST

/* A family of 200 variants: the default answer lists the best
 * runner_ups and counts the rest by cause; explain all lists all 199;
 * both choose the same. */
START_TEST(test_policy_select_large_family)
{
    static struct proto_variant vs[200];
    static struct proto_candidate cands[200], listed[5];
    struct policy_config cfg;
    struct proto_report r;
    struct proto_decision d, all;
    struct policy_input in = { .family = "big", .variants = vs,
                               .variant_count = 200 };
    size_t sum = 0;
    size_t chosen;

    policy_config_default(&cfg);
    memset(vs, 0, sizeof(vs));
    for (unsigned i = 0; i < 200; i++) {
        snprintf(vs[i].name, sizeof(vs[i].name), "m%03u", i);
        hex_of(i + 1, vs[i].blob_hex);
        vs[i].version = 1;
        vs[i].size_bytes = 1000000 + 100000 * (uint64_t)i;
        vs[i].memory_bytes = vs[i].size_bytes;
        vs[i].flops = 1e8 * (1 + i % 50);
        vs[i].accuracy = 0.5 + 0.002 * i;
        vs[i].rollout_percent = 100;
    }
    memset(&r, 0, sizeof(r));
    r.memory_bytes = 15000000;      /* m000..m140 fit */
    r.gflops = 100;
    r.max_latency_ms = 30;          /* flops up to 3e9 */
    r.has_max_latency_ms = true;

    with_table(&in);
    memset(&d, 0, sizeof(d));
    d.candidates = cands;
    d.candidate_reasons = cand_reasons;
    ck_assert_int_eq(policy_select(&cfg, &in, &r, &d), POLICY_OK);
    ck_assert_int_eq(d.action, PROTO_ACTION_DOWNLOAD);
    chosen = d.chosen;
    ck_assert_uint_eq(d.candidate_count, 5);
    ck_assert_uint_eq(d.omitted_count, 194);
    for (size_t i = 0; i < PROTO_CAUSE_COUNT; i++)
        sum += d.omitted[i];
    ck_assert_uint_eq(sum, 194);
    ck_assert_uint_eq(d.omitted[PROTO_CAUSE_MEMORY], 59);
    ck_assert_uint_gt(d.omitted[PROTO_CAUSE_LATENCY], 0);
    ck_assert_uint_gt(d.omitted[PROTO_CAUSE_OUTRANKED], 0);
    for (size_t i = 0; i < d.candidate_count; i++) {
        ck_assert(cands[i].feasible);
        ck_assert_uint_gt(d.candidate_reasons[i].count, 0);
        ck_assert_uint_ne(cands[i].variant, chosen);
        listed[i] = cands[i];
    }

    r.explain_all = true;
    memset(&all, 0, sizeof(all));
    all.candidates = cands;
    all.candidate_reasons = cand_reasons;
    ck_assert_int_eq(policy_select(&cfg, &in, &r, &all), POLICY_OK);
    ck_assert_uint_eq(all.chosen, chosen);
    ck_assert_uint_eq(all.candidate_count, 199);
    ck_assert_uint_eq(all.omitted_count, 0);
    /* input order, the chosen one left out */
    for (size_t i = 1; i < all.candidate_count; i++)
        ck_assert_uint_gt(cands[i].variant, cands[i - 1].variant);
    /* the runner-ups are worth at least what every feasible one left out
     * is (up to the hysteresis, within which one that keeps fitting when
     * memory drops ranks first) */
    for (size_t j = 0; j < all.candidate_count; j++) {
        bool is_listed = false;

        for (size_t i = 0; i < d.candidate_count; i++)
            is_listed = is_listed || listed[i].variant == cands[j].variant;
        for (size_t i = 0; cands[j].feasible && !is_listed &&
                           i < d.candidate_count; i++)
            ck_assert(listed[i].value >=
                      cands[j].value - cfg.hysteresis_accuracy * 1800);
    }
}
END_TEST

/* policy_runner_ups = 0 (the config allows it): nothing is listed and
 * every entry but the chosen one is counted by cause; the runner-up
 * selection used to read the worst of an empty list (top_tier[-1]). */
START_TEST(test_policy_select_no_runner_ups)
{
    static struct proto_variant vs[100];
    static struct proto_candidate cands[100];
    struct policy_config cfg;
    struct proto_report r;
    struct proto_decision d;
    struct policy_input in = { .family = "none", .variants = vs,
                               .variant_count = 100 };

    policy_config_default(&cfg);
    cfg.runner_ups = 0;
    memset(vs, 0, sizeof(vs));
    for (unsigned i = 0; i < 100; i++) {
        snprintf(vs[i].name, sizeof(vs[i].name), "m%03u", i);
        hex_of(i + 1, vs[i].blob_hex);
        vs[i].version = 1;
        vs[i].size_bytes = 1000000 + 100000 * (uint64_t)i;
        vs[i].flops = 1e8 * (1 + i % 50);
        vs[i].accuracy = 0.5 + 0.002 * i;
        vs[i].rollout_percent = 100;
    }
    memset(&r, 0, sizeof(r));
    r.memory_bytes = 8000000;
    r.gflops = 100;
    with_table(&in);
    for (int full = 0; full < 2; full++) {
        size_t sum = 0;

        memset(&d, 0, sizeof(d));
        d.candidates = cands;
        d.candidate_reasons = cand_reasons;
        ck_assert_int_eq(full ? policy_select_full(&cfg, &in, &r, &d)
                              : policy_select(&cfg, &in, &r, &d),
                         POLICY_OK);
        ck_assert_int_eq(d.action, PROTO_ACTION_DOWNLOAD);
        ck_assert_uint_eq(d.candidate_count, 0);
        ck_assert_uint_eq(d.omitted_count, 99);
        for (size_t i = 0; i < PROTO_CAUSE_COUNT; i++)
            sum += d.omitted[i];
        ck_assert_uint_eq(sum, 99);
        ck_assert_uint_eq(d.omitted[PROTO_CAUSE_MEMORY], 29); /* m071.. */
    }
}
END_TEST

/* ---- estimates ---------------------------------------------------------- */

static const struct estimate_case {
    void (*setup)(struct fixture *f);
    double latency_ms;
    double download_s;
    uint64_t memory_bytes;
    bool has_energy_mj;
    double energy_mj;
} estimate_cases[] = {
    /* inception-v3: 5.7e9 / 1e11 s = 57 ms; 96e6 * 8 / 1e7 = 76.8 s */
    { lat_100, 57, 76.8, 96000000, false, 0 },
    /* vgg-16 exit 1: 9e9 / 1e11 s = 90 ms; 552e6 * 8 / 1e7 = 441.6 s */
    { vgg_lat_100, 90, 441.6, 552000000, false, 0 },
    /* the 2 MB delta: 2e6 * 8 / 1e7 + 40 / 1000 = 1.64 s */
    { delta_from_mobilenet, 3.9, 1.64, 21200000, false, 0 },
    /* kept: nothing to download */
    { hold_efficientnet, 3.9, 0, 21200000, false, 0 },
    /* 2000 mW * 2.8 ms = 5.6 mJ */
    { energy_power, 2.8, 10.56, 13200000, true, 5.6 },
    /* measured on npu-class-a: 5 mJ, latency 3.9 from flops */
    { energy_measured, 3.9, 16.96, 21200000, true, 5.0 },
};

START_TEST(test_policy_select_estimates)
{
    const struct estimate_case *c = &estimate_cases[_i];
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    c->setup(&f);
    decide(&f, &d, cands);
    ck_assert_double_eq_tol(d.estimates.latency_ms, c->latency_ms, 1e-9);
    ck_assert_double_eq_tol(d.estimates.download_s, c->download_s, 1e-9);
    ck_assert_uint_eq(d.estimates.memory_bytes, c->memory_bytes);
    ck_assert_int_eq(d.estimates.has_energy_mj, c->has_energy_mj);
    if (c->has_energy_mj)
        ck_assert_double_eq_tol(d.estimates.energy_mj, c->energy_mj, 1e-9);
}
END_TEST

START_TEST(test_policy_select_delta_index)
{
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    delta_from_mobilenet(&f);
    /* a delta to another target first: the index must be the right one */
    f.d[1] = f.d[0];
    f.d[0].size_bytes = 1;
    memcpy(f.d[0].to_hex, variant_named(&f, "vgg-16")->blob_hex,
           PROTO_HEX_SIZE);
    f.nd = 2;
    decide(&f, &d, cands);
    ck_assert_int_eq(d.action, PROTO_ACTION_DELTA);
    ck_assert_uint_eq(d.delta, 1);
}
END_TEST

/* Memory from size_bytes when the variant gives no memory_bytes. */
START_TEST(test_policy_select_memory_from_size)
{
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    mem_60mb(&f);
    /* efficientnet's file is 70 MB with no footprint given: rejected */
    variant_named(&f, "efficientnet-b0")->memory_bytes = 0;
    variant_named(&f, "efficientnet-b0")->size_bytes = 70000000;
    decide(&f, &d, cands);
    ck_assert_str_eq(f.v[d.chosen].name, "densenet-169");
}
END_TEST

/* Holding a blob that is not the offered version keeps nothing. */
START_TEST(test_policy_select_rollout_current_not_offered)
{
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    rollout_out(&f);
    memcpy(f.r.current_hex, f.v[0].blob_hex, PROTO_HEX_SIZE); /* v2 */
    f.r.has_current = true;
    decide(&f, &d, cands);
    ck_assert_int_eq(d.action, PROTO_ACTION_DOWNLOAD);
    ck_assert_int_eq(f.v[d.chosen].version, 1);
}
END_TEST

/* ---- rollout buckets ------------------------------------------------- */

/* Values from an independent FNV-1a 64 implementation (Python). */
static const struct bucket_case {
    const char *family;
    const char *ue;
    unsigned bucket;
} bucket_cases[] = {
    { CLASSIFICATION, "ue-1", 2 },
    { CLASSIFICATION, "ue-2", 91 },
    { CLASSIFICATION, "alice", 66 },
    { DETECTION, "ue-1", 53 },
    { DETECTION, "bob", 92 },
};

START_TEST(test_policy_rollout_bucket_values)
{
    const struct bucket_case *c = &bucket_cases[_i];

    ck_assert_uint_eq(policy_rollout_bucket(c->family, c->ue), c->bucket);
    ck_assert_uint_eq(policy_rollout_bucket(c->family, c->ue), c->bucket);
}
END_TEST

/* The bucket is FNV-1a 64 (tested against the published vectors in
 * check_proto) of family, 0x1f and ue, modulo 100, as the README says. */
START_TEST(test_policy_rollout_bucket_is_fnv1a)
{
    char buf[96];
    char ue[16];

    for (unsigned i = 0; i < 200; i++) {
        snprintf(ue, sizeof(ue), "ue-%u", i);
        snprintf(buf, sizeof(buf), "%s\x1f%s", CLASSIFICATION, ue);
        ck_assert_uint_eq(policy_rollout_bucket(CLASSIFICATION, ue),
                          proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, buf) % 100);
    }
}
END_TEST

START_TEST(test_policy_rollout_bucket_share)
{
    char ue[32];
    unsigned in = 0;

    for (unsigned i = 0; i < 10000; i++) {
        snprintf(ue, sizeof(ue), "ue-%u", i);
        if (policy_rollout_bucket(CLASSIFICATION, ue) < 30)
            in++;
    }
    ck_assert_uint_ge(in, 2800);
    ck_assert_uint_le(in, 3200);
}
END_TEST

/* ---- arguments and defaults ----------------------------------------- */

START_TEST(test_policy_select_bad_arguments)
{
    struct proto_candidate cands[MAX_VARIANTS];
    struct proto_decision d;
    struct fixture f;
    struct policy_input in;

    fixture_init(&f, CLASSIFICATION, classification,
                 ARRAY_SIZE(classification));
    in = (struct policy_input){ .family = f.family, .variants = f.v,
                                .variant_count = f.n };
    /* without its table, or with another input's */
    memset(&d, 0, sizeof(d));
    d.candidates = cands;
    d.candidate_reasons = cand_reasons;
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, &d),
                     POLICY_BAD_ARGUMENT);
    with_table(&in);
    in.variant_count--;
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, &d),
                     POLICY_BAD_ARGUMENT);
    in.variant_count++;
    memset(&d, 0, sizeof(d));
    d.candidates = cands;
    d.candidate_reasons = cand_reasons;
    ck_assert_int_eq(policy_select(NULL, &in, &f.r, &d), POLICY_BAD_ARGUMENT);
    ck_assert_int_eq(policy_select(&f.cfg, NULL, &f.r, &d),
                     POLICY_BAD_ARGUMENT);
    ck_assert_int_eq(policy_select(&f.cfg, &in, NULL, &d),
                     POLICY_BAD_ARGUMENT);
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, NULL),
                     POLICY_BAD_ARGUMENT);
    d.candidates = NULL;
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, &d),
                     POLICY_BAD_ARGUMENT);
    d.candidates = cands;
    d.candidate_reasons = NULL;
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, &d),
                     POLICY_BAD_ARGUMENT);
    d.candidate_reasons = cand_reasons;
    f.r.gflops = 0;
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, &d),
                     POLICY_BAD_ARGUMENT);
    /* an empty family is no error: nothing to choose */
    f.r.gflops = 100;
    in.variant_count = 0;
    ck_assert_int_eq(policy_select(&f.cfg, &in, &f.r, &d), POLICY_OK);
    ck_assert_int_eq(d.action, PROTO_ACTION_NONE);
    ck_assert_uint_eq(d.candidate_count, 0);
}
END_TEST

START_TEST(test_policy_config_default_values)
{
    struct policy_config cfg;

    policy_config_default(&cfg);
    ck_assert_double_eq(cfg.hysteresis_accuracy, 0.005);
    ck_assert_double_eq(cfg.hysteresis_score, 0.02);
    ck_assert_double_eq(cfg.low_battery_percent, 20);
    ck_assert_double_eq(cfg.high_load, 0.8);
    ck_assert_double_eq(cfg.transfer_boost, 3);
    ck_assert_double_eq(cfg.default_downlink_bps, 10e6);
    ck_assert_double_eq(cfg.horizon_s, 1800);
    ck_assert_double_eq(cfg.transfer_cost_per_mb, 0.3);
    ck_assert_uint_eq(cfg.runner_ups, 5);
    ck_assert_uint_eq(cfg.recheck_after_s, 300);
    ck_assert_uint_eq(cfg.recheck_degraded_s, 60);
    /* saver leans harder on every cost than balanced */
    ck_assert(cfg.saver.latency > cfg.balanced.latency);
    ck_assert(cfg.saver.energy > cfg.balanced.energy);
    ck_assert(cfg.saver.transfer > cfg.balanced.transfer);
}
END_TEST

/* ---- the compact table (policy/table.h) -------------------------------- */

static unsigned
lcg(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static const char *const pool[] = {
    "npu", "gpu", "dsp", "tflite", "onnx", "coreml", "npu-class-a",
    "gpu-class-b", "scene", "night", "day", "a", "ab", "",
};

static const char *
pick(unsigned *seed)
{
    return pool[lcg(seed) % (ARRAY_SIZE(pool) - 1)];
}

static int
sign(int x)
{
    return (x > 0) - (x < 0);
}

/* Random families (names, versions, formats, accelerators, classes, tags
 * and blobs drawn from small pools so that they repeat): every index in
 * the table names the string the variant holds, indexes order as strcmp
 * does, name groups are the ones policy_offered walks, and lookups of
 * strings the family lacks find nothing. */
START_TEST(test_policy_table_agrees)
{
    static struct proto_variant vs[60];
    static struct proto_delta ds[10];
    unsigned seed = 7 + (unsigned)_i;
    size_t n = 1 + lcg(&seed) % ARRAY_SIZE(vs), nd = lcg(&seed) % 10;
    struct policy_input in = { .family = "f", .variants = vs,
                               .variant_count = n, .deltas = ds,
                               .delta_count = nd };
    const struct policy_table *t;

    memset(vs, 0, sizeof(vs));
    memset(ds, 0, sizeof(ds));
    for (size_t i = 0; i < n; i++) {
        struct proto_variant *v = &vs[i];
        bool same_name = i > 0 && lcg(&seed) % 3 == 0;

        snprintf(v->name, sizeof(v->name), "m%u",
                 same_name ? (unsigned)(vs[i - 1].name[1] - '0')
                           : lcg(&seed) % 8);
        v->version = same_name ? vs[i - 1].version - (lcg(&seed) % 2)
                               : 1 + lcg(&seed) % 3;
        hex_of(lcg(&seed) % 12, v->blob_hex);
        v->size_bytes = 1 + lcg(&seed);
        v->memory_bytes = lcg(&seed) % 2 ? 0 : 1 + lcg(&seed);
        v->flops = 1e6 * (1 + lcg(&seed) % 100);
        v->accuracy = (lcg(&seed) % 100) / 100.0;
        v->rollout_percent = lcg(&seed) % 2 ? 100 : lcg(&seed) % 100;
        snprintf(v->format, sizeof(v->format), "%s",
                 lcg(&seed) % 4 ? pick(&seed) : "");
        v->accelerator_count = lcg(&seed) % 3;
        for (size_t j = 0; j < v->accelerator_count; j++)
            snprintf(v->accelerators[j], PROTO_TOKEN_SIZE, "%s",
                     pick(&seed));
        v->context_count = lcg(&seed) % 3;
        for (size_t j = 0; j < v->context_count; j++) {
            snprintf(v->context[j].key, sizeof(v->context[j].key), "%s",
                     pick(&seed));
            snprintf(v->context[j].value, sizeof(v->context[j].value), "%s",
                     pick(&seed));
        }
        v->latency_count = lcg(&seed) % 3;
        for (size_t j = 0; j < v->latency_count; j++) {
            snprintf(v->latency_ms[j].device_class, PROTO_TOKEN_SIZE, "%s",
                     pick(&seed));
            v->latency_ms[j].value = lcg(&seed);
        }
        v->energy_count = lcg(&seed) % 2;
        for (size_t j = 0; j < v->energy_count; j++) {
            snprintf(v->energy_mj[j].device_class, PROTO_TOKEN_SIZE, "%s",
                     pick(&seed));
            v->energy_mj[j].value = lcg(&seed);
        }
        v->exit_count = lcg(&seed) % 4 == 0;
    }
    for (size_t i = 0; i < nd; i++) {
        hex_of(lcg(&seed) % 16, ds[i].from_hex);
        hex_of(lcg(&seed) % 16, ds[i].to_hex);
    }
    with_table(&in);
    t = in.table;

    ck_assert_uint_eq(t->variant_count, n);
    for (size_t i = 1; i < t->string_count; i++)
        ck_assert_int_lt(strcmp(t->strings[i - 1], t->strings[i]), 0);
    for (size_t i = 0; i < ARRAY_SIZE(pool); i++) {
        uint32_t id = policy_table_find(t, pool[i]);

        if (id != POLICY_ID_NONE)
            ck_assert_str_eq(t->strings[id], pool[i]);
    }
    ck_assert_uint_eq(policy_table_find(t, "absent-token"), POLICY_ID_NONE);
    for (size_t i = 0; i < n; i++) {
        const struct proto_variant *v = &vs[i];
        const struct policy_row *row = &t->rows[i];

        ck_assert_str_eq(t->strings[row->name], v->name);
        ck_assert_str_eq(t->strings[row->blob], v->blob_hex);
        if (v->format[0])
            ck_assert_str_eq(t->strings[row->format], v->format);
        else
            ck_assert_uint_eq(row->format, POLICY_ID_NONE);
        ck_assert_uint_eq(row->size_bytes, v->size_bytes);
        ck_assert_uint_eq(row->memory_bytes,
                          v->memory_bytes ? v->memory_bytes : v->size_bytes);
        ck_assert(row->flops == v->flops && row->accuracy == v->accuracy);
        ck_assert_uint_eq(row->rollout_percent, v->rollout_percent);
        ck_assert_int_eq(row->has_exits, v->exit_count > 0);
        ck_assert_int_eq(row->starts_name,
                         i == 0 || v->version >= v[-1].version ||
                             strcmp(v->name, v[-1].name) != 0);
        ck_assert_uint_eq(row->accelerator_count, v->accelerator_count);
        for (size_t j = 0; j < v->accelerator_count; j++)
            ck_assert_str_eq(
                t->strings[t->accelerators[row->accelerator_first + j]],
                v->accelerators[j]);
        ck_assert_uint_eq(row->tag_count, v->context_count);
        for (size_t j = 0; j < v->context_count; j++) {
            const struct policy_tag *tag = &t->tags[row->tag_first + j];

            ck_assert_str_eq(t->strings[tag->key], v->context[j].key);
            ck_assert_str_eq(t->strings[tag->value], v->context[j].value);
        }
        ck_assert_uint_eq(row->latency_count, v->latency_count);
        ck_assert_uint_eq(row->energy_count, v->energy_count);
        for (size_t j = 0; j < v->latency_count + v->energy_count; j++) {
            const struct policy_class_value *cv =
                &t->class_values[row->class_first + j];
            const struct proto_class_value *want =
                j < v->latency_count ? &v->latency_ms[j]
                                     : &v->energy_mj[j - v->latency_count];

            ck_assert_str_eq(t->strings[cv->device_class],
                             want->device_class);
            ck_assert(cv->value == want->value);
        }
        for (size_t j = 0; j < n; j++)
            ck_assert_int_eq(sign((int)row->name - (int)t->rows[j].name),
                             sign(strcmp(v->name, vs[j].name)));
    }
    for (size_t i = 0; i < nd; i++) {
        ck_assert_str_eq(t->strings[t->delta_from[i]], ds[i].from_hex);
        ck_assert_str_eq(t->strings[t->delta_to[i]], ds[i].to_hex);
    }
    /* each requirement's variants: its count, and with columns its bits
     * (the plain walk visits the variants of the met ones only) */
    for (size_t q = 0; q < t->req_count; q++) {
        size_t count = 0;

        for (size_t i = 0; i < n; i++) {
            bool is_q = t->rows[i].req == q;

            count += is_q;
            if (t->has_columns)
                ck_assert_int_eq(
                    (t->req_bits[q * t->req_words + i / 64] >> (i % 64)) & 1,
                    is_q);
        }
        ck_assert_uint_eq(t->reqs[q].variant_count, count);
    }
    /* a buffer one byte short is refused */
    {
        static max_align_t small[(1 << 20) / sizeof(max_align_t)];

        ck_assert_ptr_null(
            policy_table_build(&in, small, policy_table_size(&in) - 1));
    }
}
END_TEST

/*
 * The policy weighs (value, risk) only the entries its decision may read
 * and the listed ones, when they are listed. Random large families and
 * reports (every mode: current, in flight, memory history, degraded,
 * preferences): the default answer decides and lists its runner-ups
 * exactly as with every entry listed (runner_ups above the family's
 * size: input order), and each listed entry's value is the objective's, worked out
 * here from its own fields (no current, no memory history: u_cur and the
 * fallback 0).
 */
START_TEST(test_policy_select_lazy_value_agrees)
{
    static struct proto_variant vs[150];
    static struct proto_candidate c5[150], call[150];
    static struct proto_reasons r5[150], rall[150];
    static const char *const fmts[] = {"tflite", "onnx", ""};
    static const char *const accs[] = {"npu", "gpu"};
    unsigned seed = 101 + 7919u * (unsigned)_i;
    size_t n = 60 + lcg(&seed) % 91;
    struct policy_input in = { .family = "lazy", .variants = vs,
                               .variant_count = n };
    struct policy_config cfg, wide;
    struct proto_report r;
    struct proto_decision d5, dall;
    bool plain;

    memset(vs, 0, sizeof(vs));
    for (size_t i = 0; i < n; i++) {
        struct proto_variant *v = &vs[i];

        snprintf(v->name, sizeof(v->name), "m%03zu", i);
        hex_of((unsigned)i + 1, v->blob_hex);
        v->version = 1;
        v->size_bytes = 100000 + 1000 * (uint64_t)lcg(&seed);
        v->memory_bytes = v->size_bytes + 1000 * (uint64_t)lcg(&seed);
        v->flops = 1e6 * (1 + lcg(&seed) % 200);
        v->accuracy = 0.5 + (lcg(&seed) % 500) / 1000.0;
        v->rollout_percent = lcg(&seed) % 5 ? 100 : lcg(&seed) % 100;
        snprintf(v->format, sizeof(v->format), "%s", fmts[lcg(&seed) % 3]);
        v->accelerator_count = lcg(&seed) % 4 == 0;
        if (v->accelerator_count)
            snprintf(v->accelerators[0], PROTO_TOKEN_SIZE, "%s",
                     accs[lcg(&seed) % 2]);
        if (lcg(&seed) % 2) {
            v->latency_count = 1;
            snprintf(v->latency_ms[0].device_class, PROTO_TOKEN_SIZE, "c1");
            v->latency_ms[0].value = 1 + lcg(&seed) % 100;
        }
        if (lcg(&seed) % 2) {
            v->energy_count = 1;
            snprintf(v->energy_mj[0].device_class, PROTO_TOKEN_SIZE, "c1");
            v->energy_mj[0].value = 1 + lcg(&seed) % 500;
        }
        if (lcg(&seed) % 4 == 0) {
            v->exit_count = 1;
            v->exits[0].flops = v->flops / 4;
            v->exits[0].accuracy = v->accuracy - 0.1;
        }
        if (lcg(&seed) % 3 == 0) {
            v->context_count = 1;
            snprintf(v->context[0].key, sizeof(v->context[0].key), "scene");
            snprintf(v->context[0].value, sizeof(v->context[0].value),
                     "night");
        }
    }
    memset(&r, 0, sizeof(r));
    snprintf(r.ue, sizeof(r.ue), "ue-%u", lcg(&seed));
    r.has_ue = true;
    r.memory_bytes = 100000 + 1000 * (uint64_t)lcg(&seed);
    r.gflops = 1 + lcg(&seed) % 100;
    r.has_device_class = lcg(&seed) % 2;
    snprintf(r.device_class, sizeof(r.device_class), "c1");
    r.has_formats = true;
    r.format_count = 1 + lcg(&seed) % 2;
    snprintf(r.formats[0], PROTO_TOKEN_SIZE, "tflite");
    snprintf(r.formats[1], PROTO_TOKEN_SIZE, "onnx");
    r.accelerator_count = lcg(&seed) % 2;
    snprintf(r.accelerators[0], PROTO_TOKEN_SIZE, "npu");
    r.has_downlink_bps = true;
    r.downlink_bps = lcg(&seed) % 8 ? 1e5 * (1 + lcg(&seed) % 500) : 0;
    r.has_max_latency_ms = lcg(&seed) % 2;
    r.max_latency_ms = 1 + lcg(&seed) % 100;
    r.has_min_accuracy = lcg(&seed) % 2;
    r.min_accuracy = 0.5 + (lcg(&seed) % 500) / 1000.0;
    r.has_max_download_s = lcg(&seed) % 2;
    r.max_download_s = 1 + lcg(&seed) % 60;
    r.has_max_energy_mj = lcg(&seed) % 2;
    r.max_energy_mj = 1 + lcg(&seed) % 300;
    r.preference = (enum proto_preference)(lcg(&seed) % 3);
    r.has_battery_percent = true;
    r.battery_percent = lcg(&seed) % 100;
    r.context_count = lcg(&seed) % 2;
    snprintf(r.context[0].key, sizeof(r.context[0].key), "scene");
    snprintf(r.context[0].value, sizeof(r.context[0].value), "night");
    r.has_current = lcg(&seed) % 2;
    hex_of(1 + lcg(&seed) % (unsigned)n, r.current_hex);
    r.has_fetching = lcg(&seed) % 3 == 0;
    hex_of(1 + lcg(&seed) % (unsigned)n, r.fetching_hex);
    r.fetching_bytes_done = 1000 * (uint64_t)(lcg(&seed) % 100);
    if (lcg(&seed) % 2) {
        r.memory_history_count = 1 + lcg(&seed) % PROTO_MAX_HISTORY;
        for (size_t i = 0; i < r.memory_history_count; i++)
            r.memory_history_bytes[i] =
                r.memory_bytes / 2 + 1000 * (uint64_t)(lcg(&seed) % 64);
    }
    plain = !r.has_current && r.memory_history_count == 0;

    with_table(&in);
    policy_config_default(&cfg);
    wide = cfg;
    wide.runner_ups = 1000;
    memset(&d5, 0, sizeof(d5));
    d5.candidates = c5;
    d5.candidate_reasons = r5;
    memset(&dall, 0, sizeof(dall));
    dall.candidates = call;
    dall.candidate_reasons = rall;
    ck_assert_int_eq(policy_select(&cfg, &in, &r, &d5), POLICY_OK);
    ck_assert_int_eq(policy_select(&wide, &in, &r, &dall), POLICY_OK);

    ck_assert_int_eq(d5.action, dall.action);
    ck_assert_int_eq(d5.degraded, dall.degraded);
    if (d5.action != PROTO_ACTION_NONE)
        ck_assert_uint_eq(d5.chosen, dall.chosen);
    ck_assert_uint_eq(d5.reasons.count, dall.reasons.count);
    for (size_t i = 0; i < d5.reasons.count; i++)
        ck_assert_str_eq(d5.reasons.text[i], dall.reasons.text[i]);
    ck_assert_uint_eq(d5.candidate_count + d5.omitted_count,
                      dall.candidate_count);
    /* the full list is in input order: find each runner-up in it */
    for (size_t i = 0; i < d5.candidate_count; i++) {
        const struct proto_candidate *e = &c5[i];
        size_t k = 0;

        while (k < dall.candidate_count && call[k].variant != e->variant)
            k++;
        ck_assert_uint_lt(k, dall.candidate_count);
        ck_assert(e->value == call[k].value && e->risk == call[k].risk);
        ck_assert_uint_eq(r5[i].count, rall[k].count);
        for (size_t j = 0; j < r5[i].count; j++)
            ck_assert_str_eq(r5[i].text[j], rall[k].text[j]);
    }
    for (size_t i = 0; plain && i < dall.candidate_count; i++) {
        const struct proto_candidate *e = &call[i];
        double h = d5.horizon_s, u, want;

        if (!e->hard_ok)
            continue;
        u = (dall.degraded ? e->utility / (1 + e->violation) : e->utility) *
            e->fit;
        want = e->ready_s < h ? u * (h - e->ready_s) - e->cost : -e->cost;
        ck_assert_double_eq_tol(e->value, want, 1e-9 * (1 + fabs(want)));
    }
}
END_TEST

/* ---- the screened default answer ---------------------------------------- */

#define SCREEN_MAX 320

static struct proto_variant screen_vs[SCREEN_MAX];
static struct proto_delta screen_ds[8];

/*
 * A random large family and report for the screen (policy_select's
 * default answer keeps only the entries the decision reads): names with
 * one to three versions (newer ones partly rolled out), formats and
 * accelerator sets from pools large enough that some families have more
 * distinct requirements than the table indexes (POLICY_REQ_MAX), measured
 * latencies and energies on two classes, exits, context tags, ready
 * deltas from current, and a report in every mode (current, in flight,
 * memory floor and history, power, outage, each requirement or not,
 * every preference).
 */
static size_t
screen_family(unsigned *seed, bool single, struct proto_report *r,
              size_t *out_nd)
{
    static const char *const fmts[] = {"tflite", "onnx", "coreml", "", "pt"};
    static const char *const accs[] = {"npu", "gpu", "dsp", "tpu", "vpu",
                                       "fpga"};
    static const char *const cls[] = {"c1", "c2"};
    size_t n = 40 + lcg(seed) % (SCREEN_MAX - 40), nd = 0;
    size_t names = 0;

    memset(screen_vs, 0, sizeof(screen_vs));
    for (size_t i = 0; i < n;) {
        size_t versions =
            single ? 1 : 1 + (lcg(seed) % 4 == 0) * (1 + lcg(seed) % 2);

        for (size_t j = 0; j < versions && i < n; j++, i++) {
            struct proto_variant *v = &screen_vs[i];

            snprintf(v->name, sizeof(v->name), "m%03zu", names);
            hex_of((unsigned)i + 1, v->blob_hex);
            v->version = (int64_t)(versions - j);
            v->size_bytes = lcg(seed) % 50 ? 100000 + 1000 * (uint64_t)lcg(seed)
                                           : 0;
            v->memory_bytes = lcg(seed) % 5
                                  ? v->size_bytes + 1000 * (uint64_t)lcg(seed)
                                  : 0;
            v->flops = 1e6 * (1 + lcg(seed) % 200);
            v->accuracy = 0.5 + (lcg(seed) % 500) / 1000.0;
            v->rollout_percent = j + 1 < versions || lcg(seed) % 5
                                     ? lcg(seed) % 100
                                     : 100;
            if (j + 1 == versions)
                v->rollout_percent = 100;
            snprintf(v->format, sizeof(v->format), "%s",
                     fmts[lcg(seed) % 5]);
            v->accelerator_count = lcg(seed) % 3 ? 0 : 1 + lcg(seed) % 3;
            for (size_t a = 0; a < v->accelerator_count; a++)
                snprintf(v->accelerators[a], PROTO_TOKEN_SIZE, "%s",
                         accs[lcg(seed) % 6]);
            for (size_t c = 0; c < 2; c++) {
                if (lcg(seed) % 2) {
                    struct proto_class_value *lv =
                        &v->latency_ms[v->latency_count++];

                    snprintf(lv->device_class, PROTO_TOKEN_SIZE, "%s",
                             cls[c]);
                    lv->value = 1 + lcg(seed) % 100;
                }
                if (lcg(seed) % 3 == 0) {
                    struct proto_class_value *ev =
                        &v->energy_mj[v->energy_count++];

                    snprintf(ev->device_class, PROTO_TOKEN_SIZE, "%s",
                             cls[c]);
                    ev->value = 1 + lcg(seed) % 500;
                }
            }
            if (lcg(seed) % 4 == 0) {
                v->exit_count = 1;
                v->exits[0].flops = v->flops / 4;
                v->exits[0].accuracy = v->accuracy - 0.1;
            }
            if (lcg(seed) % 3 == 0) {
                v->context_count = 1;
                snprintf(v->context[0].key, sizeof(v->context[0].key),
                         "scene");
                snprintf(v->context[0].value, sizeof(v->context[0].value),
                         "%s", lcg(seed) % 2 ? "night" : "day");
            }
        }
        names++;
    }

    memset(r, 0, sizeof(*r));
    snprintf(r->ue, sizeof(r->ue), "ue-%u", lcg(seed));
    r->has_ue = lcg(seed) % 4 != 0;
    r->memory_bytes = 100000 + 1000 * (uint64_t)lcg(seed);
    r->gflops = 1 + lcg(seed) % 100;
    r->has_device_class = lcg(seed) % 3 != 0;
    snprintf(r->device_class, sizeof(r->device_class), "%s",
             cls[lcg(seed) % 2]);
    r->has_formats = lcg(seed) % 5 != 0;
    r->format_count = 1 + lcg(seed) % 3;
    for (size_t i = 0; i < r->format_count; i++)
        snprintf(r->formats[i], PROTO_TOKEN_SIZE, "%s", fmts[lcg(seed) % 5]);
    r->accelerator_count = lcg(seed) % 4;
    for (size_t i = 0; i < r->accelerator_count; i++)
        snprintf(r->accelerators[i], PROTO_TOKEN_SIZE, "%s",
                 accs[lcg(seed) % 6]);
    r->has_downlink_bps = lcg(seed) % 6 != 0;
    r->downlink_bps = lcg(seed) % 8 ? 1e5 * (1 + lcg(seed) % 500) : 0;
    r->has_rtt_ms = lcg(seed) % 2;
    r->rtt_ms = lcg(seed) % 200;
    r->has_max_latency_ms = lcg(seed) % 2;
    r->max_latency_ms = 1 + lcg(seed) % 100;
    r->has_min_accuracy = lcg(seed) % 2;
    r->min_accuracy = 0.5 + (lcg(seed) % 500) / 1000.0;
    r->has_max_download_s = lcg(seed) % 2;
    r->max_download_s = 1 + lcg(seed) % 60;
    r->has_max_energy_mj = lcg(seed) % 2;
    r->max_energy_mj = 1 + lcg(seed) % 300;
    r->has_power_mw = lcg(seed) % 3 == 0;
    r->power_mw = 100 + lcg(seed) % 2000;
    r->preference = (enum proto_preference)(lcg(seed) % 3);
    r->has_battery_percent = true;
    r->battery_percent = lcg(seed) % 100;
    r->context_count = lcg(seed) % 2;
    snprintf(r->context[0].key, sizeof(r->context[0].key), "scene");
    snprintf(r->context[0].value, sizeof(r->context[0].value), "night");
    r->has_current = lcg(seed) % 2;
    hex_of(1 + lcg(seed) % (unsigned)n, r->current_hex);
    r->has_fetching = lcg(seed) % 3 == 0;
    hex_of(1 + lcg(seed) % (unsigned)n, r->fetching_hex);
    r->fetching_bytes_done = 1000 * (uint64_t)(lcg(seed) % 100);
    r->accept_tensor_delta = lcg(seed) % 2;
    r->has_memory_floor_bytes = lcg(seed) % 4 == 0;
    r->memory_floor_bytes = r->memory_bytes / 2;
    if (lcg(seed) % 3 == 0) {
        r->memory_history_count = 1 + lcg(seed) % PROTO_MAX_HISTORY;
        for (size_t i = 0; i < r->memory_history_count; i++)
            r->memory_history_bytes[i] =
                r->memory_bytes / 2 + 1000 * (uint64_t)(lcg(seed) % 64);
    }
    if (lcg(seed) % 4 == 0) {
        r->gflops_history_count = 1 + lcg(seed) % PROTO_MAX_HISTORY;
        for (size_t i = 0; i < r->gflops_history_count; i++)
            r->gflops_history[i] = r->gflops * (1 + lcg(seed) % 3);
    }
    if (r->has_current && lcg(seed) % 2) {
        nd = 1 + lcg(seed) % 8;
        for (size_t i = 0; i < nd; i++) {
            snprintf(screen_ds[i].from_hex, PROTO_HEX_SIZE, "%s",
                     r->current_hex);
            hex_of(1 + lcg(seed) % (unsigned)n, screen_ds[i].to_hex);
            screen_ds[i].size_bytes = 1000 * (uint64_t)(1 + lcg(seed) % 100);
            screen_ds[i].format = (enum proto_delta_format)(lcg(seed) % 2);
        }
    }
    *out_nd = nd;
    return n;
}

/* policy_select (screened when in is large enough) and
 * policy_select_full decide, list and count alike for r. */
static void
screen_check(const struct policy_config *cfg, const struct policy_input *in,
             const struct proto_report *r)
{
    static struct proto_candidate cs[SCREEN_MAX], cf[SCREEN_MAX];
    static struct proto_reasons rsc[SCREEN_MAX], rf[SCREEN_MAX];
    struct proto_decision ds, df;

    /* the candidates are working storage: what an earlier select left
     * there (here: every byte set) must not matter */
    memset(cs, 0xff, sizeof(cs));
    memset(&ds, 0, sizeof(ds));
    ds.candidates = cs;
    ds.candidate_reasons = rsc;
    memset(&df, 0, sizeof(df));
    df.candidates = cf;
    df.candidate_reasons = rf;
    ck_assert_int_eq(policy_select(cfg, in, r, &ds), POLICY_OK);
    ck_assert_int_eq(policy_select_full(cfg, in, r, &df), POLICY_OK);

    ck_assert_int_eq(ds.action, df.action);
    ck_assert_int_eq(ds.degraded, df.degraded);
    if (ds.action != PROTO_ACTION_NONE) {
        ck_assert_uint_eq(ds.chosen, df.chosen);
        ck_assert_int_eq(ds.exit_index, df.exit_index);
        ck_assert(ds.estimates.latency_ms == df.estimates.latency_ms &&
                  ds.estimates.download_s == df.estimates.download_s &&
                  ds.estimates.energy_mj == df.estimates.energy_mj);
        ck_assert_uint_eq(ds.estimates.memory_bytes,
                          df.estimates.memory_bytes);
        ck_assert_int_eq(ds.estimates.has_energy_mj,
                         df.estimates.has_energy_mj);
    }
    ck_assert_int_eq(ds.has_delta, df.has_delta);
    if (ds.has_delta)
        ck_assert_uint_eq(ds.delta, df.delta);
    ck_assert_uint_eq(ds.recheck_after_s, df.recheck_after_s);
    ck_assert_uint_eq(ds.reasons.count, df.reasons.count);
    for (size_t i = 0; i < ds.reasons.count; i++)
        ck_assert_str_eq(ds.reasons.text[i], df.reasons.text[i]);
    ck_assert_uint_eq(ds.violations.count, df.violations.count);
    for (size_t i = 0; i < ds.violations.count; i++)
        ck_assert_str_eq(ds.violations.text[i], df.violations.text[i]);
    ck_assert_uint_eq(ds.candidate_count, df.candidate_count);
    ck_assert_uint_le(ds.candidate_count, cfg->runner_ups);
    for (size_t i = 0; i < ds.candidate_count; i++) {
        ck_assert_uint_eq(cs[i].variant, cf[i].variant);
        ck_assert_int_eq(cs[i].feasible, cf[i].feasible);
        ck_assert(cs[i].value == cf[i].value && cs[i].risk == cf[i].risk);
        ck_assert(cs[i].utility == cf[i].utility);
        ck_assert(cs[i].violation == cf[i].violation);
        ck_assert_uint_eq(rsc[i].count, rf[i].count);
        for (size_t j = 0; j < rsc[i].count; j++)
            ck_assert_str_eq(rsc[i].text[j], rf[i].text[j]);
    }
    ck_assert_uint_eq(ds.omitted_count, df.omitted_count);
    for (size_t c = 0; c < PROTO_CAUSE_COUNT; c++)
        ck_assert_uint_eq(ds.omitted[c], df.omitted[c]);
}

/*
 * The screened default answer (policy_select) decides, lists and counts
 * exactly as the evaluation that keeps every entry (policy_select_full):
 * the same action, choice, estimates, reasons, listed candidates in the
 * same order with the same values and reasons, and the same counts of
 * the rest by cause, on random large families and reports with 0, 1, 5
 * and 64 runner-ups.
 */
START_TEST(test_policy_screen_agrees)
{
    static const unsigned ups[] = {5, 1, 0, 64, 5, 3};
    unsigned seed = 977 + 104729u * (unsigned)_i;
    struct proto_report r;
    size_t nd, n = screen_family(&seed, _i % 3 == 0, &r, &nd);
    struct policy_input in = { .family = "screen", .variants = screen_vs,
                               .variant_count = n, .deltas = screen_ds,
                               .delta_count = nd };
    struct policy_config cfg;

    with_table(&in);
    policy_config_default(&cfg);
    cfg.runner_ups = ups[(unsigned)_i % 6];
    screen_check(&cfg, &in, &r);
}
END_TEST

/*
 * The same when the family's per-class values name more device classes
 * than the table has class columns for (policy/table.h,
 * POLICY_CLASS_SLOTS), and when the report's class is one with a column,
 * one without, or a string of the family that is no class: the
 * columnar screen (policy.c, screen_cols) reads the column of the
 * report's class, or leaves the variants to the row path.
 */
START_TEST(test_policy_screen_many_classes_agree)
{
    static const char *const rcls[] = {"k0", "k3", "k7", "k9", "k11",
                                       "m001", "none"};
    unsigned seed = 7717 + 15485863u * (unsigned)_i;
    struct proto_report r;
    size_t nd, n = screen_family(&seed, true, &r, &nd);
    /* classes k0..k(nk-1): up to twice the columns */
    unsigned nk = 2 + (unsigned)_i % (2 * POLICY_CLASS_SLOTS);
    struct policy_input in = { .family = "classes", .variants = screen_vs,
                               .variant_count = n, .deltas = screen_ds,
                               .delta_count = nd };
    struct policy_config cfg;

    for (size_t i = 0; i < n; i++) {
        struct proto_variant *v = &screen_vs[i];

        v->latency_count = lcg(&seed) % (PROTO_MAX_LATENCIES + 1);
        for (size_t j = 0; j < v->latency_count; j++) {
            snprintf(v->latency_ms[j].device_class, PROTO_TOKEN_SIZE, "k%u",
                     lcg(&seed) % nk);
            v->latency_ms[j].value = 1 + lcg(&seed) % 100;
        }
        v->energy_count = lcg(&seed) % 3;
        for (size_t j = 0; j < v->energy_count; j++) {
            snprintf(v->energy_mj[j].device_class, PROTO_TOKEN_SIZE, "k%u",
                     lcg(&seed) % nk);
            v->energy_mj[j].value = 1 + lcg(&seed) % 500;
        }
    }
    r.has_device_class = lcg(&seed) % 8 != 0;
    snprintf(r.device_class, sizeof(r.device_class), "%s",
             rcls[lcg(&seed) % 7]);
    with_table(&in);
    policy_config_default(&cfg);
    cfg.runner_ups = 1 + (unsigned)_i % 6;
    screen_check(&cfg, &in, &r);
}
END_TEST

/*
 * The same on families where most variants are feasible and their values
 * lie within the near-tie windows of one another (accuracies a tenth of a
 * point apart, some matching the report's context, some needing memory
 * near the margin, sizes whose costs differ by little, current held or
 * not): what the value bound of a pending entry (policy.c,
 * pending_bound) may skip must be exactly what rank_cmp would rank
 * after, also when a context, memory or transfer tie-break decides.
 */
START_TEST(test_policy_screen_near_ties_agree)
{
    static const unsigned ups[] = {5, 1, 3, 64, 5, 12};
    static const double hyst[] = {0.005, 0, 0.0005, 0.02};
    unsigned seed = 4099 + 7919u * (unsigned)_i;
    size_t n = 40 + lcg(&seed) % (SCREEN_MAX - 40);
    struct proto_report r;
    struct policy_input in = { .family = "ties", .variants = screen_vs,
                               .variant_count = n };
    struct policy_config cfg;

    memset(screen_vs, 0, sizeof(screen_vs));
    for (size_t i = 0; i < n; i++) {
        struct proto_variant *v = &screen_vs[i];

        snprintf(v->name, sizeof(v->name), "t%03zu", i);
        hex_of((unsigned)i + 1, v->blob_hex);
        v->version = 1;
        v->rollout_percent = 100;
        v->size_bytes = 1000000 + 20000 * (uint64_t)(lcg(&seed) % 8);
        v->memory_bytes = 80000000 + 1000000 * (uint64_t)(lcg(&seed) % 30);
        v->flops = 1e6 * (1 + lcg(&seed) % 200);
        v->accuracy = 0.8 + (lcg(&seed) % 40) / 10000.0;
        if (lcg(&seed) % 3 == 0) {
            v->latency_count = 1;
            snprintf(v->latency_ms[0].device_class, PROTO_TOKEN_SIZE, "c1");
            v->latency_ms[0].value = 1 + lcg(&seed) % 50;
        }
        if (lcg(&seed) % 3 == 0) {
            v->context_count = 1;
            snprintf(v->context[0].key, sizeof(v->context[0].key), "scene");
            snprintf(v->context[0].value, sizeof(v->context[0].value), "%s",
                     lcg(&seed) % 2 ? "night" : "day");
        }
    }
    memset(&r, 0, sizeof(r));
    r.memory_bytes = 100000000;
    r.gflops = 10;
    r.has_device_class = true;
    snprintf(r.device_class, sizeof(r.device_class), "c1");
    r.has_downlink_bps = true;
    r.downlink_bps = 1e6 * (1 + lcg(&seed) % 50);
    r.preference = (enum proto_preference)(lcg(&seed) % 3);
    r.has_battery_percent = true;
    r.battery_percent = 50 + lcg(&seed) % 50;
    r.context_count = 1;
    snprintf(r.context[0].key, sizeof(r.context[0].key), "scene");
    snprintf(r.context[0].value, sizeof(r.context[0].value), "night");
    r.has_memory_floor_bytes = lcg(&seed) % 3 == 0;
    r.memory_floor_bytes = 90000000;
    r.has_current = lcg(&seed) % 2;
    hex_of(1 + lcg(&seed) % (unsigned)n, r.current_hex);
    r.has_max_latency_ms = lcg(&seed) % 2;
    r.max_latency_ms = 50 + lcg(&seed) % 100;

    with_table(&in);
    policy_config_default(&cfg);
    cfg.runner_ups = ups[(unsigned)_i % 6];
    cfg.hysteresis_accuracy = hyst[(unsigned)_i % 4];
    cfg.hysteresis_score = 4 * hyst[(unsigned)_i % 4];
    screen_check(&cfg, &in, &r);
}
END_TEST

/*
 * The same on plain selects (policy.c, plain_loop: every version the only
 * one of its name and fully rolled out, no current in the family, nothing
 * in flight), which work out only each version's first failed rule and
 * leave the briefs to the listing, on families of sizes around the
 * table's columns (POLICY_COLUMNS_MIN) and powers of two (31, 32, 33, 63,
 * 64, 65, ...) and with every combination of the four report limits
 * (_i % 16), memory, format and accelerator misses, exits, outages,
 * short horizons (nothing startable), memory histories (nothing pending)
 * and reports nothing meets (degraded, no choice).
 */
START_TEST(test_policy_screen_plain_agrees)
{
    static const size_t sizes[] = {31, 32, 33, 63, 64, 65, 127, 200};
    static const unsigned ups[] = {5, 1, 0, 3, 64, 12};
    static const char *const fmts[] = {"tflite", "onnx", "coreml", ""};
    static const char *const cls[] = {"c1", "c2"};
    unsigned seed = 6151 + 49157u * (unsigned)_i;
    unsigned limits = (unsigned)_i % 16;
    size_t n = sizes[((unsigned)_i / 16) % 8];
    struct proto_report r;
    struct policy_input in = { .family = "plain", .variants = screen_vs,
                               .variant_count = n };
    struct policy_config cfg;

    memset(screen_vs, 0, sizeof(screen_vs));
    for (size_t i = 0; i < n; i++) {
        struct proto_variant *v = &screen_vs[i];

        snprintf(v->name, sizeof(v->name), "p%03zu", i);
        hex_of((unsigned)i + 1, v->blob_hex);
        v->version = 1;
        v->rollout_percent = 100;
        v->size_bytes = lcg(&seed) % 20 ? 1000 * (uint64_t)lcg(&seed) : 0;
        v->memory_bytes = lcg(&seed) % 4 ? 1000 * (uint64_t)lcg(&seed) : 0;
        v->flops = 1e6 * (1 + lcg(&seed) % 400);
        v->accuracy = 0.5 + (lcg(&seed) % 500) / 1000.0;
        snprintf(v->format, sizeof(v->format), "%s", fmts[lcg(&seed) % 4]);
        if (lcg(&seed) % 6 == 0) {
            v->accelerator_count = 1;
            snprintf(v->accelerators[0], PROTO_TOKEN_SIZE, "%s",
                     lcg(&seed) % 2 ? "npu" : "gpu");
        }
        for (size_t c = 0; c < 2; c++) {
            if (lcg(&seed) % 2) {
                snprintf(v->latency_ms[v->latency_count].device_class,
                         PROTO_TOKEN_SIZE, "%s", cls[c]);
                v->latency_ms[v->latency_count++].value =
                    1 + lcg(&seed) % 120;
            }
            if (lcg(&seed) % 3 == 0) {
                snprintf(v->energy_mj[v->energy_count].device_class,
                         PROTO_TOKEN_SIZE, "%s", cls[c]);
                v->energy_mj[v->energy_count++].value =
                    1 + lcg(&seed) % 600;
            }
        }
        if (lcg(&seed) % 8 == 0) {
            v->exit_count = 1;
            v->exits[0].flops = v->flops / 4;
            v->exits[0].accuracy = v->accuracy - 0.1;
        }
        if (lcg(&seed) % 4 == 0) {
            v->context_count = 1;
            snprintf(v->context[0].key, sizeof(v->context[0].key), "scene");
            snprintf(v->context[0].value, sizeof(v->context[0].value),
                     "night");
        }
    }
    memset(&r, 0, sizeof(r));
    snprintf(r.ue, sizeof(r.ue), "ue-%u", lcg(&seed));
    r.has_ue = true;
    r.memory_bytes = 1000 * (uint64_t)(lcg(&seed) % 40000);
    r.gflops = 1 + lcg(&seed) % 60;
    r.has_device_class = lcg(&seed) % 4 != 0;
    snprintf(r.device_class, sizeof(r.device_class), "%s",
             cls[lcg(&seed) % 2]);
    r.has_formats = lcg(&seed) % 4 != 0;
    r.format_count = 2;
    snprintf(r.formats[0], PROTO_TOKEN_SIZE, "tflite");
    snprintf(r.formats[1], PROTO_TOKEN_SIZE, "%s", fmts[lcg(&seed) % 4]);
    r.accelerator_count = lcg(&seed) % 2;
    snprintf(r.accelerators[0], PROTO_TOKEN_SIZE, "npu");
    r.has_downlink_bps = lcg(&seed) % 6 != 0;
    r.downlink_bps = lcg(&seed) % 10 ? 1e5 * (1 + lcg(&seed) % 500) : 0;
    r.has_rtt_ms = lcg(&seed) % 2;
    r.rtt_ms = lcg(&seed) % 200;
    r.has_max_latency_ms = limits & 1;
    r.max_latency_ms = lcg(&seed) % 16 ? 1 + lcg(&seed) % 100 : 0;
    r.has_min_accuracy = limits & 2;
    r.min_accuracy = 0.5 + (lcg(&seed) % 520) / 1000.0;
    r.has_max_download_s = limits & 4;
    r.max_download_s = lcg(&seed) % 16 ? 1 + lcg(&seed) % 60 : 0;
    r.has_max_energy_mj = limits & 8;
    r.max_energy_mj = lcg(&seed) % 16 ? 1 + lcg(&seed) % 400 : 0;
    r.has_power_mw = lcg(&seed) % 3 == 0;
    r.power_mw = 100 + lcg(&seed) % 2000;
    r.preference = (enum proto_preference)(lcg(&seed) % 3);
    r.has_battery_percent = true;
    r.battery_percent = lcg(&seed) % 100;
    r.has_horizon_s = lcg(&seed) % 5 == 0;
    r.horizon_s = 1 + lcg(&seed) % 30;
    r.context_count = lcg(&seed) % 2;
    snprintf(r.context[0].key, sizeof(r.context[0].key), "scene");
    snprintf(r.context[0].value, sizeof(r.context[0].value), "night");
    /* held and in flight: blobs of no version here, as a UE of another
     * family's may report them */
    r.has_current = lcg(&seed) % 2;
    hex_of(100000 + lcg(&seed) % 100, r.current_hex);
    r.has_fetching = lcg(&seed) % 4 == 0;
    hex_of(200000 + lcg(&seed) % 100, r.fetching_hex);
    if (lcg(&seed) % 4 == 0) {
        r.memory_history_count = 1 + lcg(&seed) % PROTO_MAX_HISTORY;
        for (size_t i = 0; i < r.memory_history_count; i++)
            r.memory_history_bytes[i] =
                r.memory_bytes / 2 + 1000 * (uint64_t)(lcg(&seed) % 64);
    }

    with_table(&in);
    policy_config_default(&cfg);
    cfg.runner_ups = ups[(unsigned)_i % 6];
    screen_check(&cfg, &in, &r);
}
END_TEST

/* Whether the report holds s among count tokens. */
static bool
has_token(const char (*list)[PROTO_TOKEN_SIZE], size_t count, const char *s)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/*
 * The table's requirements (policy_req) and the per-select lookup of
 * their causes agree with the hard rules worked out here from the
 * strings: every variant's first failed hard rule (format, then
 * accelerators, then memory) is counted once, among the omitted ones or
 * by the first reason of a listed one, in families with more distinct
 * requirements than the table indexes and with fewer; each indexed
 * requirement names its variants' format and accelerators.
 */
START_TEST(test_policy_screen_hard_causes)
{
    static struct proto_candidate cs[SCREEN_MAX];
    static struct proto_reasons rsc[SCREEN_MAX];
    unsigned seed = 31 + 7717u * (unsigned)_i;
    struct proto_report r;
    size_t nd, n = screen_family(&seed, _i % 3 == 0, &r, &nd);
    struct policy_input in = { .family = "hard", .variants = screen_vs,
                               .variant_count = n, .deltas = screen_ds,
                               .delta_count = nd };
    const struct policy_table *t;
    struct policy_config cfg;
    struct proto_decision d;
    size_t want[PROTO_CAUSE_COUNT] = {0}, got[PROTO_CAUSE_COUNT] = {0};
    size_t offered[SCREEN_MAX], m;

    with_table(&in);
    t = in.table;
    for (size_t i = 0; i < n; i++) {
        const struct proto_variant *v = &screen_vs[i];
        const struct policy_row *row = &t->rows[i];

        if (row->req == POLICY_REQ_NONE) {
            ck_assert_uint_eq(t->req_count, POLICY_REQ_MAX);
            continue;
        }
        ck_assert_uint_lt(row->req, t->req_count);
        ck_assert_uint_eq(t->reqs[row->req].format, row->format);
        ck_assert_uint_eq(t->reqs[row->req].accelerator_count,
                          v->accelerator_count);
        for (size_t a = 0; a < v->accelerator_count; a++)
            ck_assert_str_eq(
                t->strings[t->accelerators
                               [t->reqs[row->req].accelerator_first + a]],
                v->accelerators[a]);
    }
    m = policy_offered(&in, &r, offered);
    /* all_offered: a family of single, fully rolled out versions */
    {
        bool all = true;

        for (size_t i = 0; i < n; i++)
            all = all && screen_vs[i].rollout_percent >= 100 &&
                  (i == 0 || strcmp(screen_vs[i].name,
                                    screen_vs[i - 1].name) != 0);
        ck_assert_int_eq(t->all_offered, all);
        if (all)
            ck_assert_uint_eq(m, n);
    }
    for (size_t j = 0; j < m; j++) {
        const struct proto_variant *v = &screen_vs[offered[j]];
        bool acc_ok = true;

        for (size_t a = 0; a < v->accelerator_count; a++)
            acc_ok = acc_ok && has_token(r.accelerators, r.accelerator_count,
                                         v->accelerators[a]);
        if (v->format[0] && r.has_formats &&
            !has_token(r.formats, r.format_count, v->format))
            want[PROTO_CAUSE_FORMAT]++;
        else if (!acc_ok)
            want[PROTO_CAUSE_ACCELERATOR]++;
        else if ((v->memory_bytes ? v->memory_bytes : v->size_bytes) >
                 r.memory_bytes)
            want[PROTO_CAUSE_MEMORY]++;
    }

    policy_config_default(&cfg);
    memset(&d, 0, sizeof(d));
    d.candidates = cs;
    d.candidate_reasons = rsc;
    ck_assert_int_eq(policy_select(&cfg, &in, &r, &d), POLICY_OK);
    for (size_t c = 0; c < PROTO_CAUSE_COUNT; c++)
        got[c] = d.omitted[c];
    for (size_t i = 0; i < d.candidate_count; i++) {
        const char *first = rsc[i].count ? rsc[i].text[0] : "";

        if (cs[i].hard_ok)
            continue;
        got[strncmp(first, "format:", 7) == 0        ? PROTO_CAUSE_FORMAT
            : strncmp(first, "accelerator:", 12) == 0 ? PROTO_CAUSE_ACCELERATOR
                                                      : PROTO_CAUSE_MEMORY]++;
    }
    ck_assert_uint_eq(got[PROTO_CAUSE_FORMAT], want[PROTO_CAUSE_FORMAT]);
    ck_assert_uint_eq(got[PROTO_CAUSE_ACCELERATOR],
                      want[PROTO_CAUSE_ACCELERATOR]);
    /* the chosen version may be held current that does not fit now */
    ck_assert_uint_le(got[PROTO_CAUSE_MEMORY], want[PROTO_CAUSE_MEMORY]);
    ck_assert_uint_ge(got[PROTO_CAUSE_MEMORY] + 1, want[PROTO_CAUSE_MEMORY]);
}
END_TEST

/* The reason texts' number writers (policy/reason_text.c) write what
 * printf writes: "%.<p>g" for p = 1..9 and "%.0f", over magnitudes
 * 1e-8..1e16 (both signs), decimal-looking values, values on or a hair
 * from a rounding tie, decade edges; and the appenders cut off like
 * vsnprintf. */
#define RT_CHUNKS 10
static uint64_t rt_seed;

static double
rt_random(int i)
{
    double mant;
    int ex;

    rt_seed ^= rt_seed << 13;
    rt_seed ^= rt_seed >> 7;
    rt_seed ^= rt_seed << 17;
    ex = (int)(rt_seed % 25) - 8;                /* 1e-8 .. 1e16 */
    mant = (double)(rt_seed >> 11) / 9007199254740992.0;
    switch (i % 6) {
    case 0: return mant * pow(10, ex);           /* any bits */
    case 1: return round(mant * 1e4) / 100.0;    /* 2 decimals */
    case 2: return round(mant * 1e7) / 1e7 * pow(10, ex % 6);
    case 3: return (round(mant * 2e6) + 0.5) / pow(10, ex % 7); /* ties */
    case 4: return round(mant * 2e3) / 2;        /* halves: %.0f ties */
    default: return pow(10, ex) * (1 - (double)(rt_seed % 3) * 1e-16);
    }
}

START_TEST(test_reason_text_numbers_as_printf)
{
    static const double fixed[] = {
        0, -0.0, 57, 38.4, 0.706, 1e-4, 9.99999e-5, 99999.95, 999.5, 99.95,
        0.5, 1.5, 2.5, -0.5, -0.3, 1e3, 1e6, 9.995, 0.0009995, 320, 1387.63,
        0.0636, 1e15, 9007199254740993.0, 5e-324, 1.7976931348623157e308,
        INFINITY, -INFINITY, NAN,
    };
    char got[RT_NUM_SIZE], want[400];
    /* 300,000 random values in RT_CHUNKS runs, each under its own timeout
       and with its own seed, so a loaded machine cannot time one out. */
    int first = _i ? (int)ARRAY_SIZE(fixed) : 0;

    rt_seed = 88172645463325252ull + (uint64_t)_i * 0x9e3779b97f4a7c15ull;
    for (int i = first; i < (int)ARRAY_SIZE(fixed) + 300000 / RT_CHUNKS; i++) {
        double x = i < (int)ARRAY_SIZE(fixed) ? fixed[i] : rt_random(i);
        size_t n;

        if (i >= (int)ARRAY_SIZE(fixed) && (rt_seed & 1024))
            x = -x;
        for (int p = 1; p <= 9; p++) {
            if (p != 3 && p != 6 && i % 8)
                continue;   /* the precisions in use: every value */
            n = rt_fmt_g(got, x, p);
            snprintf(want, sizeof(want), "%.*g", p, x);
            ck_assert_msg(strcmp(got, want) == 0, "%%.%dg of %.17g: %s, printf %s",
                          p, x, got, want);
            ck_assert_uint_eq(n, strlen(got));
        }
        if (!(fabs(x) < 1e30))
            continue;       /* %.0f of 1e308 does not fit RT_NUM_SIZE */
        n = rt_fmt_f0(got, x);
        snprintf(want, sizeof(want), "%.0f", x);
        ck_assert_msg(strcmp(got, want) == 0, "%%.0f of %.17g: %s, printf %s",
                      x, got, want);
        ck_assert_uint_eq(n, strlen(got));
    }
}
END_TEST

START_TEST(test_reason_text_appenders_as_snprintf)
{
    struct proto_reasons rs = {0};
    char want[PROTO_REASON_SIZE], wide[400];
    struct rtext t;
    char longs[300];

    memset(longs, 'x', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    rt_begin(&t, &rs);
    rt_s(&t, "a ");
    rt_u64(&t, UINT64_MAX);
    rt_s(&t, " ");
    rt_i(&t, -2147483647 - 1);
    rt_s(&t, " ");
    rt_g(&t, 0.0636, 3);
    rt_s(&t, " ");
    rt_f0(&t, 1799.5);
    rt_end(&t);
    snprintf(want, sizeof(want), "a %llu %d %.3g %.0f",
             (unsigned long long)UINT64_MAX, -2147483647 - 1, 0.0636, 1799.5);
    ck_assert_uint_eq(rs.count, 1);
    ck_assert_str_eq(rs.text[0], want);
    for (size_t cut = 100; cut < 170; cut++) {  /* cut off like vsnprintf */
        longs[cut] = '\0';
        rt_begin(&t, &rs);
        rt_s(&t, longs);
        rt_g(&t, 123.456, 6);
        rt_end(&t);
        snprintf(wide, sizeof(wide), "%s%.6g", longs, 123.456);
        wide[PROTO_REASON_SIZE - 1] = '\0';   /* vsnprintf's cut */
        ck_assert_str_eq(rs.text[rs.count - 1], wide);
        longs[cut] = 'x';
        if (rs.count == PROTO_MAX_REASONS)
            break;
    }
    for (size_t size = 1; size < 40; size++) {  /* a buffer: as snprintf */
        char buf[40], exp[40];

        rt_begin_buf(&t, buf, size);
        rt_s(&t, "gain ");
        rt_g(&t, 0.0123456, 3);
        rt_s(&t, " over ");
        rt_f0(&t, 1715.5);
        rt_end(&t);
        snprintf(exp, size, "gain %.3g over %.0f", 0.0123456, 1715.5);
        ck_assert_str_eq(buf, exp);
    }
    rt_begin(&t, &rs);                          /* full: nothing added */
    rt_s(&t, "more");
    rt_end(&t);
    ck_assert_uint_eq(rs.count, PROTO_MAX_REASONS);
}
END_TEST

static Suite *
policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc;

    tc = tcase_create("select");
    /* one loop iteration is milliseconds; room for a starved, niced run
     * on a loaded machine */
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_policy_select_cases, 0, ARRAY_SIZE(cases));
    tcase_add_loop_test(tc, test_policy_select_estimates, 0,
                        ARRAY_SIZE(estimate_cases));
    tcase_add_loop_test(tc, test_policy_select_time_cases, 0,
                        ARRAY_SIZE(time_cases));
    tcase_add_loop_test(tc, test_policy_select_held_not_candidate, 0,
                        ARRAY_SIZE(held_setups));
    tcase_add_loop_test(tc, test_policy_throughput_estimate_cases, 0,
                        ARRAY_SIZE(bps_cases));
    tcase_add_loop_test(tc, test_policy_select_old_keep, 0,
                        ARRAY_SIZE(old_keep_cases));
    tcase_add_test(tc, test_policy_select_old_rows_not_walked);
    tcase_add_test(tc, test_policy_select_large_family);
    tcase_add_test(tc, test_policy_select_no_runner_ups);
    tcase_add_loop_test(tc, test_policy_select_lazy_value_agrees, 0, 200);
    tcase_add_loop_test(tc, test_policy_screen_agrees, 0, 240);
    tcase_add_loop_test(tc, test_policy_screen_many_classes_agree, 0, 120);
    tcase_add_loop_test(tc, test_policy_screen_near_ties_agree, 0, 240);
    tcase_add_loop_test(tc, test_policy_screen_plain_agrees, 0, 384);
    tcase_add_loop_test(tc, test_policy_screen_hard_causes, 0, 120);
    tcase_add_test(tc, test_policy_select_delta_index);
    tcase_add_test(tc, test_policy_select_memory_from_size);
    tcase_add_test(tc, test_policy_select_rollout_current_not_offered);
    tcase_add_test(tc, test_policy_select_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("rollout");
    tcase_add_test(tc, test_policy_rollout_bucket_is_fnv1a);
    tcase_add_loop_test(tc, test_policy_rollout_bucket_values, 0,
                        ARRAY_SIZE(bucket_cases));
    tcase_add_test(tc, test_policy_rollout_bucket_share);
    suite_add_tcase(s, tc);

    tc = tcase_create("table");
    tcase_add_loop_test(tc, test_policy_table_agrees, 0, 200);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, test_policy_config_default_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("reason_text");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_reason_text_numbers_as_printf, 0, RT_CHUNKS);
    tcase_add_test(tc, test_reason_text_appenders_as_snprintf);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
