#!/usr/bin/env bash
# Load benchmark: sessionkit vs actix-session vs tower-sessions.
#
#   scripts/bench.sh            full run (3 interleaved rounds, 5 s per run),
#                               table written to session-bench/RESULTS.md
#   QUICK=1 scripts/bench.sh    smoke test (1 round, 2 s per run, ~1.5 minutes),
#                               written to session-bench/target/RESULTS-quick.md
#
# Other knobs (environment): ROUNDS, DURATION, WARMUP, CONNECTIONS,
# MODES=bare,actix-cookie,..., OUT=path, SERVER_CPU, CLIENT_CPU, REDIS_CPU.
# Needs wrk, redis-server and taskset; installs wrk/redis-server via apt-get
# when missing and running as root. All traffic goes to 127.0.0.1; the Redis
# modes use a private redis-server on a free port, never the shared one.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$repo/session-bench"

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "bench.sh: installing ${need_apt[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "bench.sh: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
fi
command -v taskset >/dev/null 2>&1 || { echo "bench.sh: taskset (util-linux) is required" >&2; exit 1; }

echo "bench.sh: building session-bench (release)" >&2
cargo build --release --bins --manifest-path "$bench/Cargo.toml"

exec "$bench/target/release/bench-run"
