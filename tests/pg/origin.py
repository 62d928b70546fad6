#!/usr/bin/env python3
"""A stand-in origin for the edge tests: any HTTP server holding /v1/blobs/.

origin.py DIR DELAY_S: serves DIR/<hex> at GET /v1/blobs/sha256:<hex>
(404 when absent), DIR/<from>-<to> at GET
/v1/deltas/sha256:<from>/sha256:<to>, each answer after DELAY_S seconds (so that concurrent
edge requests overlap), and GET /_count/<hex>: how many blob requests for
<hex> it has answered. Prints its port on the first line of stdout. Stops on
SIGTERM. Loopback only.

A gated file (so that a test sees a pull-through in flight): when
DIR/<name>.gate exists and holds N, the answer sends its headers (the full
Content-Length) and the first N bytes (N = -1: not even the headers), then
waits until DIR/<name>.go (the rest follows) or DIR/<name>.cut (the
connection is closed short) exists, at most 60 s (then cut). When
DIR/<name>.nolength exists, the answer has no Content-Length (its end is
the connection's close), so an edge cannot stream it before it verified.
"""
import http.server
import os
import re
import sys
import threading
import time

ROOT, DELAY = sys.argv[1], float(sys.argv[2])
COUNTS = {}
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        m = re.fullmatch(r"/_count/([0-9a-f]{64})", self.path)
        if m:
            with LOCK:
                n = COUNTS.get(m.group(1), 0)
            return self.reply(200, str(n).encode())
        m = re.fullmatch(r"/v1/blobs/sha256:([0-9a-f]{64})", self.path)
        d = re.fullmatch(r"/v1/deltas/sha256:([0-9a-f]{64})/sha256:([0-9a-f]{64})", self.path)
        if not m and not d:
            return self.reply(404, b"")
        name = m.group(1) if m else d.group(1) + "-" + d.group(2)
        with LOCK:
            COUNTS[name] = COUNTS.get(name, 0) + 1
        time.sleep(DELAY)
        path = os.path.join(ROOT, name)
        if not os.path.exists(path):
            return self.reply(404, b"")
        with open(path, "rb") as f:
            body = f.read()
        if os.path.exists(path + ".nolength"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        gate = path + ".gate"
        if not os.path.exists(gate):
            return self.reply(200, body)
        first = int(open(gate).read().strip() or "0")
        if first >= 0:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:first])
            self.wfile.flush()
        go = False
        for _ in range(3000):
            if os.path.exists(path + ".go"):
                go = True
                break
            if os.path.exists(path + ".cut"):
                break
            time.sleep(0.02)
        if not go:
            self.close_connection = True
            return
        if first < 0:
            return self.reply(200, body)
        self.wfile.write(body[first:])


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
