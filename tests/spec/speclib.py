"""What tests/spec/readme_api.py and routes.py share: reading
proto/openapi.yaml, its operations and their auth, and the verdict lines
("pass\tNAME: ..." / "fail\tNAME: ...") that tests/spec/lint.sh collects.
"""
import yaml

METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS")


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def operations(spec):
    """{(METHOD, path): operation} of every operation of the spec."""
    ops = {}
    for path, item in (spec.get("paths") or {}).items():
        for m in METHODS:
            if m.lower() in item:
                ops[(m, path)] = item[m.lower()]
    return ops


def is_public(spec, op):
    """Whether the operation needs no token (`security: []`, its own or
    the spec's default)."""
    return op.get("security", spec.get("security")) == []


def report(name, problems, passed):
    """One fail line per problem, else the pass line."""
    for p in problems:
        print("fail\t%s: %s" % (name, p))
    if not problems:
        print("pass\t%s: %s" % (name, passed))
