#!/usr/bin/env python3
"""Where the policy and greedy best-now lose to the oracle, by cause: the
synthetic scenarios (tools/scengen.py) replayed with `modeld replay --regret`
for both demo families and one preference, the per-report losses summed by
what the UE was doing and what the policy's answer said.

    tools/losses.py --modeld build/modeld --data DEMO_DIR --size-scale 100 \
        --preference balanced --seed 1000 [--seed 1001 ...] [--count 24] \
        [--work DIR] [--reasons]

`--regret S` charges the oracle's utility less S's to the reports whose
answers lost it (policy/replay.h, struct replay_regret): at each report the
best value to go from the UE's state (what it holds, what is in flight) is
the oracle's; an answer loses what it gives up against that. The categories:

  install            the UE holds nothing (first download, in flight or not)
  kept, oracle moves up / down   the UE kept what it holds; the oracle would
                     start a transfer to a model worth more now (up) or not
                     (down: it knows what comes)
  moved up / down, oracle keeps  the policy started a transfer the oracle
                     would not make
  moved elsewhere    both move, to different models
  in flight          a transfer under way: continued where the oracle
                     would abort it, or dropped
and, with --reasons (always for kept/moved), the policy's first reason.
Printed per seed, for the policy and for greedy, and greedy less policy
(what the policy wins against greedy in that category).
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = ["image-classification", "object-detection"]
ROW = re.compile(r"^(\d+) (\d+) \| (\S+) \[(\S+)\] \| \S+ \S+.*?, (\S+) \| "
                 r"(\S+) \(([-\d.e+]+)\) \| ([-\d.e+]+) \| ([-\d.e+]+) \| "
                 r"u/s (\S+) (\S+) (\S+)$")
REASONS = [("GFLOP/s now", "slowdown"), ("riding this out", "ride-out"),
           ("charging", "charging"), ("does not pay", "does not pay"),
           ("in flight", "in flight"), ("current is the chosen", "chosen"),
           ("switch pays", "switch pays"), ("small now", "small now"),
           ("nothing runs", "nothing runs"), ("no throughput", "outage"),
           ("dip", "memory dip")]


def reason_kind(text):
    for key, name in REASONS:
        if key in text:
            return name
    return text[:24]


def category(r, reasons):
    why = f" ({r['why']})"
    fine = why if reasons else ""
    if r["held"] == "-":
        if r["to"] == r["best"]:
            return "install: same transfer (timing)" + fine
        if r["best"] == "-":
            return "install: oracle waits or aborts" + fine
        if r["to"] == "-":
            return "install: waits, oracle fetches" + fine
        return ("install: oracle's pick smaller" if r["ub"] < r["ut"]
                else "install: oracle's pick larger") + fine
    if r["fetch"] != "-":
        if r["to"] == r["fetch"]:
            return ("in flight: continued, oracle "
                    + ("aborts" if r["best"] == "-" else "switches") + fine)
        return "in flight: dropped or switched" + fine
    if r["to"] == "-":
        return ("kept, oracle moves up" if r["ub"] > r["uh"]
                else "kept, oracle moves down") + why
    if r["best"] == "-":
        return ("moved up, oracle keeps" if r["ut"] > r["uh"]
                else "moved down, oracle keeps") + why
    if r["to"] != r["best"]:
        return "moved elsewhere" + fine
    return "same answer" + fine


def replay(args):
    a, base, fam, strategy = args
    cmd = [a.modeld, "replay", "--regret", strategy, "--data", a.data,
           "--size-scale", a.size_scale, "--preference", a.preference]
    if a.config:
        cmd += ["--config", a.config]
    out = subprocess.run(cmd + [fam, base + ".jsonl", base + ".csv"],
                         capture_output=True, text=True,
                         check=True).stdout.split("\n")
    rows = []
    for n, line in enumerate(out):
        m = ROW.match(line)
        if not m:
            continue
        k, t, held, fetch, to, best, _, rg, _, uh, ut, ub = m.groups()
        reason = out[n + 1].strip()[len("reason: "):] if n + 1 < len(out) \
            else ""
        rows.append({"held": held, "fetch": fetch, "to": to, "best": best,
                     "rg": float(rg), "uh": float(uh), "ut": float(ut),
                     "ub": float(ub), "why": reason_kind(reason),
                     "where": f"{os.path.basename(base)}/{fam[:3]}@{k}"})
    return strategy, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modeld", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--size-scale", default="1")
    ap.add_argument("--preference", default="balanced")
    ap.add_argument("--seed", type=int, action="append", required=True)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--duration-s", type=int, default=3600)
    ap.add_argument("--config")
    ap.add_argument("--work")
    ap.add_argument("--reasons", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()

    work = a.work or tempfile.mkdtemp(prefix="modeld-losses.")
    jobs = []
    for seed in a.seed:
        d = os.path.join(work, f"s{seed}")
        if not os.path.exists(os.path.join(d, f"scen-{seed}-{a.count - 1}.csv")):
            subprocess.run([sys.executable, os.path.join(HERE, "scengen.py"),
                            "--seed", str(seed), "--count", str(a.count),
                            "--duration-s", str(a.duration_s), "--out", d],
                           check=True, stdout=subprocess.DEVNULL)
        jobs += [(a, os.path.join(d, f"scen-{seed}-{i}"), fam, st)
                 for i in range(a.count) for fam in FAMILIES
                 for st in ("policy", "greedy")]
    agg = {st: collections.defaultdict(lambda: [0.0, []])
           for st in ("policy", "greedy")}
    total = {"policy": 0.0, "greedy": 0.0}
    with ThreadPoolExecutor(a.jobs) as ex:
        for st, rows in ex.map(replay, jobs):
            for r in rows:
                c = agg[st][category(r, a.reasons)]
                c[0] += r["rg"]
                c[1].append((r["rg"], r["where"]))
                total[st] += r["rg"]
    n = len(a.seed)
    print(f"{a.preference}, {n} seed(s) of {a.count}: loss to the oracle a "
          f"seed, policy {total['policy'] / n:.1f}, greedy "
          f"{total['greedy'] / n:.1f} (policy - greedy "
          f"{(total['greedy'] - total['policy']) / n:+.1f})")
    print(f"{'policy':>9} {'share':>6} {'greedy':>9} {'g - p':>8}  category"
          "  [the policy's largest]")
    for c in sorted(set(agg["policy"]) | set(agg["greedy"]),
                    key=lambda c: -agg["policy"][c][0]):
        p, g = agg["policy"][c], agg["greedy"][c]
        worst = ", ".join(f"{d:.1f} {w}" for d, w in
                          sorted(p[1], reverse=True)[:2])
        print(f"{p[0] / n:9.1f} {100 * p[0] / max(total['policy'], 1e-9):5.1f}%"
              f" {g[0] / n:9.1f} {(g[0] - p[0]) / n:+8.1f}  {c}  [{worst}]")


if __name__ == "__main__":
    main()
