#!/usr/bin/env bash
# `faultline serve` throughput (issue 17): requests/s for a run page, with and without
# keep-alive, from ApacheBench (`apt-get install -y apache2-utils`).
#
#   benches/serve.sh FAULTLINE_BIN REPORTS_DIR [PAGE]
#
# Starts `FAULTLINE_BIN serve REPORTS_DIR --bind 127.0.0.1:PORT` (a free loopback port),
# waits until it answers, then drives a bounded count of GET requests for PAGE (default:
# the run page of REPORTS_DIR/latest, i.e. /latest/) — once on fresh connections
# (`Connection: close` semantics, one request each) and once with keep-alive — and prints
# one line per mode. Works against any faultline binary with the `serve` subcommand, old
# or new, so before/after figures come from the same client on the same machine.
#
# Environment:
#   REQUESTS     requests per mode (default 20000)
#   CONNECTIONS  concurrent connections (default 8)
#   PORT         port to listen on (default: a free one chosen by the kernel)
set -euo pipefail

bin=${1:?usage: benches/serve.sh FAULTLINE_BIN REPORTS_DIR [PAGE]}
dir=${2:?usage: benches/serve.sh FAULTLINE_BIN REPORTS_DIR [PAGE]}
page=${3:-/latest/}
requests=${REQUESTS:-20000}
connections=${CONNECTIONS:-8}
command -v ab >/dev/null || { echo "needs ab: apt-get install -y apache2-utils" >&2; exit 3; }

if [ -z "${PORT:-}" ]; then
    # Ask the kernel for a free loopback port (a small race with other listeners is
    # acceptable in a benchmark; serve fails loudly if it is taken).
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
url="http://127.0.0.1:$PORT$page"

"$bin" serve "$dir" --bind "127.0.0.1:$PORT" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

# Wait (bounded: 10 s) until the server answers the page.
for _ in $(seq 100); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then break; fi
    sleep 0.1
done
curl -fsS -o /dev/null "$url" || { echo "server did not answer $url" >&2; exit 3; }
bytes=$(curl -fsS "$url" | wc -c)

run() {
    local mode=$1
    shift
    local out
    out=$(ab -q -n "$requests" -c "$connections" "$@" "$url" 2>&1)
    local rps failed
    rps=$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' <<<"$out")
    failed=$(sed -n 's/^Failed requests: *\([0-9]*\).*/\1/p' <<<"$out")
    if [ -z "$rps" ]; then
        echo "$out" >&2
        exit 3
    fi
    printf '%-11s %8s req/s  (%s requests, %s connections, %s failed, page %s bytes)\n' \
        "$mode" "$rps" "$requests" "$connections" "${failed:-?}" "$bytes"
}

echo "$bin serve $dir: GET $page"
run "close" 
run "keep-alive" -k
