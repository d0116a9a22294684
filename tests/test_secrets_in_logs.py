"""Secrets stay where they belong (SECURITY.md #68, #69): card keys,
passwords, query passwords, gateway and supplier secrets, API tokens, the
docking secret, signatures, the session secret and the key file never
appear in what is logged during a whole buyer flow, in error pages, in API
error bodies, or in the admin's pages and exports other than their own.

Everything logged is captured from the root logger at DEBUG twice: as
kameng's JSON formatter writes it (the production format), and in a plain
format that writes every ``extra`` field and every traceback verbatim (what
a careless logging configuration would write).
"""
from __future__ import annotations

import json
from urllib.parse import quote

import webtest
from sqlalchemy import select

from kameng.testing import SESSION_SECRET, app_request, run_jobs
from security_helpers import (KEYS, QUERY_PASSWORD, SANDBOX_SECRET, SKU, SUPPLIER_SECRET, TELEGRAM_TOKEN, build_world,
                              captured_logs, leaks, text_of)

NEW_SANDBOX_SECRET = "rotated-sandbox-secret-0987654321"
EPAY_KEY = "epay-merchant-md5-key-1122334455"
BUYER_PASSWORD = "flow-buyer-password-5566"
FLOW_QUERY_PASSWORD = "flow-query-pw-8899"
WRONG_PASSWORD = "typo-password-not-right-1"


def _secrets(world, extra: dict) -> dict[str, str]:
    with open(world.registry.settings["kameng.key_file"]) as fh:
        key_lines = [line.strip().split(":", 1)[-1] for line in fh if line.strip()]
    out = {f"card key {k}": k for k in KEYS}
    out.update({f"password of {role}": pw for role, pw in
                (("buyer_a", "buyer-a-password-1"), ("buyer_b", "buyer-b-password-2"),
                 ("agent", "agent-password-3"), ("admin", "admin-password-1"))})
    out.update({f"API token of {role}": c.token for role, c in world.clients.items() if c.token})
    out.update({"query password": QUERY_PASSWORD, "flow query password": FLOW_QUERY_PASSWORD,
                "flow buyer password": BUYER_PASSWORD, "a wrong password": WRONG_PASSWORD,
                "sandbox secret": SANDBOX_SECRET, "new sandbox secret": NEW_SANDBOX_SECRET,
                "epay key": EPAY_KEY, "supplier secret": SUPPLIER_SECRET, "docking secret": world["dock_secret"],
                "session secret": SESSION_SECRET, "order access token": world["access_token"]})
    out.update({f"key file line {i}": line for i, line in enumerate(key_lines)})
    # the operations plugins' secrets, where the world enabled them
    if "notify_telegram" in world.values.get("plugins", ()):
        out["telegram bot token"] = TELEGRAM_TOKEN
    if world.values.get("webhook_secret"):
        out["webhook signing secret"] = world["webhook_secret"]
    out.update(extra)
    return out


