#!/bin/sh
# `make run`, after the build: creates the demo catalog in ./var once, prints
# the admin token's file and two curl examples, then runs the daemon in the
# foreground on http://127.0.0.1:8080 (Ctrl-C stops it).
set -eu

modeld=build/modeld
data=var
token=$data/admin.token
listen=127.0.0.1:8080
base=http://$listen

if [ ! -x "$modeld" ]; then
    echo "run-demo.sh: $modeld is missing; run 'make' first" >&2
    exit 1
fi

# The demo is idempotent: on an existing catalog it only writes a missing
# token file.
if [ ! -e "$data/catalog.db" ] || [ ! -e "$token" ]; then
    "$modeld" demo --data "$data" --token-file "$token"
fi

select_body='{"device":{"memory_bytes":60000000,"gflops":100}}'
cat <<MSG

Admin token: $token (mode 0600). Admin requests send it as a bearer token:
  curl -s -X PUT $base/v1/families/my-family \\
       -H "Authorization: Bearer \$(cat $token)" \\
       -H 'Content-Type: application/json' -d '{"task":"demo"}'

Ask which image classifier fits a UE with 60 MB free and 100 GFLOP/s:
  curl -s -X POST $base/v1/families/image-classification/select \\
       -H 'Content-Type: application/json' \\
       -d '$select_body' | jq .

Download the model it chose (efficientnet-b0) into model.bin:
  curl -s -o model.bin "$base\$(curl -s -X POST $base/v1/families/image-classification/select -H 'Content-Type: application/json' -d '$select_body' | jq -r .model.url)"

Stop the server with Ctrl-C. Start afresh with: rm -rf $data && make run

MSG
deploy/demo-figures.sh "$modeld" "$data" || true
echo

set -- serve
if [ -e configs/modeld.conf ]; then
    set -- "$@" --config configs/modeld.conf
fi
exec "$modeld" "$@" --data "$data" --admin-token-file "$token" \
    --listen "$listen"
