/*
 * `modeld demo`: writes the demo catalog (the two families of Table 6.1.1-1
 * of the model-data study) into a data directory through the store API
 * only, waits until the background worker has made the deltas, and prints a
 * summary. The model files are deterministic pseudo-weights: float32 values
 * drawn layer by layer from a seeded PRNG, so they compress and delta like
 * real weights without shipping any. Safe to run again: what is already
 * there is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "fileio/fileio.h"
#include "proto/proto.h"
#include "server/commands.h"
#include "store/store.h"

#define CHUNK_BYTES ((size_t)1 << 20)
#define DEFAULT_SCALE 0.01
#define MAX_SCALE 4.0
#define TOKEN_BYTES 32
#define WAIT_STEP_MS 5000
#define MAX_TECHNIQUES 3

enum demo_family {
    FAMILY_CLASSIFICATION = 0,
    FAMILY_DETECTION,
};

static const struct family_spec {
    const char *name;
    const char *task;
    const char *description;
} families[] = {
    [FAMILY_CLASSIFICATION] = {
        "image-classification", "image-classification",
        "ImageNet classifiers from Table 6.1.1-1 of the model-data study; "
        "accuracy is top-1",
    },
    [FAMILY_DETECTION] = {
        "object-detection", "object-detection",
        "COCO object detectors from Table 6.1.1-1 of the model-data study; "
        "accuracy is mAP",
    },
};

/*
 * One row of the table. memory_bytes is the footprint in decimal bytes
 * (13.2 MB = 13200000); flops is a FLOP count. Early exits, measured
 * latencies, context and the retrained version are set in variant_meta().
 */
static const struct variant_spec {
    enum demo_family family;
    const char *name;
    uint64_t params;
    uint64_t memory_bytes;
    double flops;
    double accuracy;
    const char *format;
    const char *techniques[MAX_TECHNIQUES];
} variants[] = {
    { FAMILY_CLASSIFICATION, "mobilenet-v1-1.0-224", 3300000, 13200000,
      0.28e9, 0.706, "tflite", { "depthwise-separable" } },
    { FAMILY_CLASSIFICATION, "efficientnet-b0", 5300000, 21200000,
      0.39e9, 0.771, "tflite", { "compound-scaling" } },
    { FAMILY_CLASSIFICATION, "densenet-169", 14000000, 56000000,
      3.5e9, 0.762, "onnx", { "dense-connectivity" } },
    { FAMILY_CLASSIFICATION, "inception-v3", 24000000, 96000000,
      5.7e9, 0.779, "onnx", { "factorized-convolutions" } },
    { FAMILY_CLASSIFICATION, "resnet-50", 26000000, 104000000,
      4.1e9, 0.761, "onnx", { "residual" } },
    { FAMILY_CLASSIFICATION, "vgg-16", 138000000, 552000000,
      16e9, 0.716, "onnx", { "baseline", "early-exit" } },
    { FAMILY_DETECTION, "ssd300-mobilenet", 6800000, 27200000,
      1.2e9, 0.210, "tflite", { "depthwise-separable", "single-shot" } },
    { FAMILY_DETECTION, "efficientdet-d0", 3900000, 15600000,
      2.5e9, 0.338, "tflite", { "compound-scaling", "bifpn" } },
    { FAMILY_DETECTION, "fasterrcnn-mobilenet", 6100000, 24400000,
      25.2e9, 0.328, "tflite", { "depthwise-separable", "two-stage" } },
    { FAMILY_DETECTION, "ssd300-deeplab", 33100000, 132400000,
      34.9e9, 0.232, "onnx", { "single-shot", "atrous-convolution" } },
    { FAMILY_DETECTION, "fasterrcnn-vgg", 138500000, 554000000,
      64.3e9, 0.219, "onnx", { "baseline", "two-stage" } },
    { FAMILY_DETECTION, "yolov3", 40500000, 122000000,
      71e9, 0.330, "onnx", { "single-shot" } },
};

/* The variant that gets a second, retrained version (index in variants). */
#define RETRAINED_VARIANT 0
#define RETRAINED_ACCURACY 0.709

struct options {
    const char *data_dir;
    const char *token_file;
    double scale;
};

#define USAGE_LINE \
    "usage: modeld demo --data DIR [--scale S] [--token-file FILE]\n"

