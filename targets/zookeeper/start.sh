#!/bin/sh
# Starts one ZooKeeper quorum peer (Debian's zookeeper 3.8) in the foreground for faultline.
#
#   start.sh NODE IP DATA_DIR CLUSTER CLIENT_PORT QUORUM_PORT ELECTION_PORT
#
# CLUSTER is faultline's {cluster}: "n1=10.213.0.2,n2=10.213.0.3,…" in the same order on
# every node, so a node's myid is its 1-based position there (a restart, or a twin of the
# node, gets the same id). zoo.cfg and myid are rewritten at every start from the same
# arguments, so a restart on the same data dir sees the same configuration.
set -eu
[ $# -eq 7 ] || { echo "usage: $0 NODE IP DATA_DIR CLUSTER CLIENT_PORT QUORUM_PORT ELECTION_PORT" >&2; exit 2; }
node=$1 ip=$2 dir=$3 cluster=$4 client_port=$5 quorum_port=$6 election_port=$7

mkdir -p "$dir"
cfg="$dir/zoo.cfg.tmp"
# tickTime 200 ms (Debian's default is 2 s): elections and the sync with a new leader come
# within seconds, so a 20 s run sees several. initLimit 25 ticks (5 s) leaves a JVM on a busy
# 2-core machine time to load a snapshot and sync; syncLimit 5 ticks (1 s) drops a follower
# that stopped answering the leader.
cat > "$cfg" <<CFG
tickTime=200
initLimit=25
syncLimit=5
dataDir=$dir
clientPort=$client_port
# The client port on the node's own address only (the default is every address).
clientPortAddress=$ip
# Every client comes from faultline's bridge address: the default cap of 60 connections
# per address would refuse workers and final readers.
maxClientCnxns=0
# srvr names the leader (the adapter's "leaders"); ruok for a quick look by hand.
4lw.commands.whitelist=srvr,ruok,mntr,stat
# The AdminServer is Jetty on 0.0.0.0:8080: not needed, and one less listener per node.
admin.enableServer=false
# A one-node cluster is still a quorum of one (not standalone mode), as in every run.
standaloneEnabled=false
CFG
id=0 i=0 myid=0
old_ifs=$IFS
IFS=,
for entry in $cluster; do
  i=$((i + 1))
  name=${entry%%=*}
  addr=${entry#*=}
  # The peer's own entry is the address its quorum and election ports bind to
  # (quorumListenOnAllIPs is false): the namespace's address, never 0.0.0.0.
  echo "server.$i=$addr:$quorum_port:$election_port" >> "$cfg"
  [ "$name" = "$node" ] && myid=$i
done
IFS=$old_ifs
[ "$myid" -gt 0 ] || { echo "node $node is not in the cluster $cluster" >&2; exit 2; }
mv "$cfg" "$dir/zoo.cfg"
echo "$myid" > "$dir/myid.tmp" && mv "$dir/myid.tmp" "$dir/myid"

# zookeeper.jar's manifest names its dependencies; slf4j-simple is the logging binding
# (without one ZooKeeper logs nothing): INFO and above on stderr, which faultline keeps
# per start in nodes/<node>/stderr.log. A small heap and the serial collector keep three
# JVMs light on a 2-core machine. exec: the JVM is the process faultline signals.
exec /usr/bin/java \
  -Xmx256m -XX:+UseSerialGC \
  -Dorg.slf4j.simpleLogger.showDateTime=true \
  -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
  -Dzookeeper.log.dir="$dir" \
  -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
