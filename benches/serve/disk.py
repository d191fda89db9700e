#!/usr/bin/env python3
"""Serving when the bytes are on disk: appliance vs nginx, in one run.

The regime of a real box (far more content than RAM) built on one machine:
every server runs in a cgroup (v1) whose reads from the disk holding the
files are throttled (`blkio.throttle.read_bps_device`, default 100 MB/s)
and whose memory, page cache included, is capped (`memory.limit_in_bytes`,
default 512 MiB). The files: 1000 cold ones of 2 MiB, evicted from the page
cache (`posix_fadvise(DONTNEED)`) before every measurement and fetched
in a random order without repeats (walk.lua), and 100 hot
ones of 64 KiB, which each server loads itself (so their pages are charged
to its cgroup) with a short warm-up.

For nginx with `aio threads`, nginx without it, the appliance (defaults)
and the appliance reading every cold byte through the page cache
(`appliance-buffered`), rounds alternating the order and each server
started afresh for its turn (only the one measured is resident in the
cgroup), it measures `wrk -c16` on the hot set alone, then the same
again while a second `wrk -c16` fetches random cold files, and
prints hot req/s and p99 alone and under cold load, and cold MB/s against
the throttle. Needs root (cgroups), nginx, wrk. From the repository root:

    cargo build --release -p nearcast-appliance
    sudo python3 benches/serve/disk.py [--rounds 3] [--seconds 10]

The cgroups it makes (`nearcast-bench`) are removed at the end.
"""
import argparse, os, resource, shutil, statistics, sys, tempfile, time

from servers import start_appliance, start_nginx, stop, write_files, wrk_result, wrk_start

COLD = (1000, 2 * 1024 * 1024, "cold")
HOT = (100, 64 * 1024, "hot")
CGROUP = "nearcast-bench"
CONTROLLERS = ("blkio", "memory")


def cgroup_dir(controller):
    return f"/sys/fs/cgroup/{controller}/{CGROUP}"


def make_cgroups(device, read_bps, memory_bytes):
    for c in CONTROLLERS:
        os.makedirs(cgroup_dir(c), exist_ok=True)
    with open(os.path.join(cgroup_dir("blkio"), "blkio.throttle.read_bps_device"), "w") as f:
        f.write(f"{device} {read_bps}\n")
    with open(os.path.join(cgroup_dir("memory"), "memory.limit_in_bytes"), "w") as f:
        f.write(f"{memory_bytes}\n")


