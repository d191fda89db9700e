#!/usr/bin/env python3
"""Appliance vs nginx on the same files and the same wrk load, in one run.

Starts Debian's nginx (sendfile on, tcp_nopush on, access_log off, as many
workers as the appliance has threads) and the release appliance on one file
set (200 x 2 MiB, 2000 x 64 KiB), drives both with the same wrk Lua script
picking random files, alternating runs, and prints req/s, MB/s, p50/p99,
peak RSS, the RSS with 10,000 idle connections open, and appliance/nginx
ratios. Needs: nginx-light (or nginx), wrk. Run from the repository root:

    cargo build --release -p nearcast-appliance
    python3 benches/serve/bench.py [--rounds 3] [--seconds 10]
"""
import argparse, os, re, resource, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SETS = {"2MiB": (200, 2 * 1024 * 1024, "big"), "64KiB": (2000, 64 * 1024, "small")}


def make_files(content):
    for _, (count, size, name) in SETS.items():
        d = os.path.join(content, "bench", name)
        os.makedirs(d, exist_ok=True)
        for i in range(count):
            p = os.path.join(d, f"f{i}.m4s")
            if not os.path.exists(p) or os.path.getsize(p) != size:
                with open(p, "wb") as f:
                    f.write(os.urandom(size))


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on {port}")


def start_nginx(work, content, port, workers):
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes {workers};
worker_rlimit_nofile 30000;
pid {work}/nginx.pid;
error_log {work}/nginx.err;
daemon off;
events {{ worker_connections 20000; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  open_file_cache max=4096 inactive=60s; open_file_cache_valid 1s;
  server {{ listen 127.0.0.1:{port} reuseport; location /c/ {{ alias {content}/; }} }}
}}
""")
    p = subprocess.Popen(["nginx", "-c", conf], stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def start_appliance(content, port, admin, threads):
    exe = os.path.join(ROOT, "target", "release", "nearcast-appliance")
    if not os.path.exists(exe):
        sys.exit("build it first: cargo build --release -p nearcast-appliance")
    p = subprocess.Popen([exe, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                          "--disk", content, "--threads", str(threads), "--no-auth"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def pids_of(proc):
    """The process and its children (nginx workers)."""
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    return [proc.pid] + [int(k) for k in kids]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_mib(proc, field="VmRSS"):
    return sum(status_kib(p, field) for p in pids_of(proc)) / 1024


def parse_latency(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]


def wrk(port, set_name, seconds, conns, threads):
    count, _, name = SETS[set_name]
    env = dict(os.environ, BENCH_PREFIX=f"/c/bench/{name}/f", BENCH_COUNT=str(count))
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
                          "-s", os.path.join(HERE, "random.lua"), f"http://127.0.0.1:{port}"],
                         env=env, capture_output=True, text=True, timeout=seconds + 30).stdout
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    size = SETS[set_name][1]
    r["mbps"] = r["rps"] * size / 1e6
    r["p50"] = parse_latency(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    r["p99"] = parse_latency(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    r["errors"] = errs.group(0) if errs else ""
    return r


def idle_rss(proc, port, n):
    """RSS (MiB) of `proc` with `n` idle client connections open."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.connect(("127.0.0.1", port))
            socks.append(s)
        time.sleep(1.5)
        return rss_mib(proc)
    finally:
        for s in socks:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="appliance threads = nginx workers")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the memory check")
    ap.add_argument("--sets", default=",".join(SETS), help="which file sets, e.g. 2MiB")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nearcast-bench"))
    a = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install nginx-light wrk")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    content = os.path.join(a.work, "content")
    make_files(content)
    servers = {"nginx": (18481, None), "appliance": (18482, 19482)}
    procs = {"nginx": start_nginx(a.work, content, 18481, a.threads),
             "appliance": start_appliance(content, 18482, 19482, a.threads)}
    sets = a.sets.split(",")
    results = {(s, k): [] for s in sets for k in servers}
    try:
        # Warm the page cache and the file caches once.
        for name, (port, _) in servers.items():
            for s in sets:
                wrk(port, s, 2, a.connections, 2)
        for rnd in range(a.rounds):
            for s in sets:
                order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                for name in order:
                    r = wrk(servers[name][0], s, a.seconds, a.connections, 2)
                    results[(s, name)].append(r)
                    print(f"round {rnd + 1} {s:5} {name:9} {r['rps']:9.0f} req/s {r['mbps']:8.0f} MB/s "
                          f"p50 {r['p50']:6.2f} ms p99 {r['p99']:6.2f} ms {r['errors']}", flush=True)
        peak = {n: rss_mib(p, "VmHWM") for n, p in procs.items()}
        idle = {n: idle_rss(procs[n], servers[n][0], a.idle) for n in servers}
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)

    print(f"\nmedian of {a.rounds} rounds, {a.seconds} s each, wrk -t2 -c{a.connections}, "
          f"{a.threads} server threads/workers, loopback, both sharing {os.cpu_count()} cores")
    print(f"{'set':6} {'server':10} {'req/s':>9} {'MB/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for s in sets:
        med = {}
        for n in servers:
            rs = results[(s, n)]
            med[n] = {k: statistics.median(r[k] for r in rs) for k in ("rps", "mbps", "p50", "p99")}
            m = med[n]
            print(f"{s:6} {n:10} {m['rps']:9.0f} {m['mbps']:8.0f} {m['p50']:7.2f} {m['p99']:7.2f}")
        ap_, ng = med["appliance"], med["nginx"]
        print(f"{s:6} {'ratio':10} {ap_['rps'] / ng['rps']:9.2f}x {ap_['mbps'] / ng['mbps']:7.2f}x "
              f"{ap_['p50'] / ng['p50']:7.2f}x {ap_['p99'] / ng['p99']:7.2f}x   (appliance / nginx)")
    print(f"\npeak RSS during load: appliance {peak['appliance']:.1f} MiB, nginx {peak['nginx']:.1f} MiB (all processes)")
    print(f"RSS with {a.idle} idle connections: appliance {idle['appliance']:.1f} MiB, nginx {idle['nginx']:.1f} MiB")


if __name__ == "__main__":
    main()
