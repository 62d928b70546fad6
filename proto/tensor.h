/*
 * Tensor-aware model coding: tensor maps of model files (safetensors, GGUF,
 * ONNX, TFLite, TF.js weights), the tensor delta `modeld-tensor/1` and the
 * byte-grouped full coding `modeld-bg/1`. Pure functions over bytes the
 * caller holds (usually a mapped file); output goes to a sink. The byte
 * layout of both codings is documented in proto/tensor_format.md.
 *
 * The UE side (client/) uses only the decoder: proto_tensor_dec_* takes the
 * coded bytes in pieces of any size as they arrive and writes the model to a
 * sink tensor by tensor; memory stays at one batch (at most 1 MiB) plus
 * zstd's windows, beside the caller's mapping of the old model.
 */
#ifndef PROTO_TENSOR_H
#define PROTO_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* The names of the codings, as in the report's accept and the decision. */
#define PROTO_DELTA_FORMAT_ZSTD "zstd-patch"
#define PROTO_DELTA_FORMAT_TENSOR "modeld-tensor/1"
#define PROTO_ENCODING_ZSTD "zstd"
#define PROTO_ENCODING_BG "modeld-bg/1"

/* ---- tensor maps ------------------------------------------------------- */

enum proto_model_format {
    PROTO_MODEL_UNKNOWN = 0,
    PROTO_MODEL_SAFETENSORS,
    PROTO_MODEL_GGUF,
    PROTO_MODEL_ONNX,
    PROTO_MODEL_TFLITE,
    PROTO_MODEL_TFJS,
};

enum proto_dtype {
    PROTO_DTYPE_OTHER = 0, /* bytes of unknown structure (quantized...) */
    PROTO_DTYPE_F32,
    PROTO_DTYPE_F16,
    PROTO_DTYPE_BF16,
    PROTO_DTYPE_F64,
    PROTO_DTYPE_I8,
    PROTO_DTYPE_U8,
    PROTO_DTYPE_I16,
    PROTO_DTYPE_U16,
    PROTO_DTYPE_I32,
    PROTO_DTYPE_U32,
    PROTO_DTYPE_I64,
    PROTO_DTYPE_U64,
    PROTO_DTYPE_BOOL,
};

#define PROTO_TENSOR_NAME_SIZE 192 /* longer names are cut (still unique
                                      enough to match by) */
#define PROTO_TENSOR_MAX_DIMS 8
#define PROTO_TENSOR_MAX_COUNT 1000000

/* One tensor's bytes in the file: [offset, offset + len). */
struct proto_tensor {
    char name[PROTO_TENSOR_NAME_SIZE];
    enum proto_dtype dtype;
    unsigned elem_bytes;          /* 1, 2, 4 or 8: the byte-plane width */
    unsigned ndim;                /* dims beyond PROTO_TENSOR_MAX_DIMS cut */
    uint64_t shape[PROTO_TENSOR_MAX_DIMS];
    uint64_t offset;
    uint64_t len;
};

/*
 * A file's tensors, sorted by offset, non-overlapping, none empty. The
 * bytes between and around them are the file's non-tensor bytes.
 */
struct proto_tensor_map {
    enum proto_model_format format;
    struct proto_tensor *tensors;
    size_t count;
};

/*
 * Reads the tensor map of a model file. With a TF.js model.json in
 * manifest (NULL otherwise), data is the weight shards concatenated in
 * manifest order. Any other file is recognised by its content. Bounded
 * and strict: PROTO_BAD_INPUT means "unknown format" (nothing to map),
 * never an error to report; PROTO_NO_MEMORY is. On PROTO_OK the caller
 * frees out with proto_tensor_map_free().
 */
MUST_CHECK enum proto_status
proto_tensor_map_parse(const void *data, size_t len, const void *manifest,
                       size_t manifest_len, struct proto_tensor_map *out);

void proto_tensor_map_free(struct proto_tensor_map *m);

const char *proto_model_format_name(enum proto_model_format f);

/* ---- coding ------------------------------------------------------------ */

/* Options of both codings. */
struct proto_tensor_options {
    int level;                    /* zstd level, 1..19 (default 19) */
};

/*
 * Makes a `modeld-tensor/1` delta from old to new. The maps may be NULL or
 * empty (everything is then non-tensor bytes). from_hex and to_hex name
 * the files. Output goes to sink in pieces.
 */
