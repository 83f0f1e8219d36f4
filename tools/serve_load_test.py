#!/usr/bin/env python3
"""Load test of `gsasr serve` (Benchmarks/README.md, "Web server under load").

N clients upload at once (default 20 uploads of 256x256 photos at x4, four different photos);
every request must be answered, with the PNG (identical, byte for byte, to the single-request
answer for the same photo: nothing lost or mixed up) or with 503 and Retry-After. Prints the
counts, the wall time and the server's peak RSS next to the bound its limits give.

    python3 tools/serve_load_test.py [--clients 20] [--scale 4] [-m Models/small] [--binary PATH]
"""
import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time

from serve_common import ROOT, Server, find_binary, make_inputs, request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--scale", default="4")
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "Models/default"))
    ap.add_argument("--binary")
    ap.add_argument("--serve-args", default="", help="extra `gsasr serve` options, space-separated")
    a = ap.parse_args()
    binary = find_binary(a.binary)
    tmp = tempfile.mkdtemp(prefix="gsasr-load-")
    inputs = [open(p, "rb").read() for p in make_inputs(binary, tmp, os.path.join(ROOT, "Models/small"))]
    server = Server(binary, ["-m", a.model] + a.serve_args.split(), os.path.join(tmp, "serve.log"))
    try:
        idle = server.peak_rss_kib()
        url = f"{server.base}/api/upscale?scale={a.scale}"
        t0 = time.time()
        baseline = []
        for body in inputs:
            status, _, png = request("POST", url, body)
            assert status == 200, f"single request: {status} {png[:200]!r}"
            baseline.append(png)
        single = (time.time() - t0) / len(inputs)
        print(f"single requests: {len(inputs)} photos, {single:.2f} s each")

        def client(i):
            status, headers, body = request("POST", url, inputs[i % len(inputs)])
            return i, status, headers, body

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            answers = list(pool.map(client, range(a.clients)))
        wall = time.time() - t0
        ok = busy = 0
        for i, status, headers, body in answers:
            if status == 200:
                assert body == baseline[i % len(inputs)], f"client {i}: its PNG differs from the single-request one"
                ok += 1
            elif status == 503:
                assert int(headers.get("Retry-After", "0")) >= 1, f"client {i}: 503 without Retry-After"
                busy += 1
            else:
                raise AssertionError(f"client {i}: unexpected {status} {body[:200]!r}")
        assert ok + busy == a.clients
        assert server.alive(), "the server died"
        # The next request after the burst is served.
        status, _, png = request("POST", url, inputs[0])
        assert status == 200 and png == baseline[0], "the request after the burst failed"
        _, _, info = request("GET", f"{server.base}/api/info")
        bound = json.loads(info)["limits"]["memoryBoundBytes"] / 2**20 + idle / 1024
        rss = server.peak_rss_kib()
        print(f"{a.clients} concurrent uploads at x{a.scale}: {ok} results (each identical to its single-request "
              f"PNG), {busy} answered 503 + Retry-After, 0 lost; wall {wall:.1f} s")
        print(f"server peak RSS {rss / 1024:.0f} MiB (idle {idle / 1024:.0f} MiB; bound from the limits "
              f"{bound:.0f} MiB); /api/info: {info.decode()}")
        assert rss / 1024 <= bound, "peak RSS over the bound the limits give"
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
