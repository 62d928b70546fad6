#!/bin/sh
# Sums the "passed failed" lines the runners wrote and prints the closing
# line "N passed, N failed"; exits non-zero when anything failed.
file=${1:-build/results}
[ -f "$file" ] || { echo "0 passed, 1 failed"; exit 1; }
awk '{ p += $1; f += $2 } END { printf "%d passed, %d failed\n", p, f;
       exit (f > 0 || p == 0) }' "$file"
