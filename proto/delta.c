/*
 * The delta format and plain zstd coding. A delta is a zstd skippable frame
 * naming the base and target digests, then one standard zstd frame of the
 * target compressed with the base as prefix dictionary: what
 * `zstd --patch-from` makes, so stock zstd applies it. Inputs are borrowed
 * and never copied (callers mmap big models); output goes to a sink in
 * fixed-size pieces. Reading and writing files is the caller's job.
 */
#define ZSTD_STATIC_LINKING_ONLY /* stableInBuffer, getCParams, frame header */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "proto/proto.h"

#define HEADER_MAGIC 0x184D2A5Eu
#define HEADER_PAYLOAD_LEN (PROTO_DELTA_HEADER_LEN - 8)
#define FROM_TAG "modeld-delta/1 from=sha256:"
#define FROM_TAG_LEN (sizeof(FROM_TAG) - 1)
#define TO_TAG " to=sha256:"
#define TO_TAG_LEN (sizeof(TO_TAG) - 1)
#define FROM_AT FROM_TAG_LEN
#define TO_TAG_AT (FROM_AT + PROTO_HEX_LEN)
#define TO_AT (TO_TAG_AT + TO_TAG_LEN)
#define NEWLINE_AT (TO_AT + PROTO_HEX_LEN)
#define LINE_LEN (NEWLINE_AT + 1)

/* Deltas reach back over old and new; 31 is what `--long=31` accepts. */
#define DELTA_WINDOW_LOG_MAX 31
/* RFC 8878 section 3.1.1.1.2: decoders should accept 8 MiB windows. */
#define CODING_WINDOW_LOG_MAX 23

_Static_assert(LINE_LEN <= HEADER_PAYLOAD_LEN,
               "the delta header line must fit PROTO_DELTA_HEADER_LEN");

static const unsigned char empty_input[1];

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void header_build(unsigned char out[PROTO_DELTA_HEADER_LEN],
                         const char from_hex[PROTO_HEX_SIZE],
                         const char to_hex[PROTO_HEX_SIZE])
{
    unsigned char *line = out + 8;

    memset(out, 0, PROTO_DELTA_HEADER_LEN);
    put_le32(out, HEADER_MAGIC);
    put_le32(out + 4, HEADER_PAYLOAD_LEN);
    memcpy(line, FROM_TAG, FROM_TAG_LEN);
    memcpy(line + FROM_AT, from_hex, PROTO_HEX_LEN);
    memcpy(line + TO_TAG_AT, TO_TAG, TO_TAG_LEN);
    memcpy(line + TO_AT, to_hex, PROTO_HEX_LEN);
    line[NEWLINE_AT] = '\n';
}

static enum proto_status zstd_status(size_t ret)
{
    if (ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation)
        return PROTO_NO_MEMORY;
    return PROTO_BAD_INPUT;
}

/* Smallest log2 window that reaches from the end of new to the start of
 * old, within what zstd and `--long=31` accept. */
static int delta_window_log(size_t old_len, size_t new_len)
{
    int max_log = ZSTD_WINDOWLOG_MAX < DELTA_WINDOW_LOG_MAX
                      ? ZSTD_WINDOWLOG_MAX
                      : DELTA_WINDOW_LOG_MAX;
    size_t total = old_len + new_len;
    int log = ZSTD_WINDOWLOG_MIN;

    if (total < old_len) /* wrapped */
        return max_log;
    while (log < max_log && ((size_t)1 << log) < total)
        log++;
    return log;
}

static enum proto_status set_param(ZSTD_CCtx *cctx, ZSTD_cParameter p,
                                   int value)
{
    size_t ret = ZSTD_CCtx_setParameter(cctx, p, value);

    return ZSTD_isError(ret) ? zstd_status(ret) : PROTO_OK;
}

/* Parameters shared by both codings: level, checksum, content size, and the
 * caller's buffer used in place instead of a window copy. */
static enum proto_status cctx_setup(ZSTD_CCtx *cctx, int level,
                                    int window_log, size_t len)
{
    enum proto_status rc;
    size_t ret;

    if ((rc = set_param(cctx, ZSTD_c_compressionLevel, level)) != PROTO_OK ||
        (rc = set_param(cctx, ZSTD_c_windowLog, window_log)) != PROTO_OK ||
        (rc = set_param(cctx, ZSTD_c_checksumFlag, 1)) != PROTO_OK ||
        (rc = set_param(cctx, ZSTD_c_contentSizeFlag, 1)) != PROTO_OK ||
        (rc = set_param(cctx, ZSTD_c_stableInBuffer, 1)) != PROTO_OK)
        return rc;
    ret = ZSTD_CCtx_setPledgedSrcSize(cctx, len);
    return ZSTD_isError(ret) ? zstd_status(ret) : PROTO_OK;
}

