#!/usr/bin/env python3
"""Writes versions of a synthetic safetensors model for the e2e tests.

    tensorgen.py OUTDIR COUNT

OUTDIR/v1.safetensors is a few float32 layers (N(0, 0.05)); each next
version moves every value of the previous one by N(0, 1e-3 |x|), as a
fine-tune does. Deterministic. Standard library only.
"""
import json
import random
import struct
import sys


def write(path, tensors):
    header, data, at = {}, b"", 0
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [at, at + len(raw)]}
        data += raw
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    rng = random.Random(10)
    tensors = []
    for i in range(4):
        n = 128 * 64
        tensors.append(("layer%d.weight" % i, [128, 64],
                        [rng.gauss(0, 0.05) for _ in range(n)]))
        tensors.append(("layer%d.bias" % i, [128],
                        [rng.gauss(0, 0.01) for _ in range(128)]))
    for v in range(1, count + 1):
        if v > 1:
            tensors = [(n, s, [x + rng.gauss(0, 1e-3 * abs(x)) for x in vals])
                       for n, s, vals in tensors]
        write("%s/v%d.safetensors" % (out, v), tensors)


main()
