# shellcheck shell=bash
# Sourced by tests/pg/run.sh: answers while a blob is pulled through (edge
# mode, server/pull.c), against tests/pg/origin.py holding bytes back
# (gated files), on an edge with threads=2 (the ASan build when there is
# one: waiting requests that go away must leak nothing). A download and a
# range get the bytes that arrived before the pull completed, all but
# their last byte until the blob verified; a range beyond what arrived
# waits; /healthz and a select answer while 4 pulls are in flight; an
# origin cut mid-pull or a wrong digest cuts every answer before its end
# and keeps nothing; clients that leave while waiting do no harm; the edge
# stops cleanly with requests waiting.

origin_start sorigin 0
SORIGIN=$ORIGIN_URL
SORIGIN_PID=$ORIGIN_PID
scount() { curl -s "$SORIGIN/_count/$1"; }
fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
has_bytes() { [ "$(fsize "$1")" -ge "$2" ]; }
counted() { [ "$(scount "$1")" -ge "$2" ]; }
# origin_blob FILE SEED KIB [GATE]: a blob at the origin, held back after
# GATE bytes (-1: before its headers); prints its hex.
origin_blob() {
    local hex
    make_blob "$1" "$2" "$3"
    hex=$(sha "$1")
    cp "$1" "$WORK/sorigin/$hex"
    [ -n "${4:-}" ] && echo "$4" >"$WORK/sorigin/$hex.gate"
    echo "$hex"
}
release() { touch "$WORK/sorigin/$1.go"; }
# bg_get NAME URL [curl args]: a download in the background; NAME.st gets
# "STATUS EXIT" when it ends, NAME.h its headers.
bg_get() {
    local name=$1 url=$2
    shift 2
    (
        code=$(curl -s -N --max-time 60 -D "$WORK/$name.h" -o "$WORK/$name" \
            -w '%{http_code}' "$@" "$url")
        echo "$code $?" >"$WORK/$name.st"
    ) &
}
ended() { test -s "$WORK/$1.st"; }

