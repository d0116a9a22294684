"""The disk fills up while card keys are imported: SQLite answers a real
SQLITE_FULL ("database or disk is full"; the database is capped with
``PRAGMA max_page_count``, in the ``kameng keys import`` process through
tests/fault_launcher.py, in this process through an engine connect event).
The import stops with a clear error, the stock imported before is intact
and unchanged, every chunk is there whole or not at all (what each batch
says it imported is exactly what is visible), and running the same import
again once there is room finishes it without duplicates.

A server database's disk cannot be filled from a test, so this runs on its
own SQLite file made by ``kameng init``, whatever database the rest of the
suite uses."""
import os
import subprocess
import sys

import pytest
import webtest
from faults_helpers import LAUNCHER
from pyramid.paster import get_appsettings
from sqlalchemy import event, func, select

from kameng import accounts
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.config import configure
from kameng.db import make_engine
from kameng.inventory.models import AVAILABLE, CardKey, KeyImport
from kameng.testing import app_request

pytestmark = pytest.mark.slow

BEFORE = 300  # keys imported while there is room
FILE = 6000  # the file that meets the full disk: several chunks
API_KEYS = 300


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diskfull")
    env = {k: v for k, v in os.environ.items() if k not in ("KAMENG_CONFIG", "KAMENG_DATABASE_URL")}
    subprocess.run([sys.executable, LAUNCHER, "init", "--data", str(tmp / "shop"), "--admin-password",
                    "admin-password-123"], env=env, check=True, capture_output=True, timeout=120)
    ini = str(tmp / "shop" / "kameng.ini")
    settings = dict(get_appsettings(ini))
    engine = make_engine(settings["sqlalchemy.url"])
    cap = {}

    @event.listens_for(engine, "connect")
    def _cap(dbapi_conn, _record):  # a full disk for this process's connections while cap["pages"] is set
        if cap.get("pages"):
            pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages + cap['pages']}")

    app = configure({**settings, "kameng.engine": engine}).make_wsgi_app()
    app.ini, app.tmp, app.env, app.cap = ini, tmp, env, cap
    with app_request(app.registry) as req:
        catalog.save_product(req.db, {"name": "Disk card", "type": "card_key",
                                      "skus": [{"code": "DISK", "name": "Disk option", "price": "1.00"}]}, "CNY")
        admin = accounts.create_user(req.db, "keys-admin@example.com", "admin-password-123", role="admin")
        app.token = accounts.create_token(req.db, admin, "fault tests")
    yield app
    engine.dispose()


def key_file(shop, name, n, prefix):
    path = shop.tmp / name
    path.write_text("".join(f"{prefix}-{i:05d}----SECRET-{prefix}-{i:05d}-{'x' * 16}\n" for i in range(n)))
    return str(path)


def cli_import(shop, path, pages=None):
    env = {**shop.env, **({"KAMENG_FAULT_SQLITE_PAGES": str(pages)} if pages else {})}
    return subprocess.run([sys.executable, LAUNCHER, "-c", shop.ini, "keys", "import", "--sku", "DISK",
                           "--separator=----", path], env=env, capture_output=True, text=True, timeout=300)


def stock_rows(shop):
    with app_request(shop.registry) as req:
        return [tuple(r) for r in req.db.execute(select(CardKey.id, CardKey.fingerprint, CardKey.secret,
                                                        CardKey.number, CardKey.state, CardKey.batch_id)
                                                 .order_by(CardKey.id))]


def check_consistent(shop) -> dict:
    """Each batch's counters are exactly its visible keys (no partial chunk),
    and the SKU's stock counter is its available keys. Gives
    ``{batch_id: imported}``."""
    with app_request(shop.registry) as req:
        batches = {b.id: b.imported for b in req.db.scalars(select(KeyImport))}
        visible = dict(req.db.execute(select(CardKey.batch_id, func.count()).group_by(CardKey.batch_id)).all())
        assert {b: n for b, n in batches.items() if n} == visible
        available = req.db.scalar(select(func.count()).select_from(CardKey).where(CardKey.state == AVAILABLE))
        assert req.db.scalar(select(Sku.stock).where(Sku.code == "DISK")) == available
        fingerprints = req.db.execute(select(func.count(), func.count(CardKey.fingerprint.distinct()))).one()
        assert fingerprints[0] == fingerprints[1]
        return batches


