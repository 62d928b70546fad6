#!/usr/bin/env python3
"""Hostile clients for tests/e2e/cases_40_hostile.sh (loopback only).

  hostile.py flood PORT N     N idle or trickling connections from
                              127.0.0.2-9, then 5 normal requests from
                              127.0.0.1; prints "held H max_ms M ok K"
  hostile.py trickle PORT S   one connection sending a header byte a
                              second; prints "closed_after_s X" or
                              "open_after_s S"
  hostile.py garbage PORT     odd bytes on the wire; prints one
                              "NAME STATUS" line per case (0: closed with
                              no answer, -1: no answer within 3 s)
  hostile.py leak PORT PID S   requests whose query string overflows
                              libmicrohttpd's pool (dropped by the
                              library, never seen by the handler) from 4
                              threads for 2 s of warm-up then S seconds;
                              prints
                              "requests N growth_kb G" (VmRSS of PID over
                              the S seconds)
  hostile.py loris PORT N      p99 of 100 normal requests (a connection
                              each, from 127.0.0.1) alone, then beside N
                              slowloris connections from one address
                              (127.0.0.2, reconnecting when dropped); prints
                              "idle_p99_ms I attack_p99_ms A ok K held H"
                              (H: the daemon's open connections then)
                              (a request unanswered within 2 s counts as
                              2000 ms; after 3 of them the run stops)
  hostile.py malformed PORT    requests libmicrohttpd refuses by itself
                              (or modeld before it); prints one "NAME
                              STATUS CLOSED PROBLEM" line per case:
                              CLOSED is 1 when the server closed within
                              3 s of the answer, PROBLEM 1 when it is
                              problem+json
  hostile.py readers PORT PATH N BPS LORIS S
                              N clients reading PATH (far larger than
                              the socket buffers) at BPS bytes/s each for
                              S seconds beside LORIS slowloris connections
                              from 127.0.0.2; prints "cut C received_min
                              B": C answers on the blob route the server
                              finished meanwhile (they were cut: none can
                              complete), B the fewest bytes one reader got
Every socket has a timeout; nothing here waits unbounded.
"""
import socket
import sys
import threading
import time