/* Compresses data as one frame, draining a fixed buffer to the sink. */
static enum proto_status compress_to_sink(ZSTD_CCtx *cctx, const void *data,
                                          size_t len, proto_sink_fn sink,
                                          void *sink_ctx)
{
    size_t cap = ZSTD_CStreamOutSize();
    unsigned char *buf = malloc(cap);
    ZSTD_inBuffer in = { len ? data : empty_input, len, 0 };
    enum proto_status rc = PROTO_OK;
    size_t left;

    if (!buf)
        return PROTO_NO_MEMORY;
    do {
        ZSTD_outBuffer out = { buf, cap, 0 };

        left = ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
        if (ZSTD_isError(left)) {
            rc = zstd_status(left);
            break;
        }
        if (out.pos > 0 && sink(sink_ctx, buf, out.pos) != 0) {
            rc = PROTO_SINK_FAILED;
            break;
        }
    } while (left != 0);
    free(buf);
    return rc;
}

enum proto_status proto_delta_make(const void *old, size_t old_len,
                                   const void *new_data, size_t new_len,
                                   const char from_hex[PROTO_HEX_SIZE],
                                   const char to_hex[PROTO_HEX_SIZE],
                                   int level, proto_sink_fn sink,
                                   void *sink_ctx)
{
    unsigned char header[PROTO_DELTA_HEADER_LEN];
    enum proto_status rc;
    ZSTD_CCtx *cctx;
    size_t ret;

    if (!from_hex || !to_hex || !proto_hex_is_valid(from_hex, PROTO_HEX_LEN) ||
        !proto_hex_is_valid(to_hex, PROTO_HEX_LEN) ||
        (old_len > 0 && !old) || (new_len > 0 && !new_data))
        return PROTO_BAD_INPUT;
    cctx = ZSTD_createCCtx();
    if (!cctx)
        return PROTO_NO_MEMORY;
    rc = cctx_setup(cctx, level, delta_window_log(old_len, new_len), new_len);
    if (rc == PROTO_OK)
        rc = set_param(cctx, ZSTD_c_enableLongDistanceMatching, 1);
    if (rc != PROTO_OK)
        goto out;
    if (old_len > 0) {
        ret = ZSTD_CCtx_refPrefix(cctx, old, old_len);
        if (ZSTD_isError(ret)) {
            rc = zstd_status(ret);
            goto out;
        }
    }
    header_build(header, from_hex, to_hex);
    if (sink(sink_ctx, header, sizeof(header)) != 0) {
        rc = PROTO_SINK_FAILED;
        goto out;
    }
    rc = compress_to_sink(cctx, new_data, new_len, sink, sink_ctx);
out:
    ZSTD_freeCCtx(cctx);
    return rc;
}

enum proto_status proto_delta_header_parse(const void *delta, size_t len,
                                           char out_from_hex[PROTO_HEX_SIZE],
                                           char out_to_hex[PROTO_HEX_SIZE])
{
    const unsigned char *p = delta;
    const char *line;

    if (!p || len < PROTO_DELTA_HEADER_LEN || get_le32(p) != HEADER_MAGIC ||
        get_le32(p + 4) != HEADER_PAYLOAD_LEN)
        return PROTO_BAD_INPUT;
    line = (const char *)(p + 8);
    if (memcmp(line, FROM_TAG, FROM_TAG_LEN) != 0 ||
        !proto_hex_is_valid(line + FROM_AT, PROTO_HEX_LEN) ||
        memcmp(line + TO_TAG_AT, TO_TAG, TO_TAG_LEN) != 0 ||
        !proto_hex_is_valid(line + TO_AT, PROTO_HEX_LEN) ||
        line[NEWLINE_AT] != '\n')
        return PROTO_BAD_INPUT;
    for (size_t i = LINE_LEN; i < HEADER_PAYLOAD_LEN; i++)
        if (line[i] != '\0')
            return PROTO_BAD_INPUT;
    memcpy(out_from_hex, line + FROM_AT, PROTO_HEX_LEN);
    out_from_hex[PROTO_HEX_LEN] = '\0';
    memcpy(out_to_hex, line + TO_AT, PROTO_HEX_LEN);
    out_to_hex[PROTO_HEX_LEN] = '\0';
    return PROTO_OK;
}

/* The data frame must be a regular zstd frame carrying the checksum and
 * its content size (proto_delta_make pledges it), and that size must be
 * one the frame's bytes can produce: each block costs at least 3 bytes and
 * yields at most ZSTD_BLOCKSIZE_MAX. The decoder allocates up to the
 * content size before it reads a block. */
