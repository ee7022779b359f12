#!/usr/bin/env bash
# Interrupt soak (issue 15): interrupt `faultline run` with SIGINT, SIGTERM and SIGKILL at
# seeded random moments of its whole life (start-up, main phase, final reads, checking),
# across every nemesis in nemesis/*.yaml, run `faultline cleanup` after each, and check
# that nothing of the run is left on this machine.
#
#   benches/interrupt-soak.sh [COUNT] [SEED]        # default: 24 runs, seed 1; as root
#
# Run i (0-based) uses signal INT/TERM/KILL (i mod 3), nemesis file i mod (number of
# nemesis files), seed i, and a moment drawn from SEED:
#   - even i: uniformly over MIN_MOMENT … MAX_MOMENT seconds after the controller starts;
#   - odd i: 0 … 0.3 s (0 … 0.03 s for `teardown complete`) after a line of its faultline.log, cycling through the short phases
#     a uniform moment rarely hits (start-up takes ~0.9 s, checking ~0.1 s of a ~11 s life):
#     `installing` (the install step), `hosts:` (namespaces up, nodes starting),
#     `main phase over` (healing), `final reads of`, `teardown complete` (checking).
#
# Environment:
#   FAULTLINE_BIN  faultline binary (default target/release/faultline)
#   TIME_LIMIT     --time-limit of each run in seconds (default 8)
#   CONCURRENCY    --concurrency of each run (default 3)
#   MIN_MOMENT     earliest signal moment in s (default 0.5)
#   MAX_MOMENT     latest signal moment in s (default TIME_LIMIT + 4: a whole run of 3 nodes
#                  lives ~TIME_LIMIT + 3 s here, so later moments would find it gone)
#   SOAK_STORE     where run directories go (default $TMPDIR/faultline-soak-SEED-PID; kept)
#   EXIT_BOUND     seconds a SIGINT/SIGTERMed controller may take to exit (default 60)
#
# What counts as left behind (the criteria of tests/it/run.rs `leftovers`, widened):
#   - network namespaces fl-<run id>-* (and the controller's probe namespace fl-probe-<pid>)
#   - links flbr<run id> / fl<run id>* in the root namespace
#   - nftables tables faultline_* in the root namespace; iptables NFQUEUE rules there
#   - processes of the run: every descendant of the controller seen while it ran (sampled
#     every 0.2 s, identified by PID and start time), every process group the run's state
#     file recorded, and every process whose cmdline or cwd names faultline-data-<run id>;
#     any of them still alive (not a zombie) is a leftover, state T is reported as stopped
#   - /run/faultline/<run id>.json (+ .tmp), the run's slice lock file when nobody holds it
#   - mounts naming the run (FUSE or the netns bind mounts /run/netns/fl-<run id>-*)
#   - $TMPDIR/faultline-data-<run id> (node data dirs and libfaketime offset files)
#
# Only the controller this script started is ever signalled (by its PID); nothing else is
# killed. Network traffic stays inside the namespaces faultline creates.
set -u
export LC_ALL=C

COUNT=${1:-24}
SEED=${2:-1}
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
FAULTLINE_BIN=${FAULTLINE_BIN:-target/release/faultline}
TIME_LIMIT=${TIME_LIMIT:-8}
CONCURRENCY=${CONCURRENCY:-3}
MIN_MOMENT=${MIN_MOMENT:-0.5}
MAX_MOMENT=${MAX_MOMENT:-$((TIME_LIMIT + 4))}
EXIT_BOUND=${EXIT_BOUND:-60}
TMP=${TMPDIR:-/tmp}
STORE=${SOAK_STORE:-$TMP/faultline-soak-$SEED-$$}
STATE_DIR=${FAULTLINE_STATE_DIR:-/run/faultline}

if [ "$(id -u)" != 0 ]; then
    echo "interrupt-soak: skipped: needs root (faultline creates network namespaces and nftables tables)"
    exit 0
fi
if [ ! -x "$FAULTLINE_BIN" ]; then
    echo "interrupt-soak: no faultline binary at $FAULTLINE_BIN (build it, or set FAULTLINE_BIN)" >&2
    exit 3
fi
FAULTLINE_BIN=$(realpath "$FAULTLINE_BIN")
mkdir -p "$STORE"
WORK=$STORE/.soak
mkdir -p "$WORK"

