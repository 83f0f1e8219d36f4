#!/usr/bin/env bash
# Copies the default model out of its training run into Models/default, with the resumable
# checkpoint, log and curve (so a later session, on any machine, continues the training), then
# evaluates it on the visible validation set and draws the README's before/after picture.
#
#   tools/package-default-model.sh [RUN_DIR] [VAL_DIR]      (defaults: runs/default data/val, see README, Training)
#
# To continue the training in a later session:
#   mkdir -p runs/default && cp Models/default/training/{checkpoint.safetensors,log.jsonl} runs/default/
#   swift build -c release && .build/release/gsasr train Configs/default.yml --run runs/default --resume
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/default}
VAL=${2:-data/val}
G=.build/release/gsasr
mkdir -p Models/default/training docs
cp "$RUN"/model/encoder.safetensors "$RUN"/model/decoder.safetensors "$RUN"/model/config.json Models/default/
cp "$RUN"/checkpoint.safetensors "$RUN"/log.jsonl "$RUN"/curve.svg Models/default/training/
"$G" eval --hr "$VAL" --scales 1.5,2,2.5,3,3.7,4,6,8,12 -m Models/default --json Models/default/eval.json | tee Models/default/eval.txt
"$G" compare --hr "$VAL"/monarch.png -s 4 --crop 240 -m Models/default -o docs/before_after_monarch_x4.png
