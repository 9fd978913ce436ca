#!/usr/bin/env bash
# TLS termination on one core: new TLS connections per second (keep-alive off, one request
# each) with an RSA 2048 and an ECDSA P-256 certificate, and keep-alive requests per second
# over TLS, for poolgate and for nginx (OpenSSL) in front of the same origin. The proxies are
# pinned to CPU 0 (`threads: 1`, one nginx worker), the origin and oha to CPU 1.
#
# oha's client resumes sessions whenever the server lets it, so "new connections" here are
# mostly resumed handshakes, as a browser's are: poolgate's rustls resumes by default (an
# in-memory cache of 256 sessions per process, TLS 1.3 tickets that refer to it), and nginx is
# given the same (`ssl_session_cache shared:SSL:10m`, its tickets on by default). Full
# handshakes need a client that never resumes; this script does not measure them yet.
#
#   bash benches/tls.sh            (needs the release build, oha from benches/run.sh, nginx,
#                                   openssl; SECS per measurement, default 5)
# Prints a markdown table. Not part of `--smoke`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-5}
oha=target/bench-tools/bin/oha
command -v oha >/dev/null && oha=$(command -v oha)
bin=target/release/poolgate
origin_bin=target/release/examples/bench_origin
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for need in "$oha" "$bin" "$origin_bin" "$nginx"; do
  [ -x "$need" ] || { echo "tls.sh needs $need (run benches/run.sh first)" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "tls.sh needs openssl" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=benches/ports.sh
source benches/ports.sh

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/rsa.key" -out "$work/rsa.crt" \
  -days 2 -subj /CN=localhost 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ec.key" \
  -out "$work/ec.crt" -days 2 -subj /CN=localhost 2>/dev/null

origin_port=$(free_port)
taskset -c 1 "$origin_bin" "127.0.0.1:$origin_port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$origin_port"

start_poolgate() { # key port
  mkdir -p "$work/pg-$1"
  cat >"$work/pg-$1/config.yaml" <<Y
log_dir: $work/pg-$1
threads: 1
shutdown_timeout_sec: 1
WebServer:
  http_port: $(free_port)
  http_bind_address: 127.0.0.1
  https: true
  https_port: $2
  https_cert_file: $work/$1.crt
  https_key_file: $work/$1.key
PixlProxy:
  pools:
    main: {target_hostname: 127.0.0.1, target_port: $origin_port}
Y
  taskset -c 0 "$bin" serve --config "$work/pg-$1/config.yaml" >"$work/pg-$1/out.log" 2>&1 &
  pids+=($!)
  wait_port "$2"
}

start_nginx() { # key port
  mkdir -p "$work/nginx-$1"
  cat >"$work/nginx-$1/nginx.conf" <<N
worker_processes 1;
daemon off;
pid $work/nginx-$1/nginx.pid;
error_log $work/nginx-$1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$2 ssl;
    ssl_certificate $work/$1.crt;
    ssl_certificate_key $work/$1.key;
    ssl_session_cache shared:SSL:10m;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
N
  taskset -c 0 "$nginx" -c "$work/nginx-$1/nginx.conf" -p "$work/nginx-$1" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$2"
}

rps() { # url extra-args...
  local url=$1; shift
  taskset -c 1 "$oha" --no-tui --insecure -z "${secs}s" "$@" "$url" --output-format json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print("%.0f %.1f" % (s["requestsPerSec"], s["successRate"] * 100))'
}

printf '| proxy | key | new TLS connections/s (16 clients, keep-alive off, sessions resumed) | keep-alive requests/s over TLS (64 connections) |\n|---|---|---|---|\n'
for key in rsa ec; do
  for proxy in poolgate nginx; do
    port=$(free_port)
    "start_$proxy" "$key" "$port"
    read -r new ok1 < <(rps "https://127.0.0.1:$port/" -c 16 --disable-keepalive)
    read -r kept ok2 < <(rps "https://127.0.0.1:$port/" -c 64)
    label=$([ "$key" = rsa ] && echo "RSA 2048" || echo "ECDSA P-256")
    printf '| %s | %s | %s (%s %% ok) | %s (%s %% ok) |\n' "$proxy" "$label" "$new" "$ok1" "$kept" "$ok2"
    kill "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
  done
done
