#!/usr/bin/env python3
"""Loads weights exported by `gsasr train` into the official GSASR PyTorch modules with strict=True.

Usage (PyTorch from PyPI, outside the project; the official code from github ChrisDud0257/GSASR):

    python3 tools/check_official_load.py --official PATH/TO/GSASR/TrainTestGSASR MODEL_DIR

MODEL_DIR is an exported model folder (runs/NAME/model or Models/default). It reads
MODEL_DIR/config.json for the constructor arguments and MODEL_DIR/official/{encoder,decoder}.pth,
builds EDSRNOUP and Fea2GS from the official basicsr/archs sources, calls
load_state_dict(strict=True) for both 'params_ema' and 'params', runs one forward on a random
24x24 input and prints the output shape. Exit status 0 means every key, shape and dtype matched.
"""
import argparse, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from official_modules import official_archs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="the official TrainTestGSASR folder")
    ap.add_argument("model_dir")
    a = ap.parse_args()
    import torch

    edsr, fea2gs = official_archs(a.official)

    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    enc_kw = {k: v for k, v in cfg["encoder"].items() if k != "type"}
    dec_kw = {k: v for k, v in cfg["decoder"].items() if k != "type"}
    enc = edsr.EDSRNOUP(**enc_kw)
    dec = fea2gs.Fea2GS(**dec_kw)
    for net, name in [(enc, "encoder"), (dec, "decoder")]:
        ck = torch.load(os.path.join(a.model_dir, "official", name + ".pth"), map_location="cpu", weights_only=True)
        for key in ["params_ema", "params"]:
            net.load_state_dict(ck[key], strict=True)
            print(f"{name}: '{key}' loaded with strict=True ({len(ck[key])} entries)")
    ws = dec_kw["window_size"]
    x = torch.rand(1, 3, 2 * ws, 2 * ws)
    with torch.no_grad():
        out = dec(enc(x), torch.tensor([2.0]))
    print("forward OK:", tuple(out.shape))


if __name__ == "__main__":
    main()