static void
usage(FILE *f)
{
    fprintf(f,
            USAGE_LINE
            "\n"
            "Writes the demo catalog (two families, twelve variants of\n"
            "Table 6.1.1-1, and a retrained second version of\n"
            "mobilenet-v1-1.0-224) into DIR, waits for the delta worker and\n"
            "prints a summary. Does nothing for what DIR already holds.\n"
            "\n"
            "  --data DIR         data directory (created when absent)\n"
            "  --scale S          model files are footprint x S bytes\n"
            "                     (default %g; 1 for full size, at most %g)\n"
            "  --token-file FILE  when FILE does not exist, write a fresh\n"
            "                     random admin token to it (mode 0600)\n"
            "  --help             this text\n",
            DEFAULT_SCALE, MAX_SCALE);
}

/* Takes "--name VALUE" or "--name=VALUE"; advances *i past the value. */
static const char *
option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];

    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0' || *i + 1 >= argc)
        return NULL;
    (*i)++;
    return argv[*i];
}

/* Returns 0, 1 for --help, or 2 for a usage error (already reported). */
static int
parse_args(int argc, char **argv, struct options *out)
{
    out->data_dir = NULL;
    out->token_file = NULL;
    out->scale = DEFAULT_SCALE;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *v;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--data", 6) == 0 &&
            (v = option_value(argc, argv, &i, "--data")) != NULL) {
            out->data_dir = v;
        } else if (strncmp(arg, "--token-file", 12) == 0 &&
                   (v = option_value(argc, argv, &i, "--token-file")) !=
                       NULL) {
            out->token_file = v;
        } else if (strncmp(arg, "--scale", 7) == 0 &&
                   (v = option_value(argc, argv, &i, "--scale")) != NULL) {
            char *end = NULL;

            errno = 0;
            out->scale = strtod(v, &end);
            if (errno != 0 || end == v || *end != '\0' ||
                !(out->scale > 0.0) || out->scale > MAX_SCALE) {
                fprintf(stderr,
                        "modeld demo: --scale wants a number in (0, %g], "
                        "got \"%.32s\"\n",
                        MAX_SCALE, v);
                return 2;
            }
        } else {
            fprintf(stderr, "modeld demo: unknown or incomplete option "
                            "\"%.64s\"\n" USAGE_LINE, arg);
            return 2;
        }
    }
    if (!out->data_dir || out->data_dir[0] == '\0') {
        fprintf(stderr,
                "modeld demo: --data DIR is required\n" USAGE_LINE);
        return 2;
    }
    if (out->token_file && out->token_file[0] == '\0') {
        fprintf(stderr, "modeld demo: --token-file wants a path\n");
        return 2;
    }
    return 0;
}

/* ---- pseudo-weights ------------------------------------------------------ */

/*
 * Generates a model file as a stream of float32 values (little-endian).
 * The values come in "layers" of 1K..256K floats, each a zero-mean
 * Gaussian (sum of four uniforms) with its own standard deviation around
 * 0.05, so the bytes have the entropy of trained weights: zstd saves a few
 * percent. A retrained copy perturbs about 2% of the values, in short
 * runs, with a second PRNG, so both copies share every other byte.
 */
struct weights {
    uint64_t rng;
    uint64_t total_floats;
    uint64_t layer_left;
    double layer_std;
    bool retrained;
    uint64_t retrain_rng;
    uint64_t run_mean;
    uint64_t gap_mean;
    uint64_t run_left;
    uint64_t gap_left;
};

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double
uniform01(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

/* Approximately N(0, 1): four 32-bit uniforms, centred and scaled. */
static double
gaussian(uint64_t *state)
{
    uint64_t a = splitmix64(state);
    uint64_t b = splitmix64(state);
    double sum = (double)(a >> 32) + (double)(a & 0xffffffffu) +
                 (double)(b >> 32) + (double)(b & 0xffffffffu);

    return (sum * 0x1.0p-32 - 2.0) * 1.7320508075688772;
}

static uint64_t
fnv1a64(const char *s)
{
    return proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, s);
}

static uint64_t
next_run(struct weights *w)
{
    return w->run_mean / 2 + splitmix64(&w->retrain_rng) % (w->run_mean + 1);
}

static uint64_t
next_gap(struct weights *w)
{
    return 1 + splitmix64(&w->retrain_rng) % (2 * w->gap_mean);
}

