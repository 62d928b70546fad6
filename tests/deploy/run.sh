#!/bin/bash
# The deployment files: tests/deploy/run.sh MODELD_BINARY
# - deploy/nginx-modeld-cache.conf in front of a real daemon: a blob is a
#   MISS then a HIT, ranges come from slices with the right bytes, a delta
#   is cached too, selects are never cached;
# - `make install` into a DESTDIR: the files land where the unit expects
#   them, and `systemd-analyze verify` accepts the installed unit (when
#   systemd-analyze is there);
# - deploy/k8s/*.yaml parse and hold the objects the README promises
#   (python3-yaml; Debian ships no Kubernetes schema checker), and
#   deploy/Dockerfile has the shape the README promises (Debian 12 slim,
#   non-root, HEALTHCHECK on /healthz).
set -u
cd "$(dirname "$0")/../.."
MODELD=$(realpath "$1")
. tests/lib/check.sh
. tests/lib/daemon.sh
WORK=$(mktemp -d /tmp/modeld-deploy.XXXXXX)
chmod 0755 "$WORK"
TOKEN_FILE=$WORK/token
openssl rand -hex 24 >"$TOKEN_FILE"
JSON=(-H 'Content-Type: application/json')
NGINX_PID=""
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
    d_stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- nginx in front ------------------------------------------------------
if command -v nginx >/dev/null 2>&1 && d_start up "$WORK/up"; then
    head -c 3000000 /dev/urandom >"$WORK/blob"
    H=$(sha "$WORK/blob")
    admin up PUT "/v1/blobs/sha256:$H" --data-binary "@$WORK/blob" >/dev/null
    admin up PUT /v1/families/ng "${JSON[@]}" -d '{"task":"t","description":"d"}' >/dev/null
    admin up PUT /v1/families/ng/variants/v "${JSON[@]}" \
        -d "{\"blob\":\"sha256:$H\",\"flops\":1e8,\"accuracy\":0.7}" >/dev/null
    NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
    # The shipped file, with this test's upstream, port and cache path.
    sed -e "s#server 127.0.0.1:8080;#server 127.0.0.1:${D_PORT[up]};#" \
        -e "s#listen 80;#listen 127.0.0.1:$NPORT;#" \
        -e "s#/var/cache/nginx/modeld#$WORK/nginx/cache#" \
        deploy/nginx-modeld-cache.conf >"$WORK/nginx/modeld.conf"
    cat >"$WORK/nginx/nginx.conf" <<NGX
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    include $WORK/nginx/modeld.conf;
}
NGX
    check_cmd "nginx -t accepts deploy/nginx-modeld-cache.conf" \
        nginx -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
    NGINX_PID=$!
    up() { curl -s -o /dev/null "http://127.0.0.1:$NPORT/healthz"; }
    wait_for 10 up
    NG=http://127.0.0.1:$NPORT
    cache_status() { tr -d '\r' <"$WORK/h" | awk -F': ' 'tolower($1)=="x-cache-status" {print $2}'; }
    s=$(curl -s -D "$WORK/h" -o "$WORK/b1" -w '%{http_code}' "$NG/v1/blobs/sha256:$H")
    check "nginx: blob through nginx" 200 "$s"
    check "nginx: ... first a MISS" MISS "$(cache_status)"
    check "nginx: ... the right bytes" "$H" "$(sha "$WORK/b1")"
    s=$(curl -s -D "$WORK/h" -o "$WORK/b2" -w '%{http_code}' "$NG/v1/blobs/sha256:$H")
    check "nginx: blob again" 200 "$s"
    check "nginx: ... a HIT" HIT "$(cache_status)"
    check "nginx: ... the right bytes" "$H" "$(sha "$WORK/b2")"
    # A range across a slice boundary (1 MiB), from the cache.
    s=$(curl -s -D "$WORK/h" -o "$WORK/r" -w '%{http_code}' -H 'Range: bytes=1048000-1049999' "$NG/v1/blobs/sha256:$H")
    check "nginx: a range across slices" 206 "$s"
    check "nginx: ... the right bytes" "$(tail -c +1048001 "$WORK/blob" | head -c 2000 | sha256sum | cut -d' ' -f1)" \
        "$(sha "$WORK/r")"
    check "nginx: ... from the cache" HIT "$(cache_status)"
    up_requests=$(metric up 'modeld_http_requests_total{route="/v1/blobs/{digest}",status="206"}')
    check_lt "nginx: modeld saw only the 3 slice fetches" 4 "${up_requests%.*}"
    s=$(curl -s -D "$WORK/h" -o /dev/null -w '%{http_code}' "$NG/v1/deltas/sha256:$H/sha256:$H")
    check "nginx: a missing delta passes through" 404 "$s"
    for i in 1 2; do
        s=$(curl -s -D "$WORK/h" -o "$WORK/sel" -w '%{http_code}' "${JSON[@]}" \
            -d '{"device":{"memory_bytes":4000000000,"gflops":50}}' "$NG/v1/families/ng/select")
        check "nginx: select $i answered" 200 "$s"
        check "nginx: select $i not cached" "" "$(cache_status)"
    done
    check "nginx: both selects reached modeld" 2 \
        "$(metric up 'modeld_http_requests_total{route="/v1/families/{family}/select",status="200"}')"
    kill "$NGINX_PID" 2>/dev/null
    wait "$NGINX_PID" 2>/dev/null
    NGINX_PID=""
    d_stop up
