#!/usr/bin/env bash
# Builds and runs the load benchmarks; see docs/benchmarks.md.
#
#   bench/run.sh                  # everything, sizes for this 2-core machine, 3 repetitions
#   bench/run.sh --quick          # ours + raw floor only, small sizes, 1 repetition (a minute)
#   bench/run.sh --docs           # also copy the result into docs/benchmarks.{md,json,png}
#
# Knobs (environment): REPS, PEERS ("ours raw socketioxide node python"), SCENARIOS
# ("idle fanout storm churn chat"; "cycles" on request), IDLE_SIZES ("10000"), IDLE_LARGE ("50000 100000": only
# for IDLE_LARGE_PEERS), FANOUT_CLIENTS, FANOUT_K, FANOUT_BURSTS, FANOUT_INTERVAL_MS,
# STORM_CLIENTS, CHURN_CLIENTS, CHURN_SECONDS, CHAT_ROOMS, CHAT_USERS, CHAT_RATES ("5 50":
# messages per second per user, one chat run each; 50 is 10 000 stored messages/s offered),
# CHAT_SECONDS.
# Memory after open/close cycles (SCENARIOS="cycles", not in the default list: a million cycles
# per peer take minutes): CYCLES (1000000) sessions, CYCLES_CONCURRENCY (128) open at a time,
# RSS read after CYCLES_FIRST (10000) and at CYCLES_SAMPLES (10) more checkpoints, with no
# session open; every peer but the raw floor (no polling).
# IDLE_BROWSER_SIZES ("10000"): idle again with the request headers of a browser behind nginx.
# Scenario "cluster" (not in the default list; peers ours and node): a redis-server
# (REDIS_SERVER_BIN, else /usr/bin/redis-server) and two nodes of the peer on the classic Redis
# adapter, CLUSTER_CLIENTS spread over both, CLUSTER_K broadcasts per burst, CLUSTER_BURSTS.
# Scenario "chat-cluster" (not in the default list; peer ours): the chat workload (CHAT_ROOMS,
# CHAT_USERS, CHAT_RATES, CHAT_SECONDS) against chatd on PostgreSQL, at each rate first one node,
# then CHAT_CLUSTER_NODES (3) nodes with a Redis (--redis, --node-id), users dealt round-robin
# over the nodes (each room has members on every node). One throw-away PostgreSQL for the
# scenario (PG_BIN, else initdb's directory on PATH, else the newest /usr/lib/postgresql/*/bin;
# initdb in a temp dir, run as the postgres user when root, default settings: fsync and
# synchronous_commit on), a fresh database and a fresh redis-server per run. Every chatd node,
# PostgreSQL (all its processes) and Redis run on CPU 0, the generator on CPU 1. CHATD_BIN runs
# another chatd binary in chat and chat-cluster (to compare two builds; default: the one built).
# An idle size that does not fit one process's RLIMIT_NOFILE (raised as far as the hard limit
# allows) runs over as many server processes ("shards", consecutive ports, all on CPU 0) as it
# needs, each with its own child loadgen; the fleet is held at once and the RSS summed.
#
# Each run gets a fresh server process pinned to CPU 0 and the load generator pinned to CPU 1
# (when there are two CPUs or more), so the server under test gets one core and the generator
# never competes with it. Results: bench/results/<timestamp>.{jsonl,json,md,png}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="$ROOT/bench"
cd "$ROOT"

QUICK=0
DOCS=0
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    --docs) DOCS=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d'
        exit 0
        ;;
    *)
        echo "unknown argument $a" >&2
        exit 2
        ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    : "${REPS:=1}" "${PEERS:=ours raw}" "${SCENARIOS:=idle fanout storm churn chat cycles}"
    : "${IDLE_SIZES:=1000}" "${IDLE_LARGE:=}" "${IDLE_BROWSER_SIZES:=1000}" "${FANOUT_CLIENTS:=1000}" "${STORM_CLIENTS:=500}"
    : "${CHURN_CLIENTS:=200}" "${CHURN_SECONDS:=10}" "${CHAT_RATES:=5}" "${CHAT_SECONDS:=3}"
    : "${CYCLES:=20000}" "${CYCLES_SAMPLES:=2}"
