#!/usr/bin/env python3
"""finetune_bound.py BASE.safetensors NEW.safetensors [DELTA...]

The information content of a sparse fine-tune, computed from the two files
alone (not from the generator's parameters): for each fp32 tensor, which
of its n values changed (k of them: log2 C(n, k) bits, the positions) and,
for each changed value, its change in units of the old value's last place
under a Gaussian whose relative spread is fitted to the pair (the
maximum-likelihood rel: sqrt(mean((d ulp / |x|)^2))). A lossless delta
cannot be smaller on average; the fixed parts every delta of modeld pays
(the 192-byte header naming both digests, the plan, the non-tensor frame,
a zstd frame per stream) come on top. Prints the bound and, for each
DELTA given, its size and its ratio to the bound. Standard library only.
"""
import json
import math
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    head = json.loads(data[8:8 + hlen])
    out = {}
    for name, t in head.items():
        if name == "__metadata__" or t.get("dtype") != "F32":
            continue
        a, b = t["data_offsets"]
        out[name] = data[8 + hlen + a:8 + hlen + b]
    return out


def log2_binom(n, k):
    return (math.lgamma(n + 1) - math.lgamma(k + 1) -
            math.lgamma(n - k + 1)) / math.log(2)


def main():
    old, new = tensors(sys.argv[1]), tensors(sys.argv[2])
    pos_bits, changes, n_all = 0.0, [], 0
    for name, a in old.items():
        b = new.get(name)
        if b is None or len(b) != len(a):
            continue
        n = len(a) // 4
        xs = struct.unpack("<%dI" % n, a)
        ys = struct.unpack("<%dI" % n, b)
        k = 0
        for x, y in zip(xs, ys):
            if x == y:
                continue
            k += 1
            (f,) = struct.unpack("<f", struct.pack("<I", x))
            ulp = math.ldexp(1.0, ((x >> 23) & 0xff) - 150)
            changes.append((y - x, abs(f) / ulp))
        n_all += n
        pos_bits += log2_binom(n, k)
    if not changes:
        print("no changed values")
        return
    rel = math.sqrt(sum((d / s) ** 2 for d, s in changes) / len(changes))
    val_bits = 0.0
    for d, s in changes:
        sigma = rel * s
        val_bits += (math.log2(sigma * math.sqrt(2 * math.pi)) +
                     d * d / (2 * sigma * sigma * math.log(2)))
    total = (pos_bits + val_bits) / 8
    print("values %d, changed %d (%.2f%%), fitted rel %.3g" %
          (n_all, len(changes), 100.0 * len(changes) / n_all, rel))
    print("positions %.0f B (%.2f bits a change), changes %.0f B "
          "(%.2f bits a change): bound %.0f B" %
          (pos_bits / 8, pos_bits / len(changes), val_bits / 8,
           val_bits / len(changes), total))
    for p in sys.argv[3:]:
        with open(p, "rb") as f:
            size = len(f.read())
        print("%s: %d B, %.3fx the bound, %+.0f B" %
              (p, size, size / total, size - total))


if __name__ == "__main__":
    main()