static void
weights_init(struct weights *w, const char *name, uint64_t size_bytes,
             bool retrained)
{
    uint64_t first_gap_max;

    memset(w, 0, sizeof(*w));
    w->rng = fnv1a64(name);
    w->total_floats = size_bytes / 4;
    w->retrained = retrained;
    if (!retrained)
        return;
    w->retrain_rng = fnv1a64(name) ^ 0x5265747261696e21ULL;
    /* Runs of ~256 floats in big files, shorter in tiny ones, one run per
     * 49 run lengths of gap: about 2% of the values change. */
    w->run_mean = w->total_floats / 400;
    if (w->run_mean < 4)
        w->run_mean = 4;
    if (w->run_mean > 256)
        w->run_mean = 256;
    w->gap_mean = w->run_mean * 49;
    /* The first run starts in the first half, so even a tiny file changes. */
    first_gap_max = 2 * w->gap_mean;
    if (first_gap_max > w->total_floats / 2 + 1)
        first_gap_max = w->total_floats / 2 + 1;
    w->gap_left = splitmix64(&w->retrain_rng) % first_gap_max;
}

static void
weights_fill(struct weights *w, unsigned char *buf, size_t floats)
{
    for (size_t i = 0; i < floats; i++) {
        double v;
        float f;
        uint32_t bits;

        if (w->layer_left == 0) {
            w->layer_left = (uint64_t)1 << (10 + splitmix64(&w->rng) % 9);
            w->layer_std = 0.05 * exp2(uniform01(&w->rng) * 3.0 - 1.5);
        }
        w->layer_left--;
        v = w->layer_std * gaussian(&w->rng);
        if (w->retrained) {
            if (w->run_left == 0 && w->gap_left == 0)
                w->run_left = next_run(w);
            if (w->run_left > 0) {
                v += w->layer_std * 0.02 * gaussian(&w->retrain_rng);
                if (--w->run_left == 0)
                    w->gap_left = next_gap(w);
            } else {
                w->gap_left--;
            }
        }
        f = (float)v;
        memcpy(&bits, &f, sizeof(bits));
        buf[4 * i] = (unsigned char)bits;
        buf[4 * i + 1] = (unsigned char)(bits >> 8);
        buf[4 * i + 2] = (unsigned char)(bits >> 16);
        buf[4 * i + 3] = (unsigned char)(bits >> 24);
    }
}

typedef int (*chunk_fn)(void *ctx, const void *data, size_t len);

/* Streams one model file to fn in CHUNK_BYTES pieces. buf holds
 * CHUNK_BYTES. Returns fn's first non-zero result, or 0. */
static int
weights_stream(const char *name, uint64_t size_bytes, bool retrained,
               unsigned char *buf, chunk_fn fn, void *ctx)
{
    struct weights w;
    uint64_t left = size_bytes;

    weights_init(&w, name, size_bytes, retrained);
    while (left > 0) {
        size_t n = left < CHUNK_BYTES ? (size_t)left : CHUNK_BYTES;
        int rc;

        weights_fill(&w, buf, n / 4);
        rc = fn(ctx, buf, n);
        if (rc != 0)
            return rc;
        left -= n;
    }
    return 0;
}

static int
hash_chunk(void *ctx, const void *data, size_t len)
{
    return proto_hasher_update(ctx, data, len) == PROTO_OK ? 0 : 1;
}

static int
upload_chunk(void *ctx, const void *data, size_t len)
{
    enum store_status rc = store_upload_write(ctx, data, len);

    return rc == STORE_OK ? 0 : (int)rc;
}

/* footprint x scale, rounded to whole float32 values, at least one. */
static uint64_t
blob_size(uint64_t memory_bytes, double scale)
{
    long long floats = llround((double)memory_bytes * scale / 4.0);

    return floats < 1 ? 4 : (uint64_t)floats * 4;
}

/* ---- catalog ------------------------------------------------------------- */

static void
variant_meta(const struct variant_spec *s, int64_t version,
             const char blob_hex[PROTO_HEX_SIZE], struct proto_variant *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->family, sizeof(out->family), "%s", families[s->family].name);
    snprintf(out->name, sizeof(out->name), "%s", s->name);
    memcpy(out->blob_hex, blob_hex, PROTO_HEX_SIZE);
    snprintf(out->format, sizeof(out->format), "%s", s->format);
    for (size_t i = 0; i < MAX_TECHNIQUES && s->techniques[i]; i++) {
        snprintf(out->techniques[i], sizeof(out->techniques[i]), "%s",
                 s->techniques[i]);
        out->technique_count++;
    }
    out->params = s->params;
    out->flops = s->flops;
    out->accuracy = s->accuracy;
    out->memory_bytes = s->memory_bytes;
    out->rollout_percent = 100;

    if (strcmp(s->name, "mobilenet-v1-1.0-224") == 0) {
        /* Measured on an NPU; plain reports (no class) still estimate. */
        snprintf(out->latency_ms[0].device_class,
                 sizeof(out->latency_ms[0].device_class), "npu-class-a");
        out->latency_ms[0].value = 4.0;
        out->latency_count = 1;
        if (version >= 2)
            out->accuracy = RETRAINED_ACCURACY;
    } else if (strcmp(s->name, "vgg-16") == 0) {
        out->exits[0] = (struct proto_exit){ .flops = 4e9, .accuracy = 0.55 };
        out->exits[1] = (struct proto_exit){ .flops = 9e9, .accuracy = 0.66 };
        out->exit_count = 2;
    } else if (strcmp(s->name, "fasterrcnn-mobilenet") == 0) {
        /* Fine-tuned on low-light frames. */
        snprintf(out->context[0].key, sizeof(out->context[0].key), "scene");
        snprintf(out->context[0].value, sizeof(out->context[0].value),
                 "night");
        out->context_count = 1;
    }
}

static int
digest_of(struct proto_hasher *h, const char *name, uint64_t size_bytes,
          bool retrained, unsigned char *buf, char out_hex[PROTO_HEX_SIZE])
{
    proto_hasher_reset(h);
    if (weights_stream(name, size_bytes, retrained, buf, hash_chunk, h) != 0)
        return -1;
    return proto_hasher_final(h, out_hex) == PROTO_OK ? 0 : -1;
}

/* Generates, uploads and publishes one version; prints one line. */
static int
publish_version(struct store *st, struct proto_hasher *h, unsigned char *buf,
                const struct variant_spec *s, int64_t version,
                double scale)
{
    uint64_t size = blob_size(s->memory_bytes, scale);
    bool retrained = version >= 2;
    char hex[PROTO_HEX_SIZE];
    struct store_upload *up = NULL;
    struct proto_variant meta;
    enum store_status rc;
    bool created = false;
    uint64_t stored = 0;
    int64_t got_version = 0;
    int wrc;

    if (digest_of(h, s->name, size, retrained, buf, hex) != 0) {
        fprintf(stderr, "modeld demo: hashing %s failed\n", s->name);
        return -1;
    }
    rc = store_upload_begin(st, hex, size, &up);
    if (rc != STORE_OK)
        goto fail;
    wrc = weights_stream(s->name, size, retrained, buf, upload_chunk, up);
    if (wrc != 0) {
        rc = (enum store_status)wrc;
        store_upload_abort(up);
        goto fail;
    }
    rc = store_upload_finish(up, &created, &stored);
    if (rc != STORE_OK)
        goto fail;
    variant_meta(s, version, hex, &meta);
    rc = store_variant_publish(st, families[s->family].name, s->name, &meta,
                               (int64_t)time(NULL), &got_version);
    if (rc != STORE_OK)
        goto fail;
    printf("  %s/%s v%lld: %llu bytes sha256:%.12s...\n",
           families[s->family].name, s->name, (long long)got_version,
           (unsigned long long)stored, hex);
    fflush(stdout);
    return 0;
fail:
    fprintf(stderr, "modeld demo: publishing %s/%s v%lld failed (%d): %s\n",
            families[s->family].name, s->name, (long long)version, (int)rc,
            store_errmsg(st));
    return -1;
}

/* The newest version of a variant in a snapshot, 0 when absent. */
static int64_t
latest_version(const struct store_snapshot *snap, const char *name,
               size_t *out_index)
{
    if (!snap)
        return 0;
    for (size_t i = 0; i < snap->variant_count; i++) {
        if (snap->latest[i] && strcmp(snap->variants[i].name, name) == 0) {
            if (out_index)
                *out_index = i;
            return snap->variants[i].version;
        }
    }
    return 0;
}

static bool
family_is_listed(const struct proto_family *list, size_t count,
                 const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(list[i].name, name) == 0)
            return true;
    return false;
}

