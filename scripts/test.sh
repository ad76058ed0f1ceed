#!/usr/bin/env bash
# The whole test suite, from a fresh clone: system packages, the Whisper model (cached under
# ~/.cache/callcoach), the Rust tests (unit + integration against the real model, real sockets,
# real SQLite and PostgreSQL), the browser tests in headless Chromium, and a fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin callcoach
target/release/callcoach models fetch
# One profile for the binary and the tests: whisper.cpp and the deps are compiled once, and
# tests that transcribe run at production speed.
cargo test --release --workspace --no-fail-fast
if [ -d tests/browser ] && [ "${CALLCOACH_SKIP_BROWSER:-0}" != 1 ]; then
  # npm test runs the files one at a time (--test-concurrency=1): they share the 2 cores.
  (cd tests/browser && npm ci --no-audit --no-fund --silent && CALLCOACH_BIN="$PWD/../../target/release/callcoach" npm test)
fi
# Fuzz smoke: every cargo-fuzz target 15 s from its committed seeds; any crash fails the run.
# An unoptimised build (FUZZ_DEV=1) keeps it short: 8 min on 2 cores from nothing, cargo-fuzz
# install included (benches/README.md, "Session 4"). CALLCOACH_FUZZ=0 skips it.
if [ "${CALLCOACH_FUZZ:-1}" = 1 ]; then
  FUZZ_DEV=1 FUZZ_SECS=15 scripts/fuzz-smoke.sh
fi
