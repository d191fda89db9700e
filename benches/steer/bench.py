#!/usr/bin/env python3
"""Steering at scale: decisions/s and latency with a full routing table.

Seeds a fill-server database with 1,000,000 prefixes (IPv4 and IPv6) and
1,000 registered, heartbeating appliances holding the title `bench`, starts
the release fill server, drives `/v1/steer` with wrk (every request from a
different client address via X-Forwarded-For from the trusted loopback),
and prints decisions/s, p50/p99 and RSS against the issue's target
(>= 50,000/s, p99 < 2 ms). Then runs the criterion lookup benchmark.
Run from the repository root:

    python3 benches/steer/bench.py [--seconds 10]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fill_server_run import FillServer, wrk  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--appliances", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--skip-criterion", action="store_true")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    run(["cargo", "build", "--release", "-q", "-p", "nearcast-fill-server"], cwd=ROOT)
    run(["cargo", "build", "--release", "-q"], cwd=HERE)
    work = tempfile.mkdtemp(prefix="nearcast-steer-bench-")
    db = os.path.join(work, "fs.db")
    t = time.monotonic()
    run([os.path.join(HERE, "target/release/steer-seed"), db, str(a.prefixes), str(a.appliances)])
    print(f"seeded in {time.monotonic() - t:.1f} s")
    server = FillServer(work, db, 18770)
    print(f"server up (table loaded) in {server.startup_secs:.1f} s")
    try:
        req = urllib.request.Request(f"{server.url}/v1/steer?title=bench", headers={"X-Forwarded-For": "10.1.2.3"})
        sample = json.load(urllib.request.urlopen(req))
        print(f"sample answer: isp={sample['isp']}, {len(sample['urls'])} URLs")
        rps, p50, p99, errors = wrk(server.url, os.path.join(HERE, "random_client.lua"), a.connections, a.seconds)
        print(f"\n{a.prefixes} prefixes, {a.appliances} appliances, wrk -t2 -c{a.connections} -d{a.seconds}s, both on {os.cpu_count()} cores")
        print(f"  steering decisions/s: {rps:,.0f}   (target >= 50,000: {'met' if rps >= 50000 else 'missed'})")
        print(f"  latency p50 {p50}, p99 {p99}   (target p99 < 2 ms)")
        print(f"  non-2xx: {errors}; server RSS {server.rss_mib():.0f} MiB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if not a.skip_criterion:
        print("\nprefix lookup micro-benchmark (criterion):")
        run(["cargo", "bench", "-q", "--bench", "lpm"], cwd=HERE)


if __name__ == "__main__":
    main()