fi
: "${REPS:=3}"
: "${PEERS:=ours raw socketioxide node python}"
: "${SCENARIOS:=idle fanout storm churn chat}"
: "${IDLE_SIZES:=10000}"
: "${IDLE_LARGE=50000 100000}"
: "${IDLE_LARGE_PEERS:=ours node raw}"
: "${IDLE_BROWSER_SIZES=10000}"
: "${FANOUT_CLIENTS:=10000}" "${FANOUT_K:=10}" "${FANOUT_BURSTS:=5}" "${FANOUT_INTERVAL_MS:=200}"
: "${STORM_CLIENTS:=10000}"
: "${CHURN_CLIENTS:=2000}" "${CHURN_SECONDS:=45}"
: "${CHAT_ROOMS:=20}" "${CHAT_USERS:=10}" "${CHAT_RATES:=5 50}" "${CHAT_SECONDS:=10}"
: "${CLUSTER_CLIENTS:=2000}" "${CLUSTER_K:=10}" "${CLUSTER_BURSTS:=5}"
: "${REDIS_SERVER_BIN:=/usr/bin/redis-server}"
: "${CHAT_CLUSTER_NODES:=3}"
: "${CYCLES:=1000000}" "${CYCLES_CONCURRENCY:=128}" "${CYCLES_FIRST:=10000}" "${CYCLES_SAMPLES:=10}"
: "${TIMEOUT_S:=180}"
unset REDIS_URL

log() { printf '==> bench: %s\n' "$*" >&2; }
has() { case " $PEERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac }

# as many file descriptors as allowed (the hard limit; raising it needs CAP_SYS_RESOURCE)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || true
NOFILE="$(ulimit -n)"

SERVER_CPU=()
LOADGEN_CPU=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SERVER_CPU=(taskset -c 0)
    LOADGEN_CPU=(taskset -c 1)
fi

# ------------------------------------------------------------------------------------------
log "building (release)"
cargo build --release -q -p loadgen -p bench-ours
T="$ROOT/target/release"
CHATD="${CHATD_BIN:-$T/chatd}"
CHATD_OK=0
case " $SCENARIOS " in
*" chat "* | *" chat-cluster "*)
    if cargo build --release -q -p chatd; then CHATD_OK=1; else log "chatd does not build: no chat scenario"; fi
    ;;
