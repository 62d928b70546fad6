#!/usr/bin/env python3
"""Probes the server's input bounds against proto/openapi.yaml.

  bounds_probe.py SPEC PORT TOKEN FAMILY BLOB_DIGEST

One source of truth for bounds: the spec's request schemas (Report,
VariantInput, FamilyInput, Event, RolloutPatch) and the bounds table of proto/json_in.c must
accept and refuse the same values. For every member of those schemas this
makes bodies at and just past each bound the schema states (minimum,
maximum, exclusive ones, integer-ness, pattern, length, item and member
counts, enum, type, null), asks the JSON Schema validator for the spec's
verdict and the running daemon for its own (2xx accepted, 400 refused with
`field` naming the member), and reports each disagreement. A bound the
server has and the spec lacks shows as a value the spec accepts and the
server refuses; a bound only in the spec, the other way round.

FAMILY must exist and hold a variant "base" at version 1 (select,
events and the rollout PATCH need it); BLOB is an uploaded blob for
variant bodies. A 404 counts as accepted (the value passed the parser and
named no version). Prints "pass\tNAME" / "fail\tNAME"
lines for run.sh. Loopback only; one keep-alive connection; bounded.
"""
import copy
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spec_check import Spec  # noqa: E402

# Strings a pattern must take or refuse, by pattern: the spec's patterns
# are few and fixed; a new one must be added here (the probe says so).
TOKEN = "^[A-Za-z0-9._:+-]{1,32}$"
SAMPLES = {
    TOKEN:
        ["a", "A-z.0_9:+", "x" * 32, "x" * 33, "", "a b", "a/b", "\u00e9"],
    "^[ -~]{1,128}$": ["u", " ~", "x" * 128, "x" * 129, "", "a\tb", "\u00e9"],
    "^[A-Za-z0-9_-]{16,64}$":
        ["n" * 16, "a-Z_9" * 4, "n" * 64, "n" * 15, "n" * 65, "n" * 15 + "!"],
    "^[A-Za-z0-9_-]{1,64}$":
        ["r", "a-Z_9", "r" * 64, "r" * 65, "", "r!", "r r"],
    "^[a-z0-9][a-z0-9._-]{0,63}$":
        ["base", "a", "a" * 64, "a" * 65, "", "-a", "A", "a/b", "a b"],
    "^[!-~]+$": ["zstd", "modeld-tensor/1", "x" * 32, "x" * 33, "", "a b",
                 "\u00e9"],
    "^sha256:[0-9a-f]{64}$":
        [None, "sha256:" + "0" * 63, "sha256:" + "A" * 64, "md5:00"],
}


def first_type(schema):
    t = schema.get("type")
    if isinstance(t, list):
        t = [x for x in t if x != "null"]
        return t[0] if t else None
    return t


