#!/usr/bin/env python3
"""faultline stdio adapter for @NAME@ (written by `faultline init-target`).

faultline starts one of these per client worker and sends it one JSON request per line
on stdin; it answers each with exactly one JSON line on stdout (same "id"):

  {"id":1,"f":"read","key":"k0"}            -> {"id":1,"type":"ok","value":3}   (null: no key)
  {"id":2,"f":"write","key":"k0","value":4} -> {"id":2,"type":"ok"}
  {"id":3,"f":"cas","key":"k0","value":[4,1]} -> ok, or fail with "error":"compare-failed"
  {"id":4,"f":"leaders"}                    -> {"id":4,"type":"ok","value":["n2"]}

"type" is ok (it happened), fail (it certainly did NOT happen) or info (unknown: it may
still take effect). Everything below the TODO marker is yours to write; the loop at the
bottom turns what your functions return or raise into those answers:

  return normally          -> ok
  raise NotApplied(why)    -> fail  (nothing was done: refused before sending, "not leader")
  node_cas returns False   -> fail, compare-failed (the value was not the expected one)
  any other exception      -> info  (timeouts, a connection dropped after sending, …)

Log to stderr (collected in nodes/<node>/adapter-stderr.log), never to stdout.
Standard library only. Try it with `faultline probe-target --target <this directory>`.
"""

import json
import os
import socket
import sys
import time

# The node this worker talks to ("n2"), its client address ("10.213.0.3:7002") and every
# node's ("n1=10.213.0.2:7002,n2=…"); the port is target.yaml's `client.port`.
NODE = os.environ.get("FAULTLINE_NODE", "n1")
HOST, _, PORT = os.environ.get("FAULTLINE_ENDPOINT", "127.0.0.1:7002").rpartition(":")
PORT = int(PORT)
ENDPOINTS = {}
for _entry in filter(None, os.environ.get("FAULTLINE_ENDPOINTS", "").split(",")):
    _name, _, _addr = _entry.partition("=")
    _host, _, _port = _addr.rpartition(":")
    ENDPOINTS[_name] = (_host, int(_port))
# True when the workload or target asks for local (possibly stale) reads.
SERIALIZABLE = os.environ.get("FAULTLINE_SERIALIZABLE") == "true"
# faultline records info and kills the adapter once an op takes longer than this, so
# answer (info, if need be) well before it.
OP_TIMEOUT_S = int(os.environ.get("FAULTLINE_OP_TIMEOUT_MS", "2000")) / 1000.0
CALL_TIMEOUT_S = max(0.1, OP_TIMEOUT_S - 0.3)
# A node that is down refuses at once; answering fail at once would make the worker spin.
REFUSED_PAUSE_S = 0.05


class NotApplied(Exception):
    """The op certainly had no effect: answered `fail` with this message."""


def log(msg):
    print("adapter %s: %s" % (NODE, msg), file=sys.stderr, flush=True)


# One connection per adapter, reused across ops; dropped after any error so the next op
# starts clean.
_conn = None


def connection():
    """A TCP connection to this worker's node. Refused: nothing was sent, so NotApplied."""
    global _conn
    if _conn is None:
        try:
            _conn = socket.create_connection((HOST, PORT), timeout=CALL_TIMEOUT_S)
        except ConnectionRefusedError as e:
            raise NotApplied("connection refused by %s:%d" % (HOST, PORT)) from e
        _conn.settimeout(CALL_TIMEOUT_S)
    return _conn


def drop_connection():
    global _conn
    if _conn is not None:
        try:
            _conn.close()
        except OSError:
            pass
        _conn = None


# ---------------------------------------------------------------------------------------
# TODO: talk to your node. The four functions below are all you need to write.
# connection() above gives a TCP socket to this worker's node (HOST:PORT); use it, or
# http.client.HTTPConnection(HOST, PORT, timeout=CALL_TIMEOUT_S) for an HTTP API, or
# subprocess.run([...], timeout=CALL_TIMEOUT_S) for a command-line client.
# Values are JSON values (faultline's workloads use small integers): store them so that
# a read gives back exactly what was written, e.g. as json.dumps(value).
# ---------------------------------------------------------------------------------------


def node_read(key):
    """TODO: the value of `key` on the cluster, or None when the key does not exist.
    Raise NotApplied on an error; any failure of a read is harmless (it changes nothing)."""
    raise NotImplementedError("node_read")


def node_write(key, value):
    """TODO: set `key` to `value`; return once the cluster acknowledged it.
    Raise NotApplied only if the node certainly did nothing (e.g. "not the leader")."""
    raise NotImplementedError("node_write")


def node_cas(key, old, new):
    """TODO: atomically set `key` to `new` if it holds `old`. Return True if it did,
    False if the value was something else (a clean comparison failure)."""
    raise NotImplementedError("node_cas")


def node_leaders():
    """TODO: the names of the nodes that lead now (["n2"]), e.g. by asking every node of
    ENDPOINTS for its status. Needed by faults aimed at leaders (partition-primaries);
    without it faultline refuses those nemeses and runs the others."""
    raise NotImplementedError("node_leaders")


# ---------------------------------------------------------------------------------------
# The protocol loop: nothing to change below.
# ---------------------------------------------------------------------------------------


def answer(req):
    f = req.get("f")
    key = req.get("key")
    try:
        if f == "read":
            return {"type": "ok", "value": node_read(key)}
        if f == "write":
            node_write(key, req.get("value"))
            return {"type": "ok"}
        if f == "cas":
            old, new = req.get("value")
            if node_cas(key, old, new):
                return {"type": "ok"}
            return {"type": "fail", "error": "compare-failed"}
        if f == "leaders":
            return {"type": "ok", "value": list(node_leaders())}
        return {"type": "fail", "error": "unsupported f %r" % (f,)}
    except NotImplementedError as e:
        # Nothing was sent to the node: certainly not applied.
        return {"type": "fail", "error": "not implemented yet: %s in adapter.py" % e}
    except NotApplied as e:
        drop_connection()
        time.sleep(REFUSED_PAUSE_S)
        return {"type": "fail", "error": str(e)[:200]}
    except Exception as e:  # timeouts, resets, anything unexpected: unknown outcome
        drop_connection()
        log("%s %s: %r" % (f, key, e))
        return {"type": "info", "error": ("%s: %s" % (type(e).__name__, e))[:200]}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        out = answer(req)
        out["id"] = req.get("id")
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
