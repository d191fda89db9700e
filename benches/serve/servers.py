"""What the serving benches share: starting nginx and the appliance on one
file set, driving them with wrk, and reading their memory.

Used by bench.py (bytes in RAM) and disk.py (bytes on a throttled disk).
"""
import os, re, signal, socket, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write_files(directory, count, size):
    """`count` files of `size` random bytes named f0.m4s, f1.m4s, …"""
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        p = os.path.join(directory, f"f{i}.m4s")
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


def make_cert(work):
    """A self-signed certificate for 127.0.0.1 (both servers use it)."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "30", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
    return cert, key


def start_nginx(work, content, port, workers, aio=False, tls=None, preexec=None, name="nginx"):
    """Debian's nginx serving `content` under /c/. `aio`: `aio threads`
    (sendfile offloaded to a thread pool when a read would block). `tls`:
    (cert, key) for an HTTPS listener, TLS 1.3 only."""
    conf = os.path.join(work, f"{name}.conf")
    listen = f"127.0.0.1:{port} reuseport" + (" ssl" if tls else "")
    ssl = ""
    if tls:
        ssl = (f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; ssl_protocols TLSv1.3; "
               "ssl_session_cache off; ssl_session_tickets off;")
    with open(conf, "w") as f:
        f.write(f"""worker_processes {workers};
worker_rlimit_nofile 30000;
pid {work}/{name}.pid;
error_log {work}/{name}.err;
daemon off;
events {{ worker_connections 20000; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  {"aio threads;" if aio else ""}
  open_file_cache max=4096 inactive=60s; open_file_cache_valid 1s;
  server {{ listen {listen}; {ssl} location /c/ {{ alias {content}/; }} }}
}}
""")
    p = subprocess.Popen(["nginx", "-c", conf], stderr=subprocess.DEVNULL, preexec_fn=preexec)
    wait_port(port)
    return p


def start_appliance(content, port, admin, threads, tls=None, tls_port=None, preexec=None, toml=None):
    """The release appliance; `toml`: extra configuration (a file written
    beside the content), flags override it."""
    exe = os.path.join(ROOT, "target", "release", "nearcast-appliance")
    if not os.path.exists(exe):
        sys.exit("build it first: cargo build --release -p nearcast-appliance")
    args = [exe, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
            "--disk", content, "--threads", str(threads), "--no-auth"]
    if toml:
        conf = os.path.join(os.path.dirname(content), f"appliance-{port}.toml")
        with open(conf, "w") as f:
            f.write(toml)
        args += ["--config", conf]
    if tls:
        args += ["--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", tls[0], "--tls-key", tls[1]]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec)
    wait_port(tls_port if tls else port)
    return p


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


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


def wrk_start(url, prefix, count, seconds, conns, threads, script="random.lua"):
    """Starts wrk on files `{prefix}{0..count-1}.m4s`, picked by `script`
    (random.lua: at random; walk.lua: no repeats); `wrk_result` reads it."""
    env = dict(os.environ, BENCH_PREFIX=prefix, BENCH_COUNT=str(count))
    return subprocess.Popen(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s",
                             "-s", os.path.join(HERE, script), url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wrk_result(proc, size, seconds):
    out, _ = proc.communicate(timeout=seconds + 60)
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    r["mbps"] = r["rps"] * size / 1e6
    r["p50"] = parse_latency(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    r["p99"] = parse_latency(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    r["errors"] = errs.group(0) if errs else ""
    return r


def wrk(url, prefix, count, size, seconds, conns, threads):
    return wrk_result(wrk_start(url, prefix, count, seconds, conns, threads), size, seconds)