class Probe:
    def __init__(self, spec, blob):
        self.spec, self.blob = spec, blob
        self.unknown_patterns = set()

    def resolve(self, schema):
        """Follows $ref and folds oneOf/anyOf (minus null) and allOf into
        one dict of constraints (enough for the request schemas)."""
        while "$ref" in schema:
            schema, _ = self.spec.deref(schema, "")
        out = dict(schema)
        for key in ("oneOf", "anyOf"):
            if key in out:
                branches = [self.resolve(b) for b in out.pop(key)]
                branches = [b for b in branches if b.get("type") != "null"]
                if branches:
                    merged = dict(branches[0])
                    merged.update({k: v for k, v in out.items()})
                    out = merged
        if "allOf" in out:
            parts = [self.resolve(b) for b in out.pop("allOf")]
            for p in parts:
                for k, v in p.items():
                    out.setdefault(k, v)
        return out

    def sample(self, schema, i=0):
        """A valid value (the i-th of a rising series for numbers)."""
        s = self.resolve(schema)
        t = first_type(s)
        if "enum" in s:
            return [e for e in s["enum"] if e is not None][0]
        if "const" in s:
            return s["const"]
        if t in ("number", "integer"):
            lo = s.get("minimum", s.get("exclusiveMinimum", 0))
            hi = s.get("maximum")
            v = lo + 1 + i if hi is None else lo + (hi - lo) * (i + 1) / 64.0
            return v if t == "number" else int(v) + (1 if int(v) == lo else 0)
        if t == "string":
            pat = s.get("pattern")
            if pat == "^sha256:[0-9a-f]{64}$":
                return self.blob
            if pat in SAMPLES:
                v = SAMPLES[pat][0]
                return v + str(i) if i and pat == TOKEN else v
            return "s%d" % i
        if t == "boolean":
            return True
        if t == "array":
            return []
        if t == "object":
            return {k: self.sample(s["properties"][k], i)
                    for k in s.get("required", [])}
        return None

    def values(self, schema, path):
        """(value, note) candidates for one member."""
        s = self.resolve(schema)
        t = first_type(s)
        types = s.get("type") if isinstance(s.get("type"), list) else [t]
        out = [(None, "null")]
        if "enum" in s:
            out += [(e, "enum") for e in s["enum"] if e is not None]
            out.append(("bogus-value", "not in enum"))
            return out
        if t in ("number", "integer"):
            out.append(("7", "a string"))
            lo_in, lo_ex = s.get("minimum"), s.get("exclusiveMinimum")
            hi = s.get("maximum")
            for lo in (lo_in, lo_ex):
                if lo is None:
                    continue
                out += [(lo, "the lower bound"), (lo + 1, "above the lower bound"),
                        (lo - 1, "below the lower bound")]
                if t == "number":
                    out += [(lo + 1e-9, "just above the lower bound"),
                            (lo - 1e-9, "just below the lower bound")]
            if hi is not None:
                # Past the bound by more than a double's spacing there.
                step = 2 if hi == 2 ** 53 else max(1, hi * 1e-6)
                out += [(hi, "the upper bound"), (hi - 1, "below the upper bound"),
                        (hi + step, "past the upper bound")]
            else:
                out.append((1e300, "a huge number"))
            if t == "integer":
                base = (lo_in if lo_in is not None else 0) + 1
                out += [(base + 0.5, "a fraction"), (float(base), "x.0")]
            return out
        if t == "string":
            out.append((7, "a number"))
            pat = s.get("pattern")
            if pat is not None:
                if pat not in SAMPLES:
                    self.unknown_patterns.add(pat)
                    return out
                out += [(self.blob if v is None else v, "pattern")
                        for v in SAMPLES[pat]]
            if "maxLength" in s:
                n = s["maxLength"]
                out += [("x" * n, "max length"), ("x" * (n + 1), "past max length")]
            return out
        if t == "boolean":
            return out + [(True, "true"), (False, "false"), ("true", "a string")]
        if t == "array":
            item = s.get("items", {})
            out.append(("x", "not an array"))
            if "maxItems" in s:
                n = s["maxItems"]
                out += [([self.sample(item, i) for i in range(n)], "max items"),
                        ([self.sample(item, i) for i in range(n + 1)],
                         "past max items")]
            return out
        if t == "object":
            out.append(("x", "not an object"))
            add = s.get("additionalProperties")
            if isinstance(add, dict) and "maxProperties" in s:
                n = s["maxProperties"]
                v = self.sample(add)
                out += [({"k%d" % i: v for i in range(n)}, "max members"),
                        ({"k%d" % i: v for i in range(n + 1)},
                         "past max members")]
            names = s.get("propertyNames")
            if isinstance(add, dict) and names:
                v = self.sample(add)
                out += [({"npu-a": v}, "a valid key"), ({"bad key": v}, "an invalid key"),
                        ({"k" * 33: v}, "a key too long")]
            return out
        return out

    def members(self, schema, path):
        """(path, member schema) for every member under schema, recursing
        into objects, array items and map values."""
        s = self.resolve(schema)
        t = first_type(s)
        if t == "object":
            for name, sub in (s.get("properties") or {}).items():
                yield path + [name], sub
                yield from self.members(sub, path + [name])
            add = s.get("additionalProperties")
            if isinstance(add, dict):
                yield path + ["npu-a"], add
                yield from self.members(add, path + ["npu-a"])
        elif t == "array" and isinstance(s.get("items"), dict):
            yield path + [0], s["items"]
            yield from self.members(s["items"], path + [0])


