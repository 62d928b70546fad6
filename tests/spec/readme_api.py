#!/usr/bin/env python3
"""README's API table and proto/openapi.yaml say the same thing.

  readme_api.py README SPEC

The table under README's "## API" (rows "| `METHOD[, METHOD] /path` |
auth | answer |") and the spec's operations must match: every operation of
the spec is a row (HEAD may stay implicit: HEAD is served wherever GET
is), every row is an operation; "-" in the auth column is `security: []`,
anything else a bearer operation; and every HTTP status the answer column
names (a three-digit number starting 1-5) is declared for each method of
the row. Prints "pass\tNAME" / "fail\tNAME: why" lines.
"""
import re
import sys

from speclib import METHODS, is_public, load_spec, operations, report


def readme_rows(text):
    m = re.search(r"^## API\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        return None
    rows = []
    for line in m.group(1).splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        first = cells[0].replace("`", " ")
        methods = [w.strip(",") for w in first.split() if w.strip(",") in METHODS]
        paths = [w for w in first.split() if w.startswith("/")]
        if not methods or not paths:
            continue
        path = paths[0].split("?", 1)[0]
        path = re.sub(r"sha256:\{hex\}", "{digest}", path)
        path = re.sub(r"sha256:\{(\w+)\}", r"{\1}", path)
        statuses = set(re.findall(r"(?<![\w.=:-])([1-5][0-9][0-9])(?![\w.-])",
                                  cells[2]))
        rows.append((methods, path, cells[1], statuses, line))
    return rows


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        rows = readme_rows(f.read())
    spec = load_spec(argv[2])
    if not rows:
        report("readme", ["no API table under '## API' in README.md"], "")
        return 0
    ops = operations(spec)
    problems, seen = [], set()
    for methods, path, auth, statuses, line in rows:
        for m in methods:
            op = ops.get((m, path))
            if op is None:
                problems.append("README lists %s %s, the spec has no such "
                                "operation" % (m, path))
                continue
            seen.add((m, path))
            if is_public(spec, op) != (auth == "-"):
                problems.append("%s %s: README's auth is %r, the spec's "
                                "security is %s" % (m, path, auth,
                                                    op.get("security")))
            declared = {str(k) for k in (op.get("responses") or {})}
            for st in sorted(statuses):
                if st not in declared and "%sXX" % st[0] not in declared:
                    problems.append("%s %s: README names status %s, the spec "
                                    "does not declare it" % (m, path, st))
    for (m, path) in sorted(ops):
        if (m, path) in seen:
            continue
        if m == "HEAD" and ("GET", path) in ops:
            continue
        problems.append("the spec's %s %s is not in README's API table" %
                        (m, path))
    report("readme", problems,
           "the API table of README.md and proto/openapi.yaml list the same "
           "%d operations, auth and statuses" % len(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
