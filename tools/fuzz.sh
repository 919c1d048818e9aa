#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/*.rs) for SECONDS each (default 60) with
# libFuzzer's memory and time limits, on a corpus seeded from fuzz/seeds/<target>/ and
# the committed fixtures of that format; prints one line per target:
#   FUZZ <target> execs=<n> seconds=<s> crashes=<n>
# and exits 1 if any target found a crash, a hang or an out-of-memory input (saved in
# fuzz/artifacts/<target>/).
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do TARGETS+=("$(basename "$f" .rs)"); done
fi

# Fixtures that seed each target besides fuzz/seeds/<target>/.
fixtures() {
  case "$1" in
    npy) find crates -path '*/tests/fixtures/*' -name '*.npy' -size -64k ;;
    keras_archive) find crates -path '*/tests/fixtures/*' -name '*.keras' -size -512k ;;
    h5) find crates -path '*/tests/fixtures/*' \( -name '*.h5' \) -size -512k ;;
    tflite) find crates -path '*/tests/fixtures/*' -name '*.tflite' -size -256k ;;
    tfrecord) find crates -path '*/tests/fixtures/*' -name '*.tfrecord*' ;;
    csv) head -c 4096 <(gzip -dc crates/ferroflow-keras/data/digits.csv.gz) >fuzz/seeds/csv/.digits_head.csv 2>/dev/null; echo fuzz/seeds/csv/.digits_head.csv ;;
  esac
}

cargo +nightly fuzz build -O >/dev/null 2>fuzz/build.log || { cat fuzz/build.log; exit 1; }

status=0
for t in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  [ -d "fuzz/seeds/$t" ] && cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null
  for f in $(fixtures "$t"); do
    [ -f "$f" ] && cp -n "$f" "$corpus/$(echo "$f" | tr '/' '_')" 2>/dev/null
  done
  log="fuzz/artifacts/$t/last_run.log"
  # The binaries built above, run directly: a source edited meanwhile changes nothing.
  "fuzz/target/x86_64-unknown-linux-gnu/release/$t" "$corpus" \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -max_len=1048576 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  found=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  line="FUZZ $t execs=${execs:-0} seconds=$SECONDS_EACH crashes=$found rc=$rc"
  echo "$line"
  echo "$(date -u +%FT%TZ) $(git rev-parse --short HEAD) $line" >>fuzz/artifacts/history.log
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    grep -E "^==[0-9]+==|panicked|ERROR" "$log" | head -n 5
  fi
done
exit $status