static enum proto_status frame_check(const unsigned char *frame, size_t len,
                                     uint64_t *out_content_len)
{
    ZSTD_frameHeader fh;
    size_t ret;

    if (len < 4 || get_le32(frame) != ZSTD_MAGICNUMBER)
        return PROTO_BAD_INPUT;
    ret = ZSTD_getFrameHeader(&fh, frame, len);
    if (ret != 0) /* error, or the header itself is truncated */
        return PROTO_BAD_INPUT;
    if (fh.frameType != ZSTD_frame || !fh.checksumFlag ||
        fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN ||
        fh.frameContentSize / ZSTD_BLOCKSIZE_MAX > len / 3)
        return PROTO_BAD_INPUT;
    *out_content_len = fh.frameContentSize;
    return PROTO_OK;
}

/* Decompresses exactly one frame to the sink, hashing what comes out. */
static enum proto_status decompress_to_sink(ZSTD_DCtx *dctx,
                                            const unsigned char *frame,
                                            size_t len, struct proto_hasher *h,
                                            proto_sink_fn sink,
                                            void *sink_ctx)
{
    size_t cap = ZSTD_DStreamOutSize();
    unsigned char *buf = malloc(cap);
    ZSTD_inBuffer in = { frame, len, 0 };
    enum proto_status rc = PROTO_OK;

    if (!buf)
        return PROTO_NO_MEMORY;
    for (;;) {
        ZSTD_outBuffer out = { buf, cap, 0 };
        size_t ret = ZSTD_decompressStream(dctx, &out, &in);

        if (ZSTD_isError(ret)) {
            rc = zstd_status(ret);
            break;
        }
        if (out.pos > 0) {
            rc = proto_hasher_update(h, buf, out.pos);
            if (rc != PROTO_OK)
                break;
            if (sink(sink_ctx, buf, out.pos) != 0) {
                rc = PROTO_SINK_FAILED;
                break;
            }
        }
        if (ret == 0) {
            /* Frame complete; anything after it is not ours. */
            if (in.pos != in.size)
                rc = PROTO_BAD_INPUT;
            break;
        }
        if (in.pos == in.size && out.pos < out.size) {
            rc = PROTO_BAD_INPUT; /* truncated */
            break;
        }
    }
    free(buf);
    return rc;
}

/* proto_delta_apply and proto_delta_apply_trusted: base_hex NULL hashes
 * old, else the header's base digest must be base_hex. */
static enum proto_status apply(const void *old, size_t old_len,
                               const char *base_hex, const void *delta,
                               size_t delta_len, proto_sink_fn sink,
                               void *sink_ctx)
{
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    char have_hex[PROTO_HEX_SIZE];
    const unsigned char *frame;
    size_t frame_len;
    uint64_t new_len = 0;
    struct proto_hasher *h = NULL;
    ZSTD_DCtx *dctx = NULL;
    enum proto_status rc;
    size_t ret;

    if (old_len > 0 && !old)
        return PROTO_BAD_INPUT;
    rc = proto_delta_header_parse(delta, delta_len, from_hex, to_hex);
    if (rc != PROTO_OK)
        return rc;
    frame = (const unsigned char *)delta + PROTO_DELTA_HEADER_LEN;
    frame_len = delta_len - PROTO_DELTA_HEADER_LEN;

    h = proto_hasher_new();
    if (!h)
        return PROTO_NO_MEMORY;
    if (base_hex)
        memcpy(have_hex, base_hex, PROTO_HEX_SIZE);
    else if ((rc = proto_hasher_update(h, old, old_len)) != PROTO_OK ||
             (rc = proto_hasher_final(h, have_hex)) != PROTO_OK)
        goto out;
    if (memcmp(have_hex, from_hex, PROTO_HEX_LEN) != 0) {
        rc = PROTO_MISMATCH;
        goto out;
    }
    if ((rc = frame_check(frame, frame_len, &new_len)) != PROTO_OK)
        goto out;

    dctx = ZSTD_createDCtx();
    if (!dctx) {
        rc = PROTO_NO_MEMORY;
        goto out;
    }
    /* No larger window than proto_delta_make would have chosen. */
    ret = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
                                 delta_window_log(old_len, (size_t)new_len));
    if (!ZSTD_isError(ret) && old_len > 0)
        ret = ZSTD_DCtx_refPrefix(dctx, old, old_len);
    if (ZSTD_isError(ret)) {
        rc = zstd_status(ret);
        goto out;
    }
    proto_hasher_reset(h);
    rc = decompress_to_sink(dctx, frame, frame_len, h, sink, sink_ctx);
    if (rc != PROTO_OK)
        goto out;
    if ((rc = proto_hasher_final(h, have_hex)) != PROTO_OK)
        goto out;
    if (memcmp(have_hex, to_hex, PROTO_HEX_LEN) != 0)
        rc = PROTO_MISMATCH;
