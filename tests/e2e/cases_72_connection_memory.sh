# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: connection_memory_bytes, libmicrohttpd's
# per-connection pool (16 KiB by default, zeroed on every request). What
# must still fit does (a 12 KiB header, the most query arguments modeld
# lets through), what does not is refused at once instead of hanging (the
# library hangs a request whose query arguments overflow the pool), and a
# larger pool moves both bounds. Uploads reach the store in 256 KiB writes
# gathered from the pool's small reads: sizes around those boundaries
# arrive whole.

# cm_probe PORT: one raw request per line of the result, each "NAME
# STATUS_LINE" ("HANG" when nothing came back within 5 s).
cm_probe() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys
port, args_max = int(sys.argv[1]), int(sys.argv[2])
def req(raw):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(5)
    try:
        s.sendall(raw)
        d = s.recv(200)
        return d.split(b"\r\n")[0].decode() if d else "closed"
    except socket.timeout:
        return "HANG"
    except OSError as e:
        return "error %s" % e
    finally:
        s.close()
def query(n):
    return (b"GET /healthz?" + b"&".join(b"a%d=b" % i for i in range(n)) +
            b" HTTP/1.1\r\nHost: t\r\n\r\n")
def header(n):
    return (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * n +
            b"\r\n\r\n")
print("args_max", req(query(args_max)))
print("args_over", req(query(args_max + 1)))
print("header_12k", req(header(12 * 1024)))
print("header_40k", req(header(40 * 1024)))
EOF
}

CM_DIR=$WORK/connmem
mkdir -p "$CM_DIR"
if daemon_start connmem "$CM_DIR/data" --admin-token-file "$TOKEN_FILE"; then
    cm_probe "${DPORT[connmem]}" 128 >"$CM_DIR/probe16.out" 2>&1
    check "connection memory 16 KiB: 128 query arguments answered" \
        "args_max HTTP/1.1 200 OK" "$(grep '^args_max' "$CM_DIR/probe16.out")"
    check "connection memory 16 KiB: 129 query arguments refused, not hung" \
        "args_over HTTP/1.1 431 Request Header Fields Too Large" \
        "$(grep '^args_over' "$CM_DIR/probe16.out")"
    check "connection memory 16 KiB: a 12 KiB header fits" \
        "header_12k HTTP/1.1 200 OK" "$(grep '^header_12k' "$CM_DIR/probe16.out")"
    check "connection memory 16 KiB: a 40 KiB header answers 431" \
        "header_40k HTTP/1.1 431 Request Header Fields Too Large" \
        "$(grep '^header_40k' "$CM_DIR/probe16.out")"

    # Uploads: sizes around the 256 KiB write and the pool's read size,
    # with and without Content-Length; each stored byte for byte.
    for size in 1 4095 262143 262144 262145 1048577; do
        head -c "$size" /dev/urandom >"$CM_DIR/up.bin"
        sha=$(sha_of "$CM_DIR/up.bin")
        hdr=()
        [ "$size" = 262145 ] && hdr=(-H 'Transfer-Encoding: chunked')
        http_admin PUT "/v1/blobs/$sha" -T "$CM_DIR/up.bin" "${hdr[@]}"
        check "upload of $size bytes${hdr[*]:+ (chunked)}: 201" 201 "$STATUS"
        http GET "/v1/blobs/$sha"
        check "upload of $size bytes: served back whole" "$sha" "$(sha_of "$BODY")"
    done
    daemon_stop connmem
fi

if daemon_start connmem32 "$CM_DIR/data32" --set connection_memory_bytes=32768; then
    cm_probe "${DPORT[connmem32]}" 256 >"$CM_DIR/probe32.out" 2>&1
    check "connection memory 32 KiB: 256 query arguments answered" \
        "args_max HTTP/1.1 200 OK" "$(grep '^args_max' "$CM_DIR/probe32.out")"
    check "connection memory 32 KiB: 257 query arguments refused" \
        "args_over HTTP/1.1 431 Request Header Fields Too Large" \
        "$(grep '^args_over' "$CM_DIR/probe32.out")"
    daemon_stop connmem32
fi
