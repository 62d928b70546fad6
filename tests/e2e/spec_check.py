#!/usr/bin/env python3
"""Checks HTTP answers against the OpenAPI description (proto/openapi.yaml).

  spec_check.py SPEC DIR   checks every answer recorded in DIR/index.tsv
  spec_check.py --self-test SPEC
                           checks that answers the spec does not describe
                           are refused (and a described one is not)

tests/e2e/run.sh records each answer its http() helper gets (one line of
DIR/index.tsv: seq, case file, method, path, status, content type; DIR/SEQ.h
the headers, DIR/SEQ.b the body when it is JSON) and runs this once at the
end of the run. Output: one line per result, "pass\tNAME"
or "fail\tNAME: why", for run.sh to count, and "#" lines for information.

An answer is described when:
  - the path (query stripped, split on '/', each segment percent-decoded)
    matches a path template of the spec (literal segments equal, a {param}
    any non-empty segment; the template with the most literal segments
    wins). No template: it must be a 404 or 400 problem (unknown path);
  - the path item has the method. Not: 405 with an Allow header naming
    exactly the path item's methods, and a problem body;
  - the operation declares the status (exactly, as 4XX/5XX, or default);
  - the Content-Type is one the response declares (parameters ignored;
    a response without content has an empty body);
  - a JSON body (no duplicate member, no NaN) is valid against the
    schema (JSON Schema 2020-12; errors name the JSON path), and a
    problem's "status" member is the HTTP status;
  - every header the response declares `required` is present, every
    declared header present is valid against its schema, and no header
    is sent that the response does not declare, except the generic ones
    of HTTP itself (GENERIC_HEADERS).
HEAD answers are checked as their operation's, without a body.
"""
import json
import os
import re
import sys
from urllib.parse import unquote_to_bytes

import jsonschema
import yaml

# Headers any HTTP answer may carry, which a spec does not declare.
GENERIC_HEADERS = {
    "date", "content-length", "content-type", "connection",
    "transfer-encoding", "keep-alive", "server",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
           "trace")
JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")


def make_validator(spec):
    """A function (pointer, instance) -> list of (json_path, message) that
    validates instance against the schema at that JSON pointer of the
    spec. Works with jsonschema before and after 4.18 (referencing)."""
    base = "urn:modeld-openapi"
    try:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012
        registry = Registry().with_resource(
            base, Resource.from_contents(
                spec, default_specification=DRAFT202012))

        def build(schema):
            return jsonschema.Draft202012Validator(schema, registry=registry)
    except ImportError:
        resolver = jsonschema.RefResolver(base, spec, store={base: spec})

        def build(schema):
            return jsonschema.Draft202012Validator(schema, resolver=resolver)

    cache = {}

    def validate(pointer, instance):
        v = cache.get(pointer)
        if v is None:
            v = cache[pointer] = build({"$ref": base + "#" + pointer})
        errs = sorted(v.iter_errors(instance),
                      key=lambda e: (len(list(e.absolute_path)), e.message))
        return [(e.json_path, short(e.message)) for e in errs]

    return validate


def short(s, n=200):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[:n] + "..."


def esc(token):
    return token.replace("~", "~0").replace("/", "~1")


class Spec:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.validate = make_validator(self.doc)
        self.templates = []
        for tpl, item in (self.doc.get("paths") or {}).items():
            segs = tpl.split("/")[1:]
            literals = sum(1 for s in segs if not s.startswith("{"))
            self.templates.append((tpl, segs, literals, item))
        self.templates.sort(key=lambda t: -t[2])
        self.seen_ops = set()

    def deref(self, obj, pointer):
        """Follows an OpenAPI $ref (local only); returns (object, pointer)."""
        hops = 0
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            if not ref.startswith("#/") or hops > 16:
                raise ValueError("unsupported $ref %r" % ref)
            pointer = ref[1:]
            obj = self.doc
            for tok in pointer.split("/")[1:]:
                obj = obj[tok.replace("~1", "/").replace("~0", "~")]
            hops += 1
        return obj, pointer

    def match(self, path):
        path = path.split("?", 1)[0].split("#", 1)[0]
        segs = [unquote_to_bytes(s).decode("utf-8", "replace")
                for s in path.split("/")[1:]]
        for tpl, tsegs, _, item in self.templates:
            if len(tsegs) != len(segs):
                continue
            if all((t.startswith("{") and s != "") or t == s
                   for t, s in zip(tsegs, segs)):
                return tpl, item
        return None, None

    def operations(self):
        for tpl, item in (self.doc.get("paths") or {}).items():
            for m in METHODS:
                if m in item:
                    yield "%s %s" % (m.upper(), tpl)