esac
if has raw; then (cd "$B/peers/raw-ws" && cargo build --release -q --locked); fi
if has socketioxide; then (cd "$B/peers/socketioxide" && cargo build --release -q --locked); fi
if has node; then
    (cd "$B/peers/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
VENV="$B/peers/python/.venv"
PY="$(command -v python3)"
if has python || [ "$QUICK" = 0 ] || [ "$DOCS" = 1 ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$B/peers/python/requirements.txt"
    PY="$VENV/bin/python"
fi

mkdir -p "$B/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RAW="$B/results/$STAMP.jsonl"
: >"$RAW"
WORK="$(mktemp -d)"
SERVER_PID=""
SERVER_PIDS=()
# below the ephemeral range (32768+), so no client socket of a previous run holds the port
PORT=23000

stop_server() {
    [ -n "$SERVER_PID" ] && SERVER_PIDS+=("$SERVER_PID")
    [ ${#SERVER_PIDS[@]} -gt 0 ] || return 0
    kill -TERM "${SERVER_PIDS[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "${SERVER_PIDS[@]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "${SERVER_PIDS[@]}" 2>/dev/null || true
    wait "${SERVER_PIDS[@]}" 2>/dev/null || true
    SERVER_PID=""
    SERVER_PIDS=()
}
REDIS_PID=""
PG_DIR=""
trap 'stop_server; [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null; stop_pg; rm -rf "$WORK"' EXIT

# next_port: the next port after PORT that nothing listens on (another run may share the machine)
next_port() {
    PORT=$((PORT + 1))
    while (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do PORT=$((PORT + 1)); done
}

# start_server PEER [recovery]: starts it on a fresh port, sets SERVER_PID and PORT
start_server() {
    local peer=$1 recovery=${2:-0}
    next_port
    local logf="$WORK/$peer-$PORT.log"
    case "$peer" in
    ours)
        local flag=()
        [ "$recovery" = 1 ] && flag=(--recovery)
        "${SERVER_CPU[@]}" "$T/bench-ours" --port "$PORT" "${flag[@]}" >"$logf" 2>&1 &
        ;;
    raw) PORT=$PORT "${SERVER_CPU[@]}" "$B/peers/raw-ws/target/release/bench-peer-raw-ws" >"$logf" 2>&1 & ;;
    socketioxide)
        PORT=$PORT "${SERVER_CPU[@]}" \
            "$B/peers/socketioxide/target/release/bench-peer-socketioxide" >"$logf" 2>&1 &
        ;;
    node) PORT=$PORT RECOVERY=$recovery "${SERVER_CPU[@]}" node "$B/peers/node/server.js" >"$logf" 2>&1 & ;;
    python) PORT=$PORT "${SERVER_CPU[@]}" "$VENV/bin/python" "$B/peers/python/server.py" >"$logf" 2>&1 & ;;
    chatd)
        mkdir -p "$WORK/chatd-$PORT"
        "${SERVER_CPU[@]}" "$CHATD" --listen "127.0.0.1:$PORT" --data-dir "$WORK/chatd-$PORT" \
            --message-rate 1000 --message-burst 1000 --max-connections-per-ip 1000000 --guests \
            >"$logf" 2>&1 &
        ;;
    chatd-pg)
        # on the database PG_URL; a cluster node when NODE_ID is set (with REDIS_URL)
        local cluster=()
        [ -n "${NODE_ID:-}" ] && cluster=(--redis "$REDIS_URL" --node-id "$NODE_ID")
        mkdir -p "$WORK/chatd-$PORT"
        "${SERVER_CPU[@]}" "$CHATD" --listen "127.0.0.1:$PORT" --data-dir "$WORK/chatd-$PORT" \
            --store "$PG_URL" "${cluster[@]}" \
            --message-rate 1000 --message-burst 1000 --max-connections-per-ip 1000000 --guests \
            >"$logf" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            sleep 0.3 # let the runtime settle before the RSS baseline
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "$peer did not start:"
    cat "$logf" >&2
    return 1
}

# start_shards PEER RECOVERY S: S servers on consecutive ports (when free; SHARD_PORTS lists
# them); sets SERVER_PIDS and FIRST_PORT (S = 1: one server, as start_server)
start_shards() {
    local peer=$1 recovery=$2 shards=$3 j
    SHARD_PORTS=()
    for j in $(seq "$shards"); do
        start_server "$peer" "$recovery" || return 1
        SERVER_PIDS+=("$SERVER_PID")
        SHARD_PORTS+=("$PORT")
        [ "$j" = 1 ] && FIRST_PORT=$PORT
        SERVER_PID=""
    done
}

