#!/usr/bin/env python3
"""Sets that took effect twice in a Ceph monitor run, and why.

    double-sets.py RUN_DIR...

Three sources, each used when the run has it:

- the history and the monitors' logs (nodes/*/stderr*.log, with `debug_mon = 2` or more,
  e.g. CEPH_ARGS="--debug_mon 2" exported before `faultline run`): per key, the
  `config-key set` replies a leader sent (`send_reply ... mon_command_ack(...set...)=0`)
  against the writes the workers asked for. More replies than writes means a set was
  executed more than once (a lower bound: a write that timed out may never have run).
- the adapters' librados logs (nodes/*/librados-*.log, written by targets/ceph-mon/adapter.py):
  every session drop with its reason -- "no keepalive since T (N seconds), reconnecting"
  with N printed as a date in 2106 is a negative interval (the keepalive race, README
  "Testing Ceph monitors") -- and, at CEPH_ADAPTER_DEBUG_MONC=10, every command librados
  sent again on its new session (the same tid sent twice).
- for a re-sent `config-key set`, the history's op with that key and value (unique values,
  workloads/register-rw-unique.yaml, make it unambiguous).

Prints one summary line per run and the re-sent sets; exits 1 when any run executed more
sets than were asked for or re-sent a set, 0 otherwise.
"""

import glob
import json
import os
import re
import signal
import sys
from collections import Counter, defaultdict

SET_REPLY = re.compile(r"\(leader\) e\d+ send_reply .*config-key set, key=([\w-]+)\}\]=0 ")
NO_KEEPALIVE = re.compile(r"no keepalive since (\S+) \((\S+) seconds\), reconnecting")
SEND = re.compile(r"monclient: _send_command (\d+) (\[.*\])$")


def history(run):
    writes = Counter()
    ops = {}  # (key, value) -> (process, invoke s, complete s, outcome)
    with open(os.path.join(run, "history.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if o.get("f") != "write":
                continue
            k = (o.get("key"), json.dumps(o.get("value")))
            if o["type"] == "invoke":
                writes[o.get("key")] += 1
                ops[k] = [o["process"], o["time_ns"] / 1e9, None, None]
            elif k in ops and ops[k][0] == o["process"]:
                ops[k][2], ops[k][3] = o["time_ns"] / 1e9, o["type"]
    return writes, ops


def monitor_replies(run):
    replies, seen = Counter(), False
    for path in glob.glob(os.path.join(run, "nodes", "*", "stderr*.log")):
        with open(path, errors="replace") as f:
            for line in f:
                if "send_reply" not in line:
                    continue
                seen = True
                m = SET_REPLY.search(line)
                if m:
                    replies[m.group(1)] += 1
    return replies if seen else None


def client_logs(run):
    drops = Counter()
    resent = []
    paths = sorted(glob.glob(os.path.join(run, "nodes", "*", "librados-*.log")))
    if not paths:
        return None, []
    for path in paths:
        sends = defaultdict(list)
        with open(path, errors="replace") as f:
            for line in f:
                m = NO_KEEPALIVE.search(line)
                if m:
                    drops["negative interval" if m.group(2).startswith("2106-") else "no keepalive"] += 1
                    continue
                m = SEND.search(line.rstrip())
                if m:
                    sends[m.group(1)].append((line[11:23], m.group(2)))
        for tid, sent in sends.items():
            if len(sent) > 1 and "config-key set" in sent[0][1]:
                resent.append((os.path.relpath(path, run), tid, sent))
    return drops, resent


def main(runs):
    status = 0
    for run in runs:
        writes, ops = history(run)
        replies = monitor_replies(run)
        drops, resent = client_logs(run)
        if replies is None:
            executed = "monitor logs without replies (debug_mon < 2)"
            extra = {}
        else:
            extra = {k: (replies[k], writes[k]) for k in replies if replies[k] > writes[k]}
            executed = "%d set replies for %d writes, %d key(s) with more replies than writes" % (
                sum(replies.values()), sum(writes.values()), len(extra))
        if drops is None:
            clients = "no librados logs"
        else:
            clients = "session drops: %s; sets re-sent: %d" % (dict(drops) or "none", len(resent))
        print("%s: %s; %s" % (run, executed, clients))
        for key, (r, w) in sorted(extra.items()):
            print("  %s: %d sets executed, %d asked for" % (key, r, w))
        for path, tid, sent in resent:
            cmd = json.loads(sent[0][1])[0]
            op = ops.get((cmd.get("key"), cmd.get("val")))
            who = ("worker %d's write, invoked %.3f s, %s %s s" % (
                op[0], op[1], op[3] or "open", "%.3f" % op[2] if op[2] else "-")) if op else "no op in the history"
            print("  %s: tid %s set %s=%s sent at %s (UTC), again at %s -- %s" % (
                path, tid, cmd.get("key"), cmd.get("val"), sent[0][0], ", ".join(s[0] for s in sent[1:]), who))
        if extra or resent:
            status = 1
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