/* Creates what is missing of one family; adds to *published. */
static int
fill_family(struct store *st, struct proto_hasher *h, unsigned char *buf,
            enum demo_family fam, bool listed, double scale,
            unsigned *published)
{
    const struct store_snapshot *snap = NULL;
    enum store_status rc;
    int status = -1;

    if (!listed) {
        struct proto_family f;
        bool created = false;

        memset(&f, 0, sizeof(f));
        snprintf(f.name, sizeof(f.name), "%s", families[fam].name);
        snprintf(f.task, sizeof(f.task), "%s", families[fam].task);
        snprintf(f.description, sizeof(f.description), "%s",
                 families[fam].description);
        rc = store_family_put(st, families[fam].name, &f, &created);
        if (rc != STORE_OK) {
            fprintf(stderr, "modeld demo: creating family %s failed: %s\n",
                    families[fam].name, store_errmsg(st));
            goto out;
        }
        printf("family %s\n", families[fam].name);
    } else {
        rc = store_snapshot_get(st, families[fam].name, &snap);
        if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
            fprintf(stderr, "modeld demo: reading family %s failed: %s\n",
                    families[fam].name, store_errmsg(st));
            goto out;
        }
        printf("family %s (exists)\n", families[fam].name);
    }

    /* Every first version before the retrained one, so the worker makes
     * the v1 -> v2 delta from a published v1. */
    for (int64_t version = 1; version <= 2; version++) {
        for (size_t i = 0; i < ARRAY_SIZE(variants); i++) {
            const struct variant_spec *s = &variants[i];
            int64_t want = i == RETRAINED_VARIANT ? 2 : 1;

            if (s->family != fam || version > want)
                continue;
            if (latest_version(snap, s->name, NULL) >= version)
                continue;
            if (publish_version(st, h, buf, s, version, scale) != 0)
                goto out;
            (*published)++;
        }
    }
    status = 0;
out:
    store_snapshot_release(snap);
    return status;
}

/* ---- admin token --------------------------------------------------------- */

/* Writes a fresh random token to path unless path exists; never a part
 * of one (a crash mid-write must not leave a short or empty token that
 * the next run would keep). */
static int
token_file_create(const char *path)
{
    unsigned char raw[TOKEN_BYTES];
    char hex[2 * TOKEN_BYTES + 2];
    int status = -1;

    if (access(path, F_OK) == 0) {
        printf("admin token: keeping %s\n", path);
        return 0;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        fprintf(stderr, "modeld demo: no random bytes for the token\n");
        goto out;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * TOKEN_BYTES] = '\n';
    hex[2 * TOKEN_BYTES + 1] = '\0';
    if (fileio_put(path, hex, 2 * TOKEN_BYTES + 1, 0600, true) != 0) {
        if (errno == EEXIST) {
            printf("admin token: keeping %s\n", path);
            status = 0;
        } else {
            fprintf(stderr, "modeld demo: writing %s failed: %s\n", path,
                    strerror(errno));
        }
        goto out;
    }
    printf("admin token: wrote a new one to %s (mode 0600)\n", path);
    status = 0;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    return status;
}

/* ---- worker and summary -------------------------------------------------- */

static int
wait_for_worker(struct store *st, double scale)
{
    /* Ten minutes covers the default scale many times over; full-size
     * models need longer for the zstd copies. */
    long long limit_ms = 600000;
    long long waited_ms = 0;

    if (scale > 0.25)
        limit_ms = (long long)(600000 * 4 * scale);
    for (;;) {
        struct store_stats stats;
        enum store_status rc = store_worker_wait_idle(st, WAIT_STEP_MS);

        if (rc == STORE_OK)
            return 0;
        if (rc != STORE_TIMEOUT) {
            fprintf(stderr, "modeld demo: waiting for the worker failed: "
                            "%s\n", store_errmsg(st));
            return -1;
        }
        waited_ms += WAIT_STEP_MS;
        store_stats_get(st, &stats);
        printf("  worker: %llu pending, %llu deltas and %llu zstd copies "
               "made (%llds)\n",
               (unsigned long long)stats.deltas_pending,
               (unsigned long long)stats.deltas_made,
               (unsigned long long)stats.compressed_made,
               waited_ms / 1000);
        fflush(stdout);
        if (waited_ms >= limit_ms) {
            fprintf(stderr, "modeld demo: the worker is still busy after "
                            "%llds; the server will finish the deltas\n",
                    waited_ms / 1000);
            return -1;
        }
    }
}

