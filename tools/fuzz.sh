#!/usr/bin/env bash
# Fuzzes the untrusted-input parsers with libFuzzer (Swift's -sanitize=fuzzer,address), debug
# build (Swift's own bounds and overflow traps stay on), for SECONDS each (default 600):
#   FuzzImage       PNG/JPEG decoders (ImageIO.decode)
#   FuzzSafetensors safetensors reader (checkpoints, Gaussian exports)
#   FuzzPth         .pth reader (zip + restricted pickle machine)
# Seeds: the committed fixtures. Crashes are written to .build-fuzz/crashes/. Leak reports are
# off (-detect_leaks=0 and ASAN_OPTIONS=detect_leaks=0): the only one seen was 4 KiB inside
# Foundation's Data(contentsOf:) reading an empty file, reported at exit, not a crash. Usage:
#   tools/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(FuzzImage FuzzSafetensors FuzzPth)
export GSASR_FUZZ=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
B=.build-fuzz
for t in "${TARGETS[@]}"; do
  swift build -c debug --build-path "$B" --product "$t" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
done
mkdir -p "$B/crashes"
for t in "${TARGETS[@]}"; do
  corpus="$B/corpus/$t"
  mkdir -p "$corpus"
  case "$t" in
    FuzzImage) cp Tests/ImageTests/Fixtures/*.png Tests/ImageTests/Fixtures/*.jpg Examples/*.png "$corpus"/ 2>/dev/null || true ;;
    FuzzSafetensors) cp Models/default/*.safetensors "$corpus"/ ;;
    FuzzPth) cp Tests/CheckpointTests/Fixtures/*.pth "$corpus"/ ;;
  esac
  echo "== $t for $SECONDS_EACH s"
  "$B/debug/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 -max_len=65536 \
    -artifact_prefix="$B/crashes/$t-" -print_final_stats=1 "$corpus" 2>&1 | tail -n 15
done