else
    fail "nginx: nginx (nginx-light) and the daemon are needed"
fi

# ---- make install --------------------------------------------------------
DEST=$WORK/dest
if make --no-print-directory install DESTDIR="$DEST" PREFIX=/usr >"$WORK/install.log" 2>&1; then
    pass "make install DESTDIR=... PREFIX=/usr"
else
    fail "make install: $(tail -3 "$WORK/install.log")"
fi
for f in usr/bin/modeld etc/modeld/modeld.conf lib/systemd/system/modeld.service \
    usr/share/doc/modeld/README.md usr/share/doc/modeld/nginx-modeld-cache.conf; do
    check_cmd "installed: /$f" test -s "$DEST/$f"
done
check "installed: the binary runs" 0 "$("$DEST/usr/bin/modeld" --help >/dev/null 2>&1; echo $?)"
check_match "installed: the unit runs the installed binary" '^ExecStart=/usr/bin/modeld serve' \
    "$(grep '^ExecStart=' "$DEST/lib/systemd/system/modeld.service")"
check "installed: the default config is accepted" 0 \
    "$("$DEST/usr/bin/modeld" serve --config "$DEST/etc/modeld/modeld.conf" --print-config >/dev/null 2>&1; echo $?)"
if command -v systemd-analyze >/dev/null 2>&1; then
    # The installed unit, its binary path pointed into DESTDIR (verify
    # checks that ExecStart's program exists and is executable).
    sed "s#/usr/bin/modeld#$DEST/usr/bin/modeld#g" \
        "$DEST/lib/systemd/system/modeld.service" >"$WORK/modeld.service"
    out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$WORK/modeld.service" 2>&1)
    check "systemd-analyze verify modeld.service: no complaint about the unit" "" \
        "$(printf '%s\n' "$out" | grep 'modeld.service')"
else
    echo "# systemd-analyze not installed: the unit was not verified"
fi

# ---- container and Kubernetes files --------------------------------------
check_match "Dockerfile: Debian 12 slim" '^FROM debian:12-slim' "$(grep '^FROM' deploy/Dockerfile | tail -1)"
check_match "Dockerfile: runs as a non-root user" '^USER [a-z]' "$(grep '^USER' deploy/Dockerfile)"
check_match "Dockerfile: HEALTHCHECK on /healthz" 'HEALTHCHECK.*/healthz' "$(tr '\n' ' ' <deploy/Dockerfile)"
kinds=$(python3 - deploy/k8s/*.yaml <<'PY'
import sys, yaml
kinds = []
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        assert doc.get("apiVersion") and doc.get("kind"), path
        assert doc.get("metadata", {}).get("name"), path
        kinds.append(doc["kind"])
        if doc["kind"] == "Deployment":
            c = doc["spec"]["template"]["spec"]["containers"][0]
            assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
print(" ".join(sorted(kinds)))
PY
)
check "k8s: the manifests parse and hold every object" \
    "ConfigMap Deployment PersistentVolumeClaim Secret Service" "$kinds"

check_report "deploy" build/results
