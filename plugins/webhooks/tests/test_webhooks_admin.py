"""The admin pages: endpoints (secret shown once, reveal, rotate, test
event, disable, delete), the delivery log, resend; who may see them."""
from __future__ import annotations

import json
import re

import webtest
from sqlalchemy import select

from kameng import accounts
from kameng.audit import AuditEntry
from kameng.testing import app_request, login, set_plugin

from kameng_webhooks.models import Endpoint

from webhooks_helpers import (attempts, create_via_admin, csrf_of, deliveries, emit, make_endpoint, receiver_verifies,
                              run_all, run_jobs)

SECRET_RE = re.compile(r"whsec_[0-9a-f]{64}")


def _endpoint_id(wh) -> int:
    with app_request(wh) as req:
        return req.db.scalar(select(Endpoint.id).order_by(Endpoint.id.desc()))


def test_create_shows_the_secret_once_and_stores_it_encrypted(wh, wh_admin, receiver):
    r = receiver()
    page = create_via_admin(wh_admin, r.url, events=("order.*", "stock.low"), other="refund.manual, payment.paid_twice",
                   description="ERP <script>alert(1)</script>")
    secrets = SECRET_RE.findall(page.text)
    assert len(set(secrets)) == 1
    secret = secrets[0]
    assert "no-store" in page.headers["Cache-Control"]
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    eid = _endpoint_id(wh)
    with app_request(wh) as req:
        endpoint = req.db.get(Endpoint, eid)
        assert endpoint.events == "order.* stock.low refund.manual payment.paid_twice"
        assert secret not in endpoint.secret and endpoint.secret.count("$") == 1  # key id $ ciphertext
    # never again on a page without asking
    for path in ("/-/webhooks/", f"/-/webhooks/endpoints/{eid}", "/-/webhooks/deliveries"):
        assert not SECRET_RE.search(wh_admin.get(path).text)
    # the secret works: a delivery verifies with it
    emit(wh, "refund.manual", {"order_no": "K1", "refund_no": "R1"})
    run_all(wh)
    assert len(r.received) == 1 and receiver_verifies(secret, r.received[0])
    # reveal shows the same one (audited), rotate a new one that signs from then on
    page = wh_admin.get(f"/-/webhooks/endpoints/{eid}")
    shown = page.forms["reveal-form"].submit()
    assert SECRET_RE.findall(shown.text)[0] == secret and "no-store" in shown.headers["Cache-Control"]
    rotated = wh_admin.get(f"/-/webhooks/endpoints/{eid}").forms["rotate-form"].submit()
    new = SECRET_RE.findall(rotated.text)[0]
    assert new != secret
    emit(wh, "order.paid", {"order_no": "K2"})
    run_all(wh)
    assert receiver_verifies(new, r.received[1]) and not receiver_verifies(secret, r.received[1])
    with app_request(wh) as req:
        actions = [a for a, d in req.db.execute(select(AuditEntry.action, AuditEntry.detail)
                                                .where(AuditEntry.action.startswith("webhooks.")))]
        details = " ".join(d for _a, d in req.db.execute(select(AuditEntry.action, AuditEntry.detail)))
    assert actions == ["webhooks.endpoint.create", "webhooks.secret.reveal", "webhooks.secret.rotate"]
    assert secret not in details and new not in details


def test_bad_input_is_refused_with_a_message(wh, wh_admin):
    page = create_via_admin(wh_admin, "ftp://example.com/x", status=422)
    assert "error-url" in page.text
    assert "https://" in page.text
    assert "error-url" in create_via_admin(wh_admin, "https://user:pw@127.0.0.1/x", status=422).text
    assert "error-url" in create_via_admin(wh_admin, "https://127.0.0.1/x#frag", status=422).text
    assert "error-url" in create_via_admin(wh_admin, "https://127.0.0.1:99999/x", status=422).text
    assert "error-url" in create_via_admin(wh_admin, "https://127.0.0.1/" + "a" * 1000, status=422).text
    assert "error-events" in create_via_admin(wh_admin, "https://127.0.0.1/x", events=(), status=422).text
    page = create_via_admin(wh_admin, "https://127.0.0.1/x", events=(), other="account.password_reset", status=422)
    assert "never sent" in page.text
    page = create_via_admin(wh_admin, "https://127.0.0.1/x", other="order.paid; DROP TABLE", status=422)
    assert "error-events" in page.text
    with app_request(wh) as req:
        assert req.db.scalar(select(Endpoint.id)) is None


def test_edit_disable_enable_delete(wh, wh_admin, receiver):
    r = receiver()
    create_via_admin(wh_admin, r.url)
    eid = _endpoint_id(wh)
    page = wh_admin.get(f"/-/webhooks/endpoints/{eid}")
    form = page.forms["endpoint-form"]
    form["description"] = "shipping"
    for box in form.fields["events"]:
        box.checked = box._value == "*"
    assert form.submit().status_int == 302
    with app_request(wh) as req:
        e = req.db.get(Endpoint, eid)
        assert (e.description, e.events, e.active) == ("shipping", "*", True)
    # a bad edit changes nothing
    form = wh_admin.get(f"/-/webhooks/endpoints/{eid}").forms["endpoint-form"]
    form["url"] = "https://10.0.0.1:/x x"
    assert form.submit(status=422)
    with app_request(wh) as req:
        assert req.db.get(Endpoint, eid).url == r.url
    wh_admin.get(f"/-/webhooks/endpoints/{eid}").forms["disable-form"].submit()
    emit(wh, "order.paid", {"order_no": "K3"})
    run_all(wh)
    assert r.received == []
    page = wh_admin.get(f"/-/webhooks/endpoints/{eid}")
    assert "enable-form" in page.forms and "disable-form" not in page.forms
    # no test event to a disabled endpoint
    resp = page.forms["test-form"].submit().follow()
    assert "disabled" in resp.text and deliveries(wh) == []
    page.forms["enable-form"].submit()
    emit(wh, "order.paid", {"order_no": "K4"})
    run_all(wh)
    assert len(r.received) == 1
    listing = wh_admin.get(f"/-/webhooks/endpoints/{eid}").forms["delete-form"].submit().follow()
    assert "no-endpoints" in listing.text
    assert deliveries(wh) == []


