#!/usr/bin/env bash
# Load benchmark: sessionkit vs actix-session vs tower-sessions.
#
#   scripts/bench.sh            full run (3 interleaved rounds, 5 s per run),
#                               table written to session-bench/RESULTS.md
#   QUICK=1 scripts/bench.sh    smoke test (1 round, 2 s per run, ~1.5 minutes),
#                               written to session-bench/target/RESULTS-quick.md
#
#   SCALE=1 scripts/bench.sh    scale curves instead: req/s, app CPU/req and
#                               p99 at 1k/100k/1M preloaded live sessions and
#                               1/32/256 connections, for sessionkit and
#                               tower-sessions on memory and Redis, and
#                               sessionkit on a local 3-master Redis Cluster;
#                               written to session-bench/SCALE.md (~25 min;
#                               QUICK=1: 2 s runs, target/SCALE-quick.md, ~12 min).
#                               SCALE_SIZES, SCALE_CONNECTIONS, MODES narrow it.
#                               Skips the micro-benchmarks unless MICRO=1.
#
#   MODES=postgres scripts/bench.sh   the PostgreSQL modes (sessionkit on actix
#                               and axum, tower-sessions-sqlx-store,
#                               axum_session_sqlx) on a private PostgreSQL the
#                               bench starts; not part of the default run.
#
# Other knobs (environment): ROUNDS, DURATION, WARMUP, CONNECTIONS,
# MODES=bare,actix-cookie,..., OUT=path, SERVER_CPU, CLIENT_CPU, REDIS_CPU,
# POSTGRES_CPU.
# Needs wrk, redis-server and taskset; installs wrk/redis-server via apt-get
# when missing and running as root. All traffic goes to 127.0.0.1; the Redis
# modes use a private redis-server on a free port, never the shared one.
#
# Last step: divan micro-benchmarks (session-bench/benches/) and bytes per
# session at 1M sessions (bench-memory), written to session-bench/MICRO.md
# (QUICK=1: fewer samples, 100k sessions, session-bench/target/MICRO-quick.md;
# about 1 minute after the build). MICRO=0 skips this step; LOAD=0 skips the
# load benchmark and runs only this step. MICRO_OUT=path overrides the file.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$repo/session-bench"

run_micro() {
    local out sessions divan_args raw memory
    if [[ ${QUICK:-0} == 1 ]]; then
        out="${MICRO_OUT:-$bench/target/MICRO-quick.md}"
        sessions=100000
        divan_args=(--sample-count 20)
    else
        out="${MICRO_OUT:-$bench/MICRO.md}"
        sessions=1000000
        divan_args=(--min-time 0.2)
    fi
    raw="$bench/target/micro-divan.txt"
    memory="$bench/target/micro-memory.md"
    LOADAVG_BEFORE="$(cat /proc/loadavg)"
    export LOADAVG_BEFORE
    echo "bench.sh: micro-benchmarks (divan)" >&2
    local cmd=(cargo bench --manifest-path session-bench/Cargo.toml
        --bench ids --bench codec --bench store -- --color never "${divan_args[@]}")
    # The report quotes the command from this first line, and divan's timer
    # precision from its standard error.
    echo "command: ${cmd[*]}" >"$raw"
    (cd "$repo" && "${cmd[@]}") 2>&1 | tee -a "$raw"
    echo "bench.sh: memory per session ($sessions sessions)" >&2
    cargo build --release --bins --manifest-path "$bench/Cargo.toml"
    SESSIONS=$sessions "$bench/target/release/bench-memory" | tee "$memory"
    "$bench/target/release/bench-micro-report" "$raw" "$memory" >"$out"
    echo "bench.sh: wrote $out" >&2
}

if [[ ${SCALE:-0} != 0 ]]; then
    # The scale run is its own report; the micro-benchmarks only on request.
    MICRO="${MICRO:-0}"
fi

if [[ ${LOAD:-1} != 0 ]]; then
    need_apt=()
    command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
    command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
    # redis-cli joins the scale run's Redis Cluster (package redis-tools).
    command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
    # The PostgreSQL modes start their own server (package postgresql).
    if [[ ${MODES:-} == *postgres* && -z ${POSTGRES_BIN:-} ]] &&
        ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        need_apt+=(postgresql)
    fi
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

    "$bench/target/release/bench-run"
fi

if [[ ${MICRO:-1} != 0 ]]; then
    run_micro
fi
