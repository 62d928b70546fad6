#!/usr/bin/env python3
"""Builds the large catalog of `make bench` through modeld's admin API.

    populate.py BASE_URL TOKEN_FILE FAMILIES VARIANTS DEADLINE_S

Uploads one tiny blob, creates the family "scale-big" with VARIANTS variants
(realistic, deterministic metadata: a spread of FLOPs, accuracies, formats,
measured latencies, accelerator needs), then FAMILIES-1 more families of one
variant each, over a few keep-alive connections in parallel. Stops creating
families at DEADLINE_S seconds. Prints one JSON line:
    {"families": N, "variants": N, "requests": N, "seconds": S}
Exits non-zero when an answer is not 200/201 (the first one is shown).
Standard library only.
"""
import hashlib
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

CONNECTIONS = 4
BLOB = b"modeld bench: a tiny model file shared by every variant\n"


class Client:
    def __init__(self, base, token):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.auth = "Bearer " + token
        self.conn = None

    def put(self, path, body, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=30)
            try:
                self.conn.request("PUT", path, body,
                                  {"Authorization": self.auth,
                                   "Content-Type": ctype})
                r = self.conn.getresponse()
                data = r.read()
            except (ConnectionError, http.client.HTTPException):
                # The server may close a kept-alive connection; retry once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if r.status not in (200, 201):
                raise RuntimeError("PUT %s: %d %s" %
                                   (path, r.status, data[:300].decode(
                                       "utf-8", "replace")))
            return data
        return None


def variant_meta(rng, digest, i):
    """Metadata of variant i: a plausible model of a zoo of many sizes."""
    params = int(10 ** rng.uniform(6, 8.2))
    flops = int(params * rng.uniform(20, 120))
    fmt = rng.choice(["tflite", "onnx", "tflite", "onnx", "coreml"])
    meta = {
        "blob": digest,
        "format": fmt,
        "techniques": rng.sample(["quantized", "pruned", "distilled",
                                  "depthwise-separable", "residual",
                                  "early-exit"], k=rng.randint(1, 3)),
        "params": params,
        "flops": flops,
        "accuracy": round(rng.uniform(0.55, 0.86), 4),
        "memory_bytes": params * rng.choice([1, 2, 4]),
        "rollout_percent": 100,
    }
    if rng.random() < 0.5:
        meta["latency_ms"] = {
            "npu-class-a": round(flops / 2e9 * rng.uniform(0.6, 1.4), 2),
            "gpu-class-b": round(flops / 8e8 * rng.uniform(0.6, 1.4), 2)}
    if rng.random() < 0.2:
        meta["requires"] = {"accelerators": ["npu"]}
    if rng.random() < 0.1:
        meta["exits"] = [{"flops": flops // 3,
                          "accuracy": round(meta["accuracy"] - 0.08, 4)}]
    if rng.random() < 0.1:
        meta["context"] = {"scene": [rng.choice(["night", "day", "indoor"])]}
    return meta


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    base, token_file = sys.argv[1], sys.argv[2]
    n_families, n_variants = int(sys.argv[3]), int(sys.argv[4])
    deadline = time.monotonic() + float(sys.argv[5])
    with open(token_file) as f:
        token = f.read().strip()
    t0 = time.monotonic()
    digest = "sha256:" + hashlib.sha256(BLOB).hexdigest()
    main_client = Client(base, token)
    main_client.put("/v1/blobs/" + digest, BLOB, "application/octet-stream")
    main_client.put("/v1/families/scale-big",
                    {"task": "image-classification",
                     "description": "bench: one family of many variants"})
    counts = {"families": 1, "variants": 0, "requests": 3}
    lock = threading.Lock()
    errors = []

    def big_variants(client, ids):
        for i in ids:
            meta = variant_meta(random.Random(1000 + i), digest, i)
            client.put("/v1/families/scale-big/variants/v%03d" % i, meta)
            with lock:
                counts["variants"] += 1
                counts["requests"] += 1

    def families(client, ids):
        for i in ids:
            if time.monotonic() > deadline:
                return
            name = "family-%05d" % i
            client.put("/v1/families/" + name,
                       {"task": "task-%d" % (i % 37),
                        "description": "bench family %d" % i})
            client.put("/v1/families/%s/variants/model" % name,
                       variant_meta(random.Random(i), digest, i))
            with lock:
                counts["families"] += 1
                counts["variants"] += 1
                counts["requests"] += 2

    def run(work, ids_all):
        threads = []
        for c in range(CONNECTIONS):
            ids = ids_all[c::CONNECTIONS]

            def body(ids=ids):
                try:
                    work(Client(base, token), ids)
                except Exception as e:  # reported below, exit non-zero
                    errors.append(str(e))
            t = threading.Thread(target=body)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()

    run(big_variants, list(range(n_variants)))
    if not errors:
        run(families, list(range(1, n_families)))
    counts["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(counts))
    if errors:
        print("populate: " + errors[0], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
