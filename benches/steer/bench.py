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
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

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
    origin = os.path.join(work, "origin", "bench")
    os.makedirs(origin)
    with open(os.path.join(origin, "index.json"), "w") as f:
        json.dump({"title": "bench", "version": 1, "duration_secs": 1.0, "target_duration_secs": 4.0,
                   "renditions": [], "files": []}, f)
    conf = os.path.join(work, "fs.toml")
    with open(conf, "w") as f:
        f.write(f'''listen = "127.0.0.1:18770"
database = "{db}"
origin_store = "{os.path.join(work, "origin")}"
origin_listen = "127.0.0.1:18771"
origin_admin_listen = "127.0.0.1:18772"
heartbeat_timeout_secs = 86400
token_key_id = "k1"
token_key_hex = "{"55" * 32}"
admin_token = "bench-admin-token-0123456789"
trusted_proxies = ["127.0.0.0/8"]
''')
    t = time.monotonic()
    server = subprocess.Popen([os.path.join(ROOT, "target/release/nearcast-fill-server"), "--config", conf],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server.stdout.readline()
    print(f"server up (table loaded) in {time.monotonic() - t:.1f} s")
    try:
        req = urllib.request.Request("http://127.0.0.1:18770/v1/steer?title=bench", headers={"X-Forwarded-For": "10.1.2.3"})
        sample = json.load(urllib.request.urlopen(req))
        print(f"sample answer: isp={sample['isp']}, {len(sample['urls'])} URLs")
        out = subprocess.run(["wrk", "-t2", f"-c{a.connections}", f"-d{a.seconds}s", "--latency", "-s",
                              os.path.join(HERE, "random_client.lua"), "http://127.0.0.1:18770"],
                             capture_output=True, text=True, timeout=a.seconds + 30).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        with open(f"/proc/{server.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
        print(f"\n{a.prefixes} prefixes, {a.appliances} appliances, wrk -t2 -c{a.connections} -d{a.seconds}s, both on {os.cpu_count()} cores")
        print(f"  steering decisions/s: {rps:,.0f}   (target >= 50,000: {'met' if rps >= 50000 else 'missed'})")
        print(f"  latency p50 {p50}, p99 {p99}   (target p99 < 2 ms)")
        print(f"  non-2xx: {errors.group(1) if errors else 0}; server RSS {rss:.0f} MiB")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    if not a.skip_criterion:
        print("\nprefix lookup micro-benchmark (criterion):")
        run(["cargo", "bench", "-q", "--bench", "lpm"], cwd=HERE)


if __name__ == "__main__":
    main()
