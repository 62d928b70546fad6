/*
 * Writes the seed corpora of the tensor fuzz targets (run once, commit):
 *   make_tensor_seeds CORPUS_DIR
 * CORPUS_DIR/fuzz_tensor_map/: a small model in every format (TF.js with
 * its model.json), framed as fuzz_tensor_map reads them;
 * CORPUS_DIR/fuzz_tensor_dec/: a modeld-tensor/1 delta and a modeld-bg/1
 * coding of small models, framed as fuzz_tensor_dec reads them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tensor.h"
#include "tests/lib/tensorgen.h"

static void save(const char *dir, const char *name, const struct tg_buf *b)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static int sink(void *ctx, const void *data, size_t len)
{
    tg_put(ctx, data, len);
    return 0;
}

static void sha(const struct tg_buf *b, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();

    if (!h || proto_hasher_update(h, b->p, b->len) != PROTO_OK ||
        proto_hasher_final(h, out) != PROTO_OK)
        exit(1);
    proto_hasher_free(h);
}

int main(int argc, char **argv)
{
    char dir[4096];
    struct tg_model m, n;
    struct tg_buf f = { 0 }, j = { 0 }, seed = { 0 }, a = { 0 }, b = { 0 },
                  d = { 0 };
    struct proto_tensor_map ma, mb;
    struct proto_tensor_options opt = { 3 };
    char ha[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE];
    static const char *const names[] = { "safetensors", "gguf", "onnx",
                                          "tflite", "tfjs" };

    if (argc != 2)
        return 2;
    m = tg_model_new(1024, 5);
    snprintf(dir, sizeof(dir), "%s/fuzz_tensor_map", argv[1]);
    for (int k = 0; k < 5; k++) {
        f.len = j.len = seed.len = 0;
        switch (k) {
        case 0: tg_safetensors(&m, &f); break;
        case 1: tg_gguf(&m, &f); break;
        case 2: tg_onnx(&m, &f); break;
        case 3: tg_tflite(&m, &f); break;
        default: tg_tfjs(&m, &f, &j); break;
        }
        if (j.len) {
            unsigned char h[3] = { 1, (unsigned char)j.len,
                                   (unsigned char)(j.len >> 8) };

            tg_put(&seed, h, 3);
            tg_put(&seed, j.p, j.len);
        } else {
            tg_put(&seed, "", 1);
        }
        tg_put(&seed, f.p, f.len);
        save(dir, names[k], &seed);
    }
    /* A delta (fine-tune and fp16 at once) and a bg coding. */
    n = tg_model_copy(&m);
    tg_finetune(&n, 1.0, 1e-3, 1, 6);
    tg_to_f16(&n);
    tg_safetensors(&m, &a);
    tg_safetensors(&n, &b);
    sha(&a, ha);
    sha(&b, hb);
    if (proto_tensor_map_parse(a.p, a.len, NULL, 0, &ma) != PROTO_OK ||
        proto_tensor_map_parse(b.p, b.len, NULL, 0, &mb) != PROTO_OK ||
        proto_tensor_delta_make(a.p, a.len, &ma, b.p, b.len, &mb, ha, hb,
                                &opt, sink, &d) != PROTO_OK)
        return 1;
    snprintf(dir, sizeof(dir), "%s/fuzz_tensor_dec", argv[1]);
    seed.len = 0;
    {
        unsigned char h[3] = { (unsigned char)a.len,
                               (unsigned char)(a.len >> 8), 0 };

        tg_put(&seed, h, 3);
    }
    tg_put(&seed, a.p, a.len);
    tg_put(&seed, d.p, d.len);
    save(dir, "delta", &seed);
    d.len = seed.len = 0;
    if (proto_tensor_bg_make(b.p, b.len, &mb, hb, &opt, sink, &d) !=
        PROTO_OK)
        return 1;
    tg_put(&seed, "\0\0\x05", 3);
    tg_put(&seed, d.p, d.len);
    save(dir, "bg", &seed);
    /* A sparse delta: 1% of the values moved, half the layers pruned. */
    {
        struct tg_model sp = tg_model_copy(&m);
        struct tg_model half;
        struct tg_buf c = { 0 };
        struct proto_tensor_map mc;
        char hc[PROTO_HEX_SIZE];

        tg_finetune(&sp, 0.01, 1e-3, 0, 7);
        half.t = sp.t;
        half.count = sp.count / 2;
        tg_prune(&half, 0.5);
        tg_safetensors(&sp, &c);
        sha(&c, hc);
        d.len = seed.len = 0;
        if (proto_tensor_map_parse(c.p, c.len, NULL, 0, &mc) != PROTO_OK ||
            proto_tensor_delta_make(a.p, a.len, &ma, c.p, c.len, &mc, ha, hc,
                                    &opt, sink, &d) != PROTO_OK)
            return 1;
        {
            unsigned char h[3] = { (unsigned char)a.len,
                                   (unsigned char)(a.len >> 8), 0 };

            tg_put(&seed, h, 3);
        }
        tg_put(&seed, a.p, a.len);
        tg_put(&seed, d.p, d.len);
        save(dir, "sparse", &seed);
    }
    return 0;
}
