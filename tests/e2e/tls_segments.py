#!/usr/bin/env python3
"""TCP segments and TLS records per small HTTPS answer, counted by the client.

usage: tls_segments.py PORT CA_PEM N

One keep-alive TLS connection to 127.0.0.1:PORT. After a warm-up request
(the handshake and its session tickets are behind it), N family
descriptions (GET /v1/families/image-classification, a few KB), N selects,
N problem answers (400) and N HEAD /healthz are sent one at a time; each
answer is read completely, and the client's TCP_INFO tcpi_data_segs_in
(Linux >= 4.6) says how many data segments brought it. libmicrohttpd
0.9.75 writes the header and the body of an answer as two TLS records with
two sendmsg; when header and body reach 1400 bytes it pushes the header
alone (mhd_send.c), so such an answer came in two segments; smaller ones
were corked into one, at the price of a setsockopt. Each of the two sends
was also its own TLS record (two seals; an OpenSSL client reads each
record's header and body: four reads). The client here reads the raw TLS
stream itself (ssl.MemoryBIO) and counts the records that carry each
answer. Prints one line:

  large=L select=S problem=P head=H records=RL/RS/RP/RH close=C bytes=B

L, S, P and H are data segments per answer (mean over N, two decimals),
RL, RS, RP and RH TLS records per answer of the same four kinds;
B the size of the family description's body;
C is "ok" when an answer with Connection: close arrives complete and the
connection then ends with a TLS close_notify (not a bare TCP close), else
what went wrong.
"""
import socket
import ssl
import struct
import sys

SEGS_IN_OFFSET = 152  # struct tcp_info.tcpi_data_segs_in
SELECT = (b'{"device":{"memory_bytes":60000000,"gflops":100}}')


def data_segs_in(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("I", info, SEGS_IN_OFFSET)[0]


class BioTLS:
    """A TLS client over a raw socket through memory BIOs, so that every
    record header that arrives is seen (and counted) before decryption."""

    def __init__(self, raw, ctx):
        self.raw = raw
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname="127.0.0.1")
        self.pending = b""  # raw bytes not yet parsed into records
        self.records = 0
        self._run(self.obj.do_handshake)

    def _flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def _feed(self):
        data = self.raw.recv(65536)
        if not data:
            raise RuntimeError("connection closed")
        self.pending += data
        while len(self.pending) >= 5:
            length = struct.unpack_from("!H", self.pending, 3)[0]
            if len(self.pending) < 5 + length:
                break
            self.records += 1
            self.pending = self.pending[5 + length:]
        self.inc.write(data)

    def _run(self, op, *args):
        while True:
            try:
                r = op(*args)
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                self._feed()

    def sendall(self, data):
        self._run(self.obj.write, data)

    def recv(self, n):
        return self._run(self.obj.read, n)

    def getsockopt(self, *args):
        return self.raw.getsockopt(*args)

    def close(self):
        self.raw.close()


def read_answer(tls, head):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = tls.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed inside the headers")
        buf += chunk
    hdr, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in hdr.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if head:
        length = 0
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed inside the body")
        body += chunk
    if len(body) != length:
        raise RuntimeError("more bytes than Content-Length")
    return hdr.split(b"\r\n")[0], body


def request(method, path, body=b"", extra=b""):
    head = (b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)) + extra
    if body:
        head += (b"Content-Type: application/json\r\n"
                 b"Content-Length: %d\r\n" % len(body))
    return head + b"\r\n" + body


def per_answer(tls, n, req, head=False, want=b" 200 ", sizes=None,
               records=None):
    before = data_segs_in(tls)
    rec_before = tls.records
    for _ in range(n):
        tls.sendall(req)
        status, body = read_answer(tls, head)
        if want not in status:
            raise RuntimeError("unexpected answer %r" % status)
        if sizes is not None:
            sizes.append(len(body))
    if records is not None:
        records.append((tls.records - rec_before) / n)
    return (data_segs_in(tls) - before) / n


def connect(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                          suppress_ragged_eofs=False)
    return tls


def main():
    port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    select = request(b"POST", b"/v1/families/image-classification/select",
                     SELECT)
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    tls = BioTLS(raw, ssl.create_default_context(cafile=ca))
    # The warm-up also takes the session tickets sent after the handshake.
    per_answer(tls, 1, request(b"GET", b"/healthz"))
    sizes, recs = [], []
    big = per_answer(tls, n, request(b"GET",
                                     b"/v1/families/image-classification"),
                     sizes=sizes, records=recs)
    s = per_answer(tls, n, select, records=recs)
    p = per_answer(tls, n,
                   request(b"POST", b"/v1/families/image-classification/"
                           b"select", b'{"device":'), want=b" 400 ",
                   records=recs)
    h = per_answer(tls, n, request(b"HEAD", b"/healthz"), head=True,
                   records=recs)
    tls.close()

    tls = connect(port, ca)
    try:
        tls.sendall(request(b"POST",
                            b"/v1/families/image-classification/select",
                            SELECT, b"Connection: close\r\n"))
        status, body = read_answer(tls, False)
        if b" 200 " not in status or not body.startswith(b"{"):
            close = "bad answer %r" % status
        elif tls.recv(1) != b"":
            close = "bytes after the answer"
        else:
            close = "ok"
    except ssl.SSLEOFError:
        close = "TCP closed without close_notify"
    except (OSError, RuntimeError) as e:
        close = "error: %s" % e
    tls.close()
    print("large=%.2f select=%.2f problem=%.2f head=%.2f records=%s "
          "close=%s bytes=%d"
          % (big, s, p, h, "/".join("%.2f" % r for r in recs), close,
             min(sizes)))


if __name__ == "__main__":
    main()