mapfile -t NEMESES < <(ls nemesis/*.yaml | sed 's|.*/||; s|\.yaml$||' | sort)
SIGNALS=(INT TERM KILL)
# Seeded moments, one per run.
mapfile -t MOMENTS < <(awk -v s="$SEED" -v n="$COUNT" -v lo="$MIN_MOMENT" -v hi="$MAX_MOMENT" \
    'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%.2f\n", (i % 2 == 0) ? lo + rand() * (hi - lo) : rand() * 0.3 }')
ANCHORS=("installing " "hosts: " "main phase over" "final reads of" "teardown complete")

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# Alive and not a zombie.
alive() {
    local s
    s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$s" ] && [ "${s:0:1}" != Z ] && [ "${s:0:1}" != X ]
}
# "STATE START_TICKS" of a PID, empty if gone.
stat_of() {
    local s
    s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    # shellcheck disable=SC2086
    set -- $s
    echo "$1 ${20}"
}

# Record every descendant of $1 (PID, start ticks, comm, cmdline) in $2 and the run id (from
# the state file naming $1 as its controller) in $3, every 0.2 s while $1 lives.
sample() {
    local root=$1 out=$2 idf=$3 c st f
    while alive "$root"; do
        for c in $(ps -e -o pid=,ppid= | awk -v r="$root" '
            { parent[$1] = $2 }
            END {
                d[r] = 1; changed = 1
                while (changed) { changed = 0
                    for (x in parent) if (!(x in d) && (parent[x] in d)) { d[x] = 1; changed = 1 } }
                for (x in d) if (x != r) print x
            }'); do
            st=$(stat_of "$c")
            [ -n "$st" ] && echo "$c ${st#* } $(cat "/proc/$c/comm" 2>/dev/null) :: $( { tr '\0' ' ' <"/proc/$c/cmdline"; } 2>/dev/null | cut -c1-200)" >>"$out"
        done
        if [ ! -s "$idf" ]; then
            for f in "$STATE_DIR"/*.json; do
                [ -f "$f" ] || continue
                if grep -A1 '"controller"' "$f" 2>/dev/null | grep -q "\"pid\": $root,"; then
                    basename "$f" .json >"$idf"
                fi
            done
        fi
        if [ -s "$idf" ]; then
            f="$STATE_DIR/$(cat "$idf").json"
            [ -f "$f" ] && cp "$f" "$idf.state.json" 2>/dev/null
        fi
        sleep 0.2
    done
}

# The phase the run is in, from the last lines of its faultline.log.
phase_of() {
    local log=$1
    [ -f "$log" ] || { echo "start-up (no log yet)"; return; }
    awk '
        /run directory /                  { p = "start-up (store, sweep)" }
        /run id /                         { p = "start-up (plan)" }
        /installing /                     { p = "start-up (install)" }
        /hosts: /                         { p = "start-up (nodes)" }
        /cluster ready/                   { p = "main" }
        /main phase over/                 { p = "healing" }
        /final reads of/                  { p = "final reads / stopping nodes" }
        /teardown complete|cleanup: /     { p = "checking" }
        /checker: /                       { p = "report" }
        /report: /                        { p = "done (reported)" }
        /interrupted \(SIG|terminated \(SIG/ { p = p " +stop" }
        /run failed/                      { p = p " +failed" }
        END { print (p == "" ? "start-up (empty log)" : p) }' "$log"
}

# Faults in force (applied, inverse not yet applied) from a history's nemesis lines.
faults_in_force() {
    local h=$1
    [ -f "$h" ] || { echo "-"; return; }
    grep '"process":"nemesis"' "$h" 2>/dev/null | grep '"type":"info"' |
        sed -n 's/.*"f":"\([^"]*\)".*/\1/p' | awk '
        function on(k) { s[k] = 1 } function off(k) { delete s[k] }
        /^start-partition$/ { on("partition") } /^stop-partition$/ { off("partition") }
        /^start-delay$/ { on("delay") } /^stop-delay$/ { off("delay") }
        /^start-loss$/ { on("loss") } /^stop-loss$/ { off("loss") }
        /^pause$/ { on("pause") } /^resume$/ { off("pause") }
        /^kill$/ { on("kill") } /^start$/ { off("kill") }
        /^bump-clock$|^strobe-clock$/ { on("clock") } /^reset-clock$/ { off("clock") }
        END { o = ""; for (k in s) o = o (o == "" ? "" : "+") k; print (o == "" ? "none" : o) }'
}

# Everything of run $1 (controller PID $2, sample file $3, slice lock $4) still present.
leftovers() {
    local id=$1 cpid=$2 samples=$3 slice=$4 found=() l pid ticks rest st p cmd cwd
    if [ -n "$id" ]; then
        while read -r l _; do
            case $l in "fl-$id-"*) found+=("netns:$l") ;; esac
        done < <(ip netns list 2>/dev/null)
        while read -r l _; do
            l=${l%@*}
            case $l in "flbr$id" | "fl$id"*) found+=("link:$l") ;; esac
        done < <(ip -br link 2>/dev/null)
        [ -e "$STATE_DIR/$id.json" ] && found+=("state:$STATE_DIR/$id.json")
        [ -e "$STATE_DIR/$id.json.tmp" ] && found+=("state:$STATE_DIR/$id.json.tmp")
        [ -e "$TMP/faultline-data-$id" ] && found+=("dir:$TMP/faultline-data-$id($(find "$TMP/faultline-data-$id" | wc -l) entries)")
        while read -r _ mnt type _; do
            case $mnt in *"faultline-data-$id"* | "/run/netns/fl-$id-"*) found+=("mount:$mnt($type)") ;; esac
        done </proc/mounts
        # Any process whose cmdline or cwd names the run's data dir.
        for p in $( { grep -lsa "faultline-data-$id" /proc/[0-9]*/cmdline
                      find /proc/[0-9]*/cwd -maxdepth 0 -lname "*faultline-data-$id*"; } 2>/dev/null |
                    cut -d/ -f3 | sort -u); do
            [ "$p" = $$ ] && continue
            st=$(stat_of "$p")
            [ -n "$st" ] && [ "${st%% *}" != Z ] &&
                found+=("proc:$p[${st%% *}]:$( { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | cut -c1-60)")
        done
    fi
    [ -e "/run/netns/fl-probe-$cpid" ] && found+=("netns:fl-probe-$cpid")
    while read -r _ mnt type _; do
        case $type in fuse*) case $mnt in *faultline* | */fl-*) found+=("fuse:$mnt") ;; esac ;; esac
    done </proc/mounts
    if nft list tables 2>/dev/null | grep -q 'faultline_'; then
        found+=("nft:$(nft list tables | grep faultline_ | tr '\n' ' ')")
    fi
    if iptables-save 2>/dev/null | grep -q NFQUEUE; then
        found+=("iptables:$(iptables-save | grep -c NFQUEUE) NFQUEUE rule(s)")
    fi
    # Sampled descendants and recorded groups: alive with the same start time = ours.
    if [ -s "$samples" ]; then
        while read -r pid ticks rest; do
            st=$(stat_of "$pid")
            [ -z "$st" ] && continue
            [ "${st#* }" != "$ticks" ] && continue
            [ "${st%% *}" = Z ] && continue
            found+=("proc:$pid[${st%% *}]:${rest%% ::*}")
        done < <(sort -u -k1,2 "$samples")
    fi
    if alive "$cpid"; then found+=("controller:$cpid"); fi
    if [ -n "$slice" ] && [ -e "$STATE_DIR/$slice" ]; then
        local ino
        ino=$(stat -c %i "$STATE_DIR/$slice" 2>/dev/null)
        if [ -n "$ino" ] && ! awk '{ print $6 }' /proc/locks | grep -q ":$ino\$"; then
            found+=("lock:$STATE_DIR/$slice(unheld)")
        fi
    fi
    # De-duplicate (a process can be found both ways).
    printf '%s\n' "${found[@]}" | awk 'NF && !seen[$0]++' | sort -t: -k1,2 -u | tr '\n' ' '
}