S_BIN=$MODELD
[ -x build/asan/modeld ] && S_BIN=$(realpath build/asan/modeld)
S1=$(origin_blob "$WORK/s1" 51 1024 524288)
S2=$(origin_blob "$WORK/s2" 52 64 -1)
S3=$(origin_blob "$WORK/s3" 53 64 -1)
S4=$(origin_blob "$WORK/s4" 54 256 65536)
S5=$(origin_blob "$WORK/s5" 55 256 65536)
if MODELD=$S_BIN d_start sedge "$WORK/sedge" --set "blob_origin=$SORIGIN" \
    --set threads=2 --set worker=false --set shutdown_grace_s=1; then
    SE=$(d_url sedge)
    # A small family of the edge's own, to select from while pulls wait.
    publish_new "pull: a family at the edge" sedge sfam "$WORK/slocal" 56 8

    # Two pulls whose origins are silent, the second asked once the first
    # reached its origin (a thread blocked in a fetch accepts nothing, so
    # before, each held one of the 2 HTTP threads): /healthz answers
    # (failed before).
    bg_get s2.a "$SE/v1/blobs/sha256:$S2"
    wait_for 30 counted "$S2" 1
    bg_get s3.a "$SE/v1/blobs/sha256:$S3"
    wait_for 30 counted "$S3" 1
    check "pull: two pulls in flight, 2 HTTP threads: /healthz answers" 200 \
        "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$SE/healthz")"

    # The origin sends half of S1 and holds the rest.
    bg_get s1.whole "$SE/v1/blobs/sha256:$S1"
    bg_get s1.range "$SE/v1/blobs/sha256:$S1" -r 1000-1999
    wait_for 30 has_bytes "$WORK/s1.whole" 524288
    check "pull: a download gets the first half while the origin holds the rest" \
        524288 "$(fsize "$WORK/s1.whole")"
    check "pull: ... status 200, Content-Length the whole blob" "200 1048576" \
        "$(awk 'NR == 1 { s = $2 } tolower($1) == "content-length:" { l = $2 } END { print s, l + 0 }' "$WORK/s1.whole.h" | tr -d '\r')"
    check "pull: ... nothing kept before the whole blob verified" "" \
        "$(find "$WORK/sedge/blobs" -name "$S1")"
    wait_for 30 has_bytes "$WORK/s1.range" 999
    check "pull: a range of arrived bytes is answered at once: 206" 206 \
        "$(awk 'NR == 1 { print $2 }' "$WORK/s1.range.h")"
    check "pull: ... its Content-Range" "bytes 1000-1999/1048576" \
        "$(awk 'tolower($1) == "content-range:" { print $2, $3 }' "$WORK/s1.range.h" | tr -d '\r')"
    check "pull: ... all but its last byte before the blob verified" 999 "$(fsize "$WORK/s1.range")"
    bg_get s1.beyond "$SE/v1/blobs/sha256:$S1" -r 800000-800099

    # More pulls in flight: a second request for S2, two origins holding
    # bytes back. The edge has 2 HTTP threads.
    bg_get s2.b "$SE/v1/blobs/sha256:$S2"
    bg_get s4.a "$SE/v1/blobs/sha256:$S4"
    # A range as the first request for a blob not here at all.
    bg_get s5.a "$SE/v1/blobs/sha256:$S5" -r 100-199999
    wait_for 30 counted "$S2" 1 && wait_for 30 counted "$S3" 1 &&
        wait_for 30 has_bytes "$WORK/s4.a" 65536 && wait_for 30 has_bytes "$WORK/s5.a" 65436
    check "pull: 5 pulls in flight on a 2-thread edge" "1 1 1 1 1" \
        "$(scount "$S1") $(scount "$S2") $(scount "$S3") $(scount "$S4") $(scount "$S5")"
    check "pull: ... a range first: 206 and the arrived bytes of it" "206 65436" \
        "$(awk 'NR == 1 { print $2 }' "$WORK/s5.a.h") $(fsize "$WORK/s5.a")"
    check "pull: /healthz still answers" 200 \
        "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$SE/healthz")"
    check "pull: a select still answers" 200 \
        "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "${JSON[@]}" -d "$SELECT_BODY" "$SE/v1/families/sfam/select")"
    # Clients that give up while waiting (before headers, mid-body).
    curl -s --max-time 1 -o /dev/null "$SE/v1/blobs/sha256:$S2"
    curl -s --max-time 1 -o /dev/null "$SE/v1/blobs/sha256:$S4"
    check "pull: ... still none of them finished" "" "$(ls "$WORK"/s*.st 2>/dev/null)"

    for h in "$S1" "$S2" "$S3" "$S4" "$S5"; do release "$h"; done
    for n in s1.whole s1.range s1.beyond s2.a s2.b s3.a s4.a s5.a; do wait_for 60 ended "$n"; done
    check "pull: every answer complete once released" "200 0|206 0|206 0|200 0|200 0|200 0|200 0|206 0" \
        "$(for n in s1.whole s1.range s1.beyond s2.a s2.b s3.a s4.a s5.a; do cat "$WORK/$n.st"; done | paste -sd'|')"
    check "pull: ... the download's bytes" "$S1" "$(sha "$WORK/s1.whole")"
    check "pull: ... the range's bytes" "$(tail -c +1001 "$WORK/s1" | head -c 1000 | sha256sum | cut -d' ' -f1)" \
        "$(sha "$WORK/s1.range")"
    check "pull: ... the range beyond what had arrived" "$(tail -c +800001 "$WORK/s1" | head -c 100 | sha256sum | cut -d' ' -f1)" \
        "$(sha "$WORK/s1.beyond")"
    check "pull: ... the others' bytes" "$S2 $S2 $S3 $S4 $(tail -c +101 "$WORK/s5" | head -c 199900 | sha256sum | cut -d' ' -f1)" \
        "$(sha "$WORK/s2.a") $(sha "$WORK/s2.b") $(sha "$WORK/s3.a") $(sha "$WORK/s4.a") $(sha "$WORK/s5.a")"
    check "pull: ... one origin fetch each" "1 1 1 1 1" \
        "$(scount "$S1") $(scount "$S2") $(scount "$S3") $(scount "$S4") $(scount "$S5")"
    kept() { for h in "$S1" "$S2" "$S3" "$S4" "$S5"; do ls "$WORK/sedge/blobs/sha256/${h:0:2}/$h"; done 2>/dev/null | grep -c .; }
    check_soon "pull: ... all kept" 5 kept

    # The origin closes mid-pull: every answer is cut, nothing kept.
    S6=$(origin_blob "$WORK/s6" 57 512 300000)
    for i in 1 2 3; do bg_get "s6.$i" "$SE/v1/blobs/sha256:$S6"; done
    for i in 1 2 3; do wait_for 30 has_bytes "$WORK/s6.$i" 300000; done
    cut_before=$(metric sedge modeld_edge_cut_answers_total)
    touch "$WORK/sorigin/$S6.cut"
    for i in 1 2 3; do wait_for 60 ended "s6.$i"; done
    check "pull: origin cut mid-pull: every answer cut short (curl 18)" "200 18|200 18|200 18" \
        "$(for i in 1 2 3; do cat "$WORK/s6.$i.st"; done | paste -sd'|')"
    check "pull: ... counted" $((cut_before + 3)) "$(metric sedge modeld_edge_cut_answers_total)"
    check "pull: ... nothing kept" "" \
        "$(find "$WORK/sedge/blobs" -name "$S6"; find "$WORK/sedge/tmp" -type f)"
    rm -f "$WORK/sorigin/$S6.gate"
    check "pull: ... and the next request pulls it again" "200 $S6 2" \
        "$(req sedge GET "/v1/blobs/sha256:$S6") $(sha "$WORK/body") $(scount "$S6")"

    # Bytes that do not hash to the digest: cut before the last byte.
    make_blob "$WORK/s7" 58 256
    S7=$(sha "$WORK/s7")
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[100] ^= 1; open(sys.argv[2], "wb").write(b)' \
        "$WORK/s7" "$WORK/sorigin/$S7"
    echo 4096 >"$WORK/sorigin/$S7.gate"
    bg_get s7.a "$SE/v1/blobs/sha256:$S7"
    wait_for 30 has_bytes "$WORK/s7.a" 4096
    release "$S7"
    wait_for 60 ended s7.a
    check "pull: a wrong digest streamed: cut (curl 18) before its last byte" \
        "200 18 short" \
        "$(cat "$WORK/s7.a.st") $([ "$(fsize "$WORK/s7.a")" -lt $((256 * 1024)) ] && echo short)"
    check "pull: ... not kept" "" "$(find "$WORK/sedge/blobs" -name "$S7"; find "$WORK/sedge/tmp" -type f)"
    check "pull: ... refused counted" 1 "$(metric sedge modeld_edge_origin_refused_total)"
    check "pull: the edge still answers" 200 \
        "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$SE/healthz")"

    # Stopping while requests wait (one before the origin's headers, one
    # mid-body): they are ended, and the daemon stops by itself.
    S8=$(origin_blob "$WORK/s8" 59 64 -1)
    S9=$(origin_blob "$WORK/s9" 60 512 65536)
    bg_get s8.a "$SE/v1/blobs/sha256:$S8"
    bg_get s9.a "$SE/v1/blobs/sha256:$S9"
    wait_for 30 counted "$S8" 1 && wait_for 30 has_bytes "$WORK/s9.a" 65536
    kill -TERM "${D_PID[sedge]}"
    wait_for 20 ended s8.a && wait_for 20 ended s9.a
    # The one before its headers gets the 502 if its worker runs before
    # the daemon closes the connections, else the connection closes
    # (curl 52): both end it.
    check "pull: stopped while waiting: answers end (502 or closed, a cut)" "ended|200 18" \
        "$(sed -e 's/^502 0$/ended/' -e 's/^000 52$/ended/' "$WORK/s8.a.st")|$(cat "$WORK/s9.a.st")"
    stopped() { ! kill -0 "${D_PID[sedge]}" 2>/dev/null; }
    wait_for 20 stopped
    check "pull: ... and the edge stopped by itself" "stopped" \
        "$(stopped && grep -o -m1 ' stopped$' "$WORK/sedge.err" | tr -d ' ')"
    release "$S8"
    release "$S9"
    d_stop sedge
    check "pull: no BUG or sanitizer report" 0 \
        "$(grep -c -E 'BUG:|runtime error|Sanitizer|LeakSanitizer' "$WORK/sedge.err")"
else
    fail "pull: the edge starts"
fi
origin_stop "$SORIGIN_PID"
