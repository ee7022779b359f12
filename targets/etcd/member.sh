#!/bin/sh
# faultline's membership commands for etcd (target.yaml `membership`), run on the
# controller:  member.sh remove ENDPOINT NAME   |   member.sh add ENDPOINT NAME PEER_URL
# ENDPOINT is a running member's client URL. etcd removes members by ID, so `remove`
# looks the ID up by name first; `add` prints etcdctl's answer (the cluster it joins).
# Both are idempotent, as faultline asks: it tries a command again after a failure, and a
# change that timed out may have been applied — a name no longer listed is removed, a peer
# URL already listed is added.
set -eu
op=$1 endpoint=$2 name=$3
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$endpoint" --command-timeout=10s "$@"; }
case "$op" in
remove)
    # `member list` lines: ID, status, name, peer URLs, client URLs, is-learner
    id=$(ctl member list | awk -F', ' -v n="$name" '$3 == n { print $1 }')
    if [ -z "$id" ]; then
        echo "member.sh: $name is not a member of the cluster at $endpoint: removed"
        exit 0
    fi
    ctl member remove "$id"
    ;;
add)
    # An added member that has not started yet is listed with an empty name.
    if ctl member list | awk -F', ' -v u="$4" '$4 == u { found = 1 } END { exit !found }'; then
        echo "member.sh: $4 is already a member of the cluster at $endpoint: added"
        exit 0
    fi
    ctl member add "$name" --peer-urls="$4"
    ;;
*)
    echo "member.sh: unknown operation $op (remove or add)" >&2
    exit 2
    ;;
esac
