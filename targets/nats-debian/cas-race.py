#!/usr/bin/env python3
"""The smallest scenario of faultline's finding on nats-server 2.9.10 (README, "Testing
NATS JetStream": compare-and-set on 2.9.10): two clients update one key of a key-value
bucket with the same expected last revision at the same moment. JetStream must store at
most one of them (the other is refused with "wrong last sequence"). Prints how many
rounds had both acknowledged.

    targets/nats/.venv/bin/python targets/nats-debian/cas-race.py \\
        nats://10.213.0.34:4222 nats://10.213.0.35:4222 500 3

Arguments: the two clients' servers, rounds, and the bucket's replicas. Start a cluster
with `faultline run --target nats-debian --nemesis none --leave-running` (its log names the
nodes' addresses) and remove it with `faultline cleanup RUN_ID` afterwards. The bucket is
named `race<replicas>`; keys k0…k19 are reused round after round.
"""

import asyncio
import json
import sys

import nats
from nats.js.errors import APIError, KeyWrongLastSequenceError


async def main():
    a_url, b_url = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    replicas = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    bucket = "race%d" % replicas
    ca = await nats.connect(a_url)
    cb = await nats.connect(b_url)
    ka = await ca.jetstream().create_key_value(bucket=bucket, history=1, replicas=replicas)
    kb = await cb.jetstream().key_value(bucket)
    both = one = 0
    for i in range(rounds):
        key = "k%d" % (i % 20)
        try:
            rev = (await ka.get(key)).revision
        except Exception:
            rev = await ka.create(key, b"0")

        async def update(kv, value):
            try:
                await kv.update(key, value, last=rev)
                return True
            except (KeyWrongLastSequenceError, APIError):
                return False

        ra, rb = await asyncio.gather(update(ka, b"a%d" % i), update(kb, b"b%d" % i))
        both += ra and rb
        one += ra != rb
    print(json.dumps({"rounds": rounds, "replicas": replicas, "both_acknowledged": both,
                      "one_acknowledged": one, "a": a_url, "b": b_url}))
    await ca.close()
    await cb.close()


asyncio.run(main())
