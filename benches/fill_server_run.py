"""What the fill-server benchmarks (steer/, bgp/) share: a release fill
server on a seeded database with the title `bench` in its origin store,
and wrk against /v1/steer with a Lua script that picks the client."""
import json, os, re, signal, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FillServer:
    """Starts the release fill server on `db` (working files in `work`)
    at 127.0.0.1:`port` (the origin takes the next two ports)."""

    def __init__(self, work, db, port):
        origin = os.path.join(work, "origin", "bench")
        os.makedirs(origin, exist_ok=True)
        with open(os.path.join(origin, "index.json"), "w") as f:
            json.dump({"title": "bench", "version": 1, "duration_secs": 1.0, "target_duration_secs": 4.0,
                       "renditions": [], "files": []}, f)
        conf = os.path.join(work, "fs.toml")
        with open(conf, "w") as f:
            f.write(f'''listen = "127.0.0.1:{port}"
database = "{db}"
origin_store = "{os.path.join(work, "origin")}"
origin_listen = "127.0.0.1:{port + 1}"
origin_admin_listen = "127.0.0.1:{port + 2}"
heartbeat_timeout_secs = 86400
token_key_id = "k1"
token_key_hex = "{"55" * 32}"
admin_token = "bench-admin-token-0123456789"
trusted_proxies = ["127.0.0.0/8"]
''')
        self.url = f"http://127.0.0.1:{port}"
        t = time.monotonic()
        self.proc = subprocess.Popen([os.path.join(ROOT, "target/release/nearcast-fill-server"), "--config", conf],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.proc.stdout.readline()
        self.startup_secs = time.monotonic() - t

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)


def wrk(url, script, connections, seconds):
    """Runs wrk -t2 with `script`; (requests/s, p50, p99, non-2xx)."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(errors.group(1)) if errors else 0
