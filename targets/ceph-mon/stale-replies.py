#!/usr/bin/env python3
"""Stale replies in a Ceph monitor run's debug logs.

    stale-replies.py RUN_DIR...

Reads RUN_DIR/nodes/*/stderr*.log of runs made with `debug_mon = 10` (CEPH_ARGS in the
target's env; ceph-mon -d logs to stderr) and lists every `config-key get` a monitor
answered at service version M after a `config-key set` of the same key had been answered
at version N > M, on any monitor: a reply from behind a commit already acknowledged. The
versions are the `v<N>` the monitors print in `send_reply ... mon_command_ack(...)`.
Prints the first ten per run and a count line; exits 1 when any run has one.
"""

import glob
import os
import re
import sys
from datetime import datetime

REPLY = re.compile(
    r"^(\S+) \S+\s+\d+ mon\.(\w+)@\d+\((\w+)\).*send_reply .*mon_command_ack\(\[(.*?)\]=(-?\d+) ?(.*)\) v1$"
)


def replies(run):
    sets, gets = [], []
    for path in sorted(glob.glob(os.path.join(run, "nodes", "*", "stderr*.log"))):
        with open(path, errors="replace") as f:
            for line in f:
                if "send_reply" not in line or "config-key" not in line:
                    continue
                m = REPLY.match(line.rstrip())
                if not m:
                    continue
                stamp, node, role, cmd, rc, rest = m.groups()
                version = re.search(r" v(\d+)$", rest)
                key = re.search(r'key[=":\s]+([\w-]+)', cmd)
                if rc != "0" or version is None or key is None:
                    continue
                t = datetime.fromisoformat(stamp.replace("+0000", "+00:00")).timestamp()
                entry = (t, node, role, key.group(1), int(version.group(1)))
                (sets if "config-key set" in cmd else gets).append(entry)
    return sorted(sets), sorted(gets)


def main(runs):
    found = 0
    for run in runs:
        sets, gets = replies(run)
        newest = {}  # key -> sets answered so far, in time order
        stale = []
        i = 0
        for t, node, role, key, v in gets:
            while i < len(sets) and sets[i][0] < t:
                newest.setdefault(sets[i][3], []).append(sets[i])
                i += 1
            later = [s for s in newest.get(key, []) if s[4] > v]
            if later:
                stale.append((t, node, role, key, v, max(later, key=lambda s: s[4])))
        for t, node, role, key, v, s in stale[:10]:
            print(f"{run}: get {key} answered by {node} ({role}) at v{v}, {1000 * (t - s[0]):.1f} ms "
                  f"after a set of {key} at v{s[4]} was answered by {s[1]} ({s[2]})")
        print(f"{run}: {len(gets)} gets, {len(sets)} sets, {len(stale)} answered from behind")
        found += len(stale)
    return 1 if found else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
