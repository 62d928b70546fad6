#!/bin/sh
# deploy/demo-figures.sh MODELD DATA: says, for the README's worked example
# (1 GB free, 100 GFLOP/s, max_latency_ms 100), what the demo catalog in
# DATA answers and how its file sizes compare with the full-size figures
# the README uses. `make run` prints it (deploy/run-demo.sh); read-only.
set -eu

modeld=$1
data=$2
report=$(mktemp "${TMPDIR:-/tmp}/modeld-figures.XXXXXX")
trap 'rm -f "$report"' EXIT
printf '%s\n' '{"device":{"memory_bytes":1000000000,"gflops":100},"requirements":{"max_latency_ms":100}}' >"$report"
decision=$("$modeld" select --data "$data" image-classification "$report")
variant=$(printf '%s' "$decision" | jq -r '.variant // "none"')
file_bytes=$(printf '%s' "$decision" | jq -r '.model.size_bytes // 0')
full_bytes=$(printf '%s' "$decision" | jq -r '.estimates.memory_bytes // 0')
download_s=$(printf '%s' "$decision" | jq -r '.estimates.download_s // 0')
scale=$(awk -v a="$file_bytes" -v b="$full_bytes" \
    'BEGIN { if (b > 0) printf "%g", a / b; else print "?" }')
times=$(awk -v a="$file_bytes" -v b="$full_bytes" \
    'BEGIN { if (a > 0) printf "%g", b / a; else print "?" }')

cat <<MSG
Demo file sizes: this catalog's files are its footprints x $scale
($variant: $file_bytes bytes served here, $full_bytes bytes at full size,
the figure the README's worked example uses). The worked example's report
(1 GB, 100 GFLOP/s, max_latency_ms 100) gets $variant here, whose
transfer takes ${download_s} s at the default 10 Mbit/s. With full-size
files (modeld demo --scale 1) every transfer takes ${times}x longer and the
answer is the README's.
MSG