printf 'interrupt soak: %d runs, seed %d, nemeses %d (%s), moments %s…%s s, time limit %ss, concurrency %s\n' \
    "$COUNT" "$SEED" "${#NEMESES[@]}" "${NEMESES[*]}" "$MIN_MOMENT" "$MAX_MOMENT" "$TIME_LIMIT" "$CONCURRENCY"
printf 'binary %s, store %s, started %s\n\n' "$FAULTLINE_BIN" "$STORE" "$(date -u +%FT%TZ)"
FMT='%3s | %-26s | %-6s | %-24s | %6s | %-30s | %-15s | %4s | %6s | %-10s | %s\n'
printf "$FMT" i nemesis sig "moment (s)" "at s" "phase at signal" "faults in force" exit "exit s" "self-clean" "left after cleanup"
printf "$FMT" --- -------------------------- ------ ------------------------ ------ ------------------------------ --------------- ---- ------ ---------- ------------------

# Bash reports each SIGKILLed background job on stderr ("Killed …"); keep that (and any
# other stderr of this script) in a file, not in the table.
exec 2>>"$WORK/soak.stderr"
passed=0
failed=0
SUMMARY=$WORK/summary.tsv
: >"$SUMMARY"
for ((i = 0; i < COUNT; i++)); do
    sig=${SIGNALS[$((i % 3))]}
    nem=${NEMESES[$((i % ${#NEMESES[@]}))]}
    moment=${MOMENTS[$i]}
    anchor=""
    if ((i % 2 == 1)); then anchor=${ANCHORS[$(((i - 1) / 2 % ${#ANCHORS[@]}))]}; fi
    rs=$STORE/run-$i
    mkdir -p "$rs"
    samples=$WORK/$i.procs
    idf=$WORK/$i.id
    : >"$samples"
    : >"$idf"
    t0=$(now)
    # `&` in a script ignores SIGINT in the child; give the controller default dispositions
    # back so it installs its own handlers exactly as when run from a terminal.
    env --default-signal=INT,QUIT "$FAULTLINE_BIN" run --nodes 3 --nemesis "$nem" \
        --time-limit "${TIME_LIMIT}s" --seed "$i" --workload register \
        --concurrency "$CONCURRENCY" --quiet --store "$rs" \
        >"$WORK/$i.stdout" 2>"$WORK/$i.stderr" &
    cpid=$!
    sample "$cpid" "$samples" "$idf" &
    spid=$!

    # Wait for the moment (or the controller's own end).
    if [ -n "$anchor" ]; then
        while alive "$cpid" && awk -v a="$(elapsed "$t0")" 'BEGIN { exit !(a < 60) }'; do
            log=$(ls -d "$rs"/*/*/faultline.log 2>/dev/null | grep -v /latest/ | head -1)
            [ -n "$log" ] && grep -qF "] $anchor" "$log" && break
            sleep 0.01
        done
        # Checking and reporting take ~0.1 s: a tenth of the offset after `teardown complete`.
        [ "$anchor" = "teardown complete" ] && moment=$(awk -v m="$moment" 'BEGIN { printf "%.3f", m / 10 }')
        sleep "$moment"
        at=$(elapsed "$t0")
        when="${anchor% }+$moment"
    else
        while alive "$cpid" && awk -v a="$(elapsed "$t0")" -v m="$moment" 'BEGIN { exit !(a < m) }'; do
            sleep 0.05
        done
        at=$(elapsed "$t0")
        when="$moment"
    fi
    log=$(ls -d "$rs"/*/*/faultline.log 2>/dev/null | grep -v /latest/ | head -1)
    hist=${log%faultline.log}history.jsonl
    if alive "$cpid"; then
        phase=$(phase_of "$log")
        faults=$(faults_in_force "$hist")
        cp "$log" "$WORK/$i.log-at-signal" 2>/dev/null
        tsig=$(now)
        sent=$sig
        # It may end between the check and the signal: then the signal was not sent.
        kill -s "$sig" "$cpid" 2>/dev/null || { sent="($sig)"; phase="exited before signal"; faults="-"; }
    else
        phase="exited before signal"
        faults="-"
        tsig=$(now)
        sent="($sig)"
    fi

    # Bounded wait for the controller to exit.
    bound=$EXIT_BOUND
    [ "$sig" = KILL ] && bound=10
    while alive "$cpid" && awk -v a="$(elapsed "$tsig")" -v b="$bound" 'BEGIN { exit !(a < b) }'; do
        sleep 0.05
    done
    problems=""
    if alive "$cpid"; then
        exit_s=">$bound"
        problems="controller did not exit within ${bound}s; "
        kill -s KILL "$cpid" 2>/dev/null
    fi
    wait "$cpid" 2>/dev/null
    code=$?
    [ -z "$problems" ] && exit_s=$(elapsed "$tsig")
    wait "$spid" 2>/dev/null
    log=$(ls -d "$rs"/*/*/faultline.log 2>/dev/null | grep -v /latest/ | head -1)
    id=$(cat "$idf" 2>/dev/null)
    if [ -z "$id" ] && [ -n "$log" ]; then
        id=$(sed -n 's/.*\] run id \([0-9a-f]*\)$/\1/p' "$log" | head -1)
    fi
    # The subnet slice this run locked: the bridge is .1 of it, n1 .2.
    slice=""
    if [ -n "$log" ]; then
        n1=$(sed -n 's/.*\]   n1 at \([0-9.]*\)$/\1/p' "$log" | head -1)
        if [ -n "$n1" ]; then
            slice="slice-${n1%.*}.$((${n1##*.} - 2)).lock"
        fi
    fi
    # Recorded process groups are processes of the run too.
    if [ -s "$idf.state.json" ]; then
        tr -d ' \n' <"$idf.state.json" | grep -o '"groups":\[[^]]*\]' |
            grep -o '{"pid":[0-9]*,"start_ticks":[0-9]*}' |
            sed 's/{"pid":\([0-9]*\),"start_ticks":\([0-9]*\)}/\1 \2 group :: recorded group/' >>"$samples"
    fi

    # Before cleanup: a SIGINT/SIGTERMed run must have torn everything down itself. Node
    # processes of a SIGKILLed run die by PDEATHSIG; give the kernel a moment either way.
    self=""
    if [ "$sent" != KILL ]; then
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            self=$(leftovers "$id" "$cpid" "$samples" "$slice")
            [ -z "$self" ] && break
            sleep 0.3
        done
    fi
    "$FAULTLINE_BIN" cleanup >"$WORK/$i.cleanup" 2>&1
    cleanup_rc=$?
    left=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        left=$(leftovers "$id" "$cpid" "$samples" "$slice")
        [ -z "$left" ] && break
        sleep 0.3
    done
    [ "$cleanup_rc" = 0 ] || problems+="cleanup exited $cleanup_rc; "
    [ -n "$left" ] && problems+="left after cleanup: $left; "
    if [ "$sent" = KILL ]; then
        selfcol="n/a (KILL)"
    elif [ "$sent" = "($sig)" ]; then
        selfcol=$([ -z "$self" ] && echo yes || echo NO)
    elif [ -z "$self" ]; then
        selfcol="yes"
    else
        selfcol="NO"
        problems+="left by the run itself: $self; "
    fi
    if [ -z "$problems" ]; then
        passed=$((passed + 1))
        verdict=ok
    else
        failed=$((failed + 1))
        verdict=FAIL
        echo "$problems" >"$WORK/$i.problems"
    fi
    printf "$FMT" "$i" "$nem" "$sent" "$when" "$at" "$phase" "$faults" "$code" "$exit_s" "$selfcol" \
        "$([ -z "$left" ] && echo "nothing" || echo "$left")$([ -n "$self" ] && echo " (before cleanup: $self)")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$nem" "$sent" "$when" "$phase" \
        "$faults" "$code" "$exit_s" "$selfcol" "${left:-nothing}" "$verdict" "${id:--}" >>"$SUMMARY"
done

echo
echo "by signal x phase at signal (runs; failures):"
awk -F'\t' '{ split($5, a, " "); ph = a[1]; if (a[1] == "final") ph = "final-reads"; if (a[1] == "exited") ph = "exited-first"; if (a[1] == "done") ph = "done"
    k = $3 "\t" ph; n[k]++; if ($11 != "ok") f[k]++ }
    END { for (k in n) printf "  %s\t%d run(s)\t%d failed\n", k, n[k], f[k] + 0 }' "$SUMMARY" | sort
awk -F'\t' '$3 ~ /^[A-Z]+$/ { n[$3]++ } $3 ~ /^\(/ { e++ }
    END { printf "interrupted: INT %d, TERM %d, KILL %d; exited before the signal (signal not sent): %d\n", n["INT"], n["TERM"], n["KILL"], e }' "$SUMMARY"
echo "run directories and per-run files (stdout, stderr, cleanup output, samples): $STORE"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
