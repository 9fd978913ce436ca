#!/usr/bin/env bash
# TLS termination on one core, for poolgate, the Pingora floor with the same TLS stack
# (benches/floor_proxy.rs with Pingora's own rustls settings) and nginx (OpenSSL), each in
# front of the same origin, with an RSA 2048 and an ECDSA P-256 certificate: full handshakes
# per second (16 clients that keep no session, one request per connection), resumed
# handshakes per second (the same clients resuming earlier sessions, as returning browsers
# do), and keep-alive requests per second over TLS (oha, 64 connections). The proxies are
# pinned to CPU 0 (`threads: 1`, one nginx worker), the origin and the clients to CPU 1.
# nginx gets `ssl_session_cache shared:SSL:10m` (its tickets are on by default); poolgate
# resumes by default (`https_session_resumption`).
#
#   bash benches/tls.sh      (needs the release build and oha, as benches/run.sh makes them,
#                             nginx and openssl; SECS per measurement, default 5; JSONL: a
#                             file to append one JSON line per row to)
# Prints a markdown table. benches/run.sh runs it in the full run, not with --smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-5}
oha=target/bench-tools/bin/oha
command -v oha >/dev/null && oha=$(command -v oha)
bin=target/release/poolgate
origin_bin=target/release/examples/bench_origin
floor_bin=target/release/examples/bench_floor
client_bin=target/release/examples/bench_tls_client
jsonl=${JSONL:-}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for need in "$oha" "$bin" "$origin_bin" "$floor_bin" "$client_bin" "$nginx"; do
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

start_floor() { # key port
  taskset -c 0 "$floor_bin" "127.0.0.1:$2" "127.0.0.1:$origin_port" 1 "$work/$1.crt" "$work/$1.key" \
    >"$work/floor-$1.log" 2>&1 &
  pids+=($!)
  wait_port "$2"
}

rps() { # url extra-args...
  local url=$1; shift
  taskset -c 1 "$oha" --no-tui --insecure -z "${secs}s" "$@" "$url" --output-format json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print("%.0f %.1f" % (s["requestsPerSec"], s["successRate"] * 100))'
}

handshakes() { # port full|resume: connections/s, resumed share, errors
  taskset -c 1 "$client_bin" "127.0.0.1:$1" 16 "$secs" "$2"
}

printf '| proxy | key | full handshakes/s | resumed handshakes/s (resumed share) | keep-alive requests/s over TLS (64 connections) |\n|---|---|---|---|---|\n'
for key in rsa ec; do
  for proxy in poolgate floor nginx; do
    port=$(free_port)
    "start_$proxy" "$key" "$port"
    read -r full _ err1 < <(handshakes "$port" full)
    read -r resumed share err2 < <(handshakes "$port" resume)
    read -r kept ok2 < <(rps "https://127.0.0.1:$port/" -c 64)
    label=$([ "$key" = rsa ] && echo "RSA 2048" || echo "ECDSA P-256")
    name=$([ "$proxy" = floor ] && echo "pingora floor" || echo "$proxy")
    printf '| %s | %s | %s (%s errors) | %s (%s; %s errors) | %s (%s %% ok) |\n' \
      "$name" "$label" "$full" "$err1" "$resumed" "$share" "$err2" "$kept" "$ok2"
    if [ -n "$jsonl" ]; then
      printf '{"stage":"tls","contender":"%s","key":"%s","full_handshakes_per_sec":%s,"resumed_handshakes_per_sec":%s,"resumed_share":%s,"keepalive_requests_per_sec":%s}\n' \
        "$name" "$key" "$full" "$resumed" "$share" "$kept" >>"$jsonl"
    fi
    kill "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
  done
done
printf '\nTLS termination on one core (benches/tls.sh): the proxy pinned to CPU 0 with one thread, the origin and the clients on CPU 1; 16 clients making one request per connection (benches/tls_client.rs: full handshakes, then resumed ones), and oha on 64 keep-alive connections; %s s each.\n' "$secs"
