#!/usr/bin/env python3
"""Synthetic scenarios for `modeld replay`: seeded, documented, not fitted
to any recorded trace set.

    tools/scengen.py --seed 1 --count 20 --out DIR [--duration-s 3600]

writes DIR/scen-<seed>-<i>.jsonl (a UE report every --step-s seconds,
without current/fetching/history, which the simulator adds) and
DIR/scen-<seed>-<i>.csv (the link's throughput, one "t_s,bps" line per
second). The same seed always gives the same files.

The model (every number below is a round, documented guess of the order
of magnitude of each radio technology, not a fit):

* Link: a Markov chain over radio states, stepped each second. Each state
  has a median throughput and a range (bit/s):
      3g        1 Mbit/s   (0.1 .. 3)     rtt 150 ms
      lte      15 Mbit/s   (2 .. 60)      rtt 50 ms
      5g      120 Mbit/s   (30 .. 300)    rtt 20 ms
      wifi     60 Mbit/s   (10 .. 200)    rtt 15 ms (fixed broadband)
      outage    0                          (tunnels, dead spots)
  Within a state the rate is the median times exp(x), x an AR(1) process
  (x' = 0.95 x + 0.25 N(0,1) per second: stationary sd 0.8, i.e. a factor
  of two), clipped to the range. A scenario draws a mobility profile that
  sets the state mix and the mean dwell time before a handover: static
  broadband, pedestrian, vehicular (short dwells, outages), commuter
  (5g/lte with tunnels), rural (3g/lte). Handovers pick the next state
  from the profile's weights; outages last 5 .. 120 s.
* Cell load: a two-state chain (normal 0.2-0.6 / congested 0.8-1.0, mean
  dwells 600 s / 120 s); congestion halves the throughput.
* Metered: a scenario is on a metered plan (cellular states only) with
  probability 0.3.
* Memory: free memory is the device's base times (1 - pressure); pressure
  is a chain (none / apps 0.2-0.5 / heavy 0.5-0.8, mean dwells 300 / 120 /
  60 s). The report's memory_floor_bytes is the lowest free memory of the
  last 60 s, memory_history_bytes the lowest of each of the last 16 clock
  minutes (newest, the current partial minute, last), as a UE keeps them.
* Compute: gflops is the base times a factor drawn from 0.3 .. 0.6 for
  each thermally throttled period (a chain, mean dwells 900 s normal /
  180 s throttled); gflops_history is the lowest gflops of each of the last
  16 clock minutes, as memory_history_bytes.
* Battery: 20 .. 100 % at the start, draining 0.3 .. 1.5 % a minute, with
  charging periods (mean dwells 1200 s unplugged / 600 s charging,
  +1 % a minute).
* Requirements: half the scenarios set max_latency_ms (30, 60, 100 or 200).
* Preference: drawn per scenario (quality, balanced, saver in equal shares;
  `modeld replay --preference` can override it).
"""
import argparse
import json
import math
import os
import random

STATES = {
    # median bit/s, min, max, rtt ms
    "3g": (1e6, 0.1e6, 3e6, 150),
    "lte": (15e6, 2e6, 60e6, 50),
    "5g": (120e6, 30e6, 300e6, 20),
    "wifi": (60e6, 10e6, 200e6, 15),
    "outage": (0.0, 0.0, 0.0, 0),
}

# mobility profiles: state weights (handover targets), mean dwell s,
# outage share of handovers
PROFILES = {
    "static": ({"wifi": 0.9, "lte": 0.1}, 1800, 0.02),
    "pedestrian": ({"lte": 0.6, "5g": 0.25, "3g": 0.15}, 300, 0.05),
    "vehicular": ({"lte": 0.5, "3g": 0.3, "5g": 0.2}, 60, 0.15),
    "commuter": ({"5g": 0.5, "lte": 0.4, "3g": 0.1}, 120, 0.2),
    "rural": ({"3g": 0.6, "lte": 0.4}, 400, 0.1),
}

MEMORY_BASES = [40e6, 80e6, 150e6, 400e6, 1.2e9]
GFLOPS_BASES = [15.0, 60.0, 200.0]
LATENCIES = [30, 60, 100, 200]
PREFERENCES = ["quality", "balanced", "saver"]


