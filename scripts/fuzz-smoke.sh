#!/usr/bin/env bash
# Fuzz smoke: builds the cargo-fuzz targets in fuzz/ and runs each for a few seconds, starting
# from the committed seeds (fuzz/corpus/<target>/). Fails on any crash, panic, timeout or
# out-of-memory; the reproducer is left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-smoke.sh                 # every target, FUZZ_SECS (default 15) seconds each
#   FUZZ_SECS=600 scripts/fuzz-smoke.sh config playbook    # longer runs of some targets
#
# Stable Rust is enough: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. cargo-fuzz is
# installed from crates.io when missing. Sanitizer: none by default (the targets are safe Rust
# over safe-Rust parsers; without ASan a 2-core box runs ~2x more inputs); FUZZ_SANITIZER=address
# to use ASan. Overflow checks and debug assertions are on either way (cargo-fuzz's default).
# The first build compiles the whole dependency tree into fuzz/target (~10-20 min on 2 cores);
# later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${FUZZ_SECS:-15}
sanitizer=${FUZZ_SANITIZER:-none}
# FUZZ_DEV=1 builds without optimisation: a quicker first build for a smoke run, fewer inputs/s.
profile=()
if [ "${FUZZ_DEV:-0}" = 1 ]; then profile=(--dev); fi
niceness=${FUZZ_NICE:-19}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi

nice -n "$niceness" cargo fuzz build "${profile[@]}" -s "$sanitizer"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t"
  # New inputs go to the scratch dir (first corpus argument); the committed seeds are read only.
  if nice -n "$niceness" cargo fuzz run "${profile[@]}" -s "$sanitizer" "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$scratch/$t.log" 2>&1; then
    execs=$(grep -m1 '^stat::number_of_executed_units' "$scratch/$t.log" | awk '{print $2}')
    cov=$(grep -o 'cov: [0-9]*' "$scratch/$t.log" | tail -n1)
    echo "fuzz-smoke: ok     $t (${execs:-?} execs, ${cov:-cov: ?})"
  else
    echo "fuzz-smoke: FAILED $t"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|==[0-9]+==' "$scratch/$t.log" | head -n 20 || tail -n 30 "$scratch/$t.log"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: crashes in ${failed[*]} (reproducers in fuzz/artifacts/)"
  exit 1
fi
