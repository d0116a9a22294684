"""The core's side of the gateway contract (issue 5): what the provider
answered is asked once and kept, a provider that cannot be reached is a 502
with nothing written, channels are offered and enforced, settings are
validated as a whole, the admin can test a connection and query a payment
now, and closed orders close their open payments at the gateway."""
import pytest
import webtest
from sqlalchemy import func, select

import kameng_gwtest as gw
from kameng.orders.models import Order
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.pluginhost import PluginError, configure, set_enabled
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login, set_plugin
from kameng.types import SettingError
from orders_helpers import NO_LIMITS, enable_sandbox, make_due, make_sku, run_jobs

BODY = {"sku": "CARD10", "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234",
        "payment_method": "gwtest", "channel": "scan"}


@pytest.fixture(scope="module")
def gapp(make_app):
    return make_app(extra_plugins=[("gwtest", gw)], **NO_LIMITS, **{"kameng.payments.query_delay_scale": "0"})


@pytest.fixture
def reg(gapp):
    gw.CALLS.clear()
    gw.ANSWERS.clear()
    gw.FAIL.update(create=None, close=None, test=None)
    enable_sandbox(gapp.registry)
    set_plugin(gapp.registry, "gwtest", enabled=True, token="tok_secret_value")
    make_sku(gapp.registry, "CARD10", price="10.00", keys=5)
    return gapp.registry


