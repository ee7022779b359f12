#!/usr/bin/env python3
"""faultline's membership commands for NATS JetStream (target.yaml `membership`).

    member.py remove URL NAME    take server NAME out of the JetStream meta group
    member.py add URL NAME       nothing to ask: a NATS server joins by starting

URL is a running server's client URL. `remove` asks $JS.API.SERVER.REMOVE as the system
user of membership.conf (the only account that API answers in); the meta leader proposes
the removal and answers `success`. Idempotent, as faultline asks (it tries a command again
after a failure, and a removal that timed out may have been applied): a server the meta
group no longer lists (JSClusterServerNotMemberErr, 10044) counts as removed.

`add` prints what it did not do and exits 0: NATS has no call that adds a server; faultline
then starts the node on an empty store with routes to the members, and whether the meta
group takes a server of a removed name back is for the run to show.
"""

import asyncio
import json
import sys

import nats
import nats.errors

SYS_USER = "faultline-sys"
SYS_PASSWORD = "faultline-sys"
NOT_A_MEMBER = 10044


async def remove(url: str, name: str) -> int:
    try:
        nc = await nats.connect(
            url,
            user=SYS_USER,
            password=SYS_PASSWORD,
            connect_timeout=5,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
    except Exception as e:  # noqa: BLE001 - every failure to connect is reported the same way
        print(f"member.py: cannot log in to {url} as the system user ({e!r}); "
              "is the cluster running with membership.conf?", file=sys.stderr)
        return 1
    try:
        msg = await nc.request("$JS.API.SERVER.REMOVE", json.dumps({"peer": name}).encode(), timeout=10)
    except nats.errors.NoRespondersError:
        print(f"member.py: no JetStream meta leader answered the removal of {name} at {url}", file=sys.stderr)
        return 1
    except nats.errors.TimeoutError:
        print(f"member.py: the removal of {name} asked at {url} timed out (it may have been applied)",
              file=sys.stderr)
        return 1
    finally:
        await nc.close()
    try:
        answer = json.loads(msg.data)
    except ValueError:
        print(f"member.py: unreadable answer to the removal of {name}: {msg.data[:200]!r}", file=sys.stderr)
        return 1
    if answer.get("success"):
        print(f"member.py: the meta group removes {name}")
        return 0
    error = answer.get("error") or {}
    if error.get("err_code") == NOT_A_MEMBER:
        print(f"member.py: {name} is not a member of the meta group at {url}: removed")
        return 0
    print(f"member.py: the removal of {name} was refused: {json.dumps(error)}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "remove":
        return asyncio.run(remove(argv[2], argv[3]))
    if len(argv) == 4 and argv[1] == "add":
        print(f"member.py: NATS has no add; {argv[3]} joins when it starts with routes to the members")
        return 0
    print("usage: member.py remove URL NAME | member.py add URL NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
