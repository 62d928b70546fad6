#!/usr/bin/env python3
"""A stand-in modeld server for the client's end-to-end tests, one that can
misbehave in ways the real daemon never does.

    client_standin.py PORT_FILE CONTROL_FILE LOG_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE). CONTROL_FILE
(JSON, read per request) says what to answer:
  select      the body of every POST .../select answer (a decision), 200
  events      POST .../events answers 202
  paths       {"<path with query>": {...}} for GETs:
      file        the body (a file's bytes)
      status      the status (200 by default; with no file a problem body)
      rate        bytes per second (0: as fast as the socket takes them)
      extra       bytes sent after the file's (-1: until the client goes
                  away, at most 64 MiB), zeros
      length      "exact" (Content-Length of the file, the default),
                  "none" (the body ends when the connection closes) or a
                  number (announced, whatever follows)
      endless     an error body that never ends (at most 64 MiB)
      ranges      true: "Range: bytes=N-" with a matching If-Range is
                  answered 206 from byte N (Content-Range)
  header_flood    every answer starts with this many header lines
Unknown paths: 404. Every answer has "Connection: close". LOG_FILE gets one
JSON line per request: time, method, path, range, status, body bytes sent.
"""
import json
import sys
import time

from standin_lib import log_line, read_control, serve

PORT_FILE, CONTROL_FILE, LOG_FILE = sys.argv[1:4]
CAP = 64 << 20


def control():
    return read_control(CONTROL_FILE)


def log(entry):
    log_line(LOG_FILE, entry)


def read_request(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    length = int(hdrs.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    method, path, _ = lines[0].split(" ", 2)
    return method, path, hdrs


REASON = {200: "OK", 202: "Accepted", 206: "Partial Content", 404: "Not Found", 500: "Error"}


def send_head(sock, ctl, status, headers):
    out = ["HTTP/1.1 %d %s" % (status, REASON.get(status, "Status"))]
    for i in range(ctl.get("header_flood", 0)):
        out.append("X-Flood-%d: %s" % (i, "f" * 100))
    out += headers + ["Connection: close"]
    sock.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))


def send_body(sock, data, rate, entry):
    started = time.monotonic()
    for off in range(0, len(data), 16384):
        piece = data[off:off + 16384]
        sock.sendall(piece)
        entry["sent"] += len(piece)
        if rate:
            ahead = entry["sent"] / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def handle(sock):
    entry = {"t": time.time(), "sent": 0}
    try:
        req = read_request(sock)
        if req is None:
            return
        method, path, hdrs = req
        entry.update(method=method, path=path, range=hdrs.get("range"))
        ctl = control()
        if method == "POST" and path.endswith("/select"):
            body = json.dumps(ctl.get("select", {"action": "none"})).encode()
            entry["status"] = 200
            send_head(sock, ctl, 200, ["Content-Type: application/json",
                                       "Content-Length: %d" % len(body)])
            send_body(sock, body, 0, entry)
            return
        if method == "POST" and path.endswith("/events"):
            entry["status"] = 202
            send_head(sock, ctl, 202, ["Content-Length: 0"])
            return
        spec = ctl.get("paths", {}).get(path)
        if method != "GET" or spec is None:
            spec = {"status": 404}
        status = spec.get("status", 200)
        entry["status"] = status
        if "file" not in spec:
            problem = json.dumps({"type": "about:blank", "title": "no",
                                  "status": status, "detail": "stand-in"})
            if spec.get("endless"):
                send_head(sock, ctl, status,
                          ["Content-Type: application/problem+json"])
                send_body(sock, problem.encode(), 0, entry)
                filler = b" " * 65536
                while entry["sent"] < CAP:
                    sock.sendall(filler)
                    entry["sent"] += len(filler)
                return
            body = problem.encode()
            send_head(sock, ctl, status,
                      ["Content-Type: application/problem+json",
                       "Content-Length: %d" % len(body)])
            send_body(sock, body, 0, entry)
            return
        with open(spec["file"], "rb") as f:
            data = f.read()
        length = spec.get("length", "exact")
        etag = '"standin-%d"' % len(data)
        headers = ["Content-Type: application/octet-stream", "ETag: " + etag]
        want = hdrs.get("range", "")
        if (spec.get("ranges") and want.startswith("bytes=")
                and want.endswith("-") and hdrs.get("if-range") == etag):
            first = int(want[6:-1])
            if 0 < first < len(data):
                status = entry["status"] = 206
                headers.append("Content-Range: bytes %d-%d/%d"
                               % (first, len(data) - 1, len(data)))
                data = data[first:]
        if length == "exact":
            headers.append("Content-Length: %d" % len(data))
        elif isinstance(length, int):
            headers.append("Content-Length: %d" % length)
        send_head(sock, ctl, status, headers)
        send_body(sock, data, spec.get("rate", 0), entry)
        extra = spec.get("extra", 0)
        if extra:
            left = CAP if extra < 0 else extra
            filler = b"\0" * 65536
            while left > 0:
                piece = filler[:min(left, len(filler))]
                sock.sendall(piece)
                entry["sent"] += len(piece)
                left -= len(piece)
    except (OSError, ValueError):
        entry["broken"] = True
    finally:
        try:
            sock.close()
        except OSError:
            pass
        if "method" in entry:
            log(entry)


def main():
    serve(handle, PORT_FILE, 64)


if __name__ == "__main__":
    main()
