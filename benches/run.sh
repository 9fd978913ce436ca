#!/usr/bin/env bash
# poolgate's benchmark, one command from a fresh clone:
#   bash benches/run.sh            full run (10 s per measurement, release build)
#   bash benches/run.sh --smoke    2 s per measurement on the debug build, checks only that
#                                  nothing fails (CI runs it; no timing is asserted)
# Other arguments go to the runner (`--secs N`, `--rounds N`, `--connections-only`, `--out DIR`).
# Installs what is missing (wrk, nginx, redis-server and, for the full run, valgrind from the distribution,
# oha from crates.io), builds poolgate, the minimal Pingora proxy and the Rust origin in
# release mode, then runs target/release/examples/bench_runner (load, latency and memory, then
# the connection-scale stage) and, in the full run, benches/callgrind.sh (instructions per
# request; skipped with --smoke or CALLGRIND=0) and benches/tls.sh (TLS termination; skipped
# with --smoke or TLS=0). Results: target/bench/results.md and results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
out=target/bench
args=("$@")
for i in "${!args[@]}"; do
  case ${args[$i]} in
    --smoke) smoke=true ;;
    --out) out=${args[$((i + 1))]:-$out} ;;
  esac
done
callgrind=true
if $smoke || [ "${CALLGRIND:-1}" = 0 ]; then callgrind=false; fi

bash deploy/build-deps.sh
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
$smoke || command -v openssl >/dev/null || need+=(openssl)
if $callgrind; then
  command -v valgrind >/dev/null || need+=(valgrind)
  command -v python3 >/dev/null || need+=(python3)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
  # The packages start a system nginx on port 80 and a system Redis; the benchmark runs its own.
  $sudo service nginx stop >/dev/null 2>&1 || true
  $sudo service redis-server stop >/dev/null 2>&1 || true
fi
export PATH="$PATH:/usr/sbin"
if ! $smoke && ! command -v oha >/dev/null && [ ! -x target/bench-tools/bin/oha ]; then
  cargo install --locked --quiet oha --version 1.16.0 --root target/bench-tools
fi
# The smoke run only checks that every contender serves without errors, so it uses the debug
# build `cargo test` already made; the full run measures release builds.
profile=release; flags=(--release)
if $smoke; then profile=debug; flags=(); fi
cargo build "${flags[@]}" --locked --bin poolgate --example bench_floor --example bench_origin --example bench_runner
"target/$profile/examples/bench_runner" --bin-dir "target/$profile" "$@"

# Instructions per request under callgrind (a few minutes; valgrind is too slow for CI's smoke
# run). The table goes after the runner's in results.md, one JSON line per contender after
# its lines in results.jsonl.
if $callgrind; then
  echo "instructions per request (callgrind):" >&2
  table=$(JSONL="$out/results.jsonl" bash benches/callgrind.sh "target/$profile/poolgate")
  printf '\n%s\n' "$table" | tee -a "$out/results.md"
fi

# TLS termination (full and resumed handshakes, keep-alive requests over TLS; poolgate, the
# Pingora floor with TLS, nginx), in the full run only: a couple of minutes, and a debug
# build's handshakes would say nothing.
if ! $smoke && [ "${TLS:-1}" != 0 ]; then
  cargo build --release --locked --example bench_tls_client
  echo "TLS termination (benches/tls.sh):" >&2
  table=$(JSONL="$out/results.jsonl" bash benches/tls.sh)
  printf '\n%s\n' "$table" | tee -a "$out/results.md"
fi
