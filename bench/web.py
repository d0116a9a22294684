"""HTTP throughput and latency of a demo shop under wrk.

Usage: python bench/web.py [--connections 100] [--duration 10] [--threads 8]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(url: str, connections: int, duration: int, script: str | None = None) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "non2xx": int(errors.group(1)) if errors else 0}


def pyload(url: str, connections: int, duration: int, body: bytes | None = None) -> dict:
    """A plain threaded load generator for machines without wrk."""
    stop = time.time() + duration
    latencies, errors = [], [0]
    lock = threading.Lock()

    def loop():
        while time.time() < stop:
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, body, timeout=30) as r:
                    r.read()
            except (urllib.error.URLError, OSError):
                with lock:
                    errors[0] += 1
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=loop) for _ in range(min(connections, 32))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / duration, "p50": f"{q[49] * 1000:.1f}ms", "p99": f"{q[98] * 1000:.1f}ms",
            "non2xx": errors[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--threads", type=int, default=8, help="waitress request threads")
    args = ap.parse_args()
    kameng = [sys.executable, "-m", "kameng.cli"]
    tmp = tempfile.mkdtemp(prefix="kameng-bench-")
    port = free_port()
    try:
        subprocess.run([*kameng, "init", "--data", f"{tmp}/shop", "--demo", "--listen", f"127.0.0.1:{port}",
                        "--base-url", f"http://127.0.0.1:{port}"], check=True, capture_output=True)
        ini = f"{tmp}/shop/kameng.ini"
        # one paid sandbox attempt, so the notify benchmark replays a real notify
        setup = subprocess.run([sys.executable, "-c", SETUP, ini], check=True, capture_output=True, text=True)
        body = setup.stdout.strip()
        server = subprocess.Popen([*kameng, "-c", ini, "serve", "--no-worker", "--threads", str(args.threads)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        lua = os.path.join(tmp, "notify.lua")
        with open(lua, "w") as fh:
            fh.write('wrk.method = "POST"\nwrk.body = "%s"\n'
                     'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' % body)
        have_wrk = shutil.which("wrk") is not None
        print(f"kameng bench: waitress {args.threads} threads, {args.connections} connections, "
              f"{args.duration}s each, load by {'wrk' if have_wrk else 'python threads'}")
        print(f"{'target':<28}{'req/s':>10}{'p50':>10}{'p99':>10}{'non-2xx':>9}")
        for name, path, script, data in (("storefront home (catalog)", "/", None, None),
                                         ("health check (1 query)", "/healthz", None, None),
                                         ("replayed sandbox notify", "/pay/sandbox/notify", lua, body.encode())):
            if have_wrk:
                wrk(base + path, args.connections, 2, script)  # warm-up
                r = wrk(base + path, args.connections, args.duration, script)
            else:
                r = pyload(base + path, args.connections, args.duration, data)
            print(f"{name:<28}{r['rps']:>10.0f}{r['p50']:>10}{r['p99']:>10}{r['non2xx']:>9}")
        print(f"server memory (RSS): {rss_mb(server.pid):.0f} MB")
        server.terminate()
        server.wait(10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


SETUP = r'''
import sys, urllib.parse
from pyramid.paster import get_app
from kameng.cli.commands import request_for
from kameng.payments import service
from kameng_sandbox.gateway import signed_fields, sign
app = get_app(sys.argv[1])
with request_for(app.registry) as req:
    gw = service.get_gateway(req, "sandbox")
    att = service.create_attempt(req, gw, 100, "CNY", "bench")
    fields = {"attempt_no": att.attempt_no, "amount": "1.00", "status": "paid", "timestamp": "4102444800"}
    secret = gw.settings["secret"]
# a timestamp far in the future would be refused; sign one for "now" instead
import time
fields = signed_fields(att.attempt_no, "1.00", "paid", secret, now=time.time() + 240)
print(urllib.parse.urlencode(fields))
'''

if __name__ == "__main__":
    sys.exit(main())
