#!/usr/bin/env bash
# Soak with faults (a script, not a test): the gateway example on Redis while
# Redis is stopped, frozen and restarted under load.
#
#   scripts/soak.sh                      120 s, 32 clients
#   DURATION=90 CLIENTS=24 scripts/soak.sh
#
# Starts a private redis-server on a free port (no persistence), the gateway
# example (release build) on free ports with REDIS_URL, and runs
# scripts/soak_client.py: CLIENTS threads, each with its own session, doing
# GET / (visit counter) and POST /cart/add and checking every answer against
# what it was acknowledged before. At 20 %, 45 % and 70 % of the run Redis is
# stopped (SIGTERM, restarted on the same port after FAULT_SECS), frozen
# (SIGSTOP for FAULT_SECS, then SIGCONT) and killed and restarted at once.
# Prints a Markdown table; exits 1 when an error happened outside the fault
# windows or an acknowledged write was lost.
#
# Knobs (environment): DURATION (120), CLIENTS (32), FAULT_SECS (4),
# GRACE (3: seconds after Redis is back that still count as the fault
# window), REQUEST_TIMEOUT (10), FAULTS (stop,freeze,restart; "none" for a
# baseline without faults), SCRAPE (5: seconds between GET /metrics, as
# Prometheus would; 0 never scrapes), NO_CART=1 (only GET /), BUILD=0 to skip
# the cargo build.
# All traffic goes to 127.0.0.1. Every process started here is stopped on exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DURATION="${DURATION:-120}" CLIENTS="${CLIENTS:-32}"
target="${CARGO_TARGET_DIR:-$repo/target}"

command -v redis-server >/dev/null || { echo "soak.sh: needs redis-server" >&2; exit 2; }
command -v python3 >/dev/null || { echo "soak.sh: needs python3" >&2; exit 2; }

if [[ ${BUILD:-1} != 0 ]]; then
    (cd "$repo" && cargo build --release -p sessionkit-examples --example gateway)
fi
gateway_bin="$target/release/examples/gateway"
[[ -x $gateway_bin ]] || { echo "soak.sh: no $gateway_bin" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")"
gateway_pid=""
client_pid=""
cleanup() {
    local pid
    if [[ -n $client_pid ]]; then
        kill "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
    fi
    if [[ -n $gateway_pid ]]; then kill "$gateway_pid" 2>/dev/null || true; fi
    if [[ -f $work/redis.pid ]]; then
        pid="$(cat "$work/redis.pid")"
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    fi
    [[ -n $gateway_pid ]] && wait "$gateway_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free local port (the kernel picks it; nothing else is told about it).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    local port=$1 i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "soak.sh: nothing listens on 127.0.0.1:$port" >&2
    return 1
}

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
echo $! >"$work/redis.pid"
wait_port "$redis_port"

port="$(free_port)"
downstream_port="$(free_port)"
while [[ $downstream_port == "$port" ]]; do downstream_port="$(free_port)"; done
PORT="$port" DOWNSTREAM_PORT="$downstream_port" REDIS_URL="redis://127.0.0.1:$redis_port" \
    RUST_LOG="${RUST_LOG:-warn}" "$gateway_bin" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
wait_port "$port"

echo "soak.sh: gateway pid $gateway_pid on 127.0.0.1:$port, Redis on 127.0.0.1:$redis_port;" \
    "${DURATION} s, ${CLIENTS} clients" >&2
status=0
# In the background and waited for, so a signal to this script runs the trap
# at once (bash defers traps while a foreground command runs).
GATEWAY_PORT="$port" GATEWAY_PID="$gateway_pid" REDIS_PORT="$redis_port" \
    REDIS_PIDFILE="$work/redis.pid" REDIS_DIR="$work" \
    timeout --signal=TERM "$((DURATION + 120))" python3 "$repo/scripts/soak_client.py" &
client_pid=$!
wait "$client_pid" || status=$?
client_pid=""
if ! kill -0 "$gateway_pid" 2>/dev/null; then
    echo "soak.sh: the gateway exited during the run; its log:" >&2
    tail -n 30 "$work/gateway.log" >&2
    status=1
fi
exit "$status"
