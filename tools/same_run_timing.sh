#!/bin/bash
# The README's speed rows in one run: `gsasr bench` on the paper EDSR config at LR 48, 96 and 180
# (x4), then the official networks at the same sizes (tools/official_timing.py), one after the
# other, each with its peak RSS. Outside the project and its CI: needs PyTorch from PyPI and the
# official code (github ChrisDud0257/GSASR, folder TrainTestGSASR).
#
#   tools/same_run_timing.sh [--avx2] OFFICIAL_DIR [PYTHON]
#
# --avx2 runs both sides on AVX2 code paths (OpenBLAS's Haswell kernels; torch's AVX2 capability,
# MKL and oneDNN capped at AVX2): the nearest an AVX-512 machine comes to an AVX2-only one.
# Run from the repository root after `swift build -c release`; nothing else should be running.
set -euo pipefail
if [ "${1:-}" = "--avx2" ]; then
  export OPENBLAS_CORETYPE=HASWELL ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
  shift
fi
official=${1:?usage: tools/same_run_timing.sh [--avx2] OFFICIAL_DIR [PYTHON]}
python=${2:-python3}
gsasr=.build/release/gsasr
model=../shared/golden/edsr_paper
[ -x "$gsasr" ] || { echo "error: $gsasr not built (swift build -c release)" >&2; exit 2; }
[ -d "$official" ] || { echo "error: $official is not a folder (the official TrainTestGSASR)" >&2; exit 2; }
$gsasr info
"$python" -c "import torch; print('torch', torch.__version__, [l.strip() for l in torch.__config__.show().splitlines() if 'capability' in l])"
for n in 48 96; do $gsasr bench -m $model --lr-size $n -s 4 --repeats 3 --dmax 0.1; done
$gsasr bench -m $model --lr-size 180 -s 4 --repeats 1 --dmax 0.1
"$python" tools/official_timing.py --official "$official" --model $model --sizes 48,96
"$python" tools/official_timing.py --official "$official" --model $model --sizes 180 --repeats 1
