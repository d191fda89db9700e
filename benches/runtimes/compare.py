#!/usr/bin/env python3
"""Raw io-uring (the appliance) vs glommio vs tokio-uring on the serving job.

Same files, same wrk script and load as benches/serve/bench.py, rounds
alternating between the three servers. Run from the repository root:

    cargo build --release -p nearcast-appliance
    (cd benches/runtimes && cargo build --release)
    python3 benches/runtimes/compare.py [--rounds 3] [--seconds 6]
"""
import argparse, os, resource, signal, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
import bench  # noqa: E402

PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "target", "release")


def start_probe(name, content, port, threads):
    exe = os.path.join(PROBES, f"probe-{name}")
    if not os.path.exists(exe):
        sys.exit("build the probes first: (cd benches/runtimes && cargo build --release)")
    p = subprocess.Popen([exe, f"127.0.0.1:{port}", content, str(threads)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_port(port)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nearcast-bench"))
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    content = os.path.join(a.work, "content")
    bench.make_files(content)
    ports = {"io-uring": 18582, "glommio": 18583, "tokio-uring": 18584}
    procs = {"io-uring": bench.start_appliance(content, 18582, 19582, a.threads),
             "glommio": start_probe("glommio", content, 18583, a.threads),
             "tokio-uring": start_probe("tokio-uring", content, 18584, a.threads)}
    results = {(s, n): [] for s in bench.SETS for n in ports}
    try:
        for n, port in ports.items():
            for s in bench.SETS:
                bench.wrk(port, s, 2, 64, 2)
        for rnd in range(a.rounds):
            for s in bench.SETS:
                order = list(ports)[rnd % 3:] + list(ports)[:rnd % 3]
                for n in order:
                    r = bench.wrk(ports[n], s, a.seconds, 64, 2)
                    results[(s, n)].append(r)
                    print(f"round {rnd + 1} {s:5} {n:11} {r['rps']:9.0f} req/s {r['mbps']:8.0f} MB/s "
                          f"p99 {r['p99']:6.2f} ms {r['errors']}", flush=True)
        peak = {n: bench.rss_mib(p, "VmHWM") for n, p in procs.items()}
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"\nmedian of {a.rounds} rounds, {a.seconds} s each, wrk -t2 -c64, {a.threads} threads each")
    print(f"{'set':6} {'runtime':12} {'req/s':>9} {'MB/s':>8} {'p99 ms':>7} {'peak RSS MiB':>13}")
    for s in bench.SETS:
        for n in ports:
            rs = results[(s, n)]
            print(f"{s:6} {n:12} {statistics.median(r['rps'] for r in rs):9.0f} "
                  f"{statistics.median(r['mbps'] for r in rs):8.0f} {statistics.median(r['p99'] for r in rs):7.2f} "
                  f"{peak[n]:13.1f}")


if __name__ == "__main__":
    main()
