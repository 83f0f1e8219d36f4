"""Starts `gsasr serve` on a free port of 127.0.0.1 for the browser and load tests (stdlib only)."""
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_binary(path=None):
    for p in [path, os.path.join(ROOT, ".build/release/gsasr"), os.path.join(ROOT, ".build/debug/gsasr")]:
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("gsasr binary not found: build it with `swift build -c release`")


class Server:
    """`gsasr serve --port 0 ARGS...`; the port is read from its first line."""

    def __init__(self, binary, args, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "serve", "--port", "0"] + args, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            sys.exit(f"server did not start: {line!r} (log: {log_path})")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return -1

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def request(method, url, body=None, timeout=600):
    """(status, headers, body) for any status, raising only when no answer came."""
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def make_inputs(binary, folder, model):
    """Four distinct 256x256 photos made from the bundled examples (by gsasr itself, so that no
    image library is needed): their paths."""
    specs = [("seeding_160x120.png", []), ("coffee_37x50.png", []), ("astronaut_48x48.png", []),
             ("seeding_160x120.png", ["--raster-mode", "exact"])]
    paths = []
    for i, (name, extra) in enumerate(specs):
        out = os.path.join(folder, f"input{i}_256.png")
        subprocess.run([binary, "-q", "-i", os.path.join(ROOT, "Examples", name), "-o", out, "--size", "256x256",
                        "-m", model] + extra, check=True)
        paths.append(out)
    return paths


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
