# shellcheck shell=bash
# Small helpers for runners that start several daemons of their own
# (tests/pg/run.sh, tests/edge/run.sh): start one on a free port, wait for
# it, talk to it, stop it by PID. Needs $MODELD, $WORK, $TOKEN_FILE.
declare -A D_PID=() D_PORT=()

# d_start NAME DATA [serve args...]: 0 once /healthz answers.
d_start() {
    local name=$1 data=$2 line port="" deadline=$((SECONDS + 60))
    shift 2
    mkdir -p "$data"
    # emptied in this shell: the redirect below truncates in the forked
    # child, after which a restart could read the old "listening on" line
    : >"$WORK/$name.out"
    : >"$WORK/$name.err"
    "$MODELD" serve --config configs/test.conf --listen 127.0.0.1:0 \
        --data "$data" --admin-token-file "$TOKEN_FILE" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    D_PID[$name]=$!
    while ((SECONDS < deadline)); do
        line=$(grep -m1 '^listening on ' "$WORK/$name.out" 2>/dev/null)
        if [ -n "$line" ]; then
            port=${line##*:}
            break
        fi
        kill -0 "${D_PID[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "daemon $name did not start:" >&2
        tail -5 "$WORK/$name.err" >&2
        return 1
    fi
    D_PORT[$name]=$port
    return 0
}

d_url() { echo "http://127.0.0.1:${D_PORT[$1]}"; }

# d_stop NAME: SIGTERM, then SIGKILL after 10 s.
d_stop() {
    local pid=${D_PID[$1]:-} i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "D_PID[$1]"
}

d_stop_all() {
    local name
    for name in "${!D_PID[@]}"; do d_stop "$name"; done
}

# req NAME METHOD PATH [curl args...]: prints the status; body in
# $WORK/body (or $BODY_OUT: a loop in the background sets its own).
req() {
    local name=$1 method=$2 path=$3
    shift 3
    curl -sS --max-time 30 -o "${BODY_OUT:-$WORK/body}" -w '%{http_code}' -X "$method" \
        "$@" "$(d_url "$name")$path" 2>/dev/null || true
}

# admin NAME METHOD PATH [curl args...]: req with the bearer token.
admin() {
    local name=$1 method=$2 path=$3
    shift 3
    req "$name" "$method" "$path" -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$@"
}

# metric NAME SERIES: the value of one series in NAME's /metrics (0 if absent).
metric() {
    curl -sS --max-time 10 "$(d_url "$1")/metrics" 2>/dev/null |
        awk -v s="$2" '$1 == s { v = $2 } END { print (v == "" ? 0 : v) }'
}

# sha FILE: the hex SHA-256.
sha() { sha256sum "$1" | cut -d' ' -f1; }

# wait_for SECONDS COMMAND...: polls (every 50 ms) until COMMAND succeeds.
wait_for() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

# check_soon NAME EXPECTED COMMAND...: check, once COMMAND's output is
# EXPECTED or 10 s have passed (for what a daemon finishes after its
# answer, such as an edge keeping or evicting a pulled blob).
check_soon() {
    local name=$1 want=$2 got i
    shift 2
    for ((i = 0; i < 200; i++)); do
        got=$("$@" 2>/dev/null)
        [ "$got" = "$want" ] && break
        sleep 0.05
    done
    check "$name" "$want" "$got"
}
