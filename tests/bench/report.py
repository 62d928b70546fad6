#!/usr/bin/env python3
"""Turns the raw measurements of tests/bench/run.sh into the table.

    report.py RAW_TSV RESULTS_JSON ELAPSED_S

RAW_TSV lines (tab-separated):
    ROW  key group label unit better(higher|lower) reference
    VAL  key side(modeld|ref) value      one round's figure
    NOTE key text                        shown under the table
    INFO key text                        only in the JSON
Each row's figure is the median of its rounds. Its ratio says how modeld
compares with the reference, oriented so that above 1 is better for modeld:
modeld/reference for figures where higher is better (throughput),
reference/modeld where lower is better (latency, time, size, memory).
Rows under 0.5x are flagged. Standard library only.
"""
import json
import math
import os
import statistics
import sys

GROUPS = ["select", "scale", "admin", "download", "upload", "delta",
          "compress", "decisions", "tensor"]
FLAG = 0.5


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "bytes":
        if value >= 1048576:
            return "%.2f MiB" % (value / 1048576)
        if value >= 1024:
            return "%.1f KiB" % (value / 1024)
        return "%d B" % value
    if unit == "s":
        if value < 1:
            return "%.1f ms" % (value * 1000)
        return "%.2f s" % value
    if unit == "ms":
        return "%.2f ms" % value
    if unit == "req/s":
        return "%.0f req/s" % value
    if unit == "MiB/s":
        return "%.0f MiB/s" % value
    if unit == "MiB":
        return "%.1f MiB" % value
    if unit == "KiB":
        return "%.0f KiB" % value
    return "%g %s" % (value, unit)


def main():
    raw, out, elapsed = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rows, order, info = {}, [], {}
    with open(raw) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            kind = parts[0]
            if kind == "ROW" and len(parts) == 7:
                key = parts[1]
                if key not in rows:
                    order.append(key)
                    rows[key] = {"key": key, "group": parts[2],
                                 "label": parts[3], "unit": parts[4],
                                 "better": parts[5],
                                 "reference": parts[6] or None,
                                 "modeld_rounds": [], "ref_rounds": [],
                                 "notes": []}
            elif kind == "VAL" and len(parts) == 4 and parts[1] in rows:
                try:
                    v = float(parts[3])
                except ValueError:
                    rows[parts[1]]["notes"].append(
                        "%s: bad value %r" % (parts[2], parts[3]))
                    continue
                side = "modeld_rounds" if parts[2] == "modeld" else \
                    "ref_rounds"
                rows[parts[1]][side].append(v)
            elif kind == "NOTE" and len(parts) == 3 and parts[1] in rows:
                rows[parts[1]]["notes"].append(parts[2])
            elif kind == "INFO" and len(parts) == 3:
                info[parts[1]] = parts[2]

    order.sort(key=lambda k: GROUPS.index(rows[k]["group"])
               if rows[k]["group"] in GROUPS else len(GROUPS))
    flagged, ratios = [], []
    for key in order:
        r = rows[key]
        m = statistics.median(r["modeld_rounds"]) if r["modeld_rounds"] \
            else None
        ref = statistics.median(r["ref_rounds"]) if r["ref_rounds"] \
            else None
        ratio = None
        if m is not None and ref is not None and m > 0 and ref > 0:
            ratio = m / ref if r["better"] == "higher" else ref / m
        r.update(modeld=m, ref=ref, ratio=ratio,
                 below_half=ratio is not None and ratio < FLAG)
        if ratio is not None:
            ratios.append(ratio)
        if r["below_half"]:
            flagged.append(key)

    w_label = max([len(rows[k]["label"]) for k in order] + [10])
    w_ref = max([len(rows[k]["reference"] or "") for k in order] + [9])
    head = "%-*s %14s %14s %7s  %s" % (w_label, "row", "modeld",
                                      "reference", "ratio", "reference is")
    print()
    print(head)
    print("-" * len(head))
    group = None
    for key in order:
        r = rows[key]
        if group is not None and r["group"] != group:
            print()
        group = r["group"]
        ratio = "-" if r["ratio"] is None else "%.2fx" % r["ratio"]
        line = "%-*s %14s %14s %7s  %-*s" % (
            w_label, r["label"], fmt(r["modeld"], r["unit"]),
            fmt(r["ref"], r["unit"]), ratio, w_ref, r["reference"] or "")
        if r["below_half"]:
            line += "  <-- below 0.5x"
        print(line.rstrip())
    notes = [(k, n) for k in order for n in rows[k]["notes"]]
    if notes:
        print()
        for k, n in notes:
            print("note: %s: %s" % (rows[k]["label"], n))
    print()
    print("ratio: above 1 is better for modeld (modeld/reference for "
          "throughput, reference/modeld for latency, time, size, memory); "
          "each figure is the median of its rounds.")
    gmean = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) \
        if ratios else None
    summary = {"rows": len(order), "rows_with_ratio": len(ratios),
               "below_half": [rows[k]["label"] + " (vs " +
                              (rows[k]["reference"] or "") + ")"
                              for k in flagged],
               "geometric_mean_ratio": gmean, "elapsed_s": round(elapsed, 1)}
    with open(out, "w") as f:
        json.dump({"summary": summary, "info": info,
                   "rows": [rows[k] for k in order]}, f, indent=1)
        f.write("\n")
    print("bench: %d rows, %d below 0.5x, geometric mean ratio %s, "
          "%.0f s; results in %s" % (
              len(order), len(flagged),
              "-" if gmean is None else "%.2fx" % gmean, elapsed,
              os.path.relpath(out)))


if __name__ == "__main__":
    main()
