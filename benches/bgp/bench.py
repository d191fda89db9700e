#!/usr/bin/env python3
"""BGP at full-table size.

Starts BIRD 2 announcing 1,000,000 IPv4 + 200,000 IPv6 prefixes, peers with
it the way the box does (nearcast-bgp), and prints the time to learn the
table and the memory it takes; then loads the learned table into a release
fill server as one appliance's BGP routes and drives /v1/steer with wrk,
every request from a different client inside the table, printing
decisions/s and p50/p99. Run from the repository root:

    python3 benches/bgp/bench.py [--seconds 10]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fill_server_run import FillServer, wrk  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--v4", type=int, default=1_000_000)
    ap.add_argument("--v6", type=int, default=200_000)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    for tool in ["wrk", "bird", "birdc"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install wrk bird2")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "nearcast-fill-server"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=HERE, check=True)
    work = tempfile.mkdtemp(prefix="nearcast-bgp-bench-")
    db = os.path.join(work, "fs.db")
    subprocess.run([os.path.join(HERE, "target/release/nearcast-bgp-bench"), str(a.v4), str(a.v6), db], check=True)
    server = FillServer(work, db, 18780)
    print(f"fill server up with the BGP table in {server.startup_secs:.1f} s")
    try:
        req = urllib.request.Request(f"{server.url}/v1/steer?title=bench", headers={"X-Forwarded-For": "1.0.0.9"})
        sample = json.load(urllib.request.urlopen(req))
        assert sample["urls"][0].startswith("http://10.99.0.1:8080/"), sample
        rps, p50, p99, errors = wrk(server.url, os.path.join(HERE, "random_client.lua"), a.connections, a.seconds)
        print(f"\nsteering with {a.v4 + a.v6:,} BGP prefixes loaded, wrk -t2 -c{a.connections} -d{a.seconds}s")
        print(f"  decisions/s: {rps:,.0f}; latency p50 {p50}, p99 {p99}")
        print(f"  non-2xx: {errors}; fill server RSS {server.rss_mib():.0f} MiB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