def connect(port, src="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def status_of(sock):
    data = b""
    try:
        while b"\r\n" not in data and len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return -1
    except OSError:
        return 0
    if not data.startswith(b"HTTP/1."):
        return 0
    return int(data.split(b" ", 2)[1])


def normal_request(port):
    start = time.monotonic()
    s = connect(port, timeout=2.0)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    st = status_of(s)
    s.close()
    return st, (time.monotonic() - start) * 1000


def flood(port, n):
    socks = []
    stop = threading.Event()
    for i in range(n):
        try:
            socks.append(connect(port, "127.0.0.%d" % (2 + i % 8)))
        except OSError:
            break
    trickling = socks[::2]

    def trickle():
        msg = b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        k = 0
        while not stop.is_set():
            for s in trickling:
                try:
                    s.send(msg[k % len(msg):k % len(msg) + 1])
                except OSError:
                    pass
            k += 1
            stop.wait(0.5)

    t = threading.Thread(target=trickle)
    t.start()
    time.sleep(0.5)
    worst, ok = 0.0, 0
    for _ in range(5):
        try:
            st, ms = normal_request(port)
        except OSError:
            st, ms = 0, 2000.0
        worst = max(worst, ms)
        ok += st == 200
    stop.set()
    t.join()
    for s in socks:
        s.close()
    print("held %d max_ms %d ok %d" % (len(socks), worst, ok))


def trickle_one(port, limit_s):
    s = connect(port, timeout=1.0)
    msg = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < limit_s:
        try:
            s.send(msg[k:k + 1])
            k = (k + 1) % len(msg)
            if s.recv(1024) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    else:
        print("open_after_s %d" % limit_s)
        return
    print("closed_after_s %.1f" % (time.monotonic() - start))


CASES = [
    ("big_header", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " +
     b"a" * 100000 + b"\r\n\r\n"),
    ("big_uri", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("binary", bytes(range(256)) * 4 + b"\r\n\r\n"),
    ("no_method", b" / HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("bad_version", b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n"),
    ("bad_chunked", b"PUT /v1/families/x HTTP/1.1\r\nHost: t\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("two_lengths", b"POST /v1/families/x/select HTTP/1.1\r\nHost: t\r\n"
     b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    ("truncated_body", b"POST /v1/families/x/select HTTP/1.1\r\nHost: t\r\n"
     b"Content-Length: 100\r\n\r\n{\"device\""),
]


SELECT = b"POST /v1/families/x/select HTTP/1.1\r\nHost: t\r\n"
MALFORMED = [
    ("cl_letters", SELECT + b"Content-Length: 5a\r\n\r\n{}"),
    ("cl_negative", SELECT + b"Content-Length: -1\r\n\r\n{}"),
    ("cl_two_numbers", SELECT + b"Content-Length: 1 2\r\n\r\n{}"),
    ("cl_hex", SELECT + b"Content-Length: 0x10\r\n\r\n{}"),
    ("cl_empty", SELECT + b"Content-Length: \r\n\r\n{}"),
    ("cl_over_2_64", SELECT + b"Content-Length: 99999999999999999999999"
     b"\r\n\r\n{}"),
    ("chunk_line_32k", SELECT + b"Transfer-Encoding: chunked\r\n\r\n1;" +
     b"a" * 40000 + b"\r\n"),
    ("header_100k", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " +
     b"a" * 100000 + b"\r\n\r\n"),
    ("uri_100k", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("query_1000_args", b"GET /healthz?" + b"a=b&" * 1000 +
     b" HTTP/1.1\r\nHost: t\r\n\r\n"),
]


def malformed(port):
    for name, data in MALFORMED:
        st, closed, problem = 0, 0, 0
        try:
            with connect(port, timeout=3.0) as s:
                try:
                    s.sendall(data)
                except OSError:
                    pass  # closed while sending: the answer may be there
                got = b""
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            closed = 1
                            break
                        got += chunk
                except socket.timeout:
                    pass
                except OSError:
                    closed = 1  # reset after the answer
                if got.startswith(b"HTTP/1."):
                    st = int(got.split(b" ", 2)[1])
                problem = int(b"application/problem+json" in got.lower())
        except OSError:
            problem = 0
        print(name, st, closed, problem)


def garbage(port):
    for name, data in CASES:
        try:
            s = connect(port, timeout=3.0)
            s.sendall(data)
            if name == "truncated_body":
                s.shutdown(socket.SHUT_WR)
            st = status_of(s)
            s.close()
        except OSError:
            st = 0
        print(name, st)


def p99_ms(port, count):
    times, failures = [], 0
    for _ in range(count):
        try:
            st, ms = normal_request(port)
        except OSError:
            st, ms = 0, 2000.0
        if st != 200:
            failures += 1
            ms = max(ms, 2000.0)
        times.append(ms)
        if failures >= 3:
            break
    times.sort()
    return times[min(len(times) - 1, int(len(times) * 0.99))], \
        len(times) - failures


def metrics_lines(port):
    """The daemon's /metrics lines, or None when unreadable."""
    try:
        with connect(port, timeout=2.0) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n"
                      b"Connection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return data.decode("latin1").splitlines()


def server_connections(port):
    """The daemon's modeld_connections gauge (-1 when unreadable)."""
    for line in metrics_lines(port) or []:
        if line.startswith("modeld_connections "):
            return int(float(line.split()[1]))
    return -1


def start_loris(port, n):
    """N slowloris connections from 127.0.0.2, reconnecting when dropped;
    returns the stop function."""
    socks = [None] * n
    stop = threading.Event()

    def keep():
        msg = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "
        k = 0
        while not stop.is_set():
            for i in range(n):
                try:
                    if socks[i] is None:
                        socks[i] = connect(port, "127.0.0.2", timeout=0.5)
                    socks[i].send(msg[k % len(msg):k % len(msg) + 1])
                except OSError:
                    if socks[i] is not None:
                        socks[i].close()
                    socks[i] = None
            k += 1
            stop.wait(0.5)

    t = threading.Thread(target=keep)
    t.start()

    def finish():
        stop.set()
        t.join()
        for s_ in socks:
            if s_ is not None:
                s_.close()
    return finish


def loris(port, n):
    idle, _ = p99_ms(port, 100)
    finish = start_loris(port, n)
    time.sleep(1.0)
    attack, ok = p99_ms(port, 100)
    held = server_connections(port)
    finish()
    print("idle_p99_ms %.2f attack_p99_ms %.2f ok %d held %d" %
          (idle, attack, ok, held))


def metric_sum(port, prefix):
    """Sum of the /metrics samples whose line starts with prefix."""
    lines = metrics_lines(port)
    if lines is None:
        return -1
    return sum(int(float(line.split()[-1]))
               for line in lines if line.startswith(prefix))


def readers(port, path, n, bps, n_loris, secs):
    """Readers that never finish within secs; counts the answers on the
    blob route the server finished (cut) meanwhile."""
    blob_done = 'modeld_http_requests_total{route="/v1/blobs/{digest}"'
    finish = start_loris(port, n_loris)
    time.sleep(0.5)
    before = metric_sum(port, blob_done)
    stop = time.monotonic() + secs
    received = [0] * n

    def read(i):
        try:
            with connect(port, timeout=2.0) as s:
                s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n"
                          b"Host: t\r\nConnection: close\r\n\r\n")
                while time.monotonic() < stop:
                    if bps == 0:
                        time.sleep(0.1)
                        continue
                    chunk = s.recv(max(1, min(4096, int(bps / 10))))
                    if not chunk:
                        break
                    received[i] += len(chunk)
                    time.sleep(len(chunk) / bps)
                # still open at the end: the server's count is read
                # before this socket closes
                barrier.wait()
                measured.wait(secs + 15)
        except (OSError, threading.BrokenBarrierError):
            pass

    barrier = threading.Barrier(n + 1, timeout=secs + 15)
    measured = threading.Event()
    threads = [threading.Thread(target=read, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    done = metric_sum(port, blob_done) - before
    measured.set()
    for t in threads:
        t.join()
    finish()
    print("cut %d received_min %d" % (done, min(received)))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def leak(port, pid, secs):
    # 1000 query arguments (4 KB: the URI fits the pool's read buffer)
    # would run libmicrohttpd out of its per-connection pool after the URI
    # callback; modeld refuses them there (http.c, query_too_long).
    big_query = (b"GET /healthz?" + b"a=b&" * 1000 + b" HTTP/1.1\r\n"
                 b"Host: t\r\n\r\n")

    def hammer(until):
        n = 0
        while time.monotonic() < until:
            # No bind(): on loopback connect() may reuse ports in
            # TIME_WAIT (tcp_tw_reuse), so the loop cannot run out.
            try:
                with socket.create_connection(("127.0.0.1", port), 2.0) as s:
                    s.sendall(big_query)
            except OSError:
                pass
            n += 1
        return n

    def hammer4(until):
        counts = []
        threads = [threading.Thread(target=lambda: counts.append(hammer(until)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts)

    hammer4(time.monotonic() + 2.0)
    before = rss_kb(pid)
    n = hammer4(time.monotonic() + secs)
    time.sleep(0.2)
    print("requests %d growth_kb %d" % (n, rss_kb(pid) - before))


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "flood":
        flood(port, int(sys.argv[3]))
    elif cmd == "trickle":
        trickle_one(port, float(sys.argv[3]))
    elif cmd == "garbage":
        garbage(port)
    elif cmd == "readers":
        readers(port, sys.argv[3], int(sys.argv[4]), float(sys.argv[5]),
                int(sys.argv[6]), float(sys.argv[7]))
    elif cmd == "malformed":
        malformed(port)
    elif cmd == "loris":
        loris(port, int(sys.argv[3]))
    elif cmd == "leak":
        leak(port, int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