def test_test_event_and_resend_with_the_same_id(wh, wh_admin, receiver):
    r = receiver(plan=[500])
    create_via_admin(wh_admin, r.url)
    eid = _endpoint_id(wh)
    page = wh_admin.get(f"/-/webhooks/endpoints/{eid}").forms["test-form"].submit().follow()
    (d,) = deliveries(wh)
    assert d.event == "webhook.test" and d.max_attempts == 1
    assert d.delivery_id in page.request.url
    run_all(wh)
    assert len(r.received) == 1
    (d,) = deliveries(wh)
    assert d.status == "failed"  # a test event is tried once
    detail = wh_admin.get(f"/-/webhooks/deliveries/{d.delivery_id}")
    assert "X-Kameng-Webhook-Signature: v1=" in detail.text and "receiver says no" in detail.text
    assert "&lt;b&gt;" in detail.text  # the receiver's answer is escaped
    # resend: CSRF required, then queued, then sent with the same id and body
    wh_admin.post(f"/-/webhooks/deliveries/{d.delivery_id}/resend", status=400)
    detail.forms["resend-form"].submit().follow()
    run_jobs(wh)
    assert len(r.received) == 2
    one, two = r.received
    assert one.body == two.body and one.headers["x-kameng-webhook-id"] == two.headers["x-kameng-webhook-id"]
    (d,) = deliveries(wh)
    assert d.status == "delivered" and d.attempt_count == 2
    assert [a.trigger for a in attempts(wh, d.delivery_id)] == ["auto", "resend"]
    detail = wh_admin.get(f"/-/webhooks/deliveries/{d.delivery_id}")
    assert detail.text.count('class="card attempt"') == 2
    assert json.loads(d.body)["data"]["message"]


def test_delivery_log_filters(wh, wh_admin, receiver):
    a, b = receiver(), receiver(default=500)
    ea, _ = make_endpoint(wh, a.url, events="*")
    eb, _ = make_endpoint(wh, b.url, events="order.paid")
    emit(wh, "order.paid", {"order_no": "K5"})
    emit(wh, "stock.low", {"sku": "S", "name": "S", "available": 0, "threshold": 1})
    run_jobs(wh)

    def ids(**query):
        page = wh_admin.get("/-/webhooks/deliveries", params=query)
        return sorted(re.findall(r'id="delivery-(wh_[0-9a-f]{32})" data-status="(\w+)"', page.text)), page

    every, _ = ids()
    assert len(every) == 3
    assert len(ids(endpoint=eb)[0]) == 1
    assert {s for _i, s in ids(status="pending")[0]} == {"pending"} and len(ids(status="pending")[0]) == 1
    assert len(ids(status="delivered")[0]) == 2
    assert len(ids(event="order.paid")[0]) == 2
    assert len(ids(event="stock.*")[0]) == 1
    assert len(ids(event="order.paid", endpoint=ea, status="delivered")[0]) == 1
    got, page = ids(status="nonsense' OR 1=1--", endpoint="1; drop", event="%")
    assert len(got) == 3 and "filter-errors" in page.text
    assert wh_admin.get("/-/webhooks/deliveries/wh_nope", status=404)
    assert wh_admin.get("/-/webhooks/endpoints/999999", status=404)
    assert wh_admin.get("/-/webhooks/endpoints/abc", status=404)
    page = wh_admin.get(f"/-/webhooks/endpoints/{ea}")
    assert wh_admin.post(f"/-/webhooks/endpoints/{ea}/explode", {"csrf_token": csrf_of(page)}, status=404)


def test_menu_and_who_may_see_the_pages(wh_app, wh, wh_admin):
    home = wh_admin.get("/admin")
    assert "/-/webhooks/" in home.text and "/-/webhooks/deliveries" in home.text
    eid, _ = make_endpoint(wh, "https://127.0.0.1/x")
    anon = webtest.TestApp(wh_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    for path in ("/-/webhooks/", f"/-/webhooks/endpoints/{eid}", "/-/webhooks/deliveries"):
        assert anon.get(path, status=302).location.split("?")[0].endswith("/login")
    with app_request(wh) as req:
        accounts.create_user(req.db, "buyer@example.com", "buyer-password-1", role="buyer")
    buyer = webtest.TestApp(wh_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(buyer, "buyer@example.com", "buyer-password-1").status_int == 302
    for path in ("/-/webhooks/", f"/-/webhooks/endpoints/{eid}", "/-/webhooks/deliveries"):
        buyer.get(path, status=403)
    token = csrf_of(buyer.get("/account"))
    buyer.post(f"/-/webhooks/endpoints/{eid}/reveal", {"csrf_token": token}, status=403)
    # disabled: the pages are gone, the data stays
    set_plugin(wh, "webhooks", enabled=False)
    wh_admin.get("/-/webhooks/", status=404)
    assert "/-/webhooks/" not in wh_admin.get("/admin").text
    with app_request(wh) as req:
        assert req.db.get(Endpoint, eid) is not None
