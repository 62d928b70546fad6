#!/usr/bin/env python3
"""The admin load of `make bench`'s "select under writes" row.

    publisher.py BASE_URL TOKEN_FILE prepare BLOBS BLOB_KIB
    publisher.py BASE_URL TOKEN_FILE run RATE SECONDS

prepare: creates the family "load" and uploads BLOBS distinct blobs of
BLOB_KIB KiB, each a small edit of the previous one (so that every delta
between successive ones is worth making), and remembers their digests in
BASE_URL-independent state next to TOKEN_FILE (TOKEN_FILE + ".blobs").

run: publishes a new version of load/w every 1/RATE seconds for SECONDS,
cycling through the prepared blobs: each publish moves the catalog
generation (every cached snapshot is dropped) and queues a delta from the
previous version for the worker. Prints one JSON line:
    {"published": N, "seconds": S, "rate": R, "errors": N}
Standard library only.
"""
import hashlib
import http.client
import json
import random
import sys
import time
import urllib.parse


def client(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def put(conn, auth, path, body, ctype):
    conn.request("PUT", path, body, {"Authorization": auth,
                                     "Content-Type": ctype})
    r = conn.getresponse()
    r.read()
    return r.status


def prepare(base, auth, state, count, kib):
    conn = client(base)
    put(conn, auth, "/v1/families/load",
        json.dumps({"task": "bench write load"}).encode(), "application/json")
    rng = random.Random(15)
    blob = bytearray(rng.getrandbits(8) for _ in range(kib * 1024))
    digests = []
    for _ in range(count):
        for _ in range(max(1, len(blob) // 200)):   # 0.5% of the bytes
            blob[rng.randrange(len(blob))] = rng.getrandbits(8)
        hexd = hashlib.sha256(blob).hexdigest()
        st = put(conn, auth, "/v1/blobs/sha256:" + hexd, bytes(blob),
                 "application/octet-stream")
        if st not in (200, 201):
            sys.exit("upload: %d" % st)
        digests.append(hexd)
    with open(state, "w") as f:
        json.dump(digests, f)


def run(base, auth, state, rate, seconds):
    with open(state) as f:
        digests = json.load(f)
    conn = client(base)
    published = errors = 0
    t0 = time.monotonic()
    i = 0
    while True:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        due = i / rate
        if due > now:
            time.sleep(due - now)
        meta = {"blob": "sha256:" + digests[i % len(digests)],
                "flops": 1e8 + i, "accuracy": 0.5, "format": "onnx"}
        try:
            st = put(conn, auth, "/v1/families/load/variants/w",
                     json.dumps(meta).encode(), "application/json")
        except (ConnectionError, http.client.HTTPException):
            conn.close()
            conn = client(base)
            st = 0
        if st in (200, 201):
            published += 1
        else:
            errors += 1
        i += 1
    secs = time.monotonic() - t0
    print(json.dumps({"published": published, "seconds": round(secs, 3),
                      "rate": round(published / secs, 1), "errors": errors}))


def main():
    base, token_file, mode = sys.argv[1:4]
    with open(token_file) as f:
        auth = "Bearer " + f.read().strip()
    state = token_file + ".blobs"
    if mode == "prepare":
        prepare(base, auth, state, int(sys.argv[4]), int(sys.argv[5]))
    else:
        run(base, auth, state, float(sys.argv[4]), float(sys.argv[5]))


if __name__ == "__main__":
    main()