def test_a_whole_buyer_flow_logs_no_secret(app, monkeypatch):
    from kameng.dock.auth import sign_request
    from kameng_sandbox.gateway import signed_fields

    world = build_world(app)
    admin, visitor = world.clients["admin"], world.clients["anonymous"]
    extra: dict[str, str] = {}
    answers: dict[str, object] = {}  # what each step answered, checked below
    with captured_logs() as logs:
        # a visitor signs up (a wrong password first), signs in and buys
        web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.9.4.1"})
        form = web.get("/register").forms["register-form"]
        form["email"], form["password"], form["password2"] = "flow@example.com", BUYER_PASSWORD, WRONG_PASSWORD
        answers["register refused"] = form.submit(expect_errors=True)
        form = answers["register refused"].forms["register-form"]
        form["password"] = form["password2"] = BUYER_PASSWORD
        assert form.submit().status_int == 302
        web.post("/logout", {"csrf_token": web.get("/account").html.find("input", {"name": "csrf_token"})["value"]})
        form = web.get("/login").forms["login-form"]
        form["email"], form["password"] = "flow@example.com", WRONG_PASSWORD
        answers["wrong password"] = form.submit(expect_errors=True)
        form = answers["wrong password"].forms["login-form"]
        form["email"], form["password"] = "flow@example.com", BUYER_PASSWORD
        assert form.submit().status_int == 302
        form = web.get(f"/checkout/{world['product_id']}?sku={SKU}").forms["checkout-form"]
        form["payment_method"] = "sandbox"
        pay_page = form.submit().follow()
        # the sandbox's page signs the notify with its secret; the order is paid
        answers["paid"] = pay_page.forms["sandbox-paid"].submit()
        order_no = _latest_order(world)
        run_jobs(world.registry)  # delivery
        answers["order page"] = web.get(f"/orders/{order_no}")
        delivered = [k for k in KEYS if k in answers["order page"].text]
        assert delivered, "the buyer sees the keys"
        # a replayed and a forged notify for the same payment
        fields = signed_fields(_attempt_of(world, order_no), "10.00", "paid", SANDBOX_SECRET)
        extra["a notify's valid signature"] = fields["sign"]
        answers["replayed notify"] = web.post("/pay/sandbox/notify", fields)
        answers["forged notify"] = web.post("/pay/sandbox/notify", {**fields, "amount": "0.01"},
                                            expect_errors=True)
        # a guest buys with a query password and pays (the gateway's signed notify)
        guest = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.9.4.2"})
        form = guest.get(f"/checkout/{world['product_id']}?sku={SKU}").forms["checkout-form"]
        form["contact"], form["query_password"] = "guest-flow@example.com", FLOW_QUERY_PASSWORD
        form["payment_method"] = "sandbox"
        form.submit()
        guest_no = _latest_order(world)
        answers["guest notify"] = guest.post("/pay/sandbox/notify", signed_fields(
            _attempt_of(world, guest_no), "10.00", "paid", SANDBOX_SECRET))
        run_jobs(world.registry)
        # looking it up with the query password, right and wrong
        answers["lookup"] = visitor.send("GET", f"/api/v1/orders/{guest_no}?query_password={FLOW_QUERY_PASSWORD}")
        guest_keys = [k["secret"] for k in answers["lookup"].json["items"][0]["keys"]]
        answers["lookup, wrong password"] = visitor.send("GET", f"/api/v1/orders/{guest_no}?query_password="
                                                               f"{quote(WRONG_PASSWORD)}")
        answers["lookup form"] = visitor.send("POST", "/query", form={
            "by": "number", "order_no": guest_no, "query_password": WRONG_PASSWORD})
        answers["lookup form, right"] = visitor.send("POST", "/query", form={
            "by": "number", "order_no": guest_no, "query_password": FLOW_QUERY_PASSWORD})
        # the admin: the order, revealing its keys, settings with secrets
        answers["admin order"] = admin.send("GET", f"/admin/orders/{order_no}")
        answers["admin reveal"] = admin.send("POST", f"/admin/orders/{order_no}/reveal")
        answers["admin API order"] = admin.send("GET", f"/api/v1/admin/orders/{order_no}", bearer=True)
        answers["sandbox secret saved"] = admin.send("POST", "/admin/plugins/sandbox",
                                                     form={"secret": NEW_SANDBOX_SECRET})
        answers["secret too short"] = admin.send("POST", "/admin/plugins/sandbox", form={"secret": "short-one"})
        answers["epay key by API"] = admin.send("PATCH", "/api/v1/admin/plugins/epay", bearer=True, json_body={
            "settings": {"api_url": "https://pay.example.com/", "pid": "1001", "key": EPAY_KEY}})
        answers["epay key refused"] = admin.send("PATCH", "/api/v1/admin/plugins/epay", bearer=True, json_body={
            "settings": {"pid": "not-a-number", "key": EPAY_KEY + "-2"}})
        extra["refused epay key"] = EPAY_KEY + "-2"
        answers["supplier saved"] = admin.send("POST", f"/admin/suppliers/{world['connection_id']}", form={
            "name": "Upstream one", "secret": SUPPLIER_SECRET + "-new", "seed": "demo", "failure_rate": "0",
            "latency_ms": "0", "processing_seconds": "2", "enabled": "1", "sync_interval": "600",
            "deadline_minutes": "60"})
        extra["new supplier secret"] = SUPPLIER_SECRET + "-new"
        # API tokens: a good one, a wrong one
        answers["bad token"] = webtest.TestApp(app).get("/api/v1/admin/orders", expect_errors=True,
                                                        headers={"Authorization": "Bearer kmg_" + "w" * 40})
        extra["a wrong token"] = "kmg_" + "w" * 40
        # the docking API: a signed call, and one whose signature is off
        url = "/api/v1/dock/balance"
        signed = sign_request(world["dock_key_id"], world["dock_secret"], "GET", url, b"")
        answers["dock call"] = webtest.TestApp(app).get(url, headers=signed, expect_errors=True)
        good = sign_request(world["dock_key_id"], world["dock_secret"], "GET", url, b"")
        extra.update({f"a docking signature ({k})": v for k, v in good.items() if "sign" in k.lower()})
        answers["dock bad signature"] = webtest.TestApp(app).get(
            url, headers={**good, **{k: "0" * len(v) for k, v in good.items() if "sign" in k.lower()}},
            expect_errors=True)
        # a failing request: its exception names a key and a secret
        boom = f"could not decrypt {delivered[0]} with {SANDBOX_SECRET}"

        def failing(*a, **kw):
            raise RuntimeError(boom)

        monkeypatch.setattr("kameng.orders.service.keys_of", failing)
        answers["500 page"] = web.get(f"/orders/{order_no}", expect_errors=True)
        answers["500 JSON"] = web.get(f"/api/v1/orders/{order_no}", expect_errors=True)
        monkeypatch.undo()
    assert answers["500 page"].status_int == answers["500 JSON"].status_int == 500
    assert answers["dock call"].status_int == 200, answers["dock call"].text
    assert answers["dock bad signature"].status_int == 401
    assert answers["forged notify"].status_int == 400 and answers["bad token"].status_int == 401
    secrets = _secrets(world, extra)

    # 1. the logs: the JSON lines (production) have nothing; the plain
    # rendering nothing but the exception text the failing request made up
    json_lines = [line for line in logs if line.startswith("{")]
    assert json_lines and any("unhandled_error" in line for line in json_lines)
    assert leaks(json_lines, secrets) == []
    made_up = [line for line in logs if not line.startswith("{") and boom in line]
    assert made_up, "the plain capture saw the traceback"
    assert leaks([line for line in logs if not line.startswith("{") and boom not in line], secrets) == []

    # 2. answers: error pages and API errors say nothing secret; pages that
    # legitimately show keys show only their own order's
    own_keys = {"order page": delivered, "admin reveal": delivered, "admin API order": delivered,
                "lookup": guest_keys}
    for name, resp in answers.items():
        allowed = {f"card key {k}" for k in own_keys.get(name, ())}
        found = [f for f in leaks({name: text_of(resp) + str(resp.headers)}, secrets)
                 if f.split(" in ")[0] not in allowed]
        assert found == [], found