/* Prints what the catalog holds now, read back through the store. */
static void
print_summary(struct store *st)
{
    const struct variant_spec *r = &variants[RETRAINED_VARIANT];
    uint64_t blob_bytes = 0;
    size_t variant_count = 0;
    size_t version_count = 0;
    char delta_line[256] = "";

    for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
        const struct store_snapshot *snap = NULL;

        if (store_snapshot_get(st, families[f].name, &snap) != STORE_OK)
            continue;
        for (size_t i = 0; i < snap->variant_count; i++) {
            const struct proto_variant *v = &snap->variants[i];

            if (!snap->latest[i])
                continue;
            variant_count++;
            version_count += (size_t)v->version;
            /* Older versions of the demo have the same size. */
            blob_bytes += (uint64_t)v->version * v->size_bytes;
            if (f != r->family || strcmp(v->name, r->name) != 0 ||
                v->version < 2)
                continue;
            snprintf(delta_line, sizeof(delta_line),
                     "delta %s v1 -> v2: not made (yet)", r->name);
            for (size_t d = 0; d < snap->delta_count; d++) {
                const struct proto_delta *dl = &snap->deltas[d];

                if (strcmp(dl->to_hex, v->blob_hex) != 0)
                    continue;
                snprintf(delta_line, sizeof(delta_line),
                         "delta %s v1 -> v2: %llu bytes, %.1f%% of the "
                         "%llu-byte model",
                         r->name, (unsigned long long)dl->size_bytes,
                         v->size_bytes ? 100.0 * (double)dl->size_bytes /
                                             (double)v->size_bytes
                                       : 0.0,
                         (unsigned long long)v->size_bytes);
                break;
            }
        }
        store_snapshot_release(snap);
    }
    printf("demo catalog: %zu families, %zu variants (%zu versions), "
           "%llu bytes of model files\n",
           ARRAY_SIZE(families), variant_count, version_count,
           (unsigned long long)blob_bytes);
    if (delta_line[0])
        printf("%s\n", delta_line);
}

int
cmd_demo(int argc, char **argv)
{
    struct options opt;
    struct store_options so;
    struct store *st = NULL;
    struct proto_family *listed = NULL;
    size_t listed_count = 0;
    struct proto_hasher *h = NULL;
    unsigned char *buf = NULL;
    unsigned published = 0;
    enum store_status rc;
    int status = 1;
    int prc = parse_args(argc, argv, &opt);

    if (prc == 1) {
        usage(stdout);
        return 0;
    }
    if (prc != 0)
        return 2;

    store_options_default(&so);
    so.run_worker = true;
    /* The demo's models are unrelated networks: deltas between them would
     * be rejected after much work. */
    so.delta_cross_variants = false;
    /* Level 19 over a gigabyte of full-size models takes too long; the
     * entropy stage, which is what saves bytes on weights, is the same. */
    if (opt.scale > 0.1)
        so.compress_level = 6;
    rc = store_open(opt.data_dir, &so, &st);
    if (rc != STORE_OK) {
        fprintf(stderr, "modeld demo: cannot open %s (%d)\n", opt.data_dir,
                (int)rc);
        goto out;
    }
    if (opt.token_file && token_file_create(opt.token_file) != 0)
        goto out;

    rc = store_family_list(st, &listed, &listed_count);
    if (rc != STORE_OK) {
        fprintf(stderr, "modeld demo: listing families failed: %s\n",
                store_errmsg(st));
        goto out;
    }
    h = proto_hasher_new();
    buf = malloc(CHUNK_BYTES);
    if (!h || !buf) {
        fprintf(stderr, "modeld demo: out of memory\n");
        goto out;
    }
    for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
        bool is_listed = family_is_listed(listed, listed_count,
                                          families[f].name);

        if (fill_family(st, h, buf, (enum demo_family)f, is_listed,
                        opt.scale, &published) != 0)
            goto out;
    }
    if (published == 0) {
        printf("%s already holds the demo catalog; nothing added\n",
               opt.data_dir);
    } else {
        printf("published %u versions; waiting for the delta worker...\n",
               published);
        fflush(stdout);
    }
    if (wait_for_worker(st, opt.scale) != 0)
        goto out;
    print_summary(st);
    status = 0;
out:
    free(buf);
    proto_hasher_free(h);
    free(listed);
    store_close(st);
    return status;
}
