#!/usr/bin/env python3
"""Builds a random-weight model folder for each released GSASR layout (shared/golden/zoo/full_configs),
with the official classes and their released constructor arguments (PyTorch's default init,
torch.manual_seed(0)), for the same-run speed comparison of Benchmarks/README.md: each folder
holds encoder.pth and decoder.pth ({'params_ema': state_dict}, the released files' layout) and a
config.json that `gsasr` and tools/official_timing.py --zoo read. Outside the project and its CI:
needs PyTorch and einops from PyPI and a checkout of github ChrisDud0257/GSASR.

    python3 tools/zoo_models.py --official /tmp/gsasr-official \\
        --configs ../shared/golden/zoo/full_configs --out /tmp/zoo-models
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The decoder arguments config.json carries (gsasr's reader accepts these; use_checkpoint is a
# training switch).
DECODER_KEYS = ["inchannel", "channel", "num_heads", "num_crossattn_blocks", "num_crossattn_layers",
                "num_selfattn_blocks", "num_selfattn_layers", "num_gs_seed", "window_size", "shuffle_scale1",
                "shuffle_scale2", "gs_up_factor", "img_range", "rope_mixed", "rope_theta"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="checkout of ChrisDud0257/GSASR (with utils/)")
    ap.add_argument("--configs", required=True, help="shared/golden/zoo/full_configs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", default="paper_edsr,paper_rdn,paper_swinir,enhanced_edsr,enhanced_rdn,"
                                        "enhanced_swinir,ultra_hatl")
    a = ap.parse_args()
    import torch
    from official_modules import official_zoo_classes
    classes = official_zoo_classes(a.official)
    for name in a.names.split(","):
        cfg = json.load(open(os.path.join(a.configs, name + ".json")))
        torch.manual_seed(0)
        enc = classes[cfg["encoder"]["type"]](**cfg["encoder"]["kwargs"])
        dec = classes[cfg["decoder"]["type"]](**cfg["decoder"]["kwargs"])
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        torch.save({"params_ema": enc.state_dict()}, os.path.join(d, "encoder.pth"))
        torch.save({"params_ema": dec.state_dict()}, os.path.join(d, "decoder.pth"))
        dk = cfg["decoder"]["kwargs"]
        out = {
            "encoder": dict(cfg["encoder"]["kwargs"], type=cfg["encoder"]["type"]),
            "decoder": dict({k: dk[k] for k in DECODER_KEYS if k in dk}, type=cfg["decoder"]["type"]),
            "denominator": cfg["denominator"],
        }
        json.dump(out, open(os.path.join(d, "config.json"), "w"), indent=1)
        print(f"{name}: {cfg['encoder']['type']} + {cfg['decoder']['type']} -> {d}")


if __name__ == "__main__":
    main()
