#!/usr/bin/env bash
# Fuzzes the untrusted-input parsers with libFuzzer (Swift's -sanitize=fuzzer,address), debug
# build (Swift's own bounds and overflow traps stay on), for SECONDS each (default 600):
#   image        PNG/JPEG decoders (ImageIO.decode)
#   safetensors  safetensors reader (checkpoints, Gaussian exports)
#   pth          .pth reader (zip + restricted pickle machine)
# Seeds: the committed fixtures. Crashes are written to .build-fuzz/crashes/. Leak reports are
# off (-detect_leaks=0 and ASAN_OPTIONS=detect_leaks=0): the only one seen was 4 KiB inside
# Foundation's Data(contentsOf:) reading an empty file, reported at exit, not a crash. Usage:
#   tools/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(image safetensors pth)
export GSASR_FUZZ=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
B=.build-fuzz
swift build -c debug --build-path "$B" --product GSASRFuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
mkdir -p "$B/crashes"
for t in "${TARGETS[@]}"; do
  corpus="$B/corpus/$t"
  mkdir -p "$corpus"
  case "$t" in
    image) cp Tests/ImageTests/Fixtures/*.png Tests/ImageTests/Fixtures/*.jpg Examples/*.png "$corpus"/ 2>/dev/null || true ;;
    safetensors) cp Models/default/*.safetensors "$corpus"/ ;;
    pth) cp Tests/CheckpointTests/Fixtures/*.pth "$corpus"/ ;;
    *) echo "unknown target $t (image, safetensors, pth)" >&2; exit 2 ;;
  esac
  echo "== $t for $SECONDS_EACH s"
  GSASR_FUZZ_TARGET=$t "$B/debug/GSASRFuzz" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 -max_len=65536 \
    -artifact_prefix="$B/crashes/$t-" -print_final_stats=1 "$corpus" 2>&1 | tail -n 15
done