MUST_CHECK enum proto_status
proto_tensor_delta_make(const void *old, size_t old_len,
                        const struct proto_tensor_map *old_map,
                        const void *new_data, size_t new_len,
                        const struct proto_tensor_map *new_map,
                        const char from_hex[PROTO_HEX_SIZE],
                        const char to_hex[PROTO_HEX_SIZE],
                        const struct proto_tensor_options *opt,
                        proto_sink_fn sink, void *sink_ctx);

/* Codes a whole model as `modeld-bg/1` (byte planes of its tensors, each
 * plane zstd-coded; the rest zstd-coded). map may be NULL. */
MUST_CHECK enum proto_status
proto_tensor_bg_make(const void *data, size_t len,
                     const struct proto_tensor_map *map,
                     const char hex[PROTO_HEX_SIZE],
                     const struct proto_tensor_options *opt,
                     proto_sink_fn sink, void *sink_ctx);

/* What a coded file's header says. */
enum proto_coded_kind {
    PROTO_CODED_UNKNOWN = 0,
    PROTO_CODED_ZSTD_PATCH,       /* proto_delta_make's format */
    PROTO_CODED_TENSOR,           /* modeld-tensor/1 */
    PROTO_CODED_BG,               /* modeld-bg/1 (from_hex left empty) */
    PROTO_CODED_ZSTD,             /* a plain zstd frame (no digests) */
};

/* Recognises a coded file by its first bytes (at least
 * PROTO_DELTA_HEADER_LEN of them, or all when shorter) and reads the
 * digests it names. */
enum proto_coded_kind proto_coded_kind(const void *head, size_t len,
                                       char out_from_hex[PROTO_HEX_SIZE],
                                       char out_to_hex[PROTO_HEX_SIZE]);

/*
 * The streaming decoder of modeld-tensor/1 and modeld-bg/1. old is the
 * base model (borrowed until _free; NULL and 0 for modeld-bg/1). Feed the
 * coded bytes in pieces of any size; the model comes out of sink in order.
 * _finish checks that the input was complete and that the output's SHA-256
 * is the header's target digest (PROTO_MISMATCH otherwise, also when old
 * is not the header's base). The sink may have received bytes before a
 * failure: write to a temporary file.
 */
struct proto_tensor_dec;

MUST_CHECK enum proto_status
proto_tensor_dec_new(const void *old, size_t old_len, proto_sink_fn sink,
                     void *sink_ctx, struct proto_tensor_dec **out);
MUST_CHECK enum proto_status
proto_tensor_dec_feed(struct proto_tensor_dec *d, const void *data,
                      size_t len);
MUST_CHECK enum proto_status proto_tensor_dec_finish(struct proto_tensor_dec *d);
/*
 * Optional, before the first byte is fed: the caller has computed the
 * base's SHA-256 itself (from_hex, 64 lowercase hex), e.g. while reading
 * the file with read(2), which keeps the base's pages out of the process
 * where a mapping would fault them all in. The decoder then checks the
 * header's base digest against it (PROTO_MISMATCH) instead of hashing old;
 * only the base ranges the delta uses are then read through old.
 */
MUST_CHECK enum proto_status
proto_tensor_dec_trust_base(struct proto_tensor_dec *d, const char *from_hex);
/* Peak bytes the decoder held (its buffers, and zstd's contexts with
 * their windows), for measuring. */
uint64_t proto_tensor_dec_peak_bytes(const struct proto_tensor_dec *d);
void proto_tensor_dec_free(struct proto_tensor_dec *d);

/* new + feed(all) + finish + free, for a coded file in memory. */
MUST_CHECK enum proto_status
proto_tensor_apply(const void *old, size_t old_len, const void *coded,
                   size_t coded_len, proto_sink_fn sink, void *sink_ctx);

/*
 * Decodes any coded file the server serves (zstd-patch, modeld-tensor/1,
 * modeld-bg/1, plain zstd) with old as base where one is needed. For the
 * formats that name a target digest, the output is verified against it;
 * a plain zstd frame names none: out_to_hex is then left "" and the
 * caller compares. out_to_hex may be NULL.
 */
MUST_CHECK enum proto_status
proto_coded_apply(const void *old, size_t old_len, const void *coded,
                  size_t coded_len, proto_sink_fn sink, void *sink_ctx,
                  char out_to_hex[PROTO_HEX_SIZE]);

#endif
