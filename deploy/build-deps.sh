#!/usr/bin/env bash
# Install what building poolgate needs beyond the Rust toolchain: cmake (Pingora's zlib-ng
# build) and a C compiler (ring, zlib-ng, aws-lc-sys for the HTTPS listener's handshakes).
# Idempotent: installs only what is missing.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
elif command -v dnf >/dev/null 2>&1; then
  $sudo dnf install -y "${missing[@]}"
else
  echo "poolgate build needs: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi
