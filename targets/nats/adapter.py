#!/usr/bin/env python3
"""faultline stdio adapter for NATS JetStream, on nats-py: a key-value bucket as a register.

faultline starts one of these per worker and writes one JSON request per line on stdin;
this script answers each with one JSON line on stdout (protocol: faultline's README,
"Writing a stdio adapter"). It keeps one connection to the worker's node
(FAULTLINE_ENDPOINT) and never follows the cluster's other servers: a client that moved to
another node on a disconnect would hide the faults faultline aims at its node.

The bucket `faultline` has one replica per node (FAULTLINE_ENDPOINTS), history 1, file
storage. Values are stored as their JSON text.

Reads come in two modes, chosen per run by the workload's or target's `serializable`
(FAULTLINE_SERIALIZABLE):
- default: the bucket is made with `allow_direct: false`, so a get is the stream's
  "get message" API, answered by the stream leader alone;
- serializable: `allow_direct: true`, so a get is a direct get, answered by whichever
  replica hears it first (usually the worker's own node): eventually consistent, a
  follower that lags or is cut off answers from what it has.

write = put. cas [old, new] = read the entry (value and revision), compare the value
(from null — absent, the register's initial value — it is create(key, new), refused
with compare-failed when the key exists), then
update(key, new, last=revision): the stream leader stores it only if the key's last
revision is still that one; else the op fails with `revision-changed` (certainly not done,
but no observation of the value, see REVISION_CHANGED).

Outcomes: ok when NATS acknowledged; fail when the op certainly did not happen (no
connection before anything was sent, no responders, a compare that differed, a wrong last
revision); info for everything else (timeouts above all: a put whose ack was lost may be
stored). A read that errs is info, which faultline records as fail (a read has no effect).
"""

import asyncio
import json
import os
import sys

import nats
import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue

ENDPOINT = os.environ["FAULTLINE_ENDPOINT"]
REPLICAS = len([e for e in os.environ.get("FAULTLINE_ENDPOINTS", "").split(",") if e]) or 1
DIRECT = os.environ.get("FAULTLINE_SERIALIZABLE") == "true"
# Answer before faultline gives up on the op, so the verdict is ours (ms -> s).
BUDGET_S = max(int(os.environ.get("FAULTLINE_OP_TIMEOUT_MS", "2000")) - 300, 100) / 1000.0
BUCKET = "faultline"
STREAM = "KV_" + BUCKET
SUBJECT_PREFIX = "$KV.%s." % BUCKET
# JetStream's error code for "stream not found" (as opposed to "no message").
STREAM_NOT_FOUND = 10059
# JetStream's error code for "wrong last sequence" (a failed compare of update).
WRONG_LAST_SEQUENCE = 10071
# A wrong last revision says the key was written since our read, not that its value differs
# from `old` now (another write may have stored `old` again): nothing happened, but it is no
# observation of the value, so not `compare-failed`, which faultline's checker takes as one.
# Answering compare-failed here made a run invalid whose counterexample held no fault (a
# cas "saw" a value other than the 1 the writes before it had just left).
REVISION_CHANGED = {"type": "fail", "error": "revision-changed"}
# Nothing to talk to: wait this long before answering fail, so a worker does not spin.
DOWN_PAUSE_S = 0.05


def log(msg):
    sys.stderr.write("adapter: %s\n" % msg)
    sys.stderr.flush()


