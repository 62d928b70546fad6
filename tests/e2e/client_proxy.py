#!/usr/bin/env python3
"""A small HTTP proxy for the client's end-to-end tests.

    client_proxy.py PORT_FILE UPSTREAM_PORT_FILE CONTROL_FILE LOG_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE), forwards each
request to 127.0.0.1:<port in UPSTREAM_PORT_FILE> (read per request, so the
daemon may restart on another port) and answers with "Connection: close".
CONTROL_FILE (JSON, read per request) can:
  rate_bps        throttle response bodies to this many bytes per second
  flip_prefix     flip one byte of bodies of paths starting with this...
  flip_offset     ...at this offset of the whole object (Content-Range aware)
  fail_select     answer this many selects with 503 (then forward)
  retry_after     the Retry-After of those 503s
  replay_select   answer each select with the previous select's answer
                  (headers and body), as a replaying attacker would
  hold_after      send at most this many body bytes of a response, then
                  hold the rest until the control no longer says so (a
                  transfer that stays under way, however slow the machine)
  epoch           when it changes, transfers under way are cut (the test
                  kills the daemon: its orphaned socket would otherwise
                  still deliver what the kernel had buffered)
LOG_FILE gets one JSON line per request: time, method, path, range, status
and the body bytes actually sent to the client (also when it went away).
"""
import re
import socket
import sys
import threading
import time

from standin_lib import log_line, read_control, serve

PORT_FILE, UPSTREAM_FILE, CONTROL_FILE, LOG_FILE = sys.argv[1:5]
lock = threading.Lock()
selects_failed = 0
last_select = None


def control():
    return read_control(CONTROL_FILE)


def log(entry):
    log_line(LOG_FILE, entry)


def read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def headers_of(head):
    lines = head.split("\r\n")
    out = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return lines[0], out


def handle(client):
    global selects_failed, last_select
    entry = {"t": time.time()}
    try:
        head, rest = read_head(client, b"")
        if head is None:
            return
        first, hdrs = headers_of(head)
        method, path, _ = first.split(" ", 2)
        entry.update(method=method, path=path, range=hdrs.get("range"))
        length = int(hdrs.get("content-length", "0"))
        while len(rest) < length:
            chunk = client.recv(65536)
            if not chunk:
                return
            rest += chunk
        ctl = control()
        if path.endswith("/select") and ctl.get("fail_select", 0) > 0:
            with lock:
                fail = selects_failed < ctl["fail_select"]
                selects_failed += 1 if fail else 0
            if fail:
                body = b'{"type":"about:blank","title":"busy","status":503}'
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\n"
                    b"Content-Type: application/problem+json\r\n"
                    b"Retry-After: " + str(ctl.get("retry_after", 1)).encode() +
                    b"\r\nContent-Length: " + str(len(body)).encode() +
                    b"\r\nConnection: close\r\n\r\n" + body)
                entry.update(status=503, sent=len(body))
                return
        if path.endswith("/select") and ctl.get("replay_select") and \
                last_select is not None:
            client.sendall(last_select)
            entry.update(status=0, sent=len(last_select), replayed=True)
            return
        with open(UPSTREAM_FILE) as f:
            port = int(f.read().strip())
        # A small receive window: the proxy must not read far ahead of its
        # client, or killing the daemon would not cut the transfer short.
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        up.settimeout(30)
        up.connect(("127.0.0.1", port))
        try:
            req_lines = [first] + [
                line for line in head.split("\r\n")[1:]
                if not line.lower().startswith("connection:")
            ] + ["Connection: close"]
            up.sendall("\r\n".join(req_lines).encode("latin-1") + b"\r\n\r\n"
                       + rest[:length])
            rhead, body_start = read_head(up, b"")
            if rhead is None:
                entry.update(status=0, sent=0)
                return
            status_line, rh = headers_of(rhead)
            status = int(status_line.split(" ")[1])
            entry["status"] = status
            offset = 0
            m = re.match(r"bytes (\d+)-", rh.get("content-range", ""))
            if m:
                offset = int(m.group(1))
            out_lines = [
                line for line in rhead.split("\r\n")
                if not line.lower().startswith("connection:")
            ] + ["Connection: close"]
            out_head = "\r\n".join(out_lines).encode("latin-1") + b"\r\n\r\n"
            client.sendall(out_head)
            if path.endswith("/select"):
                recorded = out_head
            flip = ctl.get("flip_prefix") and path.startswith(
                ctl["flip_prefix"])
            rate = ctl.get("rate_bps", 0)
            epoch = ctl.get("epoch", 0)
            sent = 0
            entry["sent"] = 0
            started = time.monotonic()
            data = body_start
            while True:
                if not data:
                    data = up.recv(16384)
                    if not data:
                        break
                piece, data = data[:16384], data[16384:]
                now = control()
                while now.get("hold_after") is not None and \
                        sent + len(piece) > now["hold_after"] and \
                        now.get("epoch", 0) == epoch:
                    time.sleep(0.02)
                    now = control()
                if now.get("epoch", 0) != epoch:
                    entry["cut"] = True
                    break
                if flip:
                    at = ctl["flip_offset"] - (offset + sent)
                    if 0 <= at < len(piece):
                        piece = piece[:at] + bytes([piece[at] ^ 0xFF]) + \
                            piece[at + 1:]
                client.sendall(piece)
                if path.endswith("/select"):
                    recorded += piece
                sent += len(piece)
                entry["sent"] = sent
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            if path.endswith("/select"):
                last_select = recorded
        finally:
            up.close()
    except (OSError, ValueError):
        entry["broken"] = True
    finally:
        try:
            client.close()
        except OSError:
            pass
        if "method" in entry:
            log(entry)


def main():
    serve(handle, PORT_FILE, 512)


if __name__ == "__main__":
    main()
