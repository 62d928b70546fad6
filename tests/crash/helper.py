#!/usr/bin/env python3
"""Helpers of tests/crash/run.sh (python3 standard library only).

  helper.py batch                    reads lines "gen OUT SEED SIZE" (write
                                     SIZE float32-like bytes, compressible a
                                     little) and "mutate BASE OUT SEED" (a
                                     copy of BASE with ~2% of its 4 KiB pages
                                     new) from stdin; prints "OUT HEX" for
                                     each, in order
  helper.py store DATA DB MODELD CACHE
        checks a (stopped) data directory against the catalog DB (a copy of
        catalog.db and its -wal): every blob file hashes to its name, every
        .zst copy decompresses to the blob, every delta file starts with the
        skippable frame and patches its source into its target, every
        version, blob and ready delta row has its file. CACHE lists files
        already verified (path, size, mtime, inode: files are immutable once
        named, so only new or rewritten ones are checked again); newly
        verified ones are appended.
  helper.py acked LOGDIR DB          every upload logged 200/201 has its blobs
                                     row; every publish logged 201 its
                                     versions row
  helper.py versions LOGDIR BASE     every publish logged 201 is listed by
                                     GET .../versions of the running daemon
  helper.py problem STATUS HDRS BODY the answer is a well-formed problem (or
                                     a 2xx): prints what is wrong, if anything
Check commands print "ok - NAME" or "not ok - NAME: DETAIL" lines.
"""
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import urllib.request

HEX = re.compile(r"^[0-9a-f]{64}$")
DELTA_MAGIC = bytes.fromhex("5e2a4d18")     # 0x184D2A5E little-endian
MAX_DETAIL = 5
# The daemon is on the loopback: never through a proxy from the environment.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def report(name, problems):
    if problems:
        extra = len(problems) - MAX_DETAIL
        detail = "; ".join(problems[:MAX_DETAIL])
        if extra > 0:
            detail += "; and %d more" % extra
        print("not ok - %s: %s" % (name, detail))
    else:
        print("ok - %s" % name)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def floatish(rng, size):
    """Random bytes whose every 4th byte (a float32's sign and exponent on
    a little-endian machine) takes one of a few values, like weights."""
    b = bytearray(rng.randbytes(size))
    exps = bytes(rng.choice((0x3c, 0x3d, 0xbc, 0xbd)) for _ in range(256))
    b[3::4] = bytes(b[3::4]).translate(exps)
    return bytes(b)


