#!/usr/bin/env python3
"""faultline stdio adapter for ZooKeeper, on kazoo (PyPI).

faultline starts one of these per worker and writes one JSON request per line on stdin;
this script answers each with one JSON line on stdout (protocol: faultline's README,
"Writing a stdio adapter"). It keeps one ZooKeeper session with the worker's node
(FAULTLINE_ENDPOINT) and no other: a worker's history is about the node it talks to, so
the session must not fail over.

A key k is the znode /k; its data is the JSON text of the value.

- read: sync(/k) then get(/k) -- sync makes the node catch up with the leader first (the
  documented way to read what was committed before the read began); FAULTLINE_SERIALIZABLE
  skips the sync: a plain get, answered from the node's own, possibly stale, state.
- write: set(/k); create(/k) when missing (and set again if another client created it in
  between).
- cas [old, new]: sync and get(/k) as a read does, then set(/k, new, version=v) with the
  version just read. ZooKeeper applies the set only if /k is still at version v, so it
  compares and swaps in one step. A value other than old or a missing node is
  compare-failed; BadVersion (changed since the get, perhaps to the same value) reads again.
  From null (the key's initial value: absent) it is create(/k): NodeExists is compare-failed.
- leaders: the nodes whose `srvr` four-letter word says "Mode: leader".

Outcomes: an op never sent (no session yet) is fail after a short pause; connection loss,
session expiry or a timeout after sending is info, which faultline records as unknown for
writes and cas and as fail for reads.
"""

import json
import os
import socket
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
)
from kazoo.handlers.threading import KazooTimeoutError

ENDPOINT = os.environ["FAULTLINE_ENDPOINT"]
# "n1=10.213.0.2:2181,n2=..." -> [("n1", "10.213.0.2", 2181), ...]
NODES = [
    (node, addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]))
    for node, addr in (e.split("=", 1) for e in os.environ["FAULTLINE_ENDPOINTS"].split(","))
]
SERIALIZABLE = os.environ.get("FAULTLINE_SERIALIZABLE") == "true"
# Answer shortly before faultline gives up on us (it would record info and kill us).
BUDGET = max(int(os.environ.get("FAULTLINE_OP_TIMEOUT_MS", "2000")) - 300, 200) / 1000.0
# The longest session ZooKeeper grants at tickTime 200 ms (20 ticks): a worker's session
# survives a short partition and expires soon after a long one.
SESSION_TIMEOUT = 4.0
# How long an op waits for the session to (re)connect before answering fail, unsent.
CONNECT_WAIT = min(0.5, BUDGET / 3)


class NotSent(Exception):
    """The op certainly did not reach ZooKeeper."""


connected = threading.Event()


def on_state(state):
    # Called on kazoo's event thread; ops check the event before sending.
    if state == KazooState.CONNECTED:
        connected.set()
    else:
        connected.clear()


# Reconnects forever in the background (short back-off: a node restarts within seconds);
# no command retries, so an op is sent at most once and its fate is ours to report.
zk = KazooClient(
    hosts=ENDPOINT,
    timeout=SESSION_TIMEOUT,
    connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5, "ignore_expire": True},
    command_retry=None,
    logger=None,
)
zk.add_listener(on_state)
zk.start_async()


def path(key):
    return "/" + str(key).replace("/", "%2F")


def deadline():
    return time.monotonic() + BUDGET


def wait(async_result, until):
    left = until - time.monotonic()
    if left <= 0:
        raise KazooTimeoutError("no time left for the op")
    return async_result.get(timeout=left)


def ensure_session():
    if not connected.wait(CONNECT_WAIT):
        raise NotSent("no session with %s (state %s)" % (ENDPOINT, zk.state))


def decode(data):
    return json.loads(data.decode()) if data else None


def read(key):
    until = deadline()
    ensure_session()
    p = path(key)
    if not SERIALIZABLE:
        wait(zk.sync_async(p), until)
    try:
        data, _ = wait(zk.get_async(p), until)
    except NoNodeError:
        return {"type": "ok", "value": None}
    return {"type": "ok", "value": decode(data)}


def write(key, value):
    until = deadline()
    ensure_session()
    p, data = path(key), json.dumps(value).encode()
    while True:
        try:
            wait(zk.set_async(p, data), until)
            return {"type": "ok"}
        except NoNodeError:
            pass
        try:
            wait(zk.create_async(p, data), until)
            return {"type": "ok"}
        except NodeExistsError:
            continue  # created by another worker since our set: set it


def cas(key, old, new):
    until = deadline()
    ensure_session()
    p = path(key)
    if old is None:
        try:
            wait(zk.create_async(p, json.dumps(new).encode()), until)
            return {"type": "ok"}
        except NodeExistsError:
            return {"type": "fail", "error": "compare-failed"}
    # A set refused for its version only says the znode changed since our get, not that
    # its value differs from old (a write of the same value bumps the version too), and
    # compare-failed claims the value differed: read again and retry. The refusal came
    # back through the node's pipeline after the change that caused it, so the next get
    # sees that change or a later one.
    while True:
        if not SERIALIZABLE:
            wait(zk.sync_async(p), until)
        try:
            data, stat = wait(zk.get_async(p), until)
        except NoNodeError:
            return {"type": "fail", "error": "compare-failed"}
        if decode(data) != old:
            return {"type": "fail", "error": "compare-failed"}
        try:
            wait(zk.set_async(p, json.dumps(new).encode(), version=stat.version), until)
            return {"type": "ok"}
        except (BadVersionError, NoNodeError):
            continue


def srvr_mode(host, port):
    """The `Mode:` line of a node's srvr answer, or None when it does not answer."""
    # Generous for a JVM on a busy machine (a leader that answers late would be named
    # nobody), yet within the 3 s faultline gives a `leaders` answer: nodes are asked at once.
    try:
        with socket.create_connection((host, port), timeout=1.2) as s:
            s.settimeout(1.2)
            s.sendall(b"srvr")
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
    except OSError:
        return None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def leaders():
    modes = {}

    def ask(node, host, port):
        modes[node] = srvr_mode(host, port)

    threads = [threading.Thread(target=ask, args=n) for n in NODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"type": "ok", "value": sorted(n for n, m in modes.items() if m == "leader")}


def answer(req):
    f = req.get("f")
    try:
        if f == "read":
            return read(req["key"])
        if f == "write":
            return write(req["key"], req["value"])
        if f == "cas":
            return cas(req["key"], req["value"][0], req["value"][1])
        if f == "leaders":
            return leaders()
        return {"type": "fail", "error": "unknown f %r" % (f,)}
    except NotSent as e:
        # Don't spin against a node that is down: a worker would fill the history with fails.
        time.sleep(0.05)
        return {"type": "fail", "error": str(e)}
    except KazooTimeoutError:
        return {"type": "info", "error": "timeout after %.1f s" % BUDGET}
    except Exception as e:
        # ConnectionLoss, SessionExpired, a refused op...: sent, fate unknown.
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
    zk.stop()
    zk.close()


if __name__ == "__main__":
    main()
