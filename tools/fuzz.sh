#!/usr/bin/env bash
# Fuzzes the untrusted-input parsers with libFuzzer (Swift's -sanitize=fuzzer,address), for
# SECONDS each (default 600), on a debug build, or with GSASR_FUZZ_CONFIG=release on a release
# build (SwiftPM's -O, the configuration users run: no unsafe flags, so Swift's bounds and
# overflow traps stay on in both):
#   image        PNG/JPEG decoders (ImageIO.decode)
#   tiff         TIFF decoder (libtiff through tiff_codec.c, the TIFF file's Exif)
#   heif         HEIC and AVIF decoders (libheif; the Exif item). libtiff and libheif are Debian's
#                builds, not instrumented: coverage guides by our Swift code only, but a crash or
#                an ASan-intercepted overflow (memcpy and friends) inside them is still caught.
#   exif         Exif blocks (ExifMetadata.parse), then written into a TIFF and a PNG
#   safetensors  safetensors reader (checkpoints, Gaussian exports)
#   pth          .pth reader (zip + restricted pickle machine)
#   config       a model folder's config.json (ModelConfigFile)
# Seeds: the committed fixtures. Crashes are written to .build-fuzz/crashes/. Leak reports are
# off (-detect_leaks=0 and ASAN_OPTIONS=detect_leaks=0): the only one seen was 4 KiB inside
# Foundation's Data(contentsOf:) reading an empty file, reported at exit, not a crash. Usage:
#   tools/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(image tiff heif exif safetensors pth config)
export GSASR_FUZZ=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
CONFIG=${GSASR_FUZZ_CONFIG:-debug}
case "$CONFIG" in debug|release) ;; *) echo "GSASR_FUZZ_CONFIG must be debug or release" >&2; exit 2 ;; esac
B=.build-fuzz
swift build -c "$CONFIG" --build-path "$B" --product GSASRFuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
mkdir -p "$B/crashes"
for t in "${TARGETS[@]}"; do
  corpus="$B/corpus/$t"
  mkdir -p "$corpus"
  case "$t" in
    image) cp Tests/ImageTests/Fixtures/*.png Tests/ImageTests/Fixtures/*.jpg Examples/*.png "$corpus"/ 2>/dev/null || true ;;
    tiff) cp Tests/ImageTests/Fixtures/formats/*.tif "$corpus"/ ;;
    heif) cp Tests/ImageTests/Fixtures/formats/*.heic Tests/ImageTests/Fixtures/formats/*.avif "$corpus"/ ;;
    exif) cp Tests/ImageTests/Fixtures/formats/exif_*.bin "$corpus"/ ;;
    safetensors) cp Models/default/*.safetensors "$corpus"/ ;;
    pth) cp Tests/CheckpointTests/Fixtures/*.pth "$corpus"/ ;;
    config) cp Models/default/config.json "$corpus"/default.json; cp Tests/GSASRTests/Fixtures/small/config.json "$corpus"/small.json ;;
    *) echo "unknown target $t (image, tiff, heif, exif, safetensors, pth, config)" >&2; exit 2 ;;
  esac
  echo "== $t for $SECONDS_EACH s ($CONFIG build)"
  GSASR_FUZZ_TARGET=$t "$B/$CONFIG/GSASRFuzz" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 -max_len=65536 \
    -artifact_prefix="$B/crashes/$t-" -print_final_stats=1 "$corpus" 2>&1 | tail -n 15
done
