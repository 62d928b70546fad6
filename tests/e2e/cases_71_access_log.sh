# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: the buffered access log (access_log,
# access_log_buffer_bytes, access_log_flush_ms). Under concurrent keep-alive
# load every request has one whole line, each connection's in order; a lone
# line is written within the flush interval; SIGHUP reopens the file after
# a rotation; SIGTERM writes what the buffers hold. (configs/test.conf sets
# access_log_buffer_bytes = 0 for the other cases, which read the log right
# after a request.)

# alog_wait FILE PATTERN COUNT: waits (at most 10 s) until FILE has COUNT
# lines matching PATTERN (grep -E); prints the count it saw last.
alog_wait() {
    local n=0 i
    for ((i = 0; i < 200; i++)); do
        n=$(grep -cE "$2" "$1" 2>/dev/null)
        [ "${n:-0}" -ge "$3" ] && break
        sleep 0.05
    done
    echo "${n:-0}"
}

AL_DIR=$WORK/alog
mkdir -p "$AL_DIR"
if daemon_start alog "$AL_DIR/data" --set "access_log=$AL_DIR/access.log" \
    --set access_log_buffer_bytes=65536 --set access_log_flush_ms=200; then
    # 8 keep-alive connections x 100 requests at once.
    python3 - "${DPORT[alog]}" >"$AL_DIR/load.out" 2>&1 <<'EOF'
import http.client, sys, threading
port = int(sys.argv[1])
bad = []
def client(c):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in range(100):
        conn.request("GET", "/healthz?c=%d&n=%d" % (c, n))
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            bad.append(r.status)
    conn.close()
ts = [threading.Thread(target=client, args=(c,)) for c in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print("bad", len(bad))
EOF
    check "access log: 800 keep-alive requests answered 200" "bad 0" \
        "$(cat "$AL_DIR/load.out")"
    check "access log: every request logged once (within 10 s)" 800 \
        "$(alog_wait "$AL_DIR/access.log" 'GET "/healthz\?c=' 800)"
    # Whole lines in the daemon's format, each connection's in order.
    check "access log: lines whole, each connection's in order" "ok" \
        "$(python3 - "$AL_DIR/access.log" <<'EOF'
import re, sys
line_re = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO req=\d+ '
                     r'GET "/healthz\?c=(\d)&n=(\d+)" 200 \d+ \d+\.\d{3}ms$')
nxt = {}
for raw in open(sys.argv[1], encoding="ascii", errors="replace"):
    if "/healthz?c=" not in raw:
        continue
    m = line_re.match(raw.rstrip("\n"))
    if not m or not raw.endswith("\n"):
        print("malformed: %r" % raw); sys.exit()
    c, n = int(m.group(1)), int(m.group(2))
    if n != nxt.get(c, 0):
        print("client %d: n=%d after %d" % (c, n, nxt.get(c, 0) - 1)); sys.exit()
    nxt[c] = n + 1
print("ok" if sorted(nxt.values()) == [100] * 8 else "counts %r" % nxt)
EOF
)"
    check "access log: its lines are not on stderr" 0 \
        "$(grep -c 'GET "/healthz?c=' "$WORK/alog.err")"

    # A lone line: written by the flusher (200 ms), nothing else happening.
    curl -s -o /dev/null --max-time 10 "http://127.0.0.1:${DPORT[alog]}/healthz?lone=1"
    check "access log: a lone line is written within the interval" 1 \
        "$(alog_wait "$AL_DIR/access.log" 'GET "/healthz\?lone=1" 200' 1)"

    # Rotation: rename, SIGHUP, new lines in the new file.
    mv "$AL_DIR/access.log" "$AL_DIR/access.log.1"
    kill -HUP "${DPID[alog]}"
    for ((i = 0; i < 200; i++)); do
        grep -q 'access log .* reopened' "$WORK/alog.err" && break
        sleep 0.05
    done
    check "access log: SIGHUP logs the reopen" 1 \
        "$(grep -c 'access log .* reopened' "$WORK/alog.err")"
    curl -s -o /dev/null --max-time 10 "http://127.0.0.1:${DPORT[alog]}/healthz?rotated=1"
    check "access log: after SIGHUP lines go to the new file" 1 \
        "$(alog_wait "$AL_DIR/access.log" 'GET "/healthz\?rotated=1" 200' 1)"
    check "access log: the rotated file gets none of them" 0 \
        "$(grep -c 'rotated=1' "$AL_DIR/access.log.1")"
    daemon_stop alog
fi

# SIGTERM writes what is buffered: a 60 s interval holds every line until
# the stop.
if daemon_start alog2 "$AL_DIR/data2" --set "access_log=$AL_DIR/held.log" \
    --set access_log_buffer_bytes=65536 --set access_log_flush_ms=60000; then
    for n in 1 2 3 4 5; do
        curl -s -o /dev/null --max-time 10 "http://127.0.0.1:${DPORT[alog2]}/healthz?held=$n"
    done
    check "access log: lines held in the buffer before the stop" 0 \
        "$(grep -c 'held=' "$AL_DIR/held.log")"
    daemon_stop alog2
    check "access log: SIGTERM writes the buffered lines" 5 \
        "$(grep -c 'GET "/healthz?held=[1-5]" 200' "$AL_DIR/held.log")"
fi

# A file that cannot be opened stops the daemon before it listens.
timeout 30 "$MODELD" serve --config "$CONFIG" --listen 127.0.0.1:0 \
    --data "$AL_DIR/data3" --set "access_log=$AL_DIR/no-such-dir/a.log" \
    >"$AL_DIR/bad.out" 2>"$AL_DIR/bad.err"
check "access log: an unopenable file: exit status 1" 1 "$?"
check_match "access log: an unopenable file is named" \
    'access_log .*no-such-dir/a.log' "$(cat "$AL_DIR/bad.err")"
