#!/bin/sh
# Installs what the ceph-mon target needs, idempotently: Debian's ceph-mon (16.2, with
# monmaptool from ceph-base) and python3-rados (librados' binding, for the adapter, which
# runs on Debian's /usr/bin/python3). A no-op when both are there; refuses, saying what to
# run, when something is missing and we are not root. faultline runs it before every run
# of the target; tests/it/ceph_mon.rs and .ci/run run it too.
[ -x /usr/bin/ceph-mon ] && [ -x /usr/bin/monmaptool ] &&
  /usr/bin/python3 -c 'import rados' 2>/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "Ceph monitors or python3-rados are not installed: as root, run 'apt-get install ceph-mon python3-rados' (or targets/ceph-mon/install.sh)" >&2
  exit 1
fi
set -e
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  ceph-mon python3-rados >&2
