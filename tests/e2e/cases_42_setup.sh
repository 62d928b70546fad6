# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: risky set-ups are not accepted silently.
# An admin token file writable by every user stops the daemon; one
# readable by every user starts it with a warning; an expired or
# not-yet-valid TLS certificate starts it with a warning. And the bearer
# token may carry optional whitespace (RFC 9110).

# The main daemon: trailing spaces and a tab after the token are
# optional whitespace, not part of it (a 404 for a missing family means
# the token was accepted; a refused one answers 403).
http DELETE /v1/families/no-such-family -H "Authorization: Bearer $TOKEN   "
check "bearer: trailing spaces after the token are ignored" 404 "$STATUS"
http DELETE /v1/families/no-such-family -H "Authorization: Bearer 	$TOKEN	"
check "bearer: tabs around the token are ignored" 404 "$STATUS"
http DELETE /v1/families/no-such-family -H "Authorization: Bearer ${TOKEN}x "
check "bearer: a different token is still refused" 403 "$STATUS"

SETUP=$WORK/setup
mkdir -p "$SETUP"
printf '%s\n' "$TOKEN" >"$SETUP/token"

chmod 666 "$SETUP/token"
err=$(timeout 20 "$MODELD" serve --config "$CONFIG" --listen 127.0.0.1:0 \
    --data "$SETUP/data-ww" --admin-token-file "$SETUP/token" 2>&1 >/dev/null)
rc=$?
check_match "token file writable by every user: refused (exit status)" '^[1-9][0-9]*$' "$rc"
check_match "token file writable by every user: says why" 'writable by every user' "$err"

chmod 644 "$SETUP/token"
if daemon_start setup-wr "$SETUP/data-wr" --admin-token-file "$SETUP/token"; then
    check_match "token file readable by every user: a warning" \
        'WARN.*readable by every user' "$(cat "$WORK/setup-wr.err")"
    daemon_stop setup-wr
fi
chmod 600 "$SETUP/token"

# Self-signed ECDSA certificates made with certtool, one expired, one
# valid only from 2090.
mkcerts() {
    certtool --generate-privkey --key-type ecdsa --outfile "$SETUP/key.pem" &&
        printf 'cn = 127.0.0.1\nactivation_date = "2020-01-01 00:00:00 UTC"\nexpiration_date = "2020-01-02 00:00:00 UTC"\n' >"$SETUP/old.tmpl" &&
        printf 'cn = 127.0.0.1\nactivation_date = "2090-01-01 00:00:00 UTC"\nexpiration_date = "2091-01-01 00:00:00 UTC"\n' >"$SETUP/new.tmpl" &&
        certtool --generate-self-signed --load-privkey "$SETUP/key.pem" \
            --template "$SETUP/old.tmpl" --outfile "$SETUP/old.pem" &&
        certtool --generate-self-signed --load-privkey "$SETUP/key.pem" \
            --template "$SETUP/new.tmpl" --outfile "$SETUP/new.pem"
}
check_cmd "certtool makes an expired and a future certificate" mkcerts
# daemon_start's readiness probe cannot verify them: --insecure.
CURL_TLS=(--insecure)
for c in old:expired new:'is not valid for another'; do
    name=${c%%:*}
    if daemon_start "setup-$name" "$SETUP/data-$name" --tls-cert "$SETUP/$name.pem" \
        --tls-key "$SETUP/key.pem"; then
        check_match "TLS certificate $name: a warning at start" \
            "WARN.*$name.pem: the TLS certificate ${c#*:}" "$(cat "$WORK/setup-$name.err")"
        daemon_stop "setup-$name"
    fi
done
CURL_TLS=()