def parse_headers(text):
    """The last header block of a curl -D file: (status line, {name: [v]})."""
    blocks, cur = [], None
    for line in text.replace("\r", "").split("\n"):
        if line.startswith("HTTP/"):
            cur = [line, {}]
            blocks.append(cur)
        elif cur is not None and ":" in line:
            name, value = line.split(":", 1)
            cur[1].setdefault(name.strip().lower(), []).append(value.strip())
    # An interim 1xx answer (100 Continue) comes before the final one.
    return blocks[-1] if blocks else ("", {})


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate member %r" % k)
        d[k] = v
    return d


def bad_constant(name):
    raise ValueError("%s is not JSON" % name)


def header_value(schema, value):
    t = schema.get("type") if isinstance(schema, dict) else None
    try:
        if t == "integer" and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        if t == "number":
            return float(value)
    except ValueError:
        pass
    return value


def media_type(ctype):
    return ctype.split(";", 1)[0].strip().lower()


def type_declared(mt, content):
    for key in content:
        k = key.lower()
        if k == mt or k == "*/*" or (k.endswith("/*") and
                                     mt.startswith(k[:-1])):
            return key
    return None


def check_answer(spec, method, path, status, headers, body):
    """The problems of one answer, as a list of strings (empty: described).
    body: bytes, or None when it was not recorded (not JSON)."""
    method = method.upper()
    tpl, item = spec.match(path)
    problems = []
    if tpl is None:
        if status not in (400, 404):
            return ["no path of the spec matches %s; such an answer must be "
                    "a 404 (or 400) problem, got %d" % (path, status)]
        return check_problem_body(spec, status, headers, body)
    op_name = "%s %s" % (method, tpl)
    op = item.get(method.lower())
    if op is None:
        allowed = sorted(m.upper() for m in METHODS if m in item)
        if status != 405:
            return ["%s is not in the spec (%s has %s): the answer must be "
                    "405, got %d" % (op_name, tpl, ", ".join(allowed),
                                     status)]
        allow = ",".join(headers.get("allow", []))
        got = sorted(a.strip().upper() for a in allow.split(",") if a.strip())
        if got != allowed:
            problems.append("%s -> 405: Allow is %r, the spec's methods for "
                            "%s are %s" % (op_name, allow, tpl,
                                           ", ".join(allowed)))
        return problems + check_problem_body(spec, status, headers, body)
    spec.seen_ops.add(op_name)
    responses = op.get("responses") or {}
    key = None
    for k in (str(status), "%dXX" % (status // 100), "%dxx" % (status // 100),
              "default"):
        if k in responses or (k.isdigit() and int(k) in responses):
            key = k if k in responses else int(k)
            break
    if key is None:
        return ["%s -> %d: status not declared for this operation (declared: "
                "%s)" % (op_name, status,
                         ", ".join(str(k) for k in responses))]
    op_ptr = "/paths/%s/%s" % (esc(tpl), method.lower())
    resp, rptr = spec.deref(responses[key],
                            "%s/responses/%s" % (op_ptr, esc(str(key))))
    where = "%s -> %d" % (op_name, status)

    # Headers.
    declared = {}
    for name, h in (resp.get("headers") or {}).items():
        hobj, hptr = spec.deref(h, "%s/headers/%s" % (rptr, esc(name)))
        declared[name.lower()] = (name, hobj, hptr)
    for lname, (name, hobj, hptr) in declared.items():
        if lname == "content-type":
            continue
        values = headers.get(lname)
        if not values:
            if hobj.get("required"):
                problems.append("%s: required header %s missing" %
                                (where, name))
            continue
        if "schema" in hobj:
            sch, sptr = spec.deref(hobj["schema"], hptr + "/schema")
            for v in values:
                for jp, msg in spec.validate(sptr, header_value(sch, v)):
                    problems.append("%s: header %s: %r: %s" %
                                    (where, name, v, msg))
    for lname in headers:
        if lname not in declared and lname not in GENERIC_HEADERS:
            problems.append("%s: header %s is not declared for this answer" %
                            (where, lname))

    # Content type and body.
    content = resp.get("content") or {}
    ctype = ",".join(headers.get("content-type", []))
    # A HEAD answer's Content-Length is the size GET would send.
    size = 0 if method == "HEAD" else body_size(headers, body)
    if not content:
        if size:
            problems.append("%s: the spec declares no body, got %d bytes "
                            "(%s)" % (where, size, ctype or "no type"))
        return problems
    if not ctype:
        if size or method != "HEAD":
            problems.append("%s: no Content-Type (declared: %s)" %
                            (where, ", ".join(content)))
        return problems
    mt = media_type(ctype)
    key = type_declared(mt, content)
    if key is None:
        problems.append("%s: Content-Type %s not declared (declared: %s)" %
                        (where, ctype, ", ".join(content)))
        return problems
    if method == "HEAD" or not JSON_TYPE.match(mt):
        return problems
    media = content[key]
    if "schema" not in media:
        return problems
    parsed, err = parse_json(body)
    if err:
        return problems + ["%s: body: %s" % (where, err)]
    sch_ptr = "%s/content/%s/schema" % (rptr, esc(key))
    _, sch_ptr = spec.deref(media["schema"], sch_ptr)
    for jp, msg in spec.validate(sch_ptr, parsed)[:5]:
        problems.append("%s: body %s: %s" % (where, jp, msg))
    if mt == "application/problem+json" and isinstance(parsed, dict) and \
            parsed.get("status") != status:
        problems.append("%s: body $.status is %r, not the HTTP status" %
                        (where, parsed.get("status")))
    return problems


def body_size(headers, body):
    if body is not None:
        return len(body)
    try:
        return int(headers.get("content-length", ["0"])[-1])
    except ValueError:
        return 0


def parse_json(body):
    if body is None:
        return None, "not recorded"
    try:
        return json.loads(body.decode("utf-8"),
                          object_pairs_hook=no_duplicates,
                          parse_constant=bad_constant), None
    except (ValueError, UnicodeDecodeError) as e:
        return None, "not JSON (%s): %r" % (short(e, 80), body[:120])


def check_problem_body(spec, status, headers, body):
    """An answer outside every operation: a problem+json body."""
    ctype = media_type(",".join(headers.get("content-type", [])))
    if ctype != "application/problem+json":
        return ["%d answer: Content-Type %r, not application/problem+json" %
                (status, ctype)]
    parsed, err = parse_json(body)
    if err:
        return ["%d answer: body: %s" % (status, err)]
    out = ["%d answer: body %s: %s" % (status, jp, msg)
           for jp, msg in spec.validate("/components/schemas/Problem",
                                        parsed)]
    if isinstance(parsed, dict) and parsed.get("status") != status:
        out.append("%d answer: body $.status is %r" %
                   (status, parsed.get("status")))
    return out


def run_index(spec, d):
    index = os.path.join(d, "index.tsv")
    per_case, fails = {}, 0
    lines = []
    if os.path.exists(index):
        with open(index, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 6:
            continue
        seq, case, method, path, status = parts[:5]
        per_case.setdefault(case, [0, 0])
        per_case[case][0] += 1
        with open(os.path.join(d, seq + ".h"), encoding="latin-1") as f:
            _, headers = parse_headers(f.read())
        body = None
        bpath = os.path.join(d, seq + ".b")
        if os.path.exists(bpath):
            with open(bpath, "rb") as f:
                body = f.read()
        try:
            problems = check_answer(spec, method, path, int(status), headers,
                                    body)
        except Exception as e:  # a broken spec must fail, not crash quietly
            problems = ["validator error: %s: %s" % (type(e).__name__, e)]
        for p in problems:
            fails += 1
            per_case[case][1] += 1
            print("fail\tspec: %s (%s, request %s: %s %s)" %
                  (p, case, seq, method, short(path, 120)))
    for case, (n, bad) in sorted(per_case.items()):
        if not bad:
            print("pass\tspec: the %d answers of %s match proto/openapi.yaml"
                  % (n, case))
    missed = sorted(set(spec.operations()) - spec.seen_ops)
    print("# spec: %d answers checked; operations no answer exercised: %s" %
          (len(lines), ", ".join(missed) or "none"))


# Answers the spec does not describe; each must be refused, with a message
# containing the given text (the self-test runs against the real spec).
PROBLEM = b'{"type":"about:blank","title":"t","status":%d,"detail":"d","code":1}'
SELF_TESTS = [
    ("a described answer passes", "GET", "/healthz", 200,
     "Content-Type: application/json", b'{"status":"ok"}', None),
    ("an undeclared status", "GET", "/healthz", 418,
     "Content-Type: application/json", b'{}', "status not declared"),
    ("an undeclared content type", "GET", "/healthz", 200,
     "Content-Type: text/plain", b'ok', "Content-Type text/plain not"),
    ("a body off the schema, naming the JSON path", "GET", "/v1/families",
     200, "Content-Type: application/json",
     b'{"families":[{"name":"a","task":"t","description":"","variants":"2"}]}',
     "$.families[0].variants"),
    ("duplicate JSON members", "GET", "/healthz", 200,
     "Content-Type: application/json", b'{"status":"ok","status":"ok"}',
     "duplicate member"),
    ("an undeclared header", "GET", "/healthz", 200,
     "Content-Type: application/json\nX-Secret: 1", b'{"status":"ok"}',
     "header x-secret is not declared"),
    ("a 405 without Allow", "POST", "/healthz", 405,
     "Content-Type: application/problem+json", PROBLEM % 405, "Allow is"),
    ("a method the spec lacks answered 200", "POST", "/healthz", 200,
     "Content-Type: application/json", b'{"status":"ok"}', "must be 405"),
    ("an unknown path answered 200", "GET", "/nope", 200,
     "Content-Type: application/json", b'{}', "must be a 404"),
    ("a problem whose status differs", "GET", "/v1/families/x", 404,
     "Content-Type: application/problem+json", PROBLEM % 400,
     "not the HTTP status"),
    ("a body where none is declared", "DELETE", "/v1/families/x", 204,
     "", b'{}', "declares no body"),
]


def self_test(spec):
    for name, method, path, status, hdrs, body, want in SELF_TESTS:
        _, headers = parse_headers("HTTP/1.1 %d X\n%s\nContent-Length: %d\n"
                                   % (status, hdrs, len(body)))
        try:
            problems = check_answer(spec, method, path, status, headers, body)
        except Exception as e:
            problems = ["validator error: %s" % e]
        text = "; ".join(problems)
        ok = (not problems) if want is None else (want in text)
        print("%s\tspec validator: %s%s" %
              ("pass" if ok else "fail", name,
               "" if ok else " (got: %s)" % (text or "no problem")))


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        self_test(Spec(argv[2]))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        spec = Spec(argv[1])
    except Exception as e:
        print("fail\tspec: %s cannot be loaded: %s" % (argv[1], short(e)))
        return 1
    run_index(spec, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
