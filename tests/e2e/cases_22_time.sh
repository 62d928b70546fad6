# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: selection over time (issue 9) and the short
# answer of large families (issue 15) on the demo catalog: outages
# (downlink_bps 0), a download in flight, throughput history, horizon,
# explain.

SEL=/v1/families/image-classification/select

if demo_data && daemon_start demotime "$DEMO_DATA" --admin-token-file "$WORK/demo.token"; then
    sel() {
        http POST "$SEL$2" -H 'Content-Type: application/json' --data-binary "$1"
    }
    # 10 MB: nothing fits; by default 5 runner-ups and the 6th counted
    R10='{"device":{"memory_bytes":10000000,"gflops":100}}'
    sel "$R10" ""
    check "explain default: status" 200 "$STATUS"
    check_jq "explain default: 5 candidates, 1 omitted for memory" \
        '(.candidates | length) == 5 and .omitted == {"count":1,"by_cause":{"memory":1}}'
    sel "$R10" "?explain=all"
    check_jq "?explain=all: all 6 candidates, nothing omitted" \
        '(.candidates | length) == 6 and (has("omitted") | not)'
    sel '{"device":{"memory_bytes":10000000,"gflops":100},"explain":"all"}' ""
    check_jq "explain all in the report: all 6 candidates" '(.candidates | length) == 6'
    sel "$R10" "?explain=most"
    check_problem "?explain=most" 400 explain
    sel '{"device":{"memory_bytes":10000000,"gflops":100},"explain":"most"}' ""
    check_problem "explain \"most\" in the report" 400 explain

    # an outage: still a decision, with a short recheck and the reason
    sel '{"device":{"memory_bytes":60000000,"gflops":100},"network":{"downlink_bps":0}}' ""
    check "downlink_bps 0, nothing held: status" 200 "$STATUS"
    check_jq "downlink_bps 0, nothing held: none, recheck soon, says why" \
        '.action == "none" and .recheck_after_s == 15 and any(.reasons[]; test("downlink_bps 0"))'
    sel '{"device":{"memory_bytes":60000000,"gflops":100}}' ""
    EFF=$(jbody .model.digest)
    sel "{\"device\":{\"memory_bytes\":60000000,\"gflops\":100},\"network\":{\"downlink_bps\":0},\"current\":\"$EFF\"}" ""
    check_jq "downlink_bps 0, holding efficientnet-b0: keep, recheck soon" \
        '.action == "keep" and .variant == "efficientnet-b0" and .recheck_after_s == 15'

    # a download in flight that is still the best: resumed, same blob
    sel "{\"device\":{\"memory_bytes\":60000000,\"gflops\":100},\"fetching\":{\"digest\":\"$EFF\",\"bytes_done\":1000}}" ""
    check_jq "fetching efficientnet-b0: download of the same blob, in flight" \
        ".action == \"download\" and .model.digest == \"$EFF\" and any(.reasons[]; test(\"^in flight: 1000 of\"))"
    sel '{"device":{"memory_bytes":60000000,"gflops":100},"fetching":{"digest":"sha256:XYZ"}}' ""
    check_problem "fetching.digest malformed" 400 fetching.digest

    # history, horizon and memory floor are accepted and bounded
    sel '{"device":{"memory_bytes":60000000,"gflops":100,"memory_floor_bytes":30000000},"network":{"downlink_bps":2e7,"downlink_history_bps":[1e6,0,3e7]},"requirements":{"horizon_s":600}}' ""
    check_jq "history, horizon, floor: a download" '.action == "download"'
    sel '{"device":{"memory_bytes":60000000,"gflops":100},"network":{"downlink_history_bps":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}}' ""
    check_problem "17 history samples" 400 network.downlink_history_bps
    sel '{"device":{"memory_bytes":60000000,"gflops":100},"requirements":{"horizon_s":0}}' ""
    check_problem "horizon_s 0" 400 requirements.horizon_s
    # memory history: per-minute lows; the chosen variant says how often
    # it would not have fitted (4 of 16 minutes under its 21.2 MB)
    sel '{"device":{"memory_bytes":60000000,"gflops":100,"memory_history_bytes":[6e7,1.5e7,6e7,6e7,1.5e7,6e7,6e7,1.5e7,6e7,6e7,1.5e7,6e7,6e7,6e7,6e7,6e7]}}' ""
    check_jq "memory history: efficientnet-b0, its dips in the reasons" \
        '.variant == "efficientnet-b0" and any(.reasons[]; test("^memory: under 21200000 bytes in 4 of 16 minutes, 4 dips"))'
    sel '{"device":{"memory_bytes":60000000,"gflops":100,"memory_history_bytes":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}}' ""
    check_problem "17 memory history samples" 400 device.memory_history_bytes
    sel '{"device":{"memory_bytes":60000000,"gflops":100,"memory_history_bytes":[6e7,-1]}}' ""
    check_problem "a negative memory history sample" 400 'device.memory_history_bytes[1]'
    daemon_stop demotime

    # modeld replay: a minute of reports, an outage in the middle
    python3 - "$WORK/replay.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for t in range(0, 60, 5):
        bps = 0 if 20 <= t < 35 else 2e7
        f.write(json.dumps({"t_s": t, "bps": bps, "report": {
            "device": {"memory_bytes": 60000000, "gflops": 100},
            "network": {"downlink_bps": bps}}}) + "\n")
    f.write(json.dumps({"end_s": 60}) + "\n")
