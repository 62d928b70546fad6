#!/bin/sh
# Installs, with apt-get, every Debian package that modeld's build, tests
# and demo need and that this machine lacks. Quiet when nothing is missing.
set -eu

missing=""
need_pc() { pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }

need_cmd pkg-config pkg-config
need_cmd gcc gcc
need_cmd make make
need_cmd curl curl
need_cmd jq jq
need_cmd zstd zstd
need_cmd openssl openssl
need_cmd sqlite3 sqlite3
need_cmd python3 python3
# The e2e suite checks every answer against proto/openapi.yaml
# (tests/e2e/spec_check.py); `make spec` installs @redocly/cli with npm.
python3 -c 'import jsonschema' >/dev/null 2>&1 || missing="$missing python3-jsonschema"
python3 -c 'import yaml' >/dev/null 2>&1 || missing="$missing python3-yaml"
need_cmd npm npm
# libFuzzer for `make fuzz` / `make fuzz-smoke`: clang and its runtime.
need_cmd clang clang
[ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ] ||
    missing="$missing libclang-rt-14-dev"
if command -v pkg-config >/dev/null 2>&1; then
    need_pc libmicrohttpd libmicrohttpd-dev
    need_pc gnutls libgnutls28-dev
    need_pc jansson libjansson-dev
    need_pc sqlite3 libsqlite3-dev
    need_pc libcrypto libssl-dev
    need_pc libzstd libzstd-dev
    need_pc check check
    need_pc libpq libpq-dev
    # libcurl: the UE client (client/, `modeld fetch`)
    need_pc libcurl libcurl4-openssl-dev
else
    missing="$missing libmicrohttpd-dev libgnutls28-dev libjansson-dev libsqlite3-dev \
libssl-dev libzstd-dev check libpq-dev libcurl4-openssl-dev"
fi
# A throw-away PostgreSQL server for the catalog tests (tests/lib/pg.sh).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
# libubsan/libasan come with gcc on Debian; nothing more to install.

[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
