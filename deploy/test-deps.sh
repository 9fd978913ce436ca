#!/usr/bin/env bash
# Install what the tests need beyond the build: Chromium, which drives the stats live page in
# headless mode, and redis-server, which the cluster-mode tests start on their own ports (each
# test its own server and directory). Idempotent: installs only what is missing.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
elif command -v dnf >/dev/null 2>&1; then
  # Fedora and RHEL name the server's package `redis`.
  $sudo dnf install -y "${missing[@]/#redis-server/redis}"
else
  echo "poolgate tests need: ${missing[*]} (install it with your package manager)" >&2
  exit 1
fi
# Debian starts the packaged Redis as a service; the tests start their own, so stop it.
if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
