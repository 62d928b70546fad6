#!/usr/bin/env bash
# Lints proto/openapi.yaml: tests/spec/lint.sh REDOCLY_BINARY
# (and checks that README's API table says what it says, readme_api.py,
# and that server/router.c's route table has the same paths, routes.py).
#
# Runs `redocly lint` (the pinned @redocly/cli the Makefile installs into
# build/redocly, recommended rules) with JSON output, and passes when it
# reports no error and every warning's rule is one README.md justifies: a
# line "- `lint: RULE-ID` ..." in its section "Spec lint". Prints one
# ok/not ok line per check and appends "N_PASSED N_FAILED" to
# build/results (MODELD_SPEC_RESULTS overrides). Needs no network: the
# install step is the Makefile's.
set -u

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: tests/spec/lint.sh REDOCLY_BINARY" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REDOCLY=$1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/modeld-lint.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/lib/check.sh
. "$ROOT/tests/lib/check.sh"

# No telemetry, no update check: the lint itself never talks to a network.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    NO_UPDATE_NOTIFIER=1
"$REDOCLY" lint --format=json --extends=recommended \
    "$ROOT/proto/openapi.yaml" >"$WORK/lint.json" 2>"$WORK/lint.err"
rc=$?

# The verdicts, as "pass|fail<TAB>NAME" lines.
python3 - "$WORK/lint.json" "$ROOT/README.md" "$rc" >"$WORK/verdicts" <<'EOF'
import json, re, sys

report_path, readme_path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    with open(report_path) as f:
        report = json.load(f)
except ValueError as e:
    print("fail\tredocly lint: no JSON report (exit %d): %s" % (rc, e))
    sys.exit(0)
with open(readme_path) as f:
    justified = set(re.findall(r"^- `lint: ([a-z0-9-]+)`", f.read(), re.M))

def where(p):
    loc = (p.get("location") or [{}])[0]
    return "%s (line %s)" % (loc.get("pointer", "?"),
                             (loc.get("start") or {}).get("line", "?"))

errors = [p for p in report.get("problems", []) if p.get("severity") == "error"]
warnings = [p for p in report.get("problems", []) if p.get("severity") == "warn"]
if errors:
    for p in errors:
        print("fail\tredocly lint: error %s at %s: %s" %
              (p.get("ruleId"), where(p), p.get("message")))
else:
    print("pass\tredocly lint %s: 0 errors" % report.get("version", "?"))
bad = [p for p in warnings if p.get("ruleId") not in justified]
for p in bad:
    print("fail\tredocly lint: warning %s at %s is not justified in README.md "
          "(Spec lint): %s" % (p.get("ruleId"), where(p), p.get("message")))
if not bad:
    print("pass\tredocly lint: %d warnings, each justified in README.md" %
          len(warnings))
if rc != 0 and not errors:
    print("fail\tredocly lint exits %d without an error in its report" % rc)
EOF

# README's API table says what the spec says.
python3 "$ROOT/tests/spec/readme_api.py" "$ROOT/README.md" \
    "$ROOT/proto/openapi.yaml" >>"$WORK/verdicts" 2>&1 ||
    echo "fail	readme: tests/spec/readme_api.py failed" >>"$WORK/verdicts"

# Every route of server/router.c is in the spec, and the other way round.
python3 "$ROOT/tests/spec/routes.py" "$ROOT/server/router.c" \
    "$ROOT/proto/openapi.yaml" >>"$WORK/verdicts" 2>&1 ||
    echo "fail	routes: tests/spec/routes.py failed" >>"$WORK/verdicts"

while IFS= read -r line; do
    case $line in
    pass$'\t'*) pass "${line#*$'\t'}" ;;
    fail$'\t'*) fail "${line#*$'\t'}" ;;
    esac
done <"$WORK/verdicts"
[ -s "$WORK/verdicts" ] || fail "redocly lint: no verdict (stderr: $(tail -n 3 "$WORK/lint.err"))"

check_report spec-lint "${MODELD_SPEC_RESULTS:-$ROOT/build/results}"
