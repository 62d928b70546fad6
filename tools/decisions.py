#!/usr/bin/env python3
"""The "decisions" evaluation: synthetic scenarios (tools/scengen.py) replayed
through `modeld replay` for every preference and both demo families, summed.

    tools/decisions.py --modeld build/modeld --data DEMO_DIR --size-scale 1000 \
        --seed 1 --count 24 [--work DIR] [--json]

For each preference and strategy (policy, greedy best-now, smallest
runnable) it prints utility / oracle, switches / oracle and MB / oracle,
each a ratio of sums over the scenario set (both families), and whether
the issue's targets hold: policy utility >= 0.98 of the oracle, MB and
switches <= 1.2x the oracle's, and policy utility above both baselines in
every preference.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = ["image-classification", "object-detection"]
PREFS = ["quality", "balanced", "saver"]
STRATEGIES = ["policy", "greedy", "smallest", "oracle"]


def ratio(a, b):
    if b == 0:
        return 1.0 if a == 0 else float("inf")
    return a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modeld", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--size-scale", default="1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--duration-s", type=int, default=3600)
    ap.add_argument("--config")
    ap.add_argument("--work")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tsv", help="append tests/bench/run.sh ROW/VAL lines")
    a = ap.parse_args()

    work = a.work or tempfile.mkdtemp(prefix="modeld-decisions.")
    subprocess.run([sys.executable, os.path.join(HERE, "scengen.py"),
                    "--seed", str(a.seed), "--count", str(a.count),
                    "--duration-s", str(a.duration_s), "--out", work],
                   check=True, stdout=subprocess.DEVNULL)
    sums = {p: {s: {"utility": 0.0, "switches": 0, "mb": 0.0}
                for s in STRATEGIES} for p in PREFS}
    runs = 0
    for i in range(a.count):
        base = os.path.join(work, f"scen-{a.seed}-{i}")
        for fam in FAMILIES:
            for p in PREFS:
                cmd = [a.modeld, "replay", "--data", a.data, "--json",
                       "--size-scale", a.size_scale, "--preference", p]
                if a.config:
                    cmd += ["--config", a.config]
                cmd += [fam, base + ".jsonl", base + ".csv"]
                out = subprocess.run(cmd, check=True, capture_output=True,
                                     text=True).stdout
                r = json.loads(out)
                runs += 1
                for s in STRATEGIES:
                    for key in ("utility", "switches", "mb"):
                        sums[p][s][key] += r[s][key]

    rows, ok = {}, True
    for p in PREFS:
        o = sums[p]["oracle"]
        rows[p] = {}
        for s in ("policy", "greedy", "smallest"):
            x = sums[p][s]
            rows[p][s] = {
                "utility": ratio(x["utility"], o["utility"]),
                "switches": ratio(x["switches"], o["switches"]),
                "mb": ratio(x["mb"], o["mb"]),
            }
        pol = rows[p]["policy"]
        pref_ok = (pol["utility"] >= 0.98 and pol["mb"] <= 1.2 and
                   pol["switches"] <= 1.2 and
                   pol["utility"] > rows[p]["greedy"]["utility"] and
                   pol["utility"] > rows[p]["smallest"]["utility"])
        rows[p]["targets_met"] = pref_ok
        ok = ok and pref_ok
    if a.tsv:
        with open(a.tsv, "a") as f:
            for p in PREFS:
                o = sums[p]["oracle"]
                for s, what, key, unit, better in (
                        ("policy", "utility", "utility", "acc-s", "higher"),
                        ("policy", "switches", "switches", "switches",
                         "lower"),
                        ("policy", "MB moved", "mb", "MB", "lower"),
                        ("greedy", "greedy best-now, utility", "utility",
                         "acc-s", "higher"),
                        ("smallest", "smallest runnable, utility", "utility",
                         "acc-s", "higher")):
                    k = f"dec_{p}_{s}_{key}"
                    f.write(f"ROW\t{k}\tdecisions\tdecisions, {p}: {what}"
                            f"\t{unit}\t{better}\toracle\n")
                    f.write(f"VAL\t{k}\tmodeld\t{sums[p][s][key]}\n")
                    f.write(f"VAL\t{k}\tref\t{o[key]}\n")
    if a.json:
        print(json.dumps({"runs": runs, "seed": a.seed, "count": a.count,
                          "by_preference": rows, "targets_met": ok}))
    else:
        print(f"decisions: {a.count} scenarios x {len(FAMILIES)} families, "
              f"seed {a.seed} ({runs} replays)")
        print(f"{'preference':<10} {'strategy':<9} {'utility/oracle':>15} "
              f"{'switches/oracle':>16} {'MB/oracle':>10}")
        for p in PREFS:
            for s in ("policy", "greedy", "smallest"):
                x = rows[p][s]
                print(f"{p:<10} {s:<9} {x['utility']:>15.4f} "
                      f"{x['switches']:>16.3f} {x['mb']:>10.3f}")
            print(f"{p:<10} targets {'met' if rows[p]['targets_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