# run PEER RECOVERY SCENARIO ARGS...: fresh servers, one loadgen run (failures are logged);
# SHARDS (default 1) servers for an idle run
run() {
    local peer=$1 recovery=$2
    shift 2
    local i shards=${SHARDS:-1} pids
    for i in $(seq "$REPS"); do
        log "$peer: $* (rep $i/$REPS)"
        local server=$peer
        [ "$1" = chat ] && server=chatd
        if ! start_shards "$server" "$recovery" "$shards"; then
            stop_server
            echo "{\"scenario\":\"$1\",\"peer\":\"$peer\",\"error\":\"server did not start\"}" >>"$RAW"
            continue
        fi
        pids="$(IFS=,; echo "${SERVER_PIDS[*]}")"
        if ! "${LOADGEN_CPU[@]}" "$T/loadgen" --addr "127.0.0.1:$FIRST_PORT" --server-pid "$pids" \
            --label "$peer" --timeout-s "$TIMEOUT_S" --out "$RAW" "$@" >/dev/null; then
            echo "{\"scenario\":\"$1\",\"peer\":\"$peer\",\"error\":\"loadgen failed\"}" >>"$RAW"
        fi
        stop_server
        sleep 1
    done
}

# idle_run PEER N: one server when N clients fit in one process, shards otherwise
idle_run() {
    local per=$((NOFILE - 1000)) shards=1
    [ "$2" -gt "$per" ] && shards=$(((($2) + per - 1) / per))
    if [ "$shards" = 1 ]; then
        run "$1" 0 idle --clients "$2"
    else
        SHARDS=$shards run "$1" 0 idle --clients "$2" --shards "$shards"
    fi
}

wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# cluster_run PEER: a redis-server and two nodes of PEER on it (all pinned like a server), one
# loadgen run per repetition with the clients spread over both nodes
cluster_run() {
    local peer=$1 i rport pids
    for i in $(seq "$REPS"); do
        log "$peer: cluster --clients $CLUSTER_CLIENTS (rep $i/$REPS)"
        next_port
        rport=$PORT
        "${SERVER_CPU[@]}" "$REDIS_SERVER_BIN" --port "$rport" --bind 127.0.0.1 --save '' \
            --appendonly no >"$WORK/redis-$rport.log" 2>&1 &
        REDIS_PID=$!
        if ! wait_port "$rport" "$REDIS_PID"; then
            cat "$WORK/redis-$rport.log" >&2
            echo "{\"scenario\":\"cluster\",\"peer\":\"$peer\",\"error\":\"redis did not start\"}" >>"$RAW"
            kill "$REDIS_PID" 2>/dev/null || true
            REDIS_PID=""
            continue
        fi
        if REDIS_URL="redis://127.0.0.1:$rport/" start_shards "$peer" 0 2; then
            pids="$(IFS=,; echo "${SERVER_PIDS[*]}")"
            if ! "${LOADGEN_CPU[@]}" "$T/loadgen" --addr "127.0.0.1:$FIRST_PORT" --server-pid "$pids" \
                --label "$peer" --timeout-s "$TIMEOUT_S" --out "$RAW" cluster \
                --addr-b "127.0.0.1:${SHARD_PORTS[1]}" --redis-pid "$REDIS_PID" \
                --clients "$CLUSTER_CLIENTS" --k "$CLUSTER_K" --bursts "$CLUSTER_BURSTS" >/dev/null; then
                echo "{\"scenario\":\"cluster\",\"peer\":\"$peer\",\"error\":\"loadgen failed\"}" >>"$RAW"
            fi
        else
            echo "{\"scenario\":\"cluster\",\"peer\":\"$peer\",\"error\":\"server did not start\"}" >>"$RAW"
        fi
        stop_server
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
        sleep 1
    done
}

# ------------------------------------------------------------------------------------------
# PostgreSQL for chat-cluster

PG_AS=()
[ "$(id -u)" = 0 ] && PG_AS=(runuser -u postgres --)

# pg_bin: the directory of initdb, pg_ctl and createdb
pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
    elif command -v initdb >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
    else
        find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1
    fi
}

