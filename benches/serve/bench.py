#!/usr/bin/env python3
"""Appliance vs nginx on the same files and the same wrk load, in one run.

Starts Debian's nginx (sendfile on, tcp_nopush on, access_log off, as many
workers as the appliance has threads) and the release appliance on one file
set (200 x 2 MiB, 2000 x 64 KiB), drives both with the same wrk Lua script
picking random files, alternating runs, and prints req/s, MB/s, p50/p99,
peak RSS, the RSS with 10,000 idle connections open, and appliance/nginx
ratios. Needs: nginx-light (or nginx), wrk. Run from the repository root:

    cargo build --release -p nearcast-appliance
    python3 benches/serve/bench.py [--rounds 3] [--seconds 10] [--https]

With --https both serve TLS 1.3 with one self-signed certificate (made
with openssl). For bytes that are not in RAM see disk.py.
"""
import argparse, os, resource, shutil, socket, statistics, sys, tempfile, time

from servers import make_cert, rss_mib, start_appliance, start_nginx, stop, write_files, wrk as run_wrk

SETS = {"2MiB": (200, 2 * 1024 * 1024, "big"), "64KiB": (2000, 64 * 1024, "small")}


def make_files(content):
    for _, (count, size, name) in SETS.items():
        write_files(os.path.join(content, "bench", name), count, size)


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


def wrk(port, set_name, seconds, conns, threads, https):
    count, size, name = SETS[set_name]
    url = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    return run_wrk(url, f"/c/bench/{name}/f", count, size, seconds, conns, threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="appliance threads = nginx workers")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the memory check")
    ap.add_argument("--sets", default=",".join(SETS), help="which file sets, e.g. 2MiB")
    ap.add_argument("--https", action="store_true", help="HTTPS (TLS 1.3, one certificate for both servers)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nearcast-bench"))
    a = ap.parse_args()
    for tool in ("nginx", "wrk", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install nginx-light wrk openssl")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    content = os.path.join(a.work, "content")
    make_files(content)
    tls = make_cert(a.work) if a.https else None
    # name -> (port wrk uses, admin port)
    servers = {"nginx": (18481, None), "appliance": (18483 if tls else 18482, 19482)}
    procs = {"nginx": start_nginx(a.work, content, 18481, a.threads, tls=tls),
             "appliance": start_appliance(content, 18482, 19482, a.threads, tls=tls, tls_port=18483)}
    sets = a.sets.split(",")
    results = {(s, k): [] for s in sets for k in servers}
    try:
        # Warm the page cache and the file caches once.
        for name, (port, _) in servers.items():
            for s in sets:
                wrk(port, s, 2, a.connections, 2, a.https)
        for rnd in range(a.rounds):
            for s in sets:
                order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                for name in order:
                    r = wrk(servers[name][0], s, a.seconds, a.connections, 2, a.https)
                    results[(s, name)].append(r)
                    print(f"round {rnd + 1} {s:5} {name:9} {r['rps']:9.0f} req/s {r['mbps']:8.0f} MB/s "
                          f"p50 {r['p50']:6.2f} ms p99 {r['p99']:6.2f} ms {r['errors']}", flush=True)
        peak = {n: rss_mib(p, "VmHWM") for n, p in procs.items()}
        idle = {n: idle_rss(procs[n], servers[n][0], a.idle) for n in servers} if a.idle else None
    finally:
        stop(procs.values())

    print(f"\nmedian of {a.rounds} rounds, {a.seconds} s each, wrk -t2 -c{a.connections}, "
          f"{a.threads} server threads/workers, {'HTTPS TLS 1.3' if a.https else 'HTTP'}, loopback, "
          f"both sharing {os.cpu_count()} cores")
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
    if idle:
        print(f"RSS with {a.idle} idle connections: appliance {idle['appliance']:.1f} MiB, nginx {idle['nginx']:.1f} MiB")


if __name__ == "__main__":
    main()
