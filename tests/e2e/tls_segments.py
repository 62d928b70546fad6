#!/usr/bin/env python3
"""TCP segments per small HTTPS answer, counted by the client.

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
were corked into one, at the price of a setsockopt. Prints one line:

  large=L select=S problem=P head=H close=C bytes=B

L, S, P and H are data segments per answer (mean over N, two decimals);
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


def per_answer(tls, n, req, head=False, want=b" 200 ", sizes=None):
    before = data_segs_in(tls)
    for _ in range(n):
        tls.sendall(req)
        status, body = read_answer(tls, head)
        if want not in status:
            raise RuntimeError("unexpected answer %r" % status)
        if sizes is not None:
            sizes.append(len(body))
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
    tls = connect(port, ca)
    per_answer(tls, 1, request(b"GET", b"/healthz"))
    sizes = []
    big = per_answer(tls, n, request(b"GET",
                                     b"/v1/families/image-classification"),
                     sizes=sizes)
    s = per_answer(tls, n, select)
    p = per_answer(tls, n,
                   request(b"POST", b"/v1/families/image-classification/"
                           b"select", b'{"device":'), want=b" 400 ")
    h = per_answer(tls, n, request(b"HEAD", b"/healthz"), head=True)
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
    print("large=%.2f select=%.2f problem=%.2f head=%.2f close=%s bytes=%d"
          % (big, s, p, h, close, min(sizes)))


if __name__ == "__main__":
    main()
