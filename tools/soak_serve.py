#!/usr/bin/env python3
"""Soak test of `ferroflow serve` on loopback: many concurrent keep-alive connections
for a while, against two models, with malformed and oversized requests mixed in and new
versions of both models published (hot reloads) during the load.

Passes when every well-formed request got 200 with the prediction of a version that was
being served (each version's weights differ, so a prediction names its version), every
bad request got its 4xx, and the server's resident memory at the end is within the
allowed growth of its resident memory after the warm-up. Prints the figures:

    SOAK requests=N good=N bad=N failed=0 wrong=0 p50_ms=.. p99_ms=.. rss_warm_mib=..
         rss_end_mib=.. rss_growth_pct=.. reloads=N

    python3 tools/soak_serve.py [--seconds 60] [--connections 64] [--reloads 10]

Standard library only. Builds the release binary and the `soak_models` example unless
--exe and --models-exe are given.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from bench_compare import start_logged, status_mib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BODY = 64 << 10

K = [[0.1 * (i + 1) - 0.05 * j for j in range(3)] for i in range(4)]
L = [[0.2 * (i - j) for j in range(2)] for i in range(5)]


def affine_base(row):
    return [sum(row[i] * K[i][j] for i in range(4)) for j in range(3)]


def pair_base(a, b):
    ab = a + b
    return [sum(ab[i] * L[i][j] for i in range(5)) for j in range(2)]


def version_of(pred, base, scale):
    """The version whose bias explains `pred` (None when none does)."""
    offsets = [(p - q) / s for p, q, s in zip(pred, base, scale)]
    v = round(offsets[0])
    if all(abs(o - v) < 1e-3 * max(1.0, abs(v)) for o in offsets):
        return v
    return None


def rss_mib(pid):
    return status_mib(pid, "VmRSS")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.good = self.bad = self.failed = self.wrong = 0
        self.failures = []

    def fail(self, what):
        with self.lock:
            self.failed += 1
            if len(self.failures) < 10:
                self.failures.append(what)


class Published:
    """Versions published so far (both models share numbers)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latest = 1

    def get(self):
        with self.lock:
            return self.latest

    def set(self, v):
        with self.lock:
            self.latest = v


def good_request(rng):
    n = rng.randint(1, 4)
    if rng.random() < 0.5:
        rows = [[round(rng.uniform(-2, 2), 3) for _ in range(4)] for _ in range(n)]
        body = {"instances": rows}
        expect = [(affine_base(r), [1.0, 1.0, 1.0]) for r in rows]
        return "affine", body, expect
    a = [[round(rng.uniform(-2, 2), 3) for _ in range(3)] for _ in range(n)]
    b = [[round(rng.uniform(-2, 2), 3) for _ in range(2)] for _ in range(n)]
    if rng.random() < 0.5:
        body = {"instances": [{"a": x, "b": y} for x, y in zip(a, b)]}
    else:
        body = {"inputs": {"a": a, "b": b}}
    expect = [(pair_base(x, y), [10.0, -10.0]) for x, y in zip(a, b)]
    return "pair", body, expect


