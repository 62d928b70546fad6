#!/bin/sh
# Installs, with apt-get and only when missing, the tools that `make bench`
# compares modeld against: nginx, wrk, zstd, xdelta3, bsdiff (and curl,
# python3, jq, GNU time). nginx's package would start a system-wide nginx
# on port 80: a temporary policy-rc.d forbids that while installing.
set -eu

missing=""
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ||
    missing="$missing $2"; }
need nginx nginx-light
need wrk wrk
need zstd zstd
need xdelta3 xdelta3
need bsdiff bsdiff
command -v bspatch >/dev/null 2>&1 || case $missing in *bsdiff*) ;; *) missing="$missing bsdiff" ;; esac
need curl curl
need jq jq
need python3 python3
[ -x /usr/bin/time ] || missing="$missing time"

[ -z "$missing" ] && exit 0
echo "bench: installing:$missing"
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    made_policy=1
fi
status=0
$SUDO apt-get update -qq || status=$?
if [ "$status" -eq 0 ]; then
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing \
        >/dev/null || status=$?
fi
[ "$made_policy" -eq 1 ] && $SUDO rm -f "$policy"
exit "$status"