out:
    ZSTD_freeDCtx(dctx);
    proto_hasher_free(h);
    return rc;
}

enum proto_status proto_delta_apply(const void *old, size_t old_len,
                                    const void *delta, size_t delta_len,
                                    proto_sink_fn sink, void *sink_ctx)
{
    return apply(old, old_len, NULL, delta, delta_len, sink, sink_ctx);
}

enum proto_status proto_delta_apply_trusted(const void *old, size_t old_len,
                                            const char *base_hex,
                                            const void *delta,
                                            size_t delta_len,
                                            proto_sink_fn sink,
                                            void *sink_ctx)
{
    if (!base_hex || !proto_hex_is_valid(base_hex, strlen(base_hex)))
        return PROTO_BAD_INPUT;
    return apply(old, old_len, base_hex, delta, delta_len, sink, sink_ctx);
}

/* Source over a buffer in memory. */
struct mem_source {
    const unsigned char *p;
    size_t left;
};

static int mem_read(void *ctx, void *buf, size_t cap, size_t *out_len)
{
    struct mem_source *m = ctx;
    size_t n = m->left < cap ? m->left : cap;

    if (n)
        memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    *out_len = n;
    return 0;
}

enum proto_status proto_zstd_compress(const void *data, size_t len, int level,
                                      proto_sink_fn sink, void *sink_ctx)
{
    struct mem_source m = { data, len };

    if (len > 0 && !data)
        return PROTO_BAD_INPUT;
    return proto_zstd_compress_from(mem_read, &m, len, level, sink,
                                    sink_ctx);
}

/* Feeds one piece (n == 0: the end) and drains the output to the sink. */
static enum proto_status feed(ZSTD_CCtx *cctx, const void *piece, size_t n,
                              unsigned char *out_buf, size_t out_cap,
                              proto_sink_fn sink, void *sink_ctx)
{
    ZSTD_EndDirective mode = n ? ZSTD_e_continue : ZSTD_e_end;
    ZSTD_inBuffer in = { n ? piece : empty_input, n, 0 };
    size_t left;

    do {
        ZSTD_outBuffer out = { out_buf, out_cap, 0 };

        left = ZSTD_compressStream2(cctx, &out, &in, mode);
        if (ZSTD_isError(left))
            return zstd_status(left);
        if (out.pos > 0 && sink(sink_ctx, out_buf, out.pos) != 0)
            return PROTO_SINK_FAILED;
    } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
    return PROTO_OK;
}

enum proto_status proto_zstd_compress_from(proto_source_fn source,
                                           void *source_ctx, uint64_t len,
                                           int level, proto_sink_fn sink,
                                           void *sink_ctx)
{
    size_t in_cap = ZSTD_CStreamInSize(), out_cap = ZSTD_CStreamOutSize();
    unsigned char *in_buf = malloc(in_cap), *out_buf = malloc(out_cap);
    ZSTD_compressionParameters cp;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    enum proto_status rc = PROTO_NO_MEMORY;
    uint64_t fed = 0;
    int window_log;
    size_t n;

    if (!in_buf || !out_buf || !cctx)
        goto out;
    /* The level's own window, but never over 8 MiB. */
    cp = ZSTD_getCParams(level, len, 0);
    window_log = (int)cp.windowLog;
    if (window_log > CODING_WINDOW_LOG_MAX)
        window_log = CODING_WINDOW_LOG_MAX;
    /* Not stableInBuffer: zstd keeps the window itself, the pieces come
     * and go. */
    rc = cctx_setup(cctx, level, window_log, (size_t)len);
    if (rc == PROTO_OK)
        rc = set_param(cctx, ZSTD_c_stableInBuffer, 0);
    while (rc == PROTO_OK) {
        n = 0;
        if (source(source_ctx, in_buf, in_cap, &n) != 0 || n > in_cap) {
            rc = PROTO_SINK_FAILED;
            break;
        }
        fed += n;
        if (fed > len || (n == 0 && fed != len)) {
            rc = PROTO_BAD_INPUT;
            break;
        }
        rc = feed(cctx, in_buf, n, out_buf, out_cap, sink, sink_ctx);
        if (n == 0)
            break;
    }
out:
    ZSTD_freeCCtx(cctx);
    free(out_buf);
    free(in_buf);
    return rc;
}
