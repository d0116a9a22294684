"""The admin's supplier pages: connect an upstream (settings checked,
secrets masked, health tested), sync it, read the log, import goods."""
import pytest
import webtest
from sqlalchemy import select

import kameng_suptest as sup
from kameng import accounts
from kameng.catalog.models import Product
from kameng.suppliers.models import SkuUpstream, SupplierConnection
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login, set_plugin


@pytest.fixture(scope="module")
def sapp(make_app):
    return make_app(extra_plugins=[("suptest", sup)])


@pytest.fixture
def web(sapp):
    sup.UP.reset()
    set_plugin(sapp.registry, "suptest", enabled=True)
    with app_request(sapp.registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    client = webtest.TestApp(sapp, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_int == 302
    return client


def connection(sapp) -> SupplierConnection:
    with app_request(sapp.registry) as req:
        return req.db.scalar(select(SupplierConnection))


def test_connecting_a_supplier_checks_settings_tests_it_and_masks_the_secret(web, sapp):
    page = web.get("/admin/suppliers")
    assert "No supplier is connected yet" in page.text
    form = page.forms["connection-form"]
    form["name"] = "上游一号"
    resp = form.submit(expect_errors=True)
    assert resp.status_int == 400 and "is required" in resp.text  # the token
    form = resp.forms["connection-form"]
    form["name"], form["token"] = "上游一号", "secret-token-1"
    page = form.submit().follow()
    assert "Supplier connection saved" in page.text and "secret-token-1" not in page.text
    assert page.html.select_one("#health")["data-health"] == "ok"
    # saving again with the mask keeps the stored secret
    form = page.forms["connection-form"]
    assert form["token"].value == "********"
    form["sync_interval"] = "5"
    assert "must be between 60 and 86400" in form.submit(status=400).text
    form = web.get(f"/admin/suppliers/{connection(sapp).id}").forms["connection-form"]
    form.submit().follow()
    with app_request(sapp.registry) as req:
        from kameng.suppliers.connections import read_settings

        assert read_settings(req, req.db.scalar(select(SupplierConnection)))["token"] == "secret-token-1"


def test_test_sync_and_import_from_the_admin(web, sapp):
    form = web.get("/admin/suppliers").forms["connection-form"]
    form["name"], form["token"] = "Upstream", "secret-token-1"
    page = form.submit().follow()
    cid = connection(sapp).id
    sup.UP.down = True
    page = page.forms["test-form"].submit().follow()
    assert "Connection test failed: cannot connect to the test upstream" in page.text
    sup.UP.down = False
    goods = web.get(f"/admin/suppliers/{cid}/goods")
    assert "Steam card" in goods.text and "话费直充" in goods.text
    form = goods.forms["import-form"]
    form.get("goods", index=0).checked = True
    form["price_mode"], form["price_value"] = "margin", "2.00"
    page = form.submit().follow()
    assert "1 products imported" in page.text
    assert "STEAM50" in page.html.select_one("#bound").get_text()
    with app_request(sapp.registry) as req:
        product = req.db.scalar(select(Product))
        assert product.name == "Steam card" and product.skus[0].price == 4700  # 45.00 + 2.00
        assert req.db.scalar(select(SkuUpstream.price_mode)) == "margin"
    page = web.get(f"/admin/suppliers/{cid}/goods")
    assert page.html.select_one("input[name=goods][value=G1]").has_attr("disabled")  # imported already
    page = web.get(f"/admin/suppliers/{cid}").forms["sync-form"].submit().follow()
    assert "Synced: 0 changes" in page.text
    form = web.get(f"/admin/suppliers/{cid}/goods").forms["import-form"]
    form["price_value"] = "-5"
    assert "must be a number" in form.submit().follow().text
