#!/usr/bin/env bash
# Install what the tests need beyond the build: Chromium, which drives the stats live page in
# headless mode. Idempotent: installs only what is missing.
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
elif command -v dnf >/dev/null 2>&1; then
  $sudo dnf install -y chromium
else
  echo "poolgate tests need: chromium (install it with your package manager)" >&2
  exit 1
fi
