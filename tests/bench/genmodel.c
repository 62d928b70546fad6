/*
 * genmodel: writes the model pairs of the delta benchmark, deterministically.
 *
 *   genmodel SIZE_MIB OUTDIR
 *
 * OUTDIR/base.bin is a float32 "model" of about SIZE_MIB MiB: a sequence of
 * layers, each a rows x cols weight matrix drawn from N(0, sqrt(2/cols))
 * (He initialisation, the spread of real conv/dense weights) followed by a
 * bias vector drawn from N(0, 0.01). The other files are what a model
 * server sees as the next version of it:
 *   ft1.bin, ft10.bin, ft100.bin  fine-tuned: 1%, 10%, 100% of the values
 *                                 moved by 1% of their layer's spread
 *   pruned.bin                    structured pruning: a quarter of the rows
 *                                 (and their biases) of every layer removed
 *   reorder.bin                   the same weights, layers exported in
 *                                 another order
 * Same arguments, same bytes: the PRNG is a seeded xoshiro256**.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED 0x6d6f64656c64ULL /* "modeld" */
#define MAX_LAYERS 4096

struct layer {
    size_t rows;
    size_t cols;
    float *w;     /* rows * cols weights, then rows biases */
    double spread;
};

static uint64_t rng_state[4];

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(void)
{
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void
rng_seed(uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        /* splitmix64 */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        rng_state[i] = z ^ (z >> 31);
    }
}

/* Uniform in (0, 1). */
static double
rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double
rng_gauss(void)
{
    return sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit());
}

static size_t
layer_count(const struct layer *l)
{
    return l->rows * l->cols + l->rows;
}

static int
write_all(FILE *f, const void *p, size_t n)
{
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static FILE *
open_out(const char *dir, const char *name)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL)
        fprintf(stderr, "genmodel: %s: %s\n", path, strerror(errno));
    return f;
}

static int
close_out(FILE *f, int rc)
{
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Base model, or a fine-tuned copy with `fraction` of the values moved. */
static int
write_tuned(const char *dir, const char *name, struct layer *layers,
            size_t n_layers, double fraction)
{
    FILE *f = open_out(dir, name);
    int rc = 0;

    if (f == NULL)
        return -1;
    for (size_t i = 0; i < n_layers && rc == 0; i++) {
        size_t n = layer_count(&layers[i]);
        float *copy = malloc(n * sizeof(float));

        if (copy == NULL) {
            rc = -1;
            break;
        }
        memcpy(copy, layers[i].w, n * sizeof(float));
        for (size_t k = 0; k < n && fraction > 0; k++) {
            if (fraction >= 1.0 || rng_unit() < fraction)
                copy[k] += (float)(0.01 * layers[i].spread * rng_gauss());
        }
        rc = write_all(f, copy, n * sizeof(float));
        free(copy);
    }
    return close_out(f, rc);
}

static int
write_pruned(const char *dir, struct layer *layers, size_t n_layers)
{
    FILE *f = open_out(dir, "pruned.bin");
    int rc = 0;

    if (f == NULL)
        return -1;
    for (size_t i = 0; i < n_layers && rc == 0; i++) {
        const struct layer *l = &layers[i];
        unsigned char *keep = malloc(l->rows);

        if (keep == NULL) {
            rc = -1;
            break;
        }
        for (size_t r = 0; r < l->rows; r++)
            keep[r] = rng_unit() >= 0.25;
        for (size_t r = 0; r < l->rows && rc == 0; r++) {
            if (keep[r])
                rc = write_all(f, l->w + r * l->cols,
                               l->cols * sizeof(float));
        }
        for (size_t r = 0; r < l->rows && rc == 0; r++) {
            if (keep[r])
                rc = write_all(f, l->w + l->rows * l->cols + r,
                               sizeof(float));
        }
        free(keep);
    }
    return close_out(f, rc);
}

static int
write_reordered(const char *dir, struct layer *layers, size_t n_layers)
{
    FILE *f = open_out(dir, "reorder.bin");
    size_t *order = malloc(n_layers * sizeof(size_t));
    int rc = 0;

    if (f == NULL || order == NULL) {
        free(order);
        return f == NULL ? -1 : close_out(f, -1);
    }
    for (size_t i = 0; i < n_layers; i++)
        order[i] = i;
    for (size_t i = n_layers; i > 1; i--) {
        size_t j = (size_t)(rng_next() % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n_layers && rc == 0; i++) {
        const struct layer *l = &layers[order[i]];
        rc = write_all(f, l->w, layer_count(l) * sizeof(float));
    }
    free(order);
    return close_out(f, rc);
}

int
main(int argc, char **argv)
{
    static const size_t row_choices[] = {32, 64, 128, 256, 512};
    static const size_t col_choices[] = {144, 288, 576, 1152, 256, 512, 1024};
    static struct layer layers[MAX_LAYERS];
    size_t n_layers = 0, total = 0, target;
    char *end = NULL;
    double mib;
    int rc = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: genmodel SIZE_MIB OUTDIR\n");
        return 2;
    }
    mib = strtod(argv[1], &end);
    if (end == argv[1] || *end != '\0' || mib <= 0 || mib > 1024) {
        fprintf(stderr, "genmodel: SIZE_MIB must be in (0, 1024]\n");
        return 2;
    }
    target = (size_t)(mib * 1048576.0);
    rng_seed(SEED);
    while (total < target && n_layers < MAX_LAYERS) {
        struct layer *l = &layers[n_layers];
        size_t n;

        /* Layers of at most 1/16 of the model, so that every model has
         * a few dozen of them; the last one is cut to fit. */
        do {
            l->rows = row_choices[rng_next() % 5];
            l->cols = col_choices[rng_next() % 7];
        } while (l->rows > 32 && l->rows * l->cols * 4 * 16 > target);
        while (l->rows > 1 &&
               total + (l->rows * l->cols + l->rows) * 4 > target)
            l->rows--;
        l->spread = sqrt(2.0 / (double)l->cols);
        n = layer_count(l);
        l->w = malloc(n * sizeof(float));
        if (l->w == NULL) {
            fprintf(stderr, "genmodel: out of memory\n");
            return 1;
        }
        for (size_t k = 0; k < l->rows * l->cols; k++)
            l->w[k] = (float)(l->spread * rng_gauss());
        for (size_t k = l->rows * l->cols; k < n; k++)
            l->w[k] = (float)(0.01 * rng_gauss());
        total += n * sizeof(float);
        n_layers++;
    }
    rng_seed(SEED + 1);
    if (rc == 0)
        rc = write_tuned(argv[2], "base.bin", layers, n_layers, 0.0);
    if (rc == 0)
        rc = write_tuned(argv[2], "ft1.bin", layers, n_layers, 0.01);
    if (rc == 0)
        rc = write_tuned(argv[2], "ft10.bin", layers, n_layers, 0.10);
    if (rc == 0)
        rc = write_tuned(argv[2], "ft100.bin", layers, n_layers, 1.0);
    if (rc == 0)
        rc = write_pruned(argv[2], layers, n_layers);
    if (rc == 0)
        rc = write_reordered(argv[2], layers, n_layers);
    for (size_t i = 0; i < n_layers; i++)
        free(layers[i].w);
    if (rc != 0) {
        fprintf(stderr, "genmodel: writing %s failed\n", argv[2]);
        return 1;
    }
    return 0;
}