class Adapter:
    def __init__(self):
        self.nc = None
        self.js = None
        self.kv = None
        # The bucket being made in the background: at most one attempt at a time, and
        # never inside an op's budget (creating a replicated stream takes a second or more).
        self.making = None

    async def connect(self):
        """A live connection, or None (then nothing was sent)."""
        if self.nc is not None and self.nc.is_connected:
            return self.nc
        if self.nc is not None:
            try:
                await self.nc.close()
            except Exception:
                pass
            self.nc = None

        async def quiet(_e):
            pass

        try:
            self.nc = await nats.connect(
                servers=["nats://" + ENDPOINT],
                allow_reconnect=False,
                connect_timeout=min(BUDGET_S, 1.0),
                max_reconnect_attempts=0,
                error_cb=quiet,
            )
        except Exception as e:
            log("cannot connect to %s: %r" % (ENDPOINT, e))
            self.nc = None
            return None
        self.js = self.nc.jetstream(timeout=BUDGET_S)
        # Bound to the stream by name, without asking the cluster (a stream info would
        # need the meta leader before the first op); it is made on demand below.
        self.kv = KeyValue(
            name=BUCKET,
            stream=STREAM,
            pre=SUBJECT_PREFIX,
            js=self.js,
            direct=DIRECT,
        )
        return self.nc

    def ensure_bucket(self):
        """Start making the bucket unless that is under way."""
        if self.making is None or self.making.done():
            self.making = asyncio.get_running_loop().create_task(self.make_bucket())

    async def make_bucket(self):
        """Create the bucket; the same config again is a no-op on the server."""
        try:
            await self.js.create_key_value(
                api.KeyValueConfig(
                    bucket=BUCKET,
                    history=1,
                    replicas=REPLICAS,
                    storage=api.StorageType.FILE,
                    direct=DIRECT,
                )
            )
            log("bucket %s ensured (replicas %d, allow_direct %s)" % (BUCKET, REPLICAS, DIRECT))
        except Exception as e:
            log("cannot create bucket %s: %r" % (BUCKET, e))

    async def get(self, key):
        """(value, revision); (None, None) when the key has no value."""
        try:
            msg = await asyncio.wait_for(
                self.js.get_msg(STREAM, subject=SUBJECT_PREFIX + key, direct=DIRECT), BUDGET_S
            )
        except nats.js.errors.NotFoundError as e:
            if e.err_code == STREAM_NOT_FOUND:
                # The bucket itself is gone (a coordinated power failure can take the
                # stream's definition with it): no key has a value any more. Said on
                # stderr, so a run's adapter logs show it, and made again for later ops.
                log("stream %s not found on read of %s: the bucket is gone" % (STREAM, key))
                self.ensure_bucket()
            return None, None
        if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
            return None, msg.seq
        return json.loads((msg.data or b"null").decode()), msg.seq

    async def read(self, key):
        value, _ = await self.get(key)
        return {"type": "ok", "value": value}

    async def write(self, key, value):
        await asyncio.wait_for(self.kv.put(key, json.dumps(value).encode()), BUDGET_S)
        return {"type": "ok"}

    async def cas(self, key, old, new):
        if old is None:
            try:
                await asyncio.wait_for(self.kv.create(key, json.dumps(new).encode()), BUDGET_S)
            except nats.js.errors.KeyWrongLastSequenceError:
                return {"type": "fail", "error": "compare-failed"}
            except nats.js.errors.APIError as e:
                if e.err_code == WRONG_LAST_SEQUENCE:
                    return {"type": "fail", "error": "compare-failed"}
                raise
            return {"type": "ok"}
        value, revision = await self.get(key)
        if revision is None or value != old:
            return {"type": "fail", "error": "compare-failed"}
        try:
            await asyncio.wait_for(
                self.kv.update(key, json.dumps(new).encode(), last=revision), BUDGET_S
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            return dict(REVISION_CHANGED)
        except nats.js.errors.APIError as e:
            if e.err_code == WRONG_LAST_SEQUENCE:
                return dict(REVISION_CHANGED)
            raise
        return {"type": "ok"}

    async def leaders(self):
        si = await asyncio.wait_for(self.js.stream_info(STREAM), BUDGET_S)
        leader = si.cluster.leader if si.cluster else None
        return {"type": "ok", "value": [leader] if leader else []}

    async def answer(self, req):
        f = req.get("f")
        if f not in ("read", "write", "cas", "leaders"):
            return {"type": "fail", "error": "unknown f %r" % (f,)}
        if await self.connect() is None:
            await asyncio.sleep(DOWN_PAUSE_S)
            return {"type": "fail", "error": "not connected to %s" % ENDPOINT}
        try:
            if f == "read":
                return await self.read(req["key"])
            if f == "write":
                return await self.write(req["key"], req["value"])
            if f == "cas":
                return await self.cas(req["key"], req["value"][0], req["value"][1])
            return await self.leaders()
        except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
            # Nobody serves the bucket's subjects: nothing was stored. The bucket may not
            # exist yet (or any more): make it for the next op.
            self.ensure_bucket()
            return {"type": "fail", "error": "no responders (no bucket or no stream leader)"}
        except nats.js.errors.NotFoundError as e:
            if f == "leaders":
                # No bucket yet (faultline asks for leaders as soon as the servers are
                # ready, before any op made it): nobody leads it now.
                self.ensure_bucket()
                return {"type": "ok", "value": []}
            return {"type": "info", "error": repr(e)}
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            return {"type": "info", "error": "timeout"}
        except (nats.errors.ConnectionClosedError, nats.errors.StaleConnectionError) as e:
            return {"type": "info", "error": "connection lost: %r" % (e,)}
        except nats.js.errors.APIError as e:
            return {"type": "info", "error": "jetstream: %r" % (e,)}


async def main():
    loop = asyncio.get_running_loop()
    adapter = Adapter()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            out = await adapter.answer(req)
        except Exception as e:  # an adapter bug must not look like a NATS answer
            out = {"type": "info", "error": "adapter error: %r" % (e,)}
        out["id"] = req.get("id")
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    if adapter.nc is not None:
        try:
            await adapter.nc.close()
        except Exception:
            pass


if __name__ == "__main__":
    asyncio.run(main())
