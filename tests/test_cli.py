"""The kameng command line: init, plugins, admin, errors."""
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import select

from kameng.cli import main
from kameng.testing import free_port


@pytest.fixture
def shop(tmp_path, capsys):
    data = tmp_path / "shop"
    assert main(["init", "--data", str(data), "--demo", "--admin-email", "boss@example.com"]) == 0
    out = capsys.readouterr().out
    password = [ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("password:")][0]
    return data, str(data / "kameng.ini"), password


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_writes_private_config_and_key(shop):
    data, ini, password = shop
    assert stat.S_IMODE(os.stat(data / "secret.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ini).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    text = (data / "kameng.ini").read_text()
    assert "kameng.session_secret = " in text and password not in text
    assert len(password) >= 16
    assert not os.path.exists(data / ".kameng-init.ini")


def test_init_refuses_an_existing_shop(shop, capsys):
    data, _ini, _pw = shop
    code, _out, err = run(capsys, "init", "--data", str(data))
    assert code == 1 and err.startswith("kameng: error: ") and "already exists" in err
    assert err.count("\n") == 1


def test_init_demo_enables_sandbox_and_loads_catalog(shop, capsys):
    _data, ini, _pw = shop
    code, out, _err = run(capsys, "-c", ini, "plugins", "list")
    assert code == 0
    line = [ln for ln in out.splitlines() if ln.startswith("sandbox")][0]
    assert "enabled" in line
    from pyramid.paster import get_app
    import webtest

    app = webtest.TestApp(get_app(ini))
    assert "Steam" in app.get("/").text
    # the demo can sell at once: every card-key option has keys, and a buyer's order reserves them
    product = app.get("/api/v1/products/1").json
    assert [s["stock"] for s in product["skus"]] == [50, 50]
    buyer = webtest.TestApp(app.app)  # an API client: no session cookie, so no CSRF header needed
    made = buyer.post_json("/api/v1/orders", {"sku": "QB-10", "quantity": 2, "contact": "b@example.com",
                                            "query_password": "1234", "payment_method": "sandbox"}, status=201).json
    assert made["amount"] == "20.00" and made["payment"]["gateway"] == "sandbox"
    app.app.registry["kameng.engine"].dispose()
    # running init's demo loader again adds nothing
    from kameng.cli.commands import load_demo_keys

    assert load_demo_keys(app.app.registry) == 0
    app.app.registry["kameng.engine"].dispose()


def test_init_demo_resells_a_simulated_suppliers_goods(shop):
    """With the sandbox_supplier plugin installed, the demo has a supplier
    connection and its goods on sale, fulfilled upstream."""
    pytest.importorskip("kameng_sandbox_supplier")
    from pyramid.paster import get_app
    from sqlalchemy import func, select

    from kameng.cli.commands import connect_demo_supplier, request_for
    from kameng.suppliers.models import SkuUpstream, SupplierConnection

    _data, ini, _pw = shop
    app = get_app(ini)
    with request_for(app.registry) as req:
        assert req.db.scalar(select(func.count()).select_from(SupplierConnection)) == 1
        assert req.db.scalar(select(func.count()).select_from(SkuUpstream)) >= 5
    assert connect_demo_supplier(app.registry) == 0  # once
    app.registry["kameng.engine"].dispose()


def test_plugins_enable_disable_configure(shop, capsys):
    _data, ini, _pw = shop
    assert run(capsys, "-c", ini, "plugins", "disable", "sandbox")[1] == "sandbox disabled\n"
    assert "disabled" in run(capsys, "-c", ini, "plugins", "list")[1]
    assert run(capsys, "-c", ini, "plugins", "enable", "sandbox")[0] == 0
    code, out, _ = run(capsys, "-c", ini, "plugins", "configure", "sandbox", "secret=" + "n" * 40)
    assert code == 0 and out == "sandbox.secret = ********\n"
    code, _out, err = run(capsys, "-c", ini, "plugins", "configure", "sandbox", "secret=short")
    assert code == 1 and err == "kameng: error: setting secret: must be at least 16 characters\n"
    code, _out, err = run(capsys, "-c", ini, "plugins", "configure", "sandbox", "colour=red")
    assert code == 1 and "is not a setting of this plugin" in err
    code, _out, err = run(capsys, "-c", ini, "plugins", "enable", "nope")
    assert code == 1 and err == "kameng: error: No plugin 'nope' is installed.\n"


def test_configure_reads_a_value_from_a_file(shop, capsys, tmp_path):
    _data, ini, _pw = shop
    f = tmp_path / "secret.txt"
    f.write_text("m" * 32 + "\n")
    assert run(capsys, "-c", ini, "plugins", "configure", "sandbox", f"secret=@{f}")[0] == 0
    code, _o, err = run(capsys, "-c", ini, "plugins", "configure", "sandbox", f"secret=@{tmp_path}/missing")
    assert code == 1 and "cannot read" in err


def test_admin_commands_and_token(shop, capsys):
    _data, ini, _pw = shop
    code, out, _ = run(capsys, "-c", ini, "admin", "create", "--email", "second@example.com")
    assert code == 0 and "password: " in out
    code, _o, err = run(capsys, "-c", ini, "admin", "create", "--email", "second@example.com")
    assert code == 1 and "already exists" in err
    code, out, _ = run(capsys, "-c", ini, "admin", "reset-password", "--email", "second@example.com",
                       "--password", "a-new-password-123")
    assert code == 0
    code, _o, err = run(capsys, "-c", ini, "admin", "reset-password", "--email", "nobody@example.com")
    assert code == 1 and "no admin account" in err
    code, out, _ = run(capsys, "-c", ini, "admin", "token", "create", "deploy-bot")
    token = out.strip()
    assert code == 0 and token.startswith("kmg_")
    from pyramid.paster import get_app
    import webtest

    app = webtest.TestApp(get_app(ini))
    items = app.get("/api/v1/admin/plugins", headers={"Authorization": f"Bearer {token}"}).json["items"]
    assert any(p["id"] == "sandbox" for p in items)
    app.app.registry["kameng.engine"].dispose()


def test_missing_config_is_one_clear_line(capsys, tmp_path):
    code, _o, err = run(capsys, "-c", str(tmp_path / "nope.ini"), "migrate")
    assert code == 1 and err.startswith("kameng: error: no configuration file at ") and err.count("\n") == 1


def test_config_from_environment(shop, capsys, monkeypatch):
    _data, ini, _pw = shop
    monkeypatch.setenv("KAMENG_CONFIG", ini)
    code, out, _ = run(capsys, "migrate")
    assert code == 0 and out.startswith("database at 000")


@pytest.mark.parametrize("argv", [[], ["init"], ["serve"], ["worker"], ["migrate"], ["plugins"],
                                  ["plugins", "configure"], ["admin"], ["admin", "token", "create"]])
def test_every_command_has_help(argv):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0


@pytest.mark.slow
def test_disable_takes_effect_in_a_running_server(shop):
    """`kameng plugins disable sandbox` from another process: the running
    server's /pay/sandbox/... answers 404 at once, and comes back on enable."""
    _data, ini, _pw = shop
    port = free_port()
    kameng = [sys.executable, "-m", "kameng.cli", "-c", ini]
    server = subprocess.Popen([*kameng, "serve", "--port", str(port), "--no-worker"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/pay/sandbox/notify"

    def status():
        try:
            with urllib.request.urlopen(url, b"attempt_no=x", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            e.close()
            return e.code

    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        assert status() == 400  # enabled: the notify is verified (and refused)
        subprocess.run([*kameng, "plugins", "disable", "sandbox"], check=True, capture_output=True)
        assert status() == 404
        subprocess.run([*kameng, "plugins", "enable", "sandbox"], check=True, capture_output=True)
        assert status() == 400
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
def test_worker_runs_jobs_and_stops_on_sigterm(shop):
    import signal

    from pyramid.paster import get_app
    from sqlalchemy import select

    from kameng.jobs import Job

    _data, ini, _pw = shop
    worker = subprocess.Popen([sys.executable, "-m", "kameng.cli", "-c", ini, "worker"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    app = get_app(ini)
    engine = app.registry["kameng.engine"]
    try:
        deadline = time.time() + 30
        statuses = []
        while time.time() < deadline:
            with engine.connect() as conn:
                statuses = conn.execute(select(Job.status).where(Job.kind == "kameng.jobs.cleanup")).scalars().all()
            if statuses == ["done"]:
                break
            time.sleep(0.2)
        assert statuses == ["done"]  # the hourly cleanup was scheduled and run
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert "kameng worker running" in worker.stdout.read()
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.stdout.close()
        engine.dispose()


def test_keys_import_and_rotate(shop, capsys, tmp_path):
    _data, ini, _pw = shop
    f = tmp_path / "keys.txt"
    f.write_text("卡号,卡密\nC1,S1\nC2,S2\nC2,S2\nbroken\n", encoding="utf-8")
    code, out, _ = run(capsys, "-c", ini, "keys", "import", "--sku", "STEAM-CNY-50", "--separator", ",", str(f))
    assert code == 0 and out.startswith("imported 2, skipped 2 (1 duplicates, 1 invalid lines)")
    code, out, _ = run(capsys, "-c", ini, "keys", "import", "--sku", "STEAM-CNY-50", "--separator", ",", str(f))
    assert out.startswith("imported 0, skipped 4 (3 duplicates, 1 invalid lines)")
    code, _o, err = run(capsys, "-c", ini, "keys", "import", "--sku", "NOPE", str(f))
    assert code == 1 and err == "kameng: error: no SKU with code 'NOPE'\n"
    code, _o, err = run(capsys, "-c", ini, "keys", "import", "--sku", "STEAM-CNY-50", str(tmp_path / "missing"))
    assert code == 1 and "cannot read" in err
    code, out, _ = run(capsys, "-c", ini, "keys", "rotate", "--drop-old")
    assert code == 0 and "removed unused keys: " in out
    assert "re-encrypted 252 card keys, 1 plugin secret sets and 0 values in plugins" in out
    from pyramid.paster import get_app

    from kameng.cli.commands import request_for
    from kameng.inventory.models import CardKey
    from kameng.inventory.service import reveal

    app = get_app(ini)
    with request_for(app.registry) as req:
        ring = app.registry["kameng.keyring"]
        keys = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        plain = [reveal(ring, k) for k in keys]
        assert [p for p in plain if not p[0].startswith("DEMO-")] == [("C1", "S1"), ("C2", "S2")]
        assert len(plain) == 252  # and the demo's 250 still decrypt after the rotation
        assert len(ring.key_ids) == 1 and {k.key_id for k in keys} == {ring.current_id}
        assert req.plugin_settings("sandbox")["secret"]
    app.registry["kameng.engine"].dispose()
