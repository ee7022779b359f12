#!/bin/sh
# Installs what the zookeeper target needs, idempotently: Debian's zookeeper (3.8.0, with
# Java 17), slf4j-simple (ZooKeeper's log on stderr), and kazoo from PyPI in a venv of its
# own (Debian's python3-kazoo is 2.8; the adapter is written against 2.11). A no-op when
# everything is there; refuses, saying what to run, when something is missing and we are
# not root. faultline runs it before every run of the target; tests/it/zookeeper.rs and
# .ci/run run it too.
venv=/opt/faultline/kazoo
[ -f /usr/share/java/zookeeper.jar ] && [ -x /usr/bin/java ] &&
  [ -f /usr/share/java/slf4j-simple.jar ] &&
  "$venv/bin/python3" -c 'import kazoo' 2>/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ZooKeeper or kazoo is not installed: as root, run 'apt-get install zookeeper libslf4j-java python3-venv' and 'python3 -m venv $venv && $venv/bin/pip install kazoo==2.11.*' (or targets/zookeeper/install.sh)" >&2
  exit 1
fi
set -e
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  zookeeper libslf4j-java python3-venv >&2
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q 'kazoo==2.11.*' >&2