def bad_request(rng):
    """(model, raw body, expected status)."""
    kind = rng.randrange(6)
    if kind == 0:
        return "affine", b'{"instances": [[1, 2, 3, 4]', 400
    if kind == 1:
        return "affine", json.dumps({"instances": [[1, 2, 3]]}).encode(), 400
    if kind == 2:
        return "pair", json.dumps({"instances": [{"a": [1, 2, 3]}]}).encode(), 400
    if kind == 3:
        return "affine", json.dumps({"instances": [[1, 2, 3, 4], [1]]}).encode(), 400
    if kind == 4:
        return "nope", json.dumps({"instances": [[1, 2, 3, 4]]}).encode(), 404
    big = json.dumps({"instances": [[0.5] * 4] * (MAX_BODY // 8)}).encode()
    return "affine", big, 413


def client(addr, stop, stats, published, seed, bad_fraction):
    rng = random.Random(seed)
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    while not stop.is_set():
        bad = rng.random() < bad_fraction
        if bad:
            model, body, want = bad_request(rng)
        else:
            model, obj, expect = good_request(rng)
            body = json.dumps(obj).encode()
        floor = published.get() - 1
        t = time.perf_counter()
        try:
            conn.request("POST", f"/v1/models/{model}:predict", body,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            if bad and want == 413:
                # The server may close a connection whose body is over the limit.
                with stats.lock:
                    stats.bad += 1
                continue
            stats.fail(f"{model}: {e!r}")
            continue
        ms = (time.perf_counter() - t) * 1e3
        if bad:
            if r.status != want:
                stats.fail(f"bad request to {model} got {r.status}, wanted {want}: {data[:120]!r}")
            else:
                with stats.lock:
                    stats.bad += 1
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            continue
        if r.status != 200:
            stats.fail(f"{model} got {r.status}: {data[:200]!r}")
            continue
        out = json.loads(data)
        preds = out.get("predictions") or out.get("outputs")
        if isinstance(preds, dict):
            preds = preds["z"]
        if preds and isinstance(preds[0], dict):
            preds = [p["z"] for p in preds]
        versions = {version_of(p, base, scale) for p, (base, scale) in zip(preds, expect)}
        latest = published.get()
        ok = (len(preds) == len(expect) and len(versions) == 1
              and None not in versions and max(1, floor) <= next(iter(versions)) <= latest)
        with stats.lock:
            if ok:
                stats.good += 1
                stats.latencies.append(ms)
            else:
                stats.wrong += 1
                if len(stats.failures) < 10:
                    stats.failures.append(f"{model}: versions {versions} (published {floor + 1}..{latest}): {preds}")
    conn.close()


def build(args):
    if not args.exe:
        subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "ferroflow", "--example", "soak_models",
                               "--bin", "ferroflow"], cwd=ROOT)
        args.exe = os.path.join(ROOT, "target", "release", "ferroflow")
        args.models_exe = os.path.join(ROOT, "target", "release", "examples", "soak_models")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--bad-fraction", type=float, default=0.1)
    ap.add_argument("--max-rss-growth", type=float, default=10.0, help="percent")
    ap.add_argument("--exe")
    ap.add_argument("--models-exe")
    args = ap.parse_args()
    build(args)
    work = tempfile.mkdtemp(prefix="ff_soak_")
    staging = os.path.join(work, "staging")
    subprocess.check_call([args.models_exe, staging, str(args.reloads + 1)], stdout=subprocess.DEVNULL)
    base = os.path.join(work, "models")

    def publish(v):
        for m in ("affine", "pair"):
            os.makedirs(os.path.join(base, m), exist_ok=True)
            os.rename(os.path.join(staging, m, str(v)), os.path.join(base, m, str(v)))

    publish(1)
    config = os.path.join(work, "models.config")
    with open(config, "w") as f:
        f.write("model_config_list {\n")
        for m in ("affine", "pair"):
            f.write(f"  config {{ name: '{m}' base_path: '{os.path.join(base, m)}' }}\n")
        f.write("}\n")
    server, addr = start_logged([args.exe, "serve", "--model_config_file", config, "--rest_api_port", "0", "--port", "0",
                                 "--rest_api_bind_address", "127.0.0.1", "--file_system_poll_wait_seconds", "1",
                                 "--rest_api_max_body_bytes", str(MAX_BODY)],
                                "Exporting HTTP/REST API at:", os.path.join(work, "server.log"))
    stats, published, stop = Stats(), Published(), threading.Event()
    threads = [threading.Thread(target=client, args=(addr, stop, stats, published, i, args.bad_fraction))
               for i in range(args.connections)]
    for t in threads:
        t.start()
    time.sleep(args.warmup)
    rss_warm = rss_mib(server.pid)
    samples = []

    def sample():
        while not stop.is_set():
            samples.append(round(rss_mib(server.pid), 1))
            stop.wait(args.seconds / 12)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with stats.lock:
        stats.latencies.clear()
    interval = args.seconds / (args.reloads + 1)
    start = time.time()
    for v in range(2, args.reloads + 2):
        time.sleep(max(0.0, start + interval * (v - 1) - time.time()))
        # Announced first: a response from version v never arrives before clients know v.
        published.set(v)
        publish(v)
    time.sleep(max(0.0, start + args.seconds - time.time()))
    stop.set()
    for t in threads:
        t.join()
    sampler.join()
    time.sleep(1.5)
    rss_end = rss_mib(server.pid)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    lat = sorted(stats.latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * (len(lat) - 1) + 0.5))] if lat else float("nan")
    growth = (rss_end - rss_warm) / rss_warm * 100
    print(f"SOAK requests={stats.good + stats.bad + stats.failed + stats.wrong} good={stats.good} "
          f"bad={stats.bad} failed={stats.failed} wrong={stats.wrong} p50_ms={pct(0.5):.2f} "
          f"p99_ms={pct(0.99):.2f} rss_warm_mib={rss_warm:.1f} rss_end_mib={rss_end:.1f} "
          f"rss_growth_pct={growth:.1f} reloads={args.reloads} seconds={args.seconds:.0f} "
          f"connections={args.connections}")
    print(f"  resident MiB during the load: {samples}")
    for f in stats.failures:
        print("  " + f)
    shutil.rmtree(work, ignore_errors=True)
    ok = stats.failed == 0 and stats.wrong == 0 and stats.good > 0 and growth <= args.max_rss_growth
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
