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
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

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
    origin = os.path.join(work, "origin", "bench")
    os.makedirs(origin)
    with open(os.path.join(origin, "index.json"), "w") as f:
        json.dump({"title": "bench", "version": 1, "duration_secs": 1.0, "target_duration_secs": 4.0,
                   "renditions": [], "files": []}, f)
    conf = os.path.join(work, "fs.toml")
    with open(conf, "w") as f:
        f.write(f'''listen = "127.0.0.1:18780"
database = "{db}"
origin_store = "{os.path.join(work, "origin")}"
origin_listen = "127.0.0.1:18781"
origin_admin_listen = "127.0.0.1:18782"
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
    print(f"fill server up with the BGP table in {time.monotonic() - t:.1f} s")
    try:
        req = urllib.request.Request("http://127.0.0.1:18780/v1/steer?title=bench", headers={"X-Forwarded-For": "9.8.7.6"})
        sample = json.load(urllib.request.urlopen(req))
        assert sample["urls"][0].startswith("http://10.99.0.1:8080/"), sample
        out = subprocess.run(["wrk", "-t2", f"-c{a.connections}", f"-d{a.seconds}s", "--latency", "-s",
                              os.path.join(HERE, "random_client.lua"), "http://127.0.0.1:18780"],
                             capture_output=True, text=True, timeout=a.seconds + 30).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        with open(f"/proc/{server.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
        print(f"\nsteering with {a.v4 + a.v6:,} BGP prefixes loaded, wrk -t2 -c{a.connections} -d{a.seconds}s")
        print(f"  decisions/s: {rps:,.0f}; latency p50 {p50}, p99 {p99}")
        print(f"  non-2xx: {errors.group(1) if errors else 0}; fill server RSS {rss:.0f} MiB")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