def gen(out, seed, size):
    rng = random.Random(int(seed))
    data = floatish(rng, int(size))
    with open(out, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def mutate(base, out, seed):
    rng = random.Random(int(seed))
    with open(base, "rb") as f:
        b = bytearray(f.read())
    pages = max(1, len(b) // 4096)
    for _ in range(max(1, pages // 50)):
        off = rng.randrange(pages) * 4096
        n = min(4096, len(b) - off)
        b[off:off + n] = floatish(rng, n)
    with open(out, "wb") as f:
        f.write(b)
    return hashlib.sha256(b).hexdigest()


def cmd_batch():
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        if f[0] == "gen" and len(f) == 4:
            print(f[1], gen(f[1], f[2], f[3]))
        elif f[0] == "mutate" and len(f) == 4:
            print(f[2], mutate(f[1], f[2], f[3]))
        else:
            raise SystemExit("batch: bad line %r" % line)


def sql(db, query):
    """Rows of a read-only query, by the sqlite3 CLI, '|'-separated."""
    res = subprocess.run(["sqlite3", "-readonly", db, query],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError("sqlite3: %s" % res.stderr.strip())
    return [line.split("|") for line in res.stdout.splitlines() if line]


def file_key(path):
    """What the cache remembers of a verified file: a rewrite changes it."""
    st = os.stat(path)
    return "%s %d %d %d" % (path, st.st_size, st.st_mtime_ns, st.st_ino)


def load_cache(path):
    try:
        with open(path) as f:
            return set(line.rstrip("\n") for line in f)
    except FileNotFoundError:
        return set()


def cached(path, cache):
    try:
        return file_key(path) in cache
    except OSError:
        return False


def check_blob_files(data, cache, done):
    problems = []
    zst = []
    root = os.path.join(data, "blobs", "sha256")
    for fan in sorted(os.listdir(root)):
        fandir = os.path.join(root, fan)
        for name in sorted(os.listdir(fandir)):
            path = os.path.join(fandir, name)
            hexd = name[:-4] if name.endswith(".zst") else name
            if not HEX.match(hexd) or fan != hexd[:2]:
                problems.append("stray file blobs/sha256/%s/%s" % (fan, name))
                continue
            if name.endswith(".zst"):
                zst.append((hexd, path))
                continue
            if cached(path, cache):
                continue
            got = sha256_file(path)
            if got != hexd:
                problems.append("%s hashes to %s" % (path, got))
            else:
                done.append(path)
    return problems, zst


def check_zst_files(zst, cache, done):
    problems = []
    for hexd, path in zst:
        if cached(path, cache):
            continue
        h = hashlib.sha256()
        with subprocess.Popen(["zstd", "-q", "-d", "-c", path],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as proc:
            for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
                h.update(chunk)
        if proc.returncode != 0:
            problems.append("%s: zstd -d failed" % path)
            continue
        got = h.hexdigest()
        if got != hexd:
            problems.append("%s decompresses to sha256:%s" % (path, got))
        else:
            done.append(path)
    return problems


def check_delta_files(data, modeld, cache, done):
    problems = []
    ddir = os.path.join(data, "deltas")
    names = sorted(os.listdir(ddir))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = os.path.join(ddir, name)
            parts = name.split("-")
            if len(parts) != 2 or not all(HEX.match(p) for p in parts):
                problems.append("stray file deltas/%s" % name)
                continue
            if cached(path, cache):
                continue
            src, dst = parts
            with open(path, "rb") as f:
                head = f.read(192)
            want = ("modeld-delta/1 from=sha256:%s to=sha256:%s\n"
                    % (src, dst)).encode()
            if head[:4] != DELTA_MAGIC or head[8:8 + len(want)] != want:
                problems.append("deltas/%s lacks its skippable frame"
                                % name[:20])
                continue
            old = os.path.join(data, "blobs", "sha256", src[:2], src)
            out = os.path.join(tmp, "out")
            res = subprocess.run([modeld, "patch", old, path, out],
                                 capture_output=True, text=True, check=False)
            if res.returncode != 0:
                problems.append("modeld patch with deltas/%s... failed: %s"
                                % (name[:20], res.stderr.strip()[:200]))
                continue
            got = sha256_file(out)
            os.unlink(out)
            if got != dst:
                problems.append("deltas/%s... yields sha256:%s"
                                % (name[:20], got))
            else:
                done.append(path)
    return problems


def blob_path(data, hexd, suffix=""):
    return os.path.join(data, "blobs", "sha256", hexd[:2], hexd + suffix)


def cmd_store(data, db, modeld, cache_path):
    cache = load_cache(cache_path)
    done = []
    problems, zst = check_blob_files(data, cache, done)
    report("every blob file hashes to its name", problems)
    report("every .zst copy decompresses to its blob",
           check_zst_files(zst, cache, done))
    report("every delta file has the frame and patches into its target",
           check_delta_files(data, modeld, cache, done))

    problems = []
    for (hexd,) in sql(db, "SELECT DISTINCT blob_digest FROM versions"):
        if not os.path.isfile(blob_path(data, hexd)):
            problems.append("a version names sha256:%s, no such file" % hexd)
    for (hexd,) in sql(db, "SELECT blob_digest FROM versions WHERE "
                           "blob_digest NOT IN (SELECT digest FROM blobs)"):
        problems.append("a version names sha256:%s, no blobs row" % hexd)
    report("every version's blob exists", problems)

    problems = []
    for hexd, size, zstate in sql(db, "SELECT digest, size_bytes, "
                                      "zstd_state FROM blobs"):
        path = blob_path(data, hexd)
        if not os.path.isfile(path):
            problems.append("blobs row sha256:%s has no file" % hexd)
        elif os.path.getsize(path) != int(size):
            problems.append("sha256:%s is %d bytes, row says %s"
                            % (hexd, os.path.getsize(path), size))
        if zstate == "ready" and not os.path.isfile(blob_path(data, hexd,
                                                              ".zst")):
            problems.append("sha256:%s zstd ready, no .zst file" % hexd)
    report("every blobs row has its file", problems)

    problems = []
    for src, dst, size, digest in sql(db, "SELECT from_digest, to_digest, "
                                          "size_bytes, delta_digest FROM "
                                          "deltas WHERE state = 'ready'"):
        path = os.path.join(data, "deltas", "%s-%s" % (src, dst))
        if not os.path.isfile(path):
            problems.append("ready delta %s.. -> %s.. has no file"
                            % (src[:12], dst[:12]))
        elif os.path.getsize(path) != int(size):
            problems.append("delta %s.. -> %s.. is %d bytes, row says %s"
                            % (src[:12], dst[:12], os.path.getsize(path),
                               size))
        elif sha256_file(path) != digest:
            problems.append("delta %s.. -> %s.. digest differs from its row"
                            % (src[:12], dst[:12]))
    report("every ready delta row has its file", problems)

    with open(cache_path, "a") as f:
        for path in done:
            f.write(file_key(path) + "\n")


def read_logs(logdir):
    """(kind, fields) of every line the clients logged."""
    out = []
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name)) as f:
            for line in f:
                fields = line.split()
                if fields:
                    out.append(fields)
    return out


def cmd_acked(logdir, db):
    have = {r[0] for r in sql(db, "SELECT digest FROM blobs")}
    problems = []
    for f in read_logs(logdir):
        if f[0] in ("upload", "pubblob") and f[2] in ("200", "201") \
                and f[1] not in have:
            problems.append("upload of sha256:%s got %s, no blobs row"
                            % (f[1][:16], f[2]))
    report("every acknowledged upload has its blobs row", problems)

    rows = {(r[0], r[1], r[2]) for r in sql(
        db, "SELECT v.name, ver.version, ver.blob_digest FROM versions ver "
            "JOIN variants v ON v.id = ver.variant_id")}
    problems = []
    for f in read_logs(logdir):
        if f[0] == "publish" and f[4] == "201" and \
                (f[2], f[5], f[3]) not in rows:
            problems.append("publish %s/%s v%s got 201, no versions row"
                            % (f[1], f[2], f[5]))
    report("every acknowledged publish has its versions row", problems)


def cmd_versions(logdir, base):
    problems = []
    listed = {}
    for f in read_logs(logdir):
        if f[0] != "publish" or f[4] != "201":
            continue
        key = (f[1], f[2])
        if key not in listed:
            url = "%s/v1/families/%s/variants/%s/versions" % (base, f[1],
                                                             f[2])
            try:
                with NO_PROXY.open(url, timeout=10) as r:
                    doc = json.load(r)
                listed[key] = {(str(v["version"]), v["blob"])
                               for v in doc["versions"]}
            except Exception as e:          # pylint: disable=broad-except
                problems.append("GET %s: %s" % (url, e))
                listed[key] = set()
        if (f[5], "sha256:" + f[3]) not in listed[key]:
            problems.append("%s/%s v%s (sha256:%s..) got 201, not listed"
                            % (f[1], f[2], f[5], f[3][:12]))
    report("every acknowledged publish is listed by /versions", problems)


def cmd_problem(status, hdrs, body):
    """Prints nothing when the answer is a 2xx or a well-formed problem."""
    status = int(status)
    if 200 <= status < 300:
        return
    with open(hdrs, errors="replace") as f:
        ctype = [l.split(":", 1)[1].strip() for l in f
                 if l.lower().startswith("content-type:")]
    if not ctype or not ctype[-1].startswith("application/problem+json"):
        print("Content-Type %s, not application/problem+json" % ctype)
        return
    try:
        with open(body) as f:
            doc = json.load(f)
    except (ValueError, OSError) as e:
        print("body is not JSON: %s" % e)
        return
    if not isinstance(doc, dict) or doc.get("status") != status:
        print("problem's status member %r, HTTP status %d"
              % (doc.get("status") if isinstance(doc, dict) else doc, status))
        return
    for key in ("type", "title", "detail"):
        if not isinstance(doc.get(key), str):
            print("problem lacks a string %r" % key)
            return


def main(argv):
    cmds = {"batch": (cmd_batch, 0),
            "store": (cmd_store, 4), "acked": (cmd_acked, 2),
            "versions": (cmd_versions, 2), "problem": (cmd_problem, 3)}
    if len(argv) < 2 or argv[1] not in cmds or \
            len(argv) - 2 != cmds[argv[1]][1]:
        sys.stderr.write(__doc__)
        return 2
    cmds[argv[1]][0](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
