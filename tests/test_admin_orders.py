"""The admin order pages: the list with its filters and search, one order's
page (payments, notifications, refunds, the trail), each action an admin
takes on an order, the CSV export, the users pages and balance
adjustments, and who may see them (webtest, as an admin)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import func, select

from kameng import accounts, wallet
from kameng.admin import orders as admin_orders
from kameng.audit import AuditEntry
from kameng.inventory.models import CardKey
from kameng.orders import service
from kameng.orders.models import Order
from kameng.testing import app_request, login
from kameng.types import RefundResult
from kameng_sandbox.gateway import SandboxGateway, signed_fields

from orders_helpers import SECRET, buyer_app, enable_sandbox, make_sku, order_body, place, run_jobs


# -- helpers ------------------------------------------------------------------------------


def order_row(registry, order_no) -> Order:
    with app_request(registry) as req:
        order = service.get(req.db, order_no)
        req.db.expunge(order)
        return order


def audit_rows(registry, action):
    with app_request(registry) as req:
        return [(r.actor, r.target, json.loads(r.detail)) for r in
                req.db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def events(registry, order_no):
    with app_request(registry) as req:
        order = service.get(req.db, order_no)
        return [(e.kind, e.from_status, e.to_status, e.message, e.actor, e.public)
                for e in service.events_of(req.db, order, public_only=False)]


def refunds(registry, order_no):
    with app_request(registry) as req:
        order = service.get(req.db, order_no)
        return [(r.refund_no, r.amount, r.destination, r.status) for r in service.refunds_of(req.db, order)]


def key_rows(registry, order_no):
    with app_request(registry) as req:
        return [(k.id, k.state) for k in req.db.scalars(select(CardKey).where(CardKey.order_ref == order_no)
                                                          .order_by(CardKey.id))]


def secrets_of(registry, order_no):
    from kameng.inventory import service as inventory

    with app_request(registry) as req:
        keyring = req.registry["kameng.keyring"]
        return [inventory.reveal(keyring, k)[1] for k in req.db.scalars(
            select(CardKey).where(CardKey.order_ref == order_no).order_by(CardKey.id))]


def form(page, form_id):
    return page.forms[form_id]


def row_ids(page):
    return [tr["id"].removeprefix("order-") for tr in page.html.select("#orders tbody tr")]


@pytest.fixture
def shop(registry):
    """A card-key SKU (CARD10, 5 keys), a manual SKU (MAN5) and the sandbox."""
    make_sku(registry)
    make_sku(registry, code="MAN5", price="5.00", type_="manual", name="Manual goods")
    enable_sandbox(registry)


# -- the list --------------------------------------------------------------------------------


def test_list_filters_search_and_counts(admin_app, app, registry, shop):
    delivered = place(app, registry)["order_no"]
    pending = place(app, registry, pay=False, contact="+8613800000000")
    manual = place(app, registry, "MAN5")["order_no"]
    assert order_row(registry, manual).status == "delivering"

    page = admin_app.get("/admin/orders")
    assert set(row_ids(page)) == {delivered, pending["order_no"], manual}
    assert row_ids(page)[0] == manual  # newest first
    tabs = {a.get("id"): a.select_one(".count").text for a in page.html.select("#status-tabs a")}
    assert tabs["tab-delivered"] == "1" and tabs["tab-pending"] == "1" and tabs["tab-delivering"] == "1"
    assert tabs["tab-failed"] == "0"
    row = page.html.select_one(f"#order-{delivered}")
    assert "CNY 10.00" in " ".join(row.select_one(".amount").text.split())
    assert row.select_one(".badge.status-delivered").text == "Delivered"

    def ids(**query):
        return set(row_ids(admin_app.get("/admin/orders", query)))

    assert ids(status="pending") == {pending["order_no"]}
    assert ids(type="manual") == {manual}
    assert ids(type="card_key") == {delivered, pending["order_no"]}
    assert ids(method="sandbox") == {delivered, pending["order_no"], manual}
    assert ids(method="epay") == set()
    # search: order number (or a part), contact, SKU code, payment attempt number
    assert ids(q=delivered) == {delivered}
    assert ids(q=delivered[-8:]) == {delivered}
    assert ids(q="+86138") == {pending["order_no"]}
    assert ids(q="man5") == {manual}
    assert ids(q=pending["payment"]["attempt_no"]) == {pending["order_no"]}
    assert ids(q="%") == set() and ids(q="_") == set()  # taken literally
    # the tab counts follow the other filters
    tabs = {a.get("id"): a.select_one(".count").text
            for a in admin_app.get("/admin/orders", {"type": "manual"}).html.select("#status-tabs a")}
    assert tabs["tab-delivering"] == "1" and tabs["tab-delivered"] == "0"
    # dates (UTC, by when the order was placed; "to" includes its day)
    today = dt.datetime.now(dt.UTC).date()
    assert ids(**{"from": today.isoformat(), "to": today.isoformat()}) == {delivered, pending["order_no"], manual}
    assert ids(**{"from": (today + dt.timedelta(days=1)).isoformat()}) == set()
    assert ids(to=(today - dt.timedelta(days=1)).isoformat()) == set()
    # what is not understood is said and ignored, never a 500
    page = admin_app.get("/admin/orders", {"status": "nonsense", "from": "2024-13-45", "type": "x", "page": "x"})
    assert set(row_ids(page)) == {delivered, pending["order_no"], manual}
    assert page.html.select_one("#filter-errors") is not None
    assert admin_app.get("/admin/orders", {"q": "no such thing"}).html.select_one("#no-orders") is not None


def test_list_pages(admin_app, app, registry, shop, monkeypatch):
    monkeypatch.setattr(admin_orders, "PAGE_SIZE", 2)
    made = [place(app, registry, pay=False)["order_no"] for _ in range(5)]
    first = admin_app.get("/admin/orders", {"status": "pending"})
    assert row_ids(first) == made[::-1][:2]
    second = admin_app.get(first.html.select_one('a[rel="next"]')["href"])
    assert row_ids(second) == made[::-1][2:4]
    assert "status=pending" in first.html.select_one('a[rel="next"]')["href"]
    last = admin_app.get("/admin/orders", {"status": "pending", "page": "99"})
    assert row_ids(last) == [made[0]]


def test_dashboard_shows_the_orders(admin_app, app, registry, shop):
    place(app, registry)
    place(app, registry, "MAN5")
    page = admin_app.get("/admin")
    tiles = page.html.select_one("#order-stats")
    assert tiles is not None
    figures = [" ".join(s.text.split()) for s in tiles.select(".stat strong")]
    assert figures[:2] == ["2", "CNY 15.00"]
    assert tiles.select_one("#stat-awaiting strong").text == "1"
    assert tiles.select_one("#stat-failed strong").text == "0"
    menu = [a.text for a in page.html.select(".sidebar nav a")]
    assert "Orders" in menu and "Users" in menu


# -- one order -----------------------------------------------------------------------------


def test_detail_shows_payments_notices_and_the_trail(admin_app, app, registry, shop):
    made = place(app, registry)
    no = made["order_no"]
    attempt_no = made["payment"]["attempt_no"]
    # a replayed notify is recorded too and shown under its payment
    buyer_app(app).post("/pay/sandbox/notify", signed_fields(attempt_no, made["amount"], "paid", SECRET))
    page = admin_app.get(f"/admin/orders/{no}")
    html = page.html
    assert html.select_one("#order-no").text == no
    assert html.select_one("#order-status").text == "Delivered"
    assert html.select_one("#contact").text == "buyer@example.com"
    assert "Guest" in html.select_one("#buyer").text
    attempt = html.select_one(f"#attempt-{attempt_no}")
    assert attempt is not None and "SBX" + attempt_no in attempt.text
    outcomes = [b.text for b in attempt.select(".notices .badge")]
    assert outcomes == ["Applied", "Already applied"]
    trail = [" ".join(tr.text.split()) for tr in html.select("#events tbody tr")]
    assert any("Awaiting payment → Paid" in t for t in trail)
    assert any("Paid → Delivered" in t and "Card keys delivered" in t for t in trail)
    assert any("internal" in t and attempt_no in t for t in trail)  # the private events are there too
    steps = [tr["class"][0] for tr in html.select("#pricing tbody tr")]
    assert steps == ["step-base", "step-total"]
    # the key is masked until revealed
    secret = secrets_of(registry, no)[0]
    assert secret not in page.text
    assert html.select_one("#key-table .masked") is not None
    assert "style=" not in page.text
    for f in page.forms.values():
        assert f.method.upper() != "POST" or "csrf_token" in f.fields


def test_reveal_shows_the_keys_once_and_is_audited(admin_app, app, registry, shop):
    no = place(app, registry, quantity=2)["order_no"]
    secrets = secrets_of(registry, no)
    page = admin_app.get(f"/admin/orders/{no}")
    revealed = form(page, "reveal-form").submit()
    assert revealed.status_int == 200
    assert revealed.headers["Cache-Control"] == "no-store"
    shown = [td.text for td in revealed.html.select("#key-table .secret-value")]
    assert shown == secrets
    (actor, target, detail), = audit_rows(registry, "order.reveal")
    assert actor == "admin@example.com" and target == no and len(detail["keys"]) == 2
    assert not any(s in json.dumps(detail) for s in secrets)
    assert not any(s in admin_app.get(f"/admin/orders/{no}").text for s in secrets)
    admin_app.get(f"/admin/orders/{no}/reveal", status=404)  # POST only


def test_deliver_a_manual_order_by_hand(admin_app, app, registry, shop):
    made = place(app, registry, "MAN5")
    no = made["order_no"]
    page = admin_app.get(f"/admin/orders/{no}")
    assert set(page.forms) >= {"deliver-form", "refund-form"}
    assert "cancel-form" not in page.forms and "redeliver-form" not in page.forms
    f = form(page, "deliver-form")
    f["text"] = "Account: demo / password: s3cret"
    f["reason"] = "sent by the supplier"
    resp = f.submit()
    assert resp.status_int == 302
    done = resp.follow()
    assert "The order is delivered." in done.text
    assert done.html.select_one("#order-status").text == "Delivered"
    assert "Account: demo / password: s3cret" in done.html.select_one("#delivery-note").text
    order = order_row(registry, no)
    assert order.status == "delivered" and order.delivered_at is not None
    # the buyer sees the text on the order
    seen = buyer_app(app).get(f"/api/v1/orders/{no}", {"token": made["access_token"]}).json
    assert seen["delivery_note"] == "Account: demo / password: s3cret"
    (actor, target, detail), = audit_rows(registry, "order.deliver")
    assert (actor, target, detail["reason"], detail["with_text"]) == ("admin@example.com", no, "sent by the supplier",
                                                                      True)
    assert "s3cret" not in json.dumps(detail)
    trail = events(registry, no)
    assert ("status", "delivering", "delivered", "Fulfilled by the shop", "admin@example.com", True) in trail
    assert ("note", "delivered", "delivered", "sent by the supplier", "admin@example.com", False) in trail


def test_a_direct_recharge_order_shows_the_account(admin_app, app, registry):
    make_sku(registry, code="CMCC50", price="49.80", type_="direct_recharge", name="中国移动话费直充",
             recharge_fields=[{"name": "phone", "label": "手机号", "kind": "mobile_cn"}])
    enable_sandbox(registry)
    no = place(app, registry, "CMCC50", recharge={"phone": "13800138000"})["order_no"]
    page = admin_app.get(f"/admin/orders/{no}")
    assert "13800138000" in page.html.select_one("#recharge").text
    assert page.html.select_one("#order-status").text == "Delivering"
    f = form(page, "deliver-form")
    f["reason"] = "topped up at the operator"
    done = f.submit().follow()
    assert done.html.select_one("#order-status").text == "Delivered"
    assert done.html.select_one("#delivery-note") is None  # no text was given


def test_a_reason_is_required_and_nothing_is_written_without_one(admin_app, app, registry, shop):
    no = place(app, registry, "MAN5")["order_no"]
    before = events(registry, no)
    page = admin_app.get(f"/admin/orders/{no}")
    for form_id in ("deliver-form", "refund-form"):
        f = form(page, form_id)
        f["reason"] = "   "
        resp = f.submit(status=422)
        assert "Give a reason" in resp.html.select_one("#action-error").text
    assert order_row(registry, no).status == "delivering"
    assert events(registry, no) == before and refunds(registry, no) == []
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.like("order.%"))) == 0
    # what was typed comes back in the form
    f = form(page, "deliver-form")
    f["text"] = "kept"
    f["reason"] = ""
    resp = f.submit(status=422)
    assert resp.forms["deliver-form"]["text"].value == "kept"


def test_actions_that_do_not_apply_are_not_offered_and_refused_cleanly(admin_app, app, registry, shop):
    delivered = place(app, registry)["order_no"]
    pending = place(app, registry, pay=False)["order_no"]
    page = admin_app.get(f"/admin/orders/{delivered}")
    assert "cancel-form" not in page.forms and "deliver-form" not in page.forms
    assert "redeliver-form" not in page.forms and "refund-form" in page.forms
    token = form(page, "refund-form")["csrf_token"].value
    before = events(registry, delivered)
    for action, fields, message in [
        ("cancel", {}, "Only unpaid orders can be cancelled."),
        ("deliver", {"text": "x"}, "Card-key orders are delivered automatically"),
        ("redeliver", {}, "Only paid or failed orders can be delivered again."),
    ]:
        resp = admin_app.post(f"/admin/orders/{delivered}/{action}", {"csrf_token": token, "reason": "try", **fields},
                              status=409)
        assert message in resp.html.select_one("#action-error").text
        assert resp.html.select_one("#order-status").text == "Delivered"
    assert events(registry, delivered) == before and order_row(registry, delivered).status == "delivered"
    # a pending order: no refund, no replacement; the cancel form is there
    page = admin_app.get(f"/admin/orders/{pending}")
    assert "cancel-form" in page.forms and "refund-form" not in page.forms
    resp = admin_app.post(f"/admin/orders/{pending}/refund", {"csrf_token": token, "reason": "try"}, status=409)
    assert "Only paid orders can be refunded." in resp.text
    resp = admin_app.post(f"/admin/orders/{pending}/replace_key", {"csrf_token": token, "reason": "x", "key_id": "1"},
                          status=409)
    assert "not a delivered key of this order" in resp.text
    # a refunded order offers nothing
    f = form(admin_app.get(f"/admin/orders/{delivered}"), "refund-form")
    f["reason"] = "customer asked"
    f.submit().follow()
    run_jobs(registry)
    page = admin_app.get(f"/admin/orders/{delivered}")
    assert page.html.select_one("#order-status").text == "Refunded"
    assert page.html.select_one("#no-actions") is not None
    assert not {"refund-form", "cancel-form", "deliver-form", "redeliver-form"} & set(page.forms)
    assert audit_rows(registry, "order.cancel") == []


def test_cancel_a_pending_order(admin_app, app, registry, shop):
    no = place(app, registry, pay=False)["order_no"]
    assert [s for _id, s in key_rows(registry, no)] == ["reserved"]
    f = form(admin_app.get(f"/admin/orders/{no}"), "cancel-form")
    f["reason"] = "duplicate order"
    page = f.submit().follow()
    assert page.html.select_one("#order-status").text == "Cancelled"
    assert key_rows(registry, no) == []  # the key went back to stock
    assert ("status", "pending", "cancelled", "duplicate order", "admin@example.com", True) in events(registry, no)
    assert audit_rows(registry, "order.cancel")[0][2]["reason"] == "duplicate order"


def test_refund_part_then_the_rest(admin_app, app, registry, shop):
    no = place(app, registry)["order_no"]
    f = form(admin_app.get(f"/admin/orders/{no}"), "refund-form")
    f["amount"] = "3.00"
    f["destination"] = "gateway"
    f["reason"] = "one code was late"
    f.submit().follow()
    run_jobs(registry)  # the gateway refund is a job
    (_no, amount, where, status), = refunds(registry, no)
    assert (amount, where, status) == (300, "gateway", "succeeded")
    order = order_row(registry, no)
    assert order.status == "delivered" and order.refunded_amount == 300
    page = admin_app.get(f"/admin/orders/{no}")
    assert "7.00" in page.html.select_one("#refund-form").text  # what is left
    # too much, or not a number: a message, nothing written
    for amount, message in (("7.01", "more than is left"), ("abc", "decimal"), ("-1", "decimal"),
                            ("0", "more than zero")):
        f = form(page, "refund-form")
        f["amount"] = amount
        f["reason"] = "x"
        resp = f.submit(status=422)
        assert message in resp.html.select_one("#action-error").text
    f = form(page, "refund-form")
    f["amount"] = ""
    f["reason"] = "the rest"
    done = f.submit().follow()
    run_jobs(registry)
    assert order_row(registry, no).status == "refunded"
    assert [r[1] for r in refunds(registry, no)] == [300, 700]
    rows = admin_app.get(f"/admin/orders/{no}").html.select("#refund-table tbody tr")
    assert [r.select_one(".badge").text for r in rows] == ["Succeeded", "Succeeded"]
    assert "The refund is started." in done.text
    audits = audit_rows(registry, "order.refund")
    assert [(d["amount"], d["destination"], d["reason"]) for _a, _t, d in audits] == [
        ("3.00", "gateway", "one code was late"), ("7.00", "gateway", "the rest")]


def test_refund_to_a_balance_needs_an_account(admin_app, app, registry, shop):
    no = place(app, registry)["order_no"]
    f = form(admin_app.get(f"/admin/orders/{no}"), "refund-form")
    f["destination"] = "balance"
    f["reason"] = "x"
    resp = f.submit(status=422)
    assert "A guest order cannot be refunded to a balance." in resp.text
    assert refunds(registry, no) == [] and order_row(registry, no).status == "delivered"


def test_refund_of_an_undelivered_order_stops_its_delivery(admin_app, app, registry, shop):
    no = place(app, registry, "MAN5")["order_no"]
    f = form(admin_app.get(f"/admin/orders/{no}"), "refund-form")
    f["reason"] = "cannot source it"
    f.submit()
    run_jobs(registry)
    order = order_row(registry, no)
    assert order.status == "refunded" and order.refunded_amount == 500


def test_a_refund_paid_by_hand(admin_app, app, registry, shop, monkeypatch):
    # a gateway that cannot refund, and a guest: the money goes back by hand
    monkeypatch.setattr(SandboxGateway, "refund_supported", False)
    no = place(app, registry)["order_no"]
    f = form(admin_app.get(f"/admin/orders/{no}"), "refund-form")
    f["reason"] = "refund asked"
    f.submit()
    (refund_no, _amount, where, status), = refunds(registry, no)
    assert (where, status) == ("manual", "pending")
    page = admin_app.get(f"/admin/orders/{no}")
    paid = page.html.select_one(f"#refund-{refund_no} form.refund-paid")
    assert paid is not None
    token = paid.select_one('input[name="csrf_token"]')["value"]
    admin_app.post(f"/admin/orders/{no}/refund_paid", {"csrf_token": token, "refund_no": refund_no, "reason": ""},
                   status=422)
    admin_app.post(f"/admin/orders/{no}/refund_paid", {"csrf_token": token, "refund_no": "R0", "reason": "x"},
                   status=404)
    resp = admin_app.post(f"/admin/orders/{no}/refund_paid",
                          {"csrf_token": token, "refund_no": refund_no, "reason": "bank transfer 1234"})
    assert resp.status_int == 302
    assert refunds(registry, no)[0][3] == "succeeded"
    assert order_row(registry, no).status == "refunded"
    # once paid, it is not offered again and a second post changes nothing
    page = admin_app.get(f"/admin/orders/{no}")
    assert page.html.select_one(f"#refund-{refund_no} form.refund-paid") is None
    admin_app.post(f"/admin/orders/{no}/refund_paid", {"csrf_token": token, "refund_no": refund_no, "reason": "again"},
                   status=409)
    assert [d["refund_no"] for _a, _t, d in audit_rows(registry, "order.refund_paid")] == [refund_no]


def test_a_refund_the_gateway_refused_can_be_paid_by_hand(admin_app, app, registry, shop, monkeypatch):
    monkeypatch.setattr(SandboxGateway, "refund", lambda self, request, attempt, refund: RefundResult(
        status="failed", message="declined by the bank"))
    no = place(app, registry)["order_no"]
    f = form(admin_app.get(f"/admin/orders/{no}"), "refund-form")
    f["reason"] = "refund asked"
    f.submit()
    run_jobs(registry)
    (refund_no, _amount, where, status), = refunds(registry, no)
    assert (where, status) == ("gateway", "failed")
    page = admin_app.get(f"/admin/orders/{no}")
    assert "declined by the bank" in page.html.select_one(f"#refund-{refund_no}").text
    paid = next(f for f in page.forms.values() if f.action.endswith("/refund_paid"))
    paid["reason"] = "paid by bank transfer"
    paid.submit().follow()
    assert refunds(registry, no)[0][3] == "succeeded" and order_row(registry, no).status == "refunded"


def test_redeliver_a_held_order(admin_app, app, registry, shop):
    made = place(app, registry, pay=False)
    no = made["order_no"]
    with app_request(registry) as req:
        service.get(req.db, no).held = "large first order"
    buyer_app(app).post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], "10.00", "paid", SECRET))
    run_jobs(registry)
    assert order_row(registry, no).status == "paid"
    page = admin_app.get(f"/admin/orders/{no}")
    assert "large first order" in page.html.select_one("#summary").text
    f = form(page, "redeliver-form")
    f["reason"] = "checked the buyer"
    done = f.submit().follow()
    assert done.html.select_one("#order-status").text == "Delivered"
    assert ("note", "delivered", "delivered", "checked the buyer", "admin@example.com", False) in events(registry, no)


def test_redeliver_a_failed_order_after_restocking(admin_app, app, registry, shop):
    no = place(app, registry, pay=False)["order_no"]
    buyer = buyer_app(app)
    with app_request(registry) as req:
        order = service.get(req.db, no, lock=True)
        order.held = "review"
    attempt_no = next(a for a in events(registry, no) if a[0] == "payment")[3].split(": ")[1]
    buyer.post("/pay/sandbox/notify", signed_fields(attempt_no, "10.00", "paid", SECRET))
    run_jobs(registry)
    with app_request(registry) as req:  # delivery failed without a refund (e.g. the supplier was down)
        order = service.get(req.db, no, lock=True)
        service.fail(req, order, "supplier down", actor="system", refund=False)
    assert order_row(registry, no).status == "failed"
    page = admin_app.get(f"/admin/orders/{no}")
    assert "redeliver-form" in page.forms and "supplier down" in page.text
    f = form(page, "redeliver-form")
    f["reason"] = "supplier is back"
    done = f.submit().follow()
    assert done.html.select_one("#order-status").text == "Delivered"
    trail = events(registry, no)
    assert ("status", "failed", "paid", "supplier is back", "admin@example.com", True) in trail
    (_a, _t, detail), = audit_rows(registry, "order.redeliver")
    assert (detail["from"], detail["to"]) == ("failed", "delivered")


def test_a_failed_order_that_was_refunded_is_not_delivered_again(admin_app, app, registry, shop):
    no = place(app, registry, "MAN5")["order_no"]
    with app_request(registry) as req:
        order = service.get(req.db, no, lock=True)
        service.fail(req, order, "supplier refused", actor="system")  # refunds through the gateway (a job)
    page = admin_app.get(f"/admin/orders/{no}")
    assert "redeliver-form" not in page.forms and "deliver-form" not in page.forms
    token = page.html.select_one('input[name="csrf_token"]')["value"]
    for action in ("redeliver", "deliver"):
        resp = admin_app.post(f"/admin/orders/{no}/{action}", {"csrf_token": token, "reason": "x", "text": "t"},
                              status=409)
        assert "A refund has been started" in resp.text
    assert order_row(registry, no).status == "failed"


def test_replace_an_invalid_key(admin_app, app, registry, shop):
    no = place(app, registry)["order_no"]
    (old_id, _state), = key_rows(registry, no)
    page = admin_app.get(f"/admin/orders/{no}")
    f = next(f for f in page.forms.values() if f.action.endswith("/replace_key"))
    assert f["key_id"].value == str(old_id)
    f["reason"] = "buyer says it is used"
    done = f.submit().follow()
    assert f"Key #{old_id} was replaced" in done.text
    rows = dict(key_rows(registry, no))
    assert rows[old_id] == "void" and sorted(rows.values()) == ["sold", "void"]
    (_a, _t, detail), = audit_rows(registry, "order.replace_key")
    assert detail == {"reason": "buyer says it is used", "key_id": old_id, "result": "replaced"}
    # a voided key cannot be replaced again
    token = f["csrf_token"].value
    resp = admin_app.post(f"/admin/orders/{no}/replace_key", {"csrf_token": token, "key_id": str(old_id),
                                                               "reason": "again"}, status=409)
    assert "not a delivered key" in resp.text
    for bad in ("", "abc", "-1", "99999999999999"):
        admin_app.post(f"/admin/orders/{no}/replace_key", {"csrf_token": token, "key_id": bad, "reason": "x"},
                       status=422)


def test_replace_a_key_with_none_left_refunds_its_price(admin_app, app, registry):
    make_sku(registry, keys=2)
    enable_sandbox(registry)
    no = place(app, registry, quantity=2)["order_no"]
    first = key_rows(registry, no)[0][0]
    f = next(f for f in admin_app.get(f"/admin/orders/{no}").forms.values() if f.action.endswith("/replace_key"))
    f["reason"] = "does not work"
    done = f.submit().follow()
    assert f"Key #{first} is void and none was left" in done.text
    run_jobs(registry)
    assert [r[1:] for r in refunds(registry, no)] == [(1000, "gateway", "succeeded")]
    assert order_row(registry, no).refunded_amount == 1000


def test_unknown_orders_and_actions_are_404(admin_app, app, registry, shop):
    no = place(app, registry)["order_no"]
    for url in ("/admin/orders/999", "/admin/orders/abc", "/admin/orders/" + "9" * 30):
        admin_app.get(url, status=404)
    token = admin_app.get(f"/admin/orders/{no}").forms["refund-form"]["csrf_token"].value
    admin_app.post(f"/admin/orders/{no}/explode", {"csrf_token": token, "reason": "x"}, status=404)
    admin_app.post("/admin/orders/999/refund", {"csrf_token": token, "reason": "x"}, status=404)


def test_a_post_without_the_csrf_token_is_refused(admin_app, app, registry, shop):
    no = place(app, registry, pay=False)["order_no"]
    admin_app.get("/admin/orders")
    resp = admin_app.post(f"/admin/orders/{no}/cancel", {"reason": "x"}, status=400)
    assert "did not come from this site" in resp.text
    admin_app.post(f"/admin/orders/{no}/reveal", {}, status=400)
    admin_app.post("/admin/users", {"email": "a@example.com", "password": "x" * 12, "role": "buyer"}, status=400)
    assert order_row(registry, no).status == "pending"


# -- CSV -----------------------------------------------------------------------------------------


def test_csv_export_with_filters_and_no_formulas(admin_app, app, registry):
    make_sku(registry, code="CARD10", name="=HYPERLINK(\"http://x\")")
    make_sku(registry, code="MAN5", price="5.00", type_="manual", name="@SUM(1)")
    enable_sandbox(registry)
    card = place(app, registry, contact="+8613800000000")["order_no"]
    manual = place(app, registry, "MAN5", contact="-1@example.com")["order_no"]
    pending = place(app, registry, pay=False)["order_no"]
    page = admin_app.get("/admin/orders")
    resp = admin_app.get(page.html.select_one("#export-csv")["href"])
    assert resp.content_type == "text/csv" and resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="orders-')
    rows = list(csv.reader(io.StringIO(resp.body.decode("utf-8-sig"))))
    assert rows[0] == ["order_no", "created_at", "status", "product", "sku", "quantity", "amount", "refunded",
                       "currency", "payment_method", "contact", "paid_at", "delivered_at"]
    by_no = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert list(by_no) == [pending, manual, card]
    assert by_no[card]["product"].startswith("'=HYPERLINK(")
    assert by_no[card]["contact"] == "'+8613800000000"
    assert by_no[card]["amount"] == "10.00" and by_no[card]["refunded"] == "0.00"
    assert by_no[card]["status"] == "delivered" and by_no[card]["delivered_at"]
    assert by_no[manual]["product"].startswith("'@SUM(1)") and by_no[manual]["contact"] == "'-1@example.com"
    assert by_no[pending]["paid_at"] == ""
    text = resp.body.decode("utf-8-sig")
    for secret in secrets_of(registry, card):
        assert secret not in text
    # the same filters as the list
    resp = admin_app.get("/admin/orders/export.csv", {"status": "delivered"})
    assert [r[0] for r in list(csv.reader(io.StringIO(resp.body.decode("utf-8-sig"))))[1:]] == [card]
    resp = admin_app.get("/admin/orders/export.csv", {"type": "manual", "q": "man5"})
    assert [r[0] for r in list(csv.reader(io.StringIO(resp.body.decode("utf-8-sig"))))[1:]] == [manual]
    assert [d["filters"] for _a, _t, d in audit_rows(registry, "orders.export")] == [
        {}, {"status": "delivered"}, {"type": "manual", "q": "man5"}]


def test_csv_export_streams_in_batches(admin_app, app, registry, shop, monkeypatch):
    monkeypatch.setattr(admin_orders, "EXPORT_BATCH", 2)
    made = [place(app, registry, pay=False)["order_no"] for _ in range(5)]
    resp = admin_app.get("/admin/orders/export.csv")
    rows = list(csv.reader(io.StringIO(resp.body.decode("utf-8-sig"))))[1:]
    assert [r[0] for r in rows] == made[::-1]


@pytest.mark.parametrize("value, cell", [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"),
                                         ("\tx", "'\tx"), ("a=b", "a=b"), ("", ""), (None, ""), (12, "12")])
def test_csv_cells(value, cell):
    assert admin_orders.csv_cell(value) == cell


# -- access --------------------------------------------------------------------------------------


def test_only_admins_see_orders_and_users(testapp, app, registry, shop):
    no = place(app, registry)["order_no"]
    for url in ("/admin/orders", f"/admin/orders/{no}", "/admin/orders/export.csv", "/admin/users"):
        resp = testapp.get(url, status=302)
        assert "/login" in resp.headers["Location"]
    with app_request(registry) as req:
        buyer = accounts.create_user(req.db, "buyer@example.com", "buyer-password-1")
        uid = buyer.id
    assert login(testapp, "buyer@example.com", "buyer-password-1").status_int == 302
    for url in ("/admin/orders", f"/admin/orders/{no}", "/admin/orders/export.csv", "/admin/users",
                f"/admin/users/{uid}"):
        testapp.get(url, status=403)
    token = testapp.get("/").html.select_one('input[name="csrf_token"]')["value"]
    secret = secrets_of(registry, no)[0]
    for action in ("reveal", "refund", "cancel", "replace_key"):
        resp = testapp.post(f"/admin/orders/{no}/{action}", {"csrf_token": token, "reason": "x"}, status=403)
        assert secret not in resp.text
    testapp.post(f"/admin/users/{uid}", {"csrf_token": token, "amount": "100.00", "reason": "x"}, status=403)
    testapp.post("/admin/users", {"csrf_token": token, "email": "x@example.com", "password": "p" * 12,
                                  "role": "agent"}, status=403)
    assert refunds(registry, no) == []
    with app_request(registry) as req:
        assert wallet.balance(req.db, uid) == 0


# -- users -----------------------------------------------------------------------------------------


def test_create_users_and_find_them(admin_app, registry):
    page = admin_app.get("/admin/users")
    f = form(page, "user-form")
    f["email"] = "Agent@Example.COM"
    f["password"] = "agent-password-1"
    f["role"] = "agent"
    created = f.submit().follow()
    assert created.html.select_one("#user-email").text == "Agent@example.com"
    with app_request(registry) as req:
        user = accounts.find_user(req.db, "Agent@example.com")
        assert user.role == "agent"
    (_a, target, detail), = audit_rows(registry, "user.create")
    assert target == f"user:{user.id}" and detail == {"email": "Agent@example.com", "role": "agent"}
    assert "agent-password-1" not in json.dumps(detail)
    for email, password, role, status, message in [
        ("Agent@example.com", "another-password", "buyer", 409, "already exists"),
        ("not-an-email", "another-password", "buyer", 422, "valid email"),
        ("new@example.com", "short", "buyer", 422, "at least 10 characters"),
        ("new@example.com", "another-password", "admin", 422, "buyer or agent"),
    ]:
        resp = admin_app.post("/admin/users", {"csrf_token": f["csrf_token"].value, "email": email,
                                               "password": password, "role": role}, status=status)
        assert message in resp.html.select_one("#create-error").text
        assert resp.forms["user-form"]["password"].value == ""  # a password is never sent back
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).select_from(accounts.User)) == 2  # the admin and the agent
    page = admin_app.get("/admin/users", {"q": "agent@"})
    assert [a.text for a in page.html.select("#users tbody td a")] == ["Agent@example.com"]
    page = admin_app.get("/admin/users", {"role": "admin"})
    assert [a.text for a in page.html.select("#users tbody td a")] == ["admin@example.com"]
    assert admin_app.get("/admin/users", {"q": "%"}).html.select_one("#users") is None
    assert admin_app.get("/admin/users", {"q": "agent\x00@", "role": "\x00"}).html.select_one("#users") is not None


def test_adjust_a_balance(admin_app, app, registry, shop):
    with app_request(registry) as req:
        uid = accounts.create_user(req.db, "buyer@example.com", "buyer-password-1").id
    page = admin_app.get(f"/admin/users/{uid}")
    f = form(page, "balance-form")
    f["amount"] = "100.00"
    f["reason"] = "prepaid by bank transfer"
    done = f.submit().follow()
    assert "CNY 100.00" in done.html.select_one("#balance").text
    assert "100.00" in done.html.select_one("#ledger-table").text
    f = form(done, "balance-form")
    for amount, reason, status, message in [
        ("-150.00", "too much", 409, "less than"),
        ("abc", "x", 422, "decimal"),
        ("0", "x", 422, "not be zero"),
        ("1.001", "x", 422, "decimal"),
        ("10.00", "  ", 422, "Give a reason"),
    ]:
        f["amount"] = amount
        f["reason"] = reason
        resp = f.submit(status=status)
        assert message in resp.html.select_one("#adjust-error").text
    f["amount"] = "-20.50"
    f["reason"] = "correction"
    done = f.submit().follow()
    assert "CNY 79.50" in done.html.select_one("#balance").text
    with app_request(registry) as req:
        rows = [(e.amount, e.balance_after, e.reason, e.note, e.actor) for e in wallet.entries(req.db, uid)]
    assert rows == [(-2050, 7950, "admin", "correction", "admin@example.com"),
                    (10000, 10000, "admin", "prepaid by bank transfer", "admin@example.com")]
    assert [d["amount"] for _a, _t, d in audit_rows(registry, "user.balance")] == ["100.00", "-20.50"]
    listing = admin_app.get("/admin/users")
    assert listing.html.select_one(f"#user-{uid} td.num").text == "79.50"
    # the account's orders are listed on its page
    buyer = buyer_app(app)
    login(buyer, "buyer@example.com", "buyer-password-1")
    token = buyer.get("/").html.select_one('input[name="csrf_token"]')["value"]
    made = buyer.post_json("/api/v1/orders", order_body(payment_method="balance", query_password=""),
                           headers={"X-CSRF-Token": token}, status=201).json
    run_jobs(registry)
    page = admin_app.get(f"/admin/users/{uid}")
    assert page.html.select_one(f"#order-{made['order_no']}") is not None
    assert "69.50" in page.html.select_one("#balance").text
    detail = admin_app.get(f"/admin/orders/{made['order_no']}")
    assert detail.html.select_one("#buyer a")["href"].endswith(f"/admin/users/{uid}")
    admin_app.get("/admin/users/999999", status=404)
    admin_app.get("/admin/users/abc", status=404)


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_pages_render_in_both_languages(admin_app, app, registry, shop, lang):
    no = place(app, registry)["order_no"]
    manual = place(app, registry, "MAN5")["order_no"]
    with app_request(registry) as req:
        uid = accounts.create_user(req.db, "buyer@example.com", "buyer-password-1").id
    for url in ("/admin", "/admin/orders", f"/admin/orders/{no}", f"/admin/orders/{manual}", "/admin/users",
                f"/admin/users/{uid}"):
        page = admin_app.get(url, {"_LOCALE_": lang})
        assert page.status_int == 200 and "style=" not in page.text and "<script>" not in page.text


@pytest.mark.parametrize("query", [{"from": "9999-12-31"}, {"to": "9999-12-31"}, {"from": "0001-01-01"},
                                   {"q": "x" * 5000}, {"q": "'; drop table orders; --"}, {"method": "\x00"},
                                   {"page": "99999999999999999999999"}, {"page": "-3"}, {"status": ["a", "b"]},
                                   {"q": "\x00", "from": "\x00", "type": "\x00"}])
def test_odd_filters_never_fail(admin_app, app, registry, shop, query):
    place(app, registry, pay=False)
    admin_app.get("/admin/orders", query)
    admin_app.get("/admin/orders/export.csv", query)
