#!/usr/bin/env python3
"""Times the official GSASR networks (encoder EDSRNOUP, decoder Fea2GS) on the CPU, for the
same-run comparison with `gsasr bench` (Benchmarks/README.md). Outside the project and its CI:
needs PyTorch from PyPI and the official code (github ChrisDud0257/GSASR, TrainTestGSASR).

Each LR size runs in a fresh process (so that peak RSS is that size's alone): load the model,
one warm-up, then the median of --repeats runs of each stage under torch.no_grad() with
torch.set_num_threads(--threads), float32, batch 1, scale 4. The input is random (the networks'
time does not depend on the content). The official rasterizer is a CUDA kernel (gs.cu) and is not
timed here.

With --train B, it times instead the networks' forward and backward of a training step (batch B,
LR --sizes, scale --scale; a fixed random upstream gradient on the Gaussian parameters stands in
for the render and the loss, whose official CPU cost is the torch port of gs.cu), the part
`gsasr bench train` reports as network forward and network backward.

    python3 tools/official_timing.py --official /tmp/gsasr-official/TrainTestGSASR \\
        --model ../shared/golden/edsr_paper --sizes 48,96,180

With --zoo, --official is the repository root and the networks are the inference code's classes
(utils/: RDNNOUP, SwinIRNOUP, HATNOUP_ROPE_AMP, EDSRNOUP, Fea2GS, Fea2GS_ROPE_AMP), as
config.json's types name them (model folders from tools/zoo_models.py).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def networks(a, train):
    """The official encoder and decoder with the model's weights, in train or eval mode."""
    import torch
    from official_modules import official_archs, official_zoo_classes

    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    if a.zoo:
        # The inference code's classes (utils/ of the repository root), any released type.
        classes = official_zoo_classes(a.official)
        enc = classes[cfg["encoder"]["type"]](**{k: v for k, v in cfg["encoder"].items() if k != "type"})
        dec = classes[cfg["decoder"]["type"]](**{k: v for k, v in cfg["decoder"].items() if k != "type"})
    else:
        edsr, fea2gs = official_archs(a.official)
        enc = edsr.EDSRNOUP(**{k: v for k, v in cfg["encoder"].items() if k != "type"})
        dec = fea2gs.Fea2GS(**{k: v for k, v in cfg["decoder"].items() if k != "type"})
    for net, name in [(enc, "encoder"), (dec, "decoder")]:
        ck = torch.load(os.path.join(a.model, name + ".pth"), map_location="cpu", weights_only=True)
        net.load_state_dict(ck.get("params_ema", ck.get("params", ck)), strict=True)
        net.train(train)
    torch.manual_seed(0)
    return torch, enc, dec


def one(a, size):
    torch, enc, dec = networks(a, train=False)
    x = torch.rand(1, 3, size, size)
    scale = torch.tensor([float(a.scale)])
    times = {"encoder": [], "decoder": []}
    with torch.no_grad():
        for r in range(a.repeats + 1):
            t0 = time.perf_counter()
            feat = enc(x)
            t1 = time.perf_counter()
            out = dec(feat, scale)
            t2 = time.perf_counter()
            if r > 0:
                times["encoder"].append(t1 - t0)
                times["decoder"].append(t2 - t1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "gaussians": int(out.shape[1]) if out.dim() > 2 else int(out.shape[0]),
                      "encoder_s": statistics.median(times["encoder"]), "decoder_s": statistics.median(times["decoder"]),
                      "encoder_runs": times["encoder"], "decoder_runs": times["decoder"], "peak_rss_mib": rss,
                      "torch": torch.__version__, "threads": a.threads}))


def train_one(a, size):
    torch, enc, dec = networks(a, train=True)
    x = torch.rand(a.train, 3, size, size)
    scale = torch.full((a.train,), float(a.scale))
    fwd, bwd = [], []
    for r in range(a.repeats + 1):
        for p in list(enc.parameters()) + list(dec.parameters()):
            p.grad = None
        t0 = time.perf_counter()
        out = dec(enc(x), scale)
        t1 = time.perf_counter()
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(r))
        out.backward(g)
        t2 = time.perf_counter()
        if r > 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "batch": a.train, "forward_s": statistics.median(fwd),
                      "backward_s": statistics.median(bwd), "forward_runs": fwd, "backward_runs": bwd,
                      "peak_rss_mib": rss, "torch": torch.__version__, "threads": a.threads}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="the official TrainTestGSASR folder")
    ap.add_argument("--model", required=True, help="folder with config.json, encoder.pth, decoder.pth")
    ap.add_argument("--sizes", default="48,96,180")
    ap.add_argument("--scale", default="4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", type=int, help="time a training step's network forward and backward at this batch")
    ap.add_argument("--zoo", action="store_true",
                    help="--official is the repository root and the classes come from its utils/ (every released "
                         "type: tools/zoo_models.py makes such model folders)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        (train_one if a.train else one)(a, a.one)
        return
    for size in [int(s) for s in a.sizes.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__), "--official", a.official, "--model", a.model, "--scale",
               a.scale, "--repeats", str(a.repeats), "--threads", str(a.threads), "--one", str(size)]
        if a.zoo:
            cmd += ["--zoo"]
        if a.train:
            cmd += ["--train", str(a.train)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"size {size}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
        d = json.loads(r.stdout.strip().splitlines()[-1])
        if a.train:
            print(f"official training networks, batch {a.train}, LR {size} x{a.scale}: forward {d['forward_s']:.2f} s, "
                  f"backward {d['backward_s']:.2f} s, forward + backward {d['forward_s'] + d['backward_s']:.2f} s, "
                  f"peak RSS {d['peak_rss_mib']:.0f} MiB (torch {d['torch']}, {d['threads']} threads)")
            continue
        print(f"official, LR {size}x{size} x{a.scale}: encoder {d['encoder_s']:.3f} s, decoder {d['decoder_s']:.3f} s "
              f"(runs {', '.join(f'{t:.2f}' for t in d['decoder_runs'])}), network {d['encoder_s'] + d['decoder_s']:.3f} s, "
              f"peak RSS {d['peak_rss_mib']:.0f} MiB (torch {d['torch']}, {d['threads']} threads)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
