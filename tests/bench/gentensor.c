/*
 * gentensor: writes the model pairs of the tensor-delta benchmark.
 *
 *   gentensor SIZE_KIB OUTDIR [FORMAT [PAIR...]]
 *
 * For each format F in onnx, tfjs, safetensors, tflite it writes OUTDIR/F/
 * base.F and the next versions a model server sees (tests/lib/tensorgen.h
 * has the models): ft1, ft10, ft100 (1%, 10%, 100% of the values moved by
 * N(0, 1e-3 |x|)), half (every other layer fine-tuned, all its values),
 * fp16 (the same weights re-exported as fp16), pruned (magnitude pruning:
 * the smaller half of each tensor's values set to 0), reorder (the same
 * weights, layers in reverse order). TF.js pairs are the weight shard
 * (.tfjs) and its model.json (.tfjs.json). FORMAT and PAIRs, when given,
 * limit what is written (base is always written). Deterministic.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/lib/tensorgen.h"

static const char *const pairs[] = { "base", "ft1", "ft10", "ft100",
                                     "half", "fp16", "pruned", "reorder" };
static const char *const formats[] = { "onnx", "tfjs", "safetensors",
                                       "tflite" };

static void write_file(const char *dir, const char *name, const char *ext,
                       const struct tg_buf *b)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
    f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "gentensor: cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    struct tg_model base;

    if (argc < 3 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: gentensor SIZE_KIB OUTDIR [FORMAT [PAIR...]]\n");
        return 2;
    }
    base = tg_model_new((size_t)atoi(argv[1]) << 10, 0x6d6f64656c64ull);
    for (size_t f = 0; f < sizeof(formats) / sizeof(formats[0]); f++) {
        char dir[4096];

        if (argc > 3 && strcmp(argv[3], formats[f]) != 0)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", argv[2], formats[f]);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "gentensor: cannot create %s\n", dir);
            return 1;
        }
        for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
            struct tg_model m;
            struct tg_buf b = { 0 }, j = { 0 };
            const char *n = pairs[p];
            bool wanted = p == 0 || argc <= 4;

            for (int a = 4; a < argc; a++)
                if (strcmp(argv[a], n) == 0)
                    wanted = true;
            if (!wanted)
                continue;
            m = tg_model_copy(&base);

            if (strcmp(n, "ft1") == 0)
                tg_finetune(&m, 0.01, 1e-3, 0, 101);
            else if (strcmp(n, "ft10") == 0)
                tg_finetune(&m, 0.10, 1e-3, 0, 102);
            else if (strcmp(n, "ft100") == 0)
                tg_finetune(&m, 1.0, 1e-3, 0, 103);
            else if (strcmp(n, "half") == 0)
                tg_finetune(&m, 1.0, 1e-3, 1, 104);
            else if (strcmp(n, "fp16") == 0)
                tg_to_f16(&m);
            else if (strcmp(n, "pruned") == 0)
                tg_prune(&m, 0.5);
            else if (strcmp(n, "reorder") == 0)
                tg_reorder(&m);
            switch (f) {
            case 0: tg_onnx(&m, &b); break;
            case 1: tg_tfjs(&m, &b, &j); break;
            case 2: tg_safetensors(&m, &b); break;
            default: tg_tflite(&m, &b); break;
            }
            write_file(dir, n, formats[f], &b);
            if (j.len)
                write_file(dir, n, "tfjs.json", &j);
            /* A fine-tune's information (tg_finetune_info_bits), in
             * bytes: what no lossless delta gets under on average. */
            if (strncmp(n, "ft", 2) == 0 || strcmp(n, "half") == 0) {
                struct tg_buf t = { 0 };
                char num[32];

                snprintf(num, sizeof(num), "%.0f\n",
                         tg_finetune_info_bits(&base, &m, 1e-3) / 8);
                tg_put(&t, num, strlen(num));
                write_file(dir, n, "info", &t);
                free(t.p);
            }
            free(b.p);
            free(j.p);
            tg_model_free(&m);
        }
    }
    tg_model_free(&base);
    return 0;
}
