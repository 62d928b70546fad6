#!/usr/bin/env python3
"""Half-done TLS handshakes, and what they cost the daemon meanwhile.

tls_stalled_handshakes.py PORT PID COUNT HOLD_S

Opens COUNT connections to the TLS port, sends each a ClientHello (made by
Python's ssl module through memory BIOs) and reads the server's first
flight, then never sends its Finished: every handshake now waits for the
client. For HOLD_S seconds nothing happens on these connections; the
daemon (PID) should sleep. Prints the CPU time (utime + stime, in ms) the
daemon used over that window, or "error: ..." and exits 1.
"""
import os
import socket
import ssl
import sys
import time


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are the 14th and 15th fields; fields[0] is the 3rd.
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 // os.sysconf("SC_CLK_TCK")


def stall(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    sock.sendall(out.read())
    if not sock.recv(65536):
        raise OSError("the server closed instead of answering the hello")
    return sock


def main():
    port, pid, count, hold = (int(sys.argv[1]), int(sys.argv[2]),
                              int(sys.argv[3]), float(sys.argv[4]))
    try:
        socks = [stall(port) for _ in range(count)]
    except OSError as e:
        print(f"error: {e}")
        return 1
    before = cpu_ms(pid)
    time.sleep(hold)
    used = cpu_ms(pid) - before
    for s in socks:
        s.close()
    print(used)
    return 0


if __name__ == "__main__":
    sys.exit(main())