def test_cli_import_on_a_full_disk_stops_clearly_and_keeps_the_stock(shop):
    done = cli_import(shop, key_file(shop, "before.txt", BEFORE, "OLD"))
    assert done.returncode == 0 and f"imported {BEFORE}," in done.stdout, done.stderr
    before = stock_rows(shop)
    assert len(before) == BEFORE
    ciphertext_prefix = before[0][2].split("$")[0] + "$"
    big = key_file(shop, "big.txt", FILE, "NEW")

    # full at once (in the first chunk), then full somewhere further on
    for pages in (20, 300):
        failed = cli_import(shop, big, pages=pages)
        assert failed.returncode == 1, (failed.stdout, failed.stderr)
        message = failed.stderr.strip()
        assert message.startswith("kameng: error: the import stopped: the database could not store the keys "
                                  "(database or disk is full)."), message
        assert "run the same import again" in message
        # one line for a person: no traceback, no SQL, no key material
        assert "Traceback" not in message and "INSERT" not in message and "\n" not in message
        assert ciphertext_prefix not in message and "SECRET-" not in message
        assert stock_rows(shop)[:BEFORE] == before  # intact, unchanged
        batches = check_consistent(shop)
        newest = max(batches)
        assert f"{batches[newest]} keys of {big} were imported before" in message

    # room again: the same import finishes it, nothing twice
    again = cli_import(shop, big)
    assert again.returncode == 0, again.stderr
    assert stock_rows(shop)[:BEFORE] == before
    check_consistent(shop)
    assert len(stock_rows(shop)) == BEFORE + FILE


def test_admin_api_import_on_a_full_disk_fails_cleanly_and_keeps_the_stock(shop):
    api = webtest.TestApp(shop, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    auth = {"Authorization": f"Bearer {shop.token}", "Content-Type": "text/plain"}
    # under 10 KB: pyramid_retry would copy a bigger body to a temporary file WebOb never closes
    body = "".join(f"API-{i:04d}----SECRET-{i:04d}\n" for i in range(API_KEYS)).encode()
    assert len(body) < 10_000
    before = stock_rows(shop)
    shop.cap["pages"] = 10
    shop.registry["kameng.engine"].dispose()  # new connections: capped
    try:
        resp = api.post("/api/v1/admin/skus/DISK/keys?separator=----&_LOCALE_=en", body, headers=auth,
                        expect_errors=True)
    finally:
        shop.cap.clear()
        shop.registry["kameng.engine"].dispose()
    assert resp.status_int == 503 and resp.content_type == "application/json", resp.text
    assert resp.json["error"]["code"] == "import_stopped" and "Import the same file again" in resp.json["error"]["message"]
    assert "SECRET-" not in resp.text and "INSERT" not in resp.text
    assert stock_rows(shop)[:len(before)] == before
    imported = sum(check_consistent(shop).values())
    # the same upload once there is room: what is missing is imported, nothing twice
    resp = api.post("/api/v1/admin/skus/DISK/keys?separator=----", body, headers=auth)
    assert resp.json["imported"] + resp.json["duplicates"] == API_KEYS
    assert sum(check_consistent(shop).values()) == imported + resp.json["imported"]
    assert stock_rows(shop)[:len(before)] == before


def test_admin_form_import_on_a_full_disk_says_so_and_keeps_the_stock(shop):
    from kameng.testing import login

    admin = webtest.TestApp(shop, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    admin.set_cookie("_LOCALE_", "en")  # the shop kameng init made speaks Chinese by default
    login(admin, "keys-admin@example.com", "admin-password-123")
    page = admin.get("/admin/skus/DISK/stock")
    before = stock_rows(shop)
    form = page.forms["import-form"]
    form["keys"] = "".join(f"FORM-{i:04d}----SECRET-{i:04d}\n" for i in range(API_KEYS))
    form["separator"] = "dashes"
    shop.cap["pages"] = 10
    shop.registry["kameng.engine"].dispose()  # new connections: capped
    try:
        resp = form.submit("action", value="import", status=503)
    finally:
        shop.cap.clear()
        shop.registry["kameng.engine"].dispose()
    message = resp.html.select_one("#import-error").get_text(" ", strip=True)
    assert "could not store more keys" in message and "Import the same file again" in message
    assert "INSERT" not in resp.text and "Traceback" not in resp.text
    assert stock_rows(shop)[:len(before)] == before
    check_consistent(shop)