PY
    timeout 60 "$MODELD" replay --data "$DEMO_DATA" --json --size-scale 1000 \
        image-classification "$WORK/replay.jsonl" >"$WORK/replay.out" 2>"$WORK/replay.err"
    check "modeld replay: exit status" 0 "$?"
    check_match "modeld replay: policy within the oracle, one install" \
        '^true$' "$(jq '.policy.utility <= .oracle.utility + 1e-6 and .oracle.switches == 1 and .policy.switches >= 1 and .duration_s == 60' "$WORK/replay.out" 2>&1)"
    # --trace: where the policy and greedy best-now part (1 GB free: greedy
    # fetches inception-v3, the policy efficientnet-b0 first, "small now")
    sed 's/60000000/1000000000/' "$WORK/replay.jsonl" >"$WORK/replay-big.jsonl"
    timeout 60 "$MODELD" replay --data "$DEMO_DATA" --size-scale 1000 --trace \
        image-classification "$WORK/replay-big.jsonl" >"$WORK/replay-trace.out" 2>&1
    check "modeld replay --trace: exit status" 0 "$?"
    check_match "modeld replay --trace: the first report, both answers" \
        '^0 0 \| - \(0\) download efficientnet-b0 \| - \(0\) download inception-v3 \| ' \
        "$(grep '^0 0 ' "$WORK/replay-trace.out")"
    check_match "modeld replay --trace: the policy's reason about greedy's pick" \
        'inception-v3 [0-9.]+: does not pay' "$(cat "$WORK/replay-trace.out")"
    # --regret: the oracle's utility less the policy's, report by report
    timeout 60 "$MODELD" replay --data "$DEMO_DATA" --size-scale 1000 \
        --regret policy image-classification "$WORK/replay-big.jsonl" \
        >"$WORK/replay-regret.out" 2>&1
    check "modeld replay --regret: exit status" 0 "$?"
    check_match "modeld replay --regret: the losses sum to oracle - policy" \
        '^ok$' "$(awk '/^regret: total/ {t = $3} /^policy / {p = $2}
            /^oracle / {o = $2} END {d = o - p - t; if (d < 0) d = -d;
            print (t >= 0 && d < 0.1) ? "ok" : t " vs " o - p}' \
            "$WORK/replay-regret.out")"
    timeout 60 "$MODELD" replay --data "$DEMO_DATA" --regret oracle \
        image-classification "$WORK/replay-big.jsonl" >/dev/null \
        2>"$WORK/replay-regret-bad.err"
    check "modeld replay --regret oracle (not a strategy it charges): exit 2" \
        2 "$?"
    check_match "modeld replay --regret oracle: says which it takes" \
        'wants policy, greedy or smallest' "$(cat "$WORK/replay-regret-bad.err")"
    printf '%s\n' '{"t_s": 0, "report": {"device": {"gflops": 1}}}' >"$WORK/replay-bad.jsonl"
    timeout 60 "$MODELD" replay --data "$DEMO_DATA" image-classification \
        "$WORK/replay-bad.jsonl" >/dev/null 2>"$WORK/replay-bad.err"
    check "modeld replay, a report without memory_bytes: exit 1" 1 "$?"
    check_match "modeld replay names the line and the field" \
        'replay-bad.jsonl:1: .*device.memory_bytes' "$(cat "$WORK/replay-bad.err")"
fi
use main
