#!/usr/bin/env bash
# User-space instructions per request of poolgate and of the Pingora floor, counted by
# callgrind: the slope between a short and a long run of keep-alive GETs on one connection, so
# start-up, shutdown and the once-a-second ticker cancel out. Instruction counts do not depend
# on the machine's load, so two builds can be compared on a busy 2-core VM where wall-clock
# rounds swing by ±20 %.
#
#   bash benches/callgrind.sh [POOLGATE_BINARY]      (default: target/release/poolgate)
#
# Contenders (as in `benches/run.sh`): `pingora floor` (benches/floor_proxy.rs, one thread),
# `poolgate` (one pool, defaults) and `poolgate-20` (20 regex-routed pools, the request
# matching the last, transaction log and stats API on). Prints a markdown table with each
# one's instructions per request and that minus the floor's. `benches/run.sh` runs it after
# the runner and appends the table to target/bench/results.md.
# Needs valgrind and python3; builds the release binaries when they are missing.
# Env: SHORT (default 2000) and LONG (default 10000) requests per run; FLOOR (default
# target/release/examples/bench_floor); JSONL: a file to append one JSON line per contender to
# (when all succeeded); KEEP_WORK=1 keeps the scratch directory (configs, logs, callgrind files).
set -euo pipefail
# Failures inside $(run ...) stop the script too.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

bin=${1:-target/release/poolgate}
floor_bin=${FLOOR:-target/release/examples/bench_floor}
origin_bin=target/release/examples/bench_origin
short=${SHORT:-2000}
long=${LONG:-10000}
jsonl=${JSONL:-}
command -v valgrind >/dev/null || { echo "callgrind.sh needs valgrind" >&2; exit 1; }
command -v python3 >/dev/null || { echo "callgrind.sh needs python3" >&2; exit 1; }
[ "$long" -gt "$short" ] || { echo "LONG ($long) must be more than SHORT ($short)" >&2; exit 1; }
[ -x "$bin" ] || cargo build --release --locked --bin poolgate
[ -x "$floor_bin" ] || cargo build --release --locked --example bench_floor
[ -x "$origin_bin" ] || cargo build --release --locked --example bench_origin

work=$(mktemp -d)
origin_pid=""
proxy_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill -KILL "$proxy_pid" 2>/dev/null || true
  [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "scratch files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# shellcheck source=benches/ports.sh
source benches/ports.sh

origin_port=$(free_port)
"$origin_bin" "127.0.0.1:$origin_port" >"$work/origin.log" 2>&1 &
origin_pid=$!
wait_port "$origin_port"

# N keep-alive GETs on one connection, each answer read in full (Content-Length framing).
cat >"$work/client.py" <<'PY'
import socket, sys
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: callgrind\r\n\r\n".encode()
buf = b""
for i in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"closed after {i} answers")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit(f"answer {i}: {head[:60]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"closed inside answer {i}")
        buf += chunk
    buf = buf[length:]
s.close()
PY

config() { # name
  local target="target_hostname: 127.0.0.1, target_port: $origin_port" pools extra=""
  if [ "$1" = 20-pools ]; then
    pools=$(for i in $(seq 0 18); do echo "    svc$i: {uri_match: '^/svc$i/(api|v2)/', $target, log_transactions: true}"; done)
    pools="$pools
    main: {uri_match: '^/', $target, log_transactions: true}"
    extra="  stats_uri_match: '^/proxy-stats'
"
  else
    pools="    main: {$target}"
  fi
  printf 'log_dir: %s\nthreads: 1\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\nPixlProxy:\n%s  pools:\n%s\n' \
    "$work/$1" "$extra" "$pools"
}

# Instructions of one proxy process (floor, one-pool or 20-pools) serving N requests, start
# to exit.
run() { # name n
  local port out cmd
  # run is called as $(run ...), a subshell: this trap stops its proxy whenever it exits early.
  trap '[ -n "$proxy_pid" ] && kill -KILL "$proxy_pid" 2>/dev/null; true' EXIT
  port=$(free_port)
  mkdir -p "$work/$1"
  if [ "$1" = floor ]; then
    cmd=("$floor_bin" "127.0.0.1:$port" "127.0.0.1:$origin_port" 1)
  else
    config "$1" | sed "s/\$PORT/$port/" >"$work/$1/config.yaml"
    cmd=("$bin" serve --config "$work/$1/config.yaml")
  fi
  out="$work/$1/callgrind.$2"
  valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" \
    >"$work/$1/stdout.$2" 2>"$work/$1/stderr.$2" &
  proxy_pid=$!
  wait_port "$port"
  if ! python3 "$work/client.py" "$port" "$2" /svc/v2/items; then
    echo "$1 failed under callgrind ($2 requests); its last lines:" >&2
    tail -n 5 "$work/$1/stderr.$2" >&2 || true
    grep -hv 'HTTP 200 OK' "$work/$1"/*.log 2>/dev/null | tail -n 5 | cut -c1-600 >&2 || true
    return 1
  fi
  # Both exit on SIGTERM (the floor has no grace period, poolgate a shutdown timeout of 1 s).
  kill -TERM "$proxy_pid"
  for _ in $(seq 1 600); do
    kill -0 "$proxy_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$proxy_pid" 2>/dev/null; then
    echo "$1 did not exit within 60 s of SIGTERM (see $work/$1/stderr.$2)" >&2
    return 1
  fi
  wait "$proxy_pid" || true
  proxy_pid=""
  local total
  total=$(grep -E '^(summary|totals):' "$out" 2>/dev/null | head -n 1 | awk '{print $2}')
  if [ -z "$total" ]; then
    echo "$1: no instruction count in $out" >&2
    tail -n 5 "$work/$1/stderr.$2" >&2 || true
    return 1
  fi
  echo "$total"
}

label() { case $1 in floor) echo "pingora floor" ;; one-pool) echo poolgate ;; 20-pools) echo poolgate-20 ;; esac; }

printf '| contender | %s requests | %s requests | instructions per request | minus floor |\n|---|---|---|---|---|\n' "$short" "$long"
floor_per=""
for name in floor one-pool 20-pools; do
  a=$(run "$name" "$short")
  b=$(run "$name" "$long")
  per=$(( (b - a) / (long - short) ))
  if [ "$name" = floor ]; then
    floor_per=$per; minus="–"; minus_json=null
  else
    minus=$(( per - floor_per )); minus_json=$minus
  fi
  printf '| %s | %s | %s | %s | %s |\n' "$(label "$name")" "$a" "$b" "$per" "$minus"
  if [ -n "$jsonl" ]; then
    printf '{"stage":"callgrind","contender":"%s","requests_short":%s,"requests_long":%s,"instructions_short":%s,"instructions_long":%s,"instructions_per_request":%s,"minus_floor":%s}\n' \
      "$(label "$name")" "$short" "$long" "$a" "$b" "$per" "$minus_json" >>"$work/results.jsonl"
  fi
done
[ -z "$jsonl" ] || cat "$work/results.jsonl" >>"$jsonl"
printf '\nUser-space instructions under callgrind per keep-alive GET on one connection: the slope between %s and %s requests (benches/callgrind.sh); minus floor: above the Pingora floor.\n' "$short" "$long"