def _latest_order(world) -> str:
    from kameng.orders.models import Order

    with app_request(world.registry) as req:
        return req.db.scalar(select(Order.order_no).order_by(Order.id.desc()).limit(1))


def _attempt_of(world, order_no) -> str:
    from kameng.orders.models import Order
    from kameng.payments.models import PaymentAttempt

    with app_request(world.registry) as req:
        order_id = req.db.scalar(select(Order.id).where(Order.order_no == order_no))
        return req.db.scalar(select(PaymentAttempt.attempt_no).where(PaymentAttempt.order_id == order_id))


def test_admin_pages_and_exports_show_no_secret_but_their_own(app):
    """After a flow with delivered keys, failed notifies and stored secrets:
    the order list and its CSV, the order's page (keys masked until
    revealed), payments (notify payloads redacted), jobs, the audit log,
    plugin and supplier settings (secrets masked), the dashboard and the
    admin API's lists show none of them. The keys' own export has the keys."""
    from kameng_sandbox.gateway import signed_fields

    world = build_world(app)
    admin = world.clients["admin"]
    web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.9.5.1"})
    fields = signed_fields(world["pending_attempt_no"], "10.00", "paid", SANDBOX_SECRET)
    web.post("/pay/sandbox/notify", {**fields, "amount": "0.01"}, expect_errors=True)  # a forged one: recorded
    admin.send("POST", "/admin/plugins/sandbox", form={"secret": NEW_SANDBOX_SECRET})
    admin.send("PATCH", "/api/v1/admin/plugins/epay", bearer=True, json_body={
        "settings": {"api_url": "https://pay.example.com/", "pid": "1001", "key": EPAY_KEY}})
    admin.send("POST", f"/admin/orders/{world['order_no']}/reveal")  # audited, by key id
    admin.send("POST", f"/admin/keys/{world['sold_key_id']}/reveal")
    secrets = _secrets(world, {"a notify's valid signature": fields["sign"]})
    pages = {
        "order list": ("GET", "/admin/orders"), "orders CSV": ("GET", "/admin/orders/export.csv"),
        "order page": ("GET", f"/admin/orders/{world['order_no']}"), "payments": ("GET", "/admin/payments"),
        "jobs": ("GET", "/admin/jobs?status=done"), "audit log": ("GET", "/admin/audit"),
        "dashboard": ("GET", "/admin"), "plugins": ("GET", "/admin/plugins"),
        "sandbox settings": ("GET", "/admin/plugins/sandbox"), "epay settings": ("GET", "/admin/plugins/epay"),
        "suppliers": ("GET", "/admin/suppliers"),
        "supplier": ("GET", f"/admin/suppliers/{world['connection_id']}"),
        "stock": ("GET", f"/admin/skus/{SKU}/stock"), "users": ("GET", "/admin/users"),
        "user": ("GET", f"/admin/users/{world.user_ids['buyer_a']}"),
        "dock keys": ("GET", f"/admin/users/{world.user_ids['agent']}/dock-keys"),
    }
    api = {"API order list": "/api/v1/admin/orders", "API plugins": "/api/v1/admin/plugins",
           "API sandbox": "/api/v1/admin/plugins/sandbox", "API jobs": "/api/v1/admin/jobs?status=done",
           "API users": "/api/v1/admin/users", "API dock keys": f"/api/v1/admin/users/{world.user_ids['agent']}"
                                                             "/dock-keys",
           "API SKU": f"/api/v1/admin/skus/{SKU}", "API imports": f"/api/v1/admin/skus/{SKU}/imports"}
    texts = {}
    for name, (method, path) in pages.items():
        resp = admin.send(method, path)
        assert resp.status_int == 200, (name, resp.status)
        texts[name] = resp.body.decode("utf-8-sig")
    for name, path in api.items():
        resp = admin.send("GET", path, bearer=True)
        assert resp.status_int == 200, (name, resp.status)
        texts[name] = json.dumps(resp.json, ensure_ascii=False)
    assert leaks(texts, secrets) == []
    # the keys' own export: the available keys, in clear
    export = admin.send("POST", f"/admin/skus/{SKU}/export").text
    assert sum(k in export for k in KEYS) >= 1
