#!/bin/sh
# Starts one Ceph monitor (Debian's ceph-mon 16.2) in the foreground for faultline.
#
#   start.sh NODE IP DATA_DIR CLUSTER CLUSTER_TOKEN PORT
#
# CLUSTER is faultline's {cluster}: "n1=10.213.0.2,n2=10.213.0.3,…", the same on every node;
# the monitor's name is the node's. CLUSTER_TOKEN is fresh for every run and the same on
# every node, so the fsid derived from it is too: each node builds the same monmap (same
# fsid, same names and addresses) on its own, with no coordination, and only on its first
# start. ceph.conf is rewritten at every start from the same arguments.
set -eu
[ $# -eq 6 ] || { echo "usage: $0 NODE IP DATA_DIR CLUSTER CLUSTER_TOKEN PORT" >&2; exit 2; }
node=$1 ip=$2 dir=$3 cluster=$4 token=$5 port=$6

# A UUID from the token's hash: same token, same fsid.
h=$(printf '%s' "$token" | sha256sum | cut -c1-32)
fsid=$(echo "$h" | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12})$/\1-\2-\3-\4-\5/')

mon_host="" found=0
old_ifs=$IFS
IFS=,
for entry in $cluster; do
  name=${entry%%=*}
  addr=${entry#*=}
  mon_host="$mon_host${mon_host:+,}v2:$addr:$port"
  [ "$name" = "$node" ] && found=1
done
IFS=$old_ifs
[ "$found" = 1 ] || { echo "node $node is not in the cluster $cluster" >&2; exit 2; }

mkdir -p "$dir/mon"
conf="$dir/ceph.conf"
cat > "$conf.tmp" <<CONF
[global]
fsid = $fsid
mon host = $mon_host
# No cephx: faultline tests the monitors' consensus, not their authentication.
auth cluster required = none
auth service required = none
auth client required = none
# Leases and elections at a fifth of Ceph's defaults (mon lease 5 s, election timeout 5 s):
# a leader drops a silent peon, and a peon its silent leader, after mon_lease x
# mon_lease_ack_timeout_factor (2) = 2 s instead of 10 s, so a 5 s partition of a 20 s run
# ends in an election rather than a stall. Paxos' rules are unchanged, and the lease is
# still five times the 0.2 s clock drift Ceph allows by default.
mon lease = 1
mon election timeout = 1
# msgr2 only, on the port faultline gives: one listener per monitor.
ms bind msgr1 = false
ms bind msgr2 = true
# Everything of this monitor lives under faultline's data dir (run data, fresh per run;
# the monitor refuses to start below mon_data_avail_crit = 5 % free disk there).
run dir = $dir
admin socket = $dir/mon.asok
log file = $dir/mon.log
[mon.$node]
public addr = v2:$ip:$port
mon data = $dir/mon
CONF
mv "$conf.tmp" "$conf"

if [ ! -e "$dir/mon/done" ] && [ -z "$(ls -A "$dir/mon")" ]; then
  map="$dir/monmap.tmp"
  set --
  IFS=,
  for entry in $cluster; do
    set -- "$@" --addv "${entry%%=*}" "[v2:${entry#*=}:$port]"
  done
  IFS=$old_ifs
  monmaptool --create --fsid "$fsid" "$@" --enable-all-features --set-min-mon-release 16 "$map" >&2
  ceph-mon --conf "$conf" --id "$node" --mkfs --monmap "$map" >&2
  rm -f "$map"
fi
exec ceph-mon --conf "$conf" --id "$node" -d