def enter_cgroups():
    """preexec_fn: the server process joins the bench cgroups before exec."""
    for c in CONTROLLERS:
        with open(os.path.join(cgroup_dir(c), "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def remove_cgroups():
    for c in CONTROLLERS:
        d = cgroup_dir(c)
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)  # its last processes are still exiting


def evict(directory, count):
    for i in range(count):
        fd = os.open(os.path.join(directory, f"f{i}.m4s"), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def block_device(path):
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def measure(port, content, seconds, conns):
    """Hot alone, then hot under cold load, each from a cold page cache."""
    url = f"http://127.0.0.1:{port}"
    hot = (url, "/c/bench/hot/f", HOT[0])
    cold = (url, "/c/bench/cold/f", COLD[0])
    evict(os.path.join(content, "bench", "hot"), HOT[0])
    evict(os.path.join(content, "bench", "cold"), COLD[0])
    # The server loads the hot set itself (charged to its cgroup).
    wrk_result(wrk_start(*hot, 2, conns, 1), HOT[1], 2)
    alone = wrk_result(wrk_start(*hot, seconds, conns, 1), HOT[1], seconds)
    evict(os.path.join(content, "bench", "cold"), COLD[0])
    cold_proc = wrk_start(*cold, seconds, conns, 1, script="walk.lua")
    time.sleep(0.2)  # the cold load is running before the hot one starts
    loaded = wrk_result(wrk_start(*hot, seconds, conns, 1), HOT[1], seconds)
    cold_r = wrk_result(cold_proc, COLD[1], seconds)
    return {"alone_rps": alone["rps"], "alone_p99": alone["p99"], "rps": loaded["rps"], "p99": loaded["p99"],
            "cold_mbps": cold_r["mbps"], "errors": " ".join(e for e in (alone["errors"], loaded["errors"],
                                                                            cold_r["errors"]) if e)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16, help="per wrk (hot and cold)")
    ap.add_argument("--threads", type=int, default=2, help="appliance threads = nginx workers")
    ap.add_argument("--throttle-mbps", type=float, default=100, help="disk reads, MB/s (10^6 bytes)")
    ap.add_argument("--memory-mib", type=int, default=512, help="the servers' memory cap, page cache included")
    ap.add_argument("--servers", default="nginx-aio,nginx,appliance,appliance-buffered")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nearcast-bench-disk"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: it makes cgroups to throttle the disk and cap the page cache")
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install nginx-light wrk")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    content = os.path.join(a.work, "content")
    for count, size, name in (COLD, HOT):
        write_files(os.path.join(content, "bench", name), count, size)
    os.sync()
    device = block_device(content)
    throttle = int(a.throttle_mbps * 1e6)
    make_cgroups(device, throttle, a.memory_mib << 20)
    ports = {"nginx-aio": 18491, "nginx": 18492, "appliance": 18493, "appliance-buffered": 18494}
    # appliance: its defaults (the first cold read of a file of 1 MiB or
    # more bypasses the page cache); appliance-buffered: every read goes
    # through the page cache, the alternative measured against it.
    extra = {"appliance": None, "appliance-buffered": "[disk_io]\ndirect_min_kib = 0\n"}
    names = a.servers.split(",")
    procs = {}
    results = {n: [] for n in names}

    def start(n):
        if n.startswith("appliance"):
            return start_appliance(content, ports[n], ports[n] + 1000, a.threads, preexec=enter_cgroups,
                                   toml=extra[n])
        return start_nginx(a.work, content, ports[n], a.threads, aio=(n == "nginx-aio"), preexec=enter_cgroups,
                           name=n)

    try:
        for rnd in range(a.rounds):
            order = names if rnd % 2 == 0 else list(reversed(names))
            for n in order:
                # Only the server measured is resident (they share the
                # cgroup; an idle nginx beside the appliance made its
                # figures swing), and each starts with empty caches.
                procs[n] = start(n)
                try:
                    r = measure(ports[n], content, a.seconds, a.connections)
                finally:
                    stop([procs.pop(n)])
                results[n].append(r)
                print(f"round {rnd + 1} {n:10} hot alone {r['alone_rps']:8.0f} req/s p99 {r['alone_p99']:7.2f} ms | "
                      f"under cold {r['rps']:8.0f} req/s p99 {r['p99']:7.2f} ms | cold {r['cold_mbps']:6.1f} MB/s "
                      f"{r['errors']}", flush=True)
    finally:
        stop(procs.values())
        remove_cgroups()

    print(f"\nmedian of {a.rounds} rounds, {a.seconds} s each; wrk -t1 -c{a.connections} hot (100 x 64 KiB) and "
          f"cold ({COLD[0]} x 2 MiB, no repeats); disk {device} reads throttled to {a.throttle_mbps:g} MB/s, memory "
          f"{a.memory_mib} MiB; {a.threads} server threads/workers; loopback, {os.cpu_count()} cores")
    print(f"{'server':10} {'hot req/s':>10} {'p99 ms':>7} {'under cold':>11} {'kept':>6} {'p99 ms':>7} "
          f"{'cold MB/s':>10} {'of throttle':>11}")
    med = {}
    for n in names:
        m = {k: statistics.median(r[k] for r in results[n]) for k in ("alone_rps", "alone_p99", "rps", "p99",
                                                                      "cold_mbps")}
        med[n] = m
        print(f"{n:10} {m['alone_rps']:10.0f} {m['alone_p99']:7.2f} {m['rps']:11.0f} "
              f"{100 * m['rps'] / m['alone_rps']:5.1f}% {m['p99']:7.2f} {m['cold_mbps']:10.1f} "
              f"{100 * m['cold_mbps'] / a.throttle_mbps:10.1f}%")
    for n in (x for x in names if x.startswith("appliance")):
        if "nginx-aio" not in med:
            break
        ap_, ng = med[n], med["nginx-aio"]
        print(f"{n} / nginx-aio: hot under cold load {ap_['rps'] / ng['rps']:.2f}x, "
              f"p99 {ap_['p99'] / ng['p99']:.2f}x, cold {ap_['cold_mbps'] / ng['cold_mbps']:.2f}x")


if __name__ == "__main__":
    main()
