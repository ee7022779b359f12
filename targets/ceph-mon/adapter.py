#!/usr/bin/python3
"""faultline stdio adapter for Ceph monitors, on librados' Python binding (python3-rados).

faultline starts one of these per worker and writes one JSON request per line on stdin;
this script answers each with one JSON line on stdout (protocol: faultline's README,
"Writing a stdio adapter"). It keeps one librados connection (a MonClient session),
configured with the worker's node (FAULTLINE_ENDPOINT) as the only monitor it knows. But
librados fetches the monmap from that monitor first and then opens its session with
whichever monitor of the whole map answers first, and when a session drops it hunts for
another on its own: a worker's ops may go through any node from the start (its librados
log says which: "found mon.n2"). The history is still what this client saw, which is what
linearizability is about.

A key k is the monitors' config-key k; its value is the JSON text of the value.

- read: `config-key get k`, answered by whichever monitor the session is with, from its
  own Paxos state while its lease is valid (a peon waits until it is readable); ENOENT is
  a missing key: null.
- write: `config-key set k v`, which a peon forwards to the leader, proposed through Paxos.
- cas: not offered -- config-key has no compare-and-set (the workload is register-rw).
- leaders: the monitors whose own `mon_status` says "leader", each asked at once through a
  connection of its own (a command aimed at one monitor would move this adapter's session).

Outcomes: an op never sent (no session could be opened) is fail after a short pause; a
timeout (rados_mon_op_timeout: librados cancels the command, so it is not re-sent later)
or any error after sending is info, which faultline records as unknown for writes and as
fail for reads.
"""

import errno
import json
import os
import sys
import threading
import time

import rados

ENDPOINT = os.environ["FAULTLINE_ENDPOINT"]
# "n1=10.213.0.2:3300,n2=..." -> [("n1", "10.213.0.2:3300"), ...]
NODES = [tuple(e.split("=", 1)) for e in os.environ["FAULTLINE_ENDPOINTS"].split(",")]
# Answer before faultline gives up on us (it would record info and kill us). librados takes
# its timeouts in whole seconds: 1 s under the default 2 s op_timeout.
BUDGET = max((int(os.environ.get("FAULTLINE_OP_TIMEOUT_MS", "2000")) - 500) // 1000, 1)
# How long an op waits to open a session before answering fail, unsent (whole seconds too).
CONNECT_WAIT = 1
# librados' own log, one file per adapter in the node's directory of the run. At the default
# debug_monc 1 it records each session the client opens ("found mon.n2") and why it dropped
# one ("no keepalive since ..., reconnecting"): the evidence for sets that took effect twice
# (README, "Testing Ceph monitors"). CEPH_ADAPTER_DEBUG_MONC=10 adds every command sent and
# re-sent (targets/ceph-mon/double-sets.py reads both).
LOG_DIR = os.environ.get("FAULTLINE_LOG_DIR", "")
DEBUG_MONC = os.environ.get("CEPH_ADAPTER_DEBUG_MONC", "1")
# librados checks its session once a second, or every mon_client_ping_interval (10 s) when
# that is shorter; 0.05 makes the keepalive race that drops healthy sessions (README)
# frequent enough to reproduce in one run.
PING_INTERVAL = os.environ.get("CEPH_ADAPTER_PING_INTERVAL", "")


class NotSent(Exception):
    """The op certainly did not reach a monitor."""


def open_session(mon_addr, op_timeout):
    """A connected librados handle that knows only the monitor at `mon_addr` to begin with."""
    conf = {
        "mon_host": "v2:" + mon_addr,
        # The monitors run without cephx (start.sh): no keyring, no tickets.
        "auth_client_required": "none",
        "keyring": "/dev/null",
        # A mon command not answered in time fails with ETIMEDOUT and is cancelled.
        "rados_mon_op_timeout": str(op_timeout),
        "client_mount_timeout": str(CONNECT_WAIT),
        # Never /var/log/ceph (librados' default); errors still reach stderr.
        "log_file": os.path.join(LOG_DIR, "librados-%d.log" % os.getpid()) if LOG_DIR else "",
        "debug_monc": DEBUG_MONC,
        "log_to_stderr": "false",
    }
    if PING_INTERVAL:
        conf["mon_client_ping_interval"] = PING_INTERVAL
    r = rados.Rados(conf=conf)
    try:
        r.connect(timeout=CONNECT_WAIT)
    except Exception:
        r.shutdown()
        raise
    return r


session = None


def mon(cmd):
    """(ret, outbuf, outs) of a monitor command on the persistent session."""
    global session
    if session is None:
        try:
            session = open_session(ENDPOINT, BUDGET)
        except Exception as e:
            raise NotSent("no session with %s: %s: %s" % (ENDPOINT, type(e).__name__, e))
    return session.mon_command(json.dumps(cmd), b"")


def unknown(ret, outs):
    if ret == -errno.ETIMEDOUT:
        return {"type": "info", "error": "timeout after %d s" % BUDGET}
    return {"type": "info", "error": "%s: %s" % (errno.errorcode.get(-ret, ret), outs.strip()[:200])}


def read(key):
    ret, out, outs = mon({"prefix": "config-key get", "key": key})
    if ret == 0:
        return {"type": "ok", "value": json.loads(out.decode()) if out else None}
    if ret == -errno.ENOENT:
        return {"type": "ok", "value": None}
    return unknown(ret, outs)


def write(key, value):
    ret, _, outs = mon({"prefix": "config-key set", "key": key, "val": json.dumps(value)})
    if ret == 0:
        return {"type": "ok"}
    return unknown(ret, outs)


def leaders():
    states = {}

    def ask(node, addr):
        try:
            r = open_session(addr, 1)
        except Exception:
            return
        try:
            ret, out, _ = r.mon_command(
                json.dumps({"prefix": "mon_status", "format": "json"}), b"", target=node
            )
            if ret == 0:
                states[node] = json.loads(out.decode()).get("state")
        except Exception:
            pass
        finally:
            r.shutdown()

    threads = [threading.Thread(target=ask, args=n, daemon=True) for n in NODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2.5)
    return {"type": "ok", "value": sorted(n for n, s in list(states.items()) if s == "leader")}


def answer(req):
    f = req.get("f")
    try:
        if f == "read":
            return read(req["key"])
        if f == "write":
            return write(req["key"], req["value"])
        if f == "leaders":
            return leaders()
        return {"type": "fail", "error": "unsupported f %r (config-key has no compare-and-set)" % (f,)}
    except NotSent as e:
        # Don't spin against a node that is down: a worker would fill the history with fails.
        time.sleep(0.05)
        return {"type": "fail", "error": str(e)}
    except Exception as e:
        # Sent, fate unknown.
        return {"type": "info", "error": "%s: %s" % (type(e).__name__, e)}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        out = answer(req)
        out["id"] = req.get("id")
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    if session is not None:
        session.shutdown()


if __name__ == "__main__":
    main()
