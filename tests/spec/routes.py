#!/usr/bin/env python3
"""The route table of server/router.c and proto/openapi.yaml agree.

  routes.py ROUTER_C SPEC

Every route of the table is a path of the spec with the same methods (HEAD
wherever GET is, as the server serves it), every path of the spec is a
route; a route with AUTH_PUBLIC is `security: []`, any other a bearer
operation. Parameters are compared by position ({digest}/{digest} is the
spec's {from}/{to}). Catches an endpoint added without its spec even
where no e2e case reaches it. Prints "pass\tNAME" / "fail\tNAME: why".
"""
import re
import sys

from speclib import METHODS, is_public, load_spec, report

ENTRY = re.compile(r'\{"(/[^"]*)",\s*\{((?:\s*\{"[A-Z]+",[^}]*\},?)+)\s*\}\s*\}')
METHOD = re.compile(r'\{"([A-Z]+)",\s*\w+,\s*(\w+),\s*\w+\}')


def shape(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        text = f.read()
    table = text[text.index("router_routes[] = {"):]
    table = table[:table.index("\n};")]
    routes = {}
    for m in ENTRY.finditer(table):
        methods = {mm.group(1): mm.group(2) for mm in METHOD.finditer(m.group(2))}
        if "GET" in methods and "HEAD" not in methods:
            methods["HEAD"] = methods["GET"]
        routes[shape(m.group(1))] = (m.group(1), methods)
    spec = load_spec(argv[2])
    paths = {}
    for p, item in (spec.get("paths") or {}).items():
        paths[shape(p)] = (p, item)
    problems = []
    if not routes:
        problems.append("no route found in %s" % argv[1])
    for key, (rpath, methods) in sorted(routes.items()):
        if key not in paths:
            problems.append("route %s (%s) is not in the spec" %
                            (rpath, ", ".join(sorted(methods))))
            continue
        spath, item = paths[key]
        for m, auth in sorted(methods.items()):
            op = item.get(m.lower())
            if op is None:
                problems.append("route %s %s is not in the spec (path %s)" %
                                (m, rpath, spath))
                continue
            if is_public(spec, op) != (auth == "AUTH_PUBLIC"):
                problems.append("%s %s: the route is %s, the spec's security "
                                "is %s" % (m, spath, auth, op.get("security")))
        for m in item:
            if m.upper() in METHODS and m.upper() not in methods:
                problems.append("the spec's %s %s is not in the route table" %
                                (m.upper(), spath))
    for key, (spath, _) in sorted(paths.items()):
        if key not in routes:
            problems.append("the spec's path %s is not in the route table" %
                            spath)
    report("routes", problems,
           "server/router.c's %d routes and the spec's paths, methods and "
           "auth agree" % len(routes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
