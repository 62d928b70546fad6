#!/usr/bin/env python3
"""Times modeld's background work precisely (10 ms polls, keep-alive).

    waitfor.py delta BASE_URL TOKEN_FILE VARIANT_PATH META_JSON DELTA_PATH T
        PUTs META_JSON to VARIANT_PATH (publishing a new version), then polls
        HEAD DELTA_PATH until 200. Prints "ready SECONDS" (from just before
        the PUT), or "rejected SECONDS" when the worker finished a delta job
        (modeld_deltas_made_total grew) and the delta still is not served,
        or "timeout T". Exit 1 when the PUT fails.
    waitfor.py zstd BASE_URL BLOB_PATH T
        polls HEAD BLOB_PATH with Accept-Encoding: zstd until it answers
        Content-Encoding: zstd; prints "ready SECONDS" (from its start) or
        "timeout T". Run it right after the upload.
Standard library only; every loop is bounded by T seconds.
"""
import http.client
import sys
import time
import urllib.parse

POLL_S = 0.01


def connect(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    data = r.read()
    return r, data


def deltas_done(conn):
    _, text = request(conn, "GET", "/metrics")
    n = 0
    for line in text.decode().splitlines():
        if line.startswith("modeld_deltas_made_total{"):
            n += int(float(line.split()[-1]))
    return n


def wait_delta(base, token_file, variant_path, meta, delta_path, limit):
    with open(token_file) as f:
        token = f.read().strip()
    conn = connect(base)
    before = deltas_done(conn)
    t0 = time.monotonic()
    r, data = request(conn, "PUT", variant_path, meta.encode(),
                      {"Authorization": "Bearer " + token,
                       "Content-Type": "application/json"})
    if r.status != 201:
        print("publish %d %s" % (r.status, data[:200].decode("utf-8",
                                                               "replace")))
        return 1
    i = 0
    while time.monotonic() - t0 < limit:
        r, _ = request(conn, "HEAD", delta_path)
        if r.status == 200:
            print("ready %.4f" % (time.monotonic() - t0))
            return 0
        i += 1
        if i % 10 == 0 and deltas_done(conn) > before:
            r, _ = request(conn, "HEAD", delta_path)
            if r.status == 200:
                print("ready %.4f" % (time.monotonic() - t0))
            else:
                print("rejected %.4f" % (time.monotonic() - t0))
            return 0
        time.sleep(POLL_S)
    print("timeout %g" % limit)
    return 0


def wait_zstd(base, blob_path, limit):
    conn = connect(base)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        r, _ = request(conn, "HEAD", blob_path, None,
                       {"Accept-Encoding": "zstd"})
        if (r.getheader("Content-Encoding") or "").lower() == "zstd":
            print("ready %.4f" % (time.monotonic() - t0))
            return 0
        time.sleep(POLL_S)
    print("timeout %g" % limit)
    return 0


def main():
    a = sys.argv
    if len(a) == 8 and a[1] == "delta":
        return wait_delta(a[2], a[3], a[4], a[5], a[6], float(a[7]))
    if len(a) == 5 and a[1] == "zstd":
        return wait_zstd(a[2], a[3], float(a[4]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
