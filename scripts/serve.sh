#!/usr/bin/env bash
# One command from a fresh clone to a running server on its embedded defaults:
# installs system packages, builds the release binary, imports the Whisper model into
# ~/.cache/callcoach (first run only) and serves on 127.0.0.1:8080 with a SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin callcoach
exec target/release/callcoach serve --log-format "${CALLCOACH_LOG_FORMAT:-pretty}" "$@"
