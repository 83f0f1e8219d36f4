#!/bin/bash
# Same-run speed of every released layout (random weights), ours against the official inference
# classes on the CPU, LR 48x48 -> x4, 2 threads: `gsasr bench` (encoder, decoder, rasterizer,
# total, peak RSS), then tools/official_timing.py --zoo (encoder, decoder, peak RSS) per model.
# Outside the project and its CI: needs PyTorch and einops from PyPI (PYTHON, default python3) and
# a checkout of github ChrisDud0257/GSASR (OFFICIAL, its root: utils/ is used).
#
#   OFFICIAL=/tmp/gsasr-official PYTHON=/tmp/torchenv/bin/python tools/zoo_timing.sh
#
# The model folders come from tools/zoo_models.py (into MODELS, default /tmp/zoo-models) the
# first time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OFFICIAL=${OFFICIAL:?set OFFICIAL to a checkout of ChrisDud0257/GSASR}
MODELS=${MODELS:-/tmp/zoo-models}
CONFIGS=${CONFIGS:-../shared/golden/zoo/full_configs}
NAMES=${NAMES:-paper_edsr paper_rdn paper_swinir enhanced_edsr enhanced_rdn enhanced_swinir ultra_hatl}
[ -f "$MODELS/ultra_hatl/decoder.pth" ] || "$PY" tools/zoo_models.py --official "$OFFICIAL" --configs "$CONFIGS" --out "$MODELS"
swift build -c release --product gsasr >/dev/null
for n in $NAMES; do
  echo "=== $n"
  .build/release/gsasr bench -m "$MODELS/$n" --lr-size 48 -s 4 --repeats 3 2>&1 | sed -n '1,7p'
  "$PY" tools/official_timing.py --zoo --official "$OFFICIAL" --model "$MODELS/$n" --sizes 48 --repeats 3 2>&1 | grep '^official'
done
