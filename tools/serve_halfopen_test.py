#!/usr/bin/env python3
"""Idle-flood check of `gsasr serve` (issue 29): start it under a small open-file limit, open N
half-open connections (a request line and one header, never finished), then send a normal request
and retry it once a second until it is served; report what the flood got, when the request was
served, and the server's CPU meanwhile (from /proc). Usage, from the repository root:

    python3 tools/serve_halfopen_test.py [--nofile 200] [--connections 300] [-m Models/small]
"""
import argparse, os, socket, subprocess, sys, time, urllib.error, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--nofile", type=int, default=200)
ap.add_argument("--connections", type=int, default=300)
ap.add_argument("-m", "--model", default="Models/small")
ap.add_argument("--binary", default=".build/release/gsasr")
a = ap.parse_args()

server = subprocess.Popen(
    ["bash", "-c", f"ulimit -n {a.nofile}; exec {a.binary} serve --port 0 -m {a.model}"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = server.stdout.readline()
port = int(line.split("127.0.0.1:")[1].split()[0].rstrip(")"))
pid = server.pid

def cpu_seconds():
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().split(")")[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

try:
    socks = []
    for _ in range(a.connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET /api/info HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    time.sleep(0.5)
    refused = 0
    for s in socks:
        s.settimeout(0.05)
        try:
            if s.recv(4096).startswith(b"HTTP/1.1 503"):
                refused += 1
        except OSError:
            pass
    print(f"ulimit -n {a.nofile}: {a.connections} half-open connections, {refused} answered 503 at once")
    c0, t0 = cpu_seconds(), time.time()
    first = None
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=120).read()
            print(f"normal request served (200) after {time.time() - t0:.1f} s")
            break
        except urllib.error.HTTPError as e:
            if first is None:
                first = e.code
                print(f"normal request: {e.code} after {time.time() - t0:.2f} s (Retry-After {e.headers.get('Retry-After')})")
        time.sleep(1)
    el = time.time() - t0
    print(f"server CPU meanwhile: {100 * (cpu_seconds() - c0) / el:.1f} % of one core over {el:.1f} s")
finally:
    server.terminate()
