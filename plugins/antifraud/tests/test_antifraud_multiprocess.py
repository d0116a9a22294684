"""Limits hold across processes: two real ``kameng serve`` processes on one
database, sharing one Redis, take orders in turn; the N+1th is refused,
whichever process it reaches. A captcha asked for from one process is
answered through the other, and used once."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import entry_points

import pytest
from antifraud_helpers import CORE_LIMITS_OFF, fresh_window, order_body, setup_shop

from kameng.testing import free_port, set_plugin

pytestmark = pytest.mark.slow

PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 4


def _plugin_env(tmp_path) -> dict:
    """Where the processes find this plugin by its entry point: as installed,
    or (a checkout without it installed) as a distribution made here."""
    if entry_points(group="kameng", name="antifraud"):
        return {}
    site = tmp_path / "site"
    dist = site / "kameng_antifraud-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kameng-antifraud\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[kameng]\nantifraud = kameng_antifraud\n")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), PLUGIN_ROOT, os.environ.get("PYTHONPATH", "")) if p)}


def _write_ini(path, settings: dict) -> str:
    lines = ["[app:main]", "use = egg:kameng"]
    lines += [f"{k} = {str(v).replace('%', '%%')}" for k, v in settings.items() if not k.startswith("kameng.engine")]
    lines += ["", "[server:main]", "use = egg:waitress#main", "listen = 127.0.0.1:6543", "threads = 4", ""]
    path.write_text("\n".join(lines))
    return str(path)


class Server:
    def __init__(self, ini, port, env, log_path):
        self.port, self.url, self.log_path = port, f"http://127.0.0.1:{port}", log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from kameng.cli import main; sys.exit(main(sys.argv[1:]))",
                 "-c", ini, "serve", "--port", str(port), "--no-worker"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(ini))

    def wait_up(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kameng serve exited with {self.proc.returncode}: {self.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.1)
        raise AssertionError("kameng serve did not listen: " + self.output())

    def output(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)


def _http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture
def two_servers(af_app, af_registry, base_settings, redis_ns, tmp_path):
    blocked = " ".join(sorted({ep.name for ep in entry_points(group="kameng")} - {"antifraud", "sandbox"}))
    settings = {**base_settings, **CORE_LIMITS_OFF, "kameng.plugins.blocked": blocked}
    ini = _write_ini(tmp_path / "kameng.ini", settings)
    env = {**os.environ, **_plugin_env(tmp_path)}
    for name in ("KAMENG_CONFIG", "KAMENG_DATABASE_URL", "KAMENG_REDIS_URL"):
        env.pop(name, None)
    servers = [Server(ini, free_port(), env, str(tmp_path / f"server-{i}.log")) for i in range(2)]
    try:
        for server in servers:
            server.wait_up()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_two_processes_share_limits_and_captchas_through_redis(two_servers, af_registry, redis_ns):
    a, b = two_servers
    setup_shop(af_registry, orders_per_ip_per_minute=N, **redis_ns.settings())
    fresh_window(margin=20)
    answers = []
    for i in range(N + 1):
        server = two_servers[i % 2]
        status, body, headers = _http("POST", f"{server.url}/api/v1/orders", order_body(contact=f"p{i}@example.com"))
        answers.append((status, json.loads(body), headers))
    assert [s for s, _b, _h in answers[:N]] == [201] * N, [(s, b) for s, b, _h in answers]
    status, body, headers = answers[N]
    assert status == 429 and body["error"]["code"] == "rate_limited", body
    assert 1 <= int(headers["Retry-After"]) <= 60
    # both processes counted on the one key in Redis
    (key,) = redis_ns.keys("c:orders_per_ip_per_minute:*")
    assert redis_ns.client.get(key) == str(N + 1)
    # the other process refuses too: the count is shared, not per process
    status, body, _h = _http("POST", f"{b.url if N % 2 == 0 else a.url}/api/v1/orders", order_body())
    assert status == 429, body

    # a captcha from one process, its picture and its answer through the other, once
    set_plugin(af_registry, "antifraud", orders_per_ip_per_minute=0, captcha="order")
    status, body, _h = _http("POST", f"{a.url}/-/antifraud/captcha")
    assert status == 200, body
    cid = json.loads(body)["id"]
    status, png, headers = _http("GET", f"{b.url}/-/antifraud/captcha/{cid}.png")
    assert status == 200 and png.startswith(b"\x89PNG") and headers["Content-Type"] == "image/png"
    answer = redis_ns.client.get(f"{redis_ns.prefix}captcha:{cid}")
    captcha = {"X-Captcha-Id": cid, "X-Captcha-Answer": answer}
    status, body, _h = _http("POST", f"{b.url}/api/v1/orders", order_body(contact="c@example.com"), captcha)
    assert status == 201, body
    status, body, _h = _http("POST", f"{a.url}/api/v1/orders", order_body(contact="c@example.com"), captcha)
    assert status == 400 and json.loads(body)["error"]["code"] == "captcha_required", body
