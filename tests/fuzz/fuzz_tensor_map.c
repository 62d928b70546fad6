/*
 * libFuzzer target for the tensor map readers: proto_tensor_map_parse() on
 * arbitrary bytes. Input: 1 byte; when odd, 2 more bytes (little-endian)
 * whose value modulo the rest's length + 1 is the length of a TF.js
 * model.json, then the model.json, then the weights; when even, the rest
 * is a model file (safetensors, GGUF, ONNX, TFLite or anything). On
 * PROTO_OK every tensor must lie inside the bytes, sorted, not overlapping,
 * not empty, with a plane width that divides its length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tensor.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char *copy(const uint8_t *data, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);

    REQUIRE(p != NULL);
    if (len)
        memcpy(p, data, len);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_tensor_map map;
    unsigned char *man = NULL, *file;
    size_t man_len = 0, file_len;
    enum proto_status rc;
    uint64_t end = 0;

    if (size < 1)
        return 0;
    if (data[0] & 1) {
        if (size < 3)
            return 0;
        man_len = ((size_t)data[1] | (size_t)data[2] << 8) % (size - 3 + 1);
        man = copy(data + 3, man_len);
        data += 3 + man_len;
        size -= 3 + man_len;
    } else {
        data++;
        size--;
    }
    file = copy(data, size);
    file_len = size;
    rc = proto_tensor_map_parse(file, file_len, man, man ? man_len : 0, &map);
    REQUIRE(rc == PROTO_OK || rc == PROTO_BAD_INPUT);
    if (rc == PROTO_OK) {
        REQUIRE(map.count > 0);
        for (size_t i = 0; i < map.count; i++) {
            const struct proto_tensor *t = &map.tensors[i];

            REQUIRE(t->len > 0 && t->offset >= end);
            REQUIRE(t->offset <= file_len && t->len <= file_len - t->offset);
            REQUIRE(t->elem_bytes == 1 || t->elem_bytes == 2 ||
                    t->elem_bytes == 4 || t->elem_bytes == 8);
            REQUIRE(t->len % t->elem_bytes == 0);
            REQUIRE(memchr(t->name, '\0', sizeof(t->name)) != NULL);
            end = t->offset + t->len;
        }
        proto_tensor_map_free(&map);
    }
    free(file);
    free(man);
    return 0;
}