def put_path(body, path, value):
    """A copy of body with value at path (containers made on the way)."""
    body = copy.deepcopy(body)
    cur = body
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(cur, dict):
            if not isinstance(cur.get(key), (dict, list)):
                cur[key] = [] if isinstance(nxt, int) else {}
            cur = cur[key]
        else:
            while len(cur) <= key:
                cur.append([] if isinstance(nxt, int) else {})
            cur = cur[key]
    last = path[-1]
    if isinstance(cur, list):
        while len(cur) <= last:
            cur.append(None)
    cur[last] = value
    return body


def path_text(path):
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + p
    return out


def main(argv):
    spec_file, port, token, family, blob = argv[1:6]
    spec = Spec(spec_file)
    probe = Probe(spec, blob)
    jh = {"Content-Type": "application/json"}
    ah = dict(jh, Authorization="Bearer " + token)
    targets = [
        ("Report", "/components/schemas/Report", "POST",
         "/v1/families/%s/select" % family, jh,
         {"device": {"memory_bytes": 1000000, "gflops": 10}}),
        ("VariantInput", "/components/schemas/VariantInput", "PUT",
         "/v1/families/%s/variants/probe" % family, ah,
         {"blob": blob, "flops": 1e18, "accuracy": 0.5}),
        ("FamilyInput", "/components/schemas/FamilyInput", "PUT",
         "/v1/families/%s-probe" % family, ah, {}),
        ("Event", "/components/schemas/Event", "POST",
         "/v1/families/%s/events" % family, jh,
         {"ue": "probe-ue", "variant": "base", "version": 1,
          "event": "installed"}),
        ("RolloutPatch", "/components/schemas/RolloutPatch", "PATCH",
         "/v1/families/%s/variants/base/versions/1" % family, ah,
         {"paused": False}),
    ]
    sent = 0
    conn = None
    for name, ptr, method, url, headers, base in targets:
        agree, problems = 0, []
        root = {"$ref": "#" + ptr}
        seen = set()
        for path, sub in probe.members(root, []):
            for value, note in probe.values(sub, path):
                # A cross-member rule the spec states in prose only: an
                # exit's flops are below the variant's (the base body's
                # 1e18, so only the bound itself is skipped) and rise from
                # exit to exit (the samples do).
                if path[:1] == ["exits"] and path[-1:] == ["flops"] and \
                        isinstance(value, (int, float)) and \
                        not isinstance(value, bool) and value >= 1e18:
                    continue
                body = put_path(base, path, value)
                key = json.dumps(body, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                want = not spec.validate(ptr, body)
                # Events are limited per client address and minute: a new
                # loopback source address every 40 requests.
                if conn is None or sent % 40 == 0:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", int(port), timeout=30,
                        source_address=("127.0.0.%d" % (2 + sent // 40 % 250), 0))
                sent += 1
                conn.request(method, url, body=key.encode(), headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                # 404: the value passed the parser and named no version.
                got = resp.status != 400
                where = "%s %s = %s (%s)" % (name, path_text(path),
                                             json.dumps(value)[:60], note)
                if resp.status not in (200, 201, 202, 400, 404):
                    problems.append("%s: the server answers %d" %
                                    (where, resp.status))
                elif want != got:
                    field = ""
                    if not got:
                        try:
                            field = json.loads(data).get("field", "")
                        except ValueError:
                            pass
                    problems.append("%s: the spec %s it, the server %s it%s" %
                                    (where, "accepts" if want else "refuses",
                                     "accepts" if got else "refuses",
                                     " (field %s)" % field if field else ""))
                else:
                    agree += 1
        for p in problems:
            print("fail\tbounds: %s" % p)
        if not problems:
            print("pass\tbounds: %d probes of %s: proto/json_in.c and "
                  "proto/openapi.yaml agree" % (agree, name))
    for pat in sorted(probe.unknown_patterns):
        print("fail\tbounds: pattern %s has no samples in "
              "tests/e2e/bounds_probe.py SAMPLES" % pat)
    if conn is not None:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
