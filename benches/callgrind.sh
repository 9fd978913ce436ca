#!/usr/bin/env bash
# User-space instructions per request of poolgate, counted by callgrind: the slope between a
# short and a long run of keep-alive GETs on one connection, so start-up, shutdown and the
# once-a-second ticker cancel out. Instruction counts do not depend on the machine's load, so
# two builds can be compared on a busy 2-core VM where wall-clock rounds swing by ±20 %.
#
#   bash benches/callgrind.sh [POOLGATE_BINARY]      (default: target/release/poolgate)
#
# Contenders (as in `benches/run.sh`): `one-pool` (one pool, defaults) and `20-pools` (20
# regex-routed pools, the request matching the last, transaction log and stats API on).
# Needs valgrind and python3; builds the release binaries when they are missing.
# Env: SHORT (default 2000) and LONG (default 10000) requests per run.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/poolgate}
origin_bin=target/release/examples/bench_origin
short=${SHORT:-2000}
long=${LONG:-10000}
command -v valgrind >/dev/null || { echo "callgrind.sh needs valgrind" >&2; exit 1; }
[ -x "$bin" ] || cargo build --release --bin poolgate
[ -x "$origin_bin" ] || cargo build --release --example bench_origin

work=$(mktemp -d)
origin_pid=""
cleanup() {
  [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 1 600); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

origin_port=$(free_port)
"$origin_bin" "127.0.0.1:$origin_port" >"$work/origin.log" 2>&1 &
origin_pid=$!
wait_port "$origin_port"

# N keep-alive GETs on one connection, each answer read in full (Content-Length framing).
cat >"$work/client.py" <<'PY'
import socket, sys
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
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
        buf += s.recv(65536)
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

# Instructions of one poolgate process serving N requests, start to exit.
run() { # name n
  local port out
  port=$(free_port)
  mkdir -p "$work/$1"
  config "$1" | sed "s/\$PORT/$port/" >"$work/$1/config.yaml"
  out="$work/$1/callgrind.$2"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve --config "$work/$1/config.yaml" \
    >"$work/$1/stdout.$2" 2>"$work/$1/stderr.$2" &
  local pid=$!
  wait_port "$port"
  python3 "$work/client.py" "$port" "$2" /svc/v2/items
  kill -TERM "$pid"
  wait "$pid" || true
  grep -E '^(summary|totals):' "$out" | head -n 1 | awk '{print $2}'
}

printf '| contender | %s requests | %s requests | instructions per request |\n|---|---|---|---|\n' "$short" "$long"
for name in one-pool 20-pools; do
  a=$(run "$name" "$short")
  b=$(run "$name" "$long")
  per=$(( (b - a) / (long - short) ))
  printf '| %s | %s | %s | %s |\n' "$name" "$a" "$b" "$per"
done
