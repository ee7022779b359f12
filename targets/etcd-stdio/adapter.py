#!/usr/bin/env python3
"""faultline stdio adapter for etcd, built on etcdctl (Debian etcd-client).

faultline starts one of these per worker and writes one JSON request per line on stdin;
this script answers each with one JSON line on stdout (protocol: faultline's README,
"Writing a stdio adapter"). Every operation runs one `etcdctl` process against the
worker's node (FAULTLINE_ENDPOINT), which is slow (tens of ops/s per worker) but shows
that any system with a command-line client can be tested without writing Rust.

Values are stored as their JSON text, so a read gives back the JSON value written.
Outcomes: etcdctl exit 0 -> ok; a txn whose comparison failed -> fail/compare-failed;
anything else (timeout, no leader, connection refused...) -> info, which faultline records
as unknown for writes and as fail for reads (a read has no effect).
"""

import base64
import json
import os
import subprocess
import sys

ENDPOINT = os.environ["FAULTLINE_ENDPOINT"]
# "n1=10.213.0.66:2379,n2=..." -> {"10.213.0.66:2379": "n1", ...}
NODE_OF = {
    addr: node
    for node, addr in (e.split("=", 1) for e in os.environ["FAULTLINE_ENDPOINTS"].split(","))
}
SERIALIZABLE = os.environ.get("FAULTLINE_SERIALIZABLE") == "true"
# etcdctl gives up shortly before faultline does, so its verdict arrives in time.
TIMEOUT_MS = max(int(os.environ.get("FAULTLINE_OP_TIMEOUT_MS", "2000")) - 300, 100)


def etcdctl(args, endpoints=ENDPOINT, stdin=None):
    return subprocess.run(
        ["etcdctl", "--endpoints", endpoints, "--dial-timeout", "%dms" % TIMEOUT_MS,
         "--command-timeout", "%dms" % TIMEOUT_MS, "-w", "json", *args],
        input=stdin, capture_output=True, text=True,
        env=dict(os.environ, ETCDCTL_API="3"))


def quote(text):
    # etcdctl's txn syntax takes Go-style double-quoted strings.
    return json.dumps(text)


def failed(proc):
    # etcdctl's last stderr line is its verdict ("Error: context deadline exceeded"); the
    # lines before it are client-library log noise.
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    return {"type": "info", "error": lines[-1] if lines else "etcdctl exit %d" % proc.returncode}


def read(key):
    args = ["get", key] + (["--consistency=s"] if SERIALIZABLE else [])
    p = etcdctl(args)
    if p.returncode != 0:
        return failed(p)
    kvs = json.loads(p.stdout).get("kvs") or []
    if not kvs:
        return {"type": "ok", "value": None}
    return {"type": "ok", "value": json.loads(base64.b64decode(kvs[0].get("value", "")) or "null")}


def write(key, value):
    p = etcdctl(["put", key, json.dumps(value)])
    return {"type": "ok"} if p.returncode == 0 else failed(p)


def cas(key, old, new):
    # Interactive txn on stdin: compares, blank line, success ops, blank line, failure ops.
    # From null (absent, the register's initial value) = create: create revision 0.
    compare = 'create(%s) = "0"' % quote(key) if old is None else 'value(%s) = %s' % (
        quote(key), quote(json.dumps(old)))
    script = '%s\n\nput %s %s\n\n\n' % (compare, quote(key), quote(json.dumps(new)))
    p = etcdctl(["txn"], stdin=script)
    if p.returncode != 0:
        return failed(p)
    # `succeeded` is omitted when false.
    if json.loads(p.stdout).get("succeeded"):
        return {"type": "ok"}
    return {"type": "fail", "error": "compare-failed"}


def leaders():
    # Members whose own status names themselves as leader.
    p = etcdctl(["endpoint", "status"], endpoints=",".join(NODE_OF))
    found = []
    for line in p.stdout.splitlines():
        try:
            statuses = json.loads(line)
        except ValueError:
            continue
        for s in statuses if isinstance(statuses, list) else [statuses]:
            st = s.get("Status") or {}
            if st.get("leader") and st.get("leader") == (st.get("header") or {}).get("member_id"):
                found.append(NODE_OF.get(s.get("Endpoint"), s.get("Endpoint")))
    return {"type": "ok", "value": sorted(found)}


def answer(req):
    f = req.get("f")
    if f == "read":
        return read(req["key"])
    if f == "write":
        return write(req["key"], req["value"])
    if f == "cas":
        return cas(req["key"], req["value"][0], req["value"][1])
    if f == "leaders":
        return leaders()
    return {"type": "fail", "error": "unknown f %r" % (f,)}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            out = answer(req)
        except Exception as e:  # an adapter bug must not look like an etcd answer
            out = {"type": "info", "error": "adapter error: %r" % (e,)}
        out["id"] = req.get("id")
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