def memory_history(free_hist):
    """device.memory_history_bytes: the lowest free memory of each of the
    last (up to) 16 clock minutes, newest (the current, partial minute)
    last, as a UE keeps them: one low per minute of its clock."""
    t = len(free_hist) - 1
    first = max(0, t // 60 - 15)
    return [int(min(free_hist[m * 60:min(len(free_hist), (m + 1) * 60)]))
            for m in range(first, t // 60 + 1)]


def gflops_history(gf_hist):
    """device.gflops_history: the lowest compute of each of the last (up
    to) 16 clock minutes, newest (the current, partial minute) last."""
    t = len(gf_hist) - 1
    first = max(0, t // 60 - 15)
    return [round(min(gf_hist[m * 60:min(len(gf_hist), (m + 1) * 60)]), 3)
            for m in range(first, t // 60 + 1)]


def pick(rng, weights):
    r = rng.random() * sum(weights.values())
    for k, w in weights.items():
        r -= w
        if r <= 0:
            return k
    return k


class Chain:
    """A state that switches with a per-second hazard 1 / mean dwell."""

    def __init__(self, rng, state, dwell):
        self.rng, self.state, self.dwell = rng, state, dwell

    def step(self, choose):
        if self.rng.random() < 1.0 / self.dwell[self.state]:
            self.state = choose()
        return self.state


def scenario(seed, index, duration_s, step_s):
    rng = random.Random(f"{seed}:{index}")
    profile = rng.choice(sorted(PROFILES))
    weights, dwell, outage_share = PROFILES[profile]
    metered = rng.random() < 0.3
    mem_base = rng.choice(MEMORY_BASES)
    gflops_base = rng.choice(GFLOPS_BASES)
    latency = rng.choice(LATENCIES) if rng.random() < 0.5 else None
    preference = rng.choice(PREFERENCES)
    battery = rng.uniform(20, 100)
    drain = rng.uniform(0.3, 1.5) / 60
    charging = False

    state = pick(rng, weights)
    outage_left = 0
    x = 0.0
    congested = False
    pressure_state, pressure = "none", 0.0
    throttled, throttle = False, 1.0

    trace, reports, free_hist, gf_hist = [], [], [], []
    window = []
    for t in range(int(duration_s)):
        # link state: handovers and outages
        if outage_left > 0:
            outage_left -= 1
            if outage_left == 0:
                state = pick(rng, weights)
        elif rng.random() < 1.0 / dwell:
            if rng.random() < outage_share:
                state, outage_left = "outage", rng.randint(5, 120)
            else:
                state = pick(rng, weights)
                x *= 0.5
        x = 0.95 * x + 0.25 * rng.gauss(0, 1)
        med, lo, hi, rtt = STATES[state]
        if rng.random() < 1.0 / (120 if congested else 600):
            congested = not congested
        load = rng.uniform(0.8, 1.0) if congested else rng.uniform(0.2, 0.6)
        bps = 0.0 if state == "outage" else min(hi, max(lo, med * math.exp(x)))
        if congested:
            bps *= 0.5
        trace.append((t, bps))
        window.append(bps)

        # device
        dw = {"none": 300, "apps": 120, "heavy": 60}[pressure_state]
        if rng.random() < 1.0 / dw:
            pressure_state = rng.choice(["none", "apps", "heavy"])
            pressure = {"none": 0.0, "apps": rng.uniform(0.2, 0.5),
                        "heavy": rng.uniform(0.5, 0.8)}[pressure_state]
        free = mem_base * (1 - pressure)
        free_hist.append(free)
        if rng.random() < 1.0 / (180 if throttled else 900):
            throttled = not throttled
            throttle = rng.uniform(0.3, 0.6)
        if rng.random() < 1.0 / (600 if charging else 1200):
            charging = not charging
        battery = min(100.0, battery + 1 / 60) if charging else max(
            1.0, battery - drain)

        gf_hist.append(gflops_base * (throttle if throttled else 1.0))
        if t % step_s == 0:
            measured = sum(window) / len(window) if window else bps
            window = []
            measured *= math.exp(rng.gauss(0, 0.1))
            gf = gflops_base * (throttle if throttled else 1.0)
            report = {
                "ue": f"sim-{seed}-{index}",
                "device": {
                    "memory_bytes": int(free),
                    "memory_floor_bytes": int(min(free_hist[-60:])),
                    "memory_history_bytes": memory_history(free_hist),
                    "gflops": round(gf, 3),
                    "gflops_history": gflops_history(gf_hist),
                    "battery_percent": round(battery, 1),
                    "charging": charging,
                },
                "network": {
                    "downlink_bps": round(measured),
                    "rtt_ms": rtt if state != "outage" else 1000,
                    "metered": metered and state != "wifi",
                    "load": round(load, 3),
                },
                "preference": preference,
            }
            if latency:
                report["requirements"] = {"max_latency_ms": latency}
            reports.append({"t_s": t, "report": report})
    meta = {"profile": profile, "metered": metered, "memory": mem_base,
            "gflops": gflops_base, "max_latency_ms": latency,
            "preference": preference}
    return meta, reports, trace, duration_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--duration-s", type=int, default=3600)
    ap.add_argument("--step-s", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.count):
        meta, reports, trace, end = scenario(a.seed, i, a.duration_s,
                                             a.step_s)
        base = os.path.join(a.out, f"scen-{a.seed}-{i}")
        with open(base + ".jsonl", "w") as f:
            f.write("# " + json.dumps(meta, sort_keys=True) + "\n")
            for r in reports:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
            f.write(json.dumps({"end_s": end}) + "\n")
        with open(base + ".csv", "w") as f:
            f.write("t_s,bps\n")
            for t, b in trace:
                f.write(f"{t},{b:.0f}\n")
        print(base)


if __name__ == "__main__":
    main()