# start_pg: initdb in a temp dir and start it on a free port, pinned like a server; sets
# PG_DIR, PG_PORT and PG_PID (the postmaster)
start_pg() {
    PG_BIN="$(pg_bin)"
    if [ ! -x "$PG_BIN/initdb" ]; then
        log "PostgreSQL not found (initdb): set PG_BIN"
        return 1
    fi
    PG_DIR="$(mktemp -d)"
    [ ${#PG_AS[@]} -gt 0 ] && chown postgres "$PG_DIR"
    # from PG_DIR: the postgres user may not enter the current directory
    if ! (cd "$PG_DIR" && "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust \
        -E UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1); then
        cat "$PG_DIR/initdb.log" >&2
        return 1
    fi
    next_port
    PG_PORT=$PORT
    if ! (cd "$PG_DIR" && "${SERVER_CPU[@]}" "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" \
        -l "$PG_DIR/log" -w -t 60 -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" \
        start >/dev/null); then
        cat "$PG_DIR/log" >&2
        return 1
    fi
    PG_PID="$(head -n 1 "$PG_DIR/data/postmaster.pid")"
}

stop_pg() {
    [ -n "$PG_DIR" ] || return 0
    (cd "$PG_DIR" && "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop) \
        >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}

# chat_cluster_run RATE: at one rate, the chat workload against one chatd node on PostgreSQL,
# then CHAT_CLUSTER_NODES nodes on PostgreSQL and a Redis; a fresh database (and Redis) per run
chat_cluster_run() {
    local rate=$1 i n j db rport ids=(a b c d e f g h) addrs pids redis_arg
    for i in $(seq "$REPS"); do
        for n in 1 "$CHAT_CLUSTER_NODES"; do
            log "ours: chat-cluster, $n node(s), --rate $rate (rep $i/$REPS)"
            db="chat_${n}_${rate//./_}_$i"
            if ! "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"; then
                echo '{"scenario":"chat-cluster","peer":"ours","error":"createdb failed"}' >>"$RAW"
                continue
            fi
            rport=""
            redis_arg=()
            if [ "$n" -gt 1 ]; then
                next_port
                rport=$PORT
                "${SERVER_CPU[@]}" "$REDIS_SERVER_BIN" --port "$rport" --bind 127.0.0.1 --save '' \
                    --appendonly no >"$WORK/redis-$rport.log" 2>&1 &
                REDIS_PID=$!
                if ! wait_port "$rport" "$REDIS_PID"; then
                    cat "$WORK/redis-$rport.log" >&2
                    echo '{"scenario":"chat-cluster","peer":"ours","error":"redis did not start"}' >>"$RAW"
                    kill "$REDIS_PID" 2>/dev/null || true
                    REDIS_PID=""
                    continue
                fi
                redis_arg=(--redis-pid "$REDIS_PID")
            fi
            addrs=()
            for j in $(seq "$n"); do
                local node=""
                [ "$n" -gt 1 ] && node=${ids[$((j - 1))]}
                PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db" NODE_ID=$node \
                    REDIS_URL="redis://127.0.0.1:$rport/" start_server chatd-pg || break
                SERVER_PIDS+=("$SERVER_PID")
                SERVER_PID=""
                addrs+=("127.0.0.1:$PORT")
            done
            if [ ${#addrs[@]} = "$n" ]; then
                pids="$(IFS=,; echo "${SERVER_PIDS[*]}")"
                if ! "${LOADGEN_CPU[@]}" "$T/loadgen" --addr "${addrs[0]}" --server-pid "$pids" \
                    --label ours --timeout-s "$TIMEOUT_S" --out "$RAW" chat \
                    --addrs "$(IFS=,; echo "${addrs[*]}")" --store postgres --db-pid "$PG_PID" \
                    "${redis_arg[@]}" --rooms "$CHAT_ROOMS" --users "$CHAT_USERS" --rate "$rate" \
                    --duration-s "$CHAT_SECONDS" >/dev/null; then
                    echo '{"scenario":"chat-cluster","peer":"ours","error":"loadgen failed"}' >>"$RAW"
                fi
            else
                echo '{"scenario":"chat-cluster","peer":"ours","error":"chatd did not start"}' >>"$RAW"
            fi
            stop_server
            if [ -n "$REDIS_PID" ]; then
                kill -TERM "$REDIS_PID" 2>/dev/null || true
                wait "$REDIS_PID" 2>/dev/null || true
                REDIS_PID=""
            fi
            sleep 1
        done
    done
}

for s in $SCENARIOS; do
    case "$s" in
    idle)
        for p in $PEERS; do
            for n in $IDLE_SIZES; do idle_run "$p" "$n"; done
            case " $IDLE_LARGE_PEERS " in
            *" $p "*) for n in $IDLE_LARGE; do idle_run "$p" "$n"; done ;;
            esac
            for n in $IDLE_BROWSER_SIZES; do
                run "$p" 0 idle --clients "$n" --browser-headers
            done
        done
        ;;
    fanout)
        for p in $PEERS; do
            run "$p" 0 fanout --clients "$FANOUT_CLIENTS" --k "$FANOUT_K" \
                --bursts "$FANOUT_BURSTS" --interval-ms "$FANOUT_INTERVAL_MS"
        done
        ;;
    storm)
        # the raw floor has no polling transport
        for p in $PEERS; do
            [ "$p" = raw ] || run "$p" 0 storm --clients "$STORM_CLIENTS"
        done
        ;;
    churn)
        # peers with connection state recovery (socketioxide, python-socketio and the raw
        # floor have none)
        for p in $PEERS; do
            case "$p" in ours | node) run "$p" 1 churn --clients "$CHURN_CLIENTS" \
                --duration-s "$CHURN_SECONDS" ;; esac
        done
        ;;
    cycles)
        for p in $PEERS; do
            # bench-ours reports its sessions, sockets and rooms: each sample waits for zero
            stats_arg=()
            if [ "$p" = ours ]; then stats_arg=(--stats-path /bench/stats); fi
            [ "$p" = raw ] || run "$p" 0 cycles --cycles "$CYCLES" --first "$CYCLES_FIRST" \
                --samples "$CYCLES_SAMPLES" --concurrency "$CYCLES_CONCURRENCY" "${stats_arg[@]}"
        done
        ;;
    chat)
        if [ "$CHATD_OK" = 0 ]; then
            echo '{"scenario":"chat","peer":"ours","error":"chatd did not build"}' >>"$RAW"
        elif has ours; then
            for rate in $CHAT_RATES; do
                run ours 0 chat --rooms "$CHAT_ROOMS" --users "$CHAT_USERS" --rate "$rate" \
                    --duration-s "$CHAT_SECONDS"
            done
        fi
        ;;
    cluster)
        for p in $PEERS; do
            case "$p" in ours | node) cluster_run "$p" ;; esac
        done
        ;;
    chat-cluster)
        if [ "$CHATD_OK" = 0 ]; then
            echo '{"scenario":"chat-cluster","peer":"ours","error":"chatd did not build"}' >>"$RAW"
        elif has ours; then
            if start_pg; then
                for rate in $CHAT_RATES; do chat_cluster_run "$rate"; done
            else
                echo '{"scenario":"chat-cluster","peer":"ours","error":"PostgreSQL did not start"}' >>"$RAW"
            fi
            stop_pg
        fi
        ;;
    *) log "unknown scenario $s" ;;
    esac
done

log "report"
ENV_JSON="$(printf '{"nofile":%s,"pinned":%s,"reps":%s,"quick":%s}' "$NOFILE" \
    "$([ ${#SERVER_CPU[@]} -gt 0 ] && echo true || echo false)" "$REPS" "$QUICK")"
"$PY" "$B/report.py" "$RAW" --env "$ENV_JSON" $([ "$DOCS" = 1 ] && echo --docs "$ROOT/docs")
log "results: $B/results/$STAMP.md"