@pytest.fixture
def api(gapp, reg):
    return webtest.TestApp(gapp, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def admin_web(gapp, reg):
    from kameng import accounts

    with app_request(reg) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    web = webtest.TestApp(gapp, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(web, ADMIN_EMAIL, ADMIN_PASSWORD).status_int == 302
    return web


def count(registry, model, *where) -> int:
    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(model).where(*where))


# -- the provider's answer is asked once --------------------------------------------------------


def test_the_pay_page_shows_the_kept_answer_without_asking_again(api, reg):
    resp = api.post_json("/api/v1/orders", BODY, headers={"Idempotency-Key": "replay-key-1"}, status=201)
    attempt_no = resp.json["payment"]["attempt_no"]
    assert resp.json["payment"]["qr"] == f"gwtest://scan/{attempt_no}"
    for _ in range(3):
        page = api.get(resp.json["payment"]["pay_url"])
        assert "<svg" in page.text
        api.get(f"/orders/{resp.json['order_no']}/qr/{attempt_no}.svg?token={resp.json['access_token']}",
                status=200)
    # a replayed creation shows the same payment, still without asking
    api.reset()  # an API client, not the browser that opened the pages
    again = api.post_json("/api/v1/orders", BODY, headers={"Idempotency-Key": "replay-key-1"}, status=201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json["payment"]["qr"] == resp.json["payment"]["qr"]
    assert [c for c in gw.CALLS if c == ("create", attempt_no)] == [("create", attempt_no)]


def test_a_provider_that_cannot_be_reached_is_a_502_with_nothing_written(api, reg):
    gw.FAIL["create"] = "connection refused by provider.example"
    resp = api.post_json("/api/v1/orders", BODY, status=502)
    assert resp.json["error"]["code"] == "gateway_unavailable"
    assert "provider.example" not in resp.text  # the reason is logged, not shown
    assert count(reg, Order) == 0 and count(reg, PaymentAttempt) == 0
    gw.FAIL["create"] = None
    assert api.post_json("/api/v1/orders", BODY, status=201).json["payment"]["qr"].startswith("gwtest://")


# -- channels ------------------------------------------------------------------------------------


def test_only_the_gateways_channels_are_accepted(api, reg):
    for channel in ("other", "SCAN", "scan;drop"):
        resp = api.post_json("/api/v1/orders", {**BODY, "channel": channel}, status=422)
        assert resp.json["error"]["code"] == "payment_method_unavailable"
    resp = api.post_json("/api/v1/orders", {**BODY, "payment_method": "sandbox", "channel": "scan"}, status=422)
    assert resp.json["error"]["code"] == "payment_method_unavailable"  # the sandbox has no channels
    assert api.post_json("/api/v1/orders", {**BODY, "channel": "wap"}, status=201)


def test_the_checkout_offers_one_choice_per_channel(api, reg):
    from kameng.catalog.models import Product

    with app_request(reg) as req:
        product_id = req.db.scalar(select(Product.id))
    page = api.get(f"/checkout/{product_id}", {"sku": "CARD10", "quantity": "1"})
    values = [v for v, _checked, _text in page.forms["checkout-form"]["payment_method"].options]
    assert sorted(values) == ["gwtest:scan", "gwtest:wap", "sandbox"]
    assert "Contract gateway · Phone" in page.text
    form = page.forms["checkout-form"]
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    form["payment_method"] = "gwtest:wap"
    assert form.submit().status_int == 303
    with app_request(reg) as req:
        attempt = req.db.scalar(select(PaymentAttempt))
        assert (attempt.gateway, attempt.channel) == ("gwtest", "wap")


# -- settings validated as a whole -----------------------------------------------------------------


def test_a_plugins_validate_refuses_settings_before_they_are_stored(reg):
    with pytest.raises(SettingError) as exc, app_request(reg) as req:
        configure(req, "gwtest", {"mode": "strict", "token": "nope"})
    assert exc.value.field_name == "token"
    with app_request(reg) as req:
        configure(req, "gwtest", {"mode": "strict", "token": "tok_ok"})
    # a stored combination that no longer validates cannot be enabled
    with app_request(reg) as req:
        set_enabled(req, "gwtest", False)
    with app_request(reg) as req:
        from kameng.pluginhost import PluginState

        state = req.db.get(PluginState, "gwtest")
        state.settings = '{"mode": "strict"}'
        state.secrets = req.registry["kameng.keyring"].encrypt('{"token": "bad"}', "plugin:gwtest")
    with pytest.raises(PluginError), app_request(reg) as req:
        set_enabled(req, "gwtest", True)


def test_the_admin_plugin_page_masks_secrets_shows_the_notify_url_and_tests_the_connection(admin_web, reg):
    page = admin_web.get("/admin/plugins/gwtest")
    assert "tok_secret_value" not in page.text
    assert page.html.select_one("#notify-url").get_text() == "http://localhost/pay/gwtest/notify"
    form = page.forms["test-connection"]
    page = form.submit().follow()
    assert "Connection test passed: token accepted" in page.text
    gw.FAIL["test"] = "the provider says: invalid merchant"
    page = admin_web.get("/admin/plugins/gwtest").forms["test-connection"].submit().follow()
    assert "Connection test failed: the provider says: invalid merchant" in page.text
    assert ("test", "") in gw.CALLS
    # the sandbox has no connection test: no button, and the route refuses
    assert "test-connection" not in admin_web.get("/admin/plugins/sandbox").forms
    csrf = admin_web.get("/admin/plugins/sandbox").forms["plugin-settings"]["csrf_token"].value
    admin_web.post("/admin/plugins/sandbox/test", {"csrf_token": csrf}, status=404)


# -- reconciliation: the job and the admin's button ---------------------------------------------------


def test_the_admin_can_query_the_gateway_now(api, admin_web, reg):
    resp = api.post_json("/api/v1/orders", BODY, status=201)
    no, attempt_no = resp.json["order_no"], resp.json["payment"]["attempt_no"]
    page = admin_web.get(f"/admin/orders/{no}")
    page = page.forms[[k for k, f in page.forms.items() if f.action.endswith("/query")][0]].submit().follow()
    assert "The gateway was asked" in page.text and "Unknown to the gateway" in page.text
    gw.ANSWERS[attempt_no] = "paid"
    page = admin_web.get(f"/admin/orders/{no}")
    page = page.forms[[k for k, f in page.forms.items() if f.action.endswith("/query")][0]].submit().follow()
    assert "the order is paid" in page.text
    run_jobs(reg)
    with app_request(reg) as req:
        assert req.db.scalar(select(Order.status).where(Order.order_no == no)) == "delivered"
        outcomes = list(req.db.scalars(select(PaymentNotice.outcome).order_by(PaymentNotice.id)))
    assert outcomes == ["query:unknown", "query:applied"]
    assert not [f for f in admin_web.get(f"/admin/orders/{no}").forms.values() if f.action.endswith("/query")]


# -- closing what can no longer be paid -------------------------------------------------------------


def test_an_expired_order_closes_its_open_payment_at_the_gateway(api, reg):
    from kameng.orders.service import expire_due
    from sqlalchemy import update

    from kameng.db import utcnow

    resp = api.post_json("/api/v1/orders", BODY, status=201)
    no, attempt_no = resp.json["order_no"], resp.json["payment"]["attempt_no"]
    gw.FAIL["close"] = "provider busy"
    with app_request(reg) as req:
        req.db.execute(update(Order).where(Order.order_no == no).values(expires_at=utcnow()))
        expire_due(req)
    while ("close", attempt_no) not in gw.CALLS:
        assert run_jobs(reg, limit=1) == 1
    with app_request(reg) as req:
        assert req.db.scalar(select(PaymentAttempt.status).where(PaymentAttempt.attempt_no == attempt_no)) == \
            "pending"  # the close failed: retried
    gw.FAIL["close"] = None
    make_due(reg)
    run_jobs(reg)
    with app_request(reg) as req:
        assert req.db.scalar(select(PaymentAttempt.status).where(PaymentAttempt.attempt_no == attempt_no)) == \
            "closed"
    assert gw.CALLS.count(("close", attempt_no)) == 2
