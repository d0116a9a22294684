"""The buyer's pages for orders: checkout (confirm, place, replay, refusals
that write nothing), the order page and who may open it, paying (the
sandbox, a QR code, the balance), cancelling, reporting a problem, finding
an order again, and the account pages."""
from __future__ import annotations

import itertools
import re

import pytest
import webtest
from sqlalchemy import select

import kameng_ordertest as plug
from kameng import wallet
from kameng.catalog.models import Product
from kameng.orders.models import Order, OrderEvent
from kameng.testing import app_request, set_plugin
from kameng.types import Adjustment
from orders_helpers import NO_LIMITS, count, enable_sandbox, key_counts, make_buyer, make_sku, run_jobs

_addresses = itertools.count(10)
PASSWORD = "buyer-password-123"


@pytest.fixture(scope="module")
def sapp(make_app):
    """The app with the order test plugin (a QR-code gateway, price
    adjustments) installed and the per-address limits off."""
    return make_app(extra_plugins=[("ordertest", plug)], **NO_LIMITS)


@pytest.fixture
def sregistry(sapp):
    return sapp.registry


def browser(app):
    """A fresh browser: its own cookies and its own address."""
    n = next(_addresses)
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": f"10.1.{n // 250 % 250}.{n % 250 + 1}"})


@pytest.fixture
def web(sapp):
    return browser(sapp)


@pytest.fixture
def card(sregistry):
    """The sandbox on; a card-key product CARD10 at 10.00 with 5 keys. Gives the product's id."""
    plug.ADJUSTMENTS.clear()
    enable_sandbox(sregistry)
    product_id, _sku = make_sku(sregistry, "CARD10", price="10.00", keys=5)
    with app_request(sregistry) as req:
        req.db.get(Product, product_id).instructions = "<p>Redeem at <b>store</b></p><script>x()</script>"
    yield product_id
    plug.ADJUSTMENTS.clear()


def orders(registry) -> list[Order]:
    with app_request(registry) as req:
        return list(req.db.scalars(select(Order).order_by(Order.id)))


def checkout_form(web, product_id, **params):
    params = {"sku": "CARD10", "quantity": "1", **params}
    page = web.get(f"/checkout/{product_id}", params)
    return page, page.forms["checkout-form"]


def place(web, product_id, method="sandbox", contact="guest@example.com", password="pass1234", **params):
    _page, form = checkout_form(web, product_id, **params)
    if "query_password" in form.fields:
        form["contact"] = contact
        form["query_password"] = password
    form["payment_method"] = method
    return form.submit(expect_errors=True)


def text_of(page, selector) -> str:
    node = page.html.select_one(selector)
    return " ".join(node.get_text(" ").split()) if node is not None else ""


def sign_up(web, email="member@example.com", password=PASSWORD):
    form = web.get("/register").forms["register-form"]
    form["email"], form["password"], form["password2"] = email, password, password
    return form.submit(expect_errors=True)


def simulate(web, pay_url, outcome="paid"):
    page = web.get(pay_url)
    return page.forms["sandbox-paid" if outcome == "paid" else "sandbox-failed"].submit()


# -- checkout ------------------------------------------------------------------------------------


def test_checkout_page_shows_the_choice_and_the_breakdown(web, card, sregistry):
    set_plugin(sregistry, "ordertest", enabled=True)
    plug.ADJUSTMENTS.append(Adjustment(source="ordertest", label="Spring sale", amount=-150, code="SPRING"))
    page, form = checkout_form(web, card, quantity="2")
    assert page.status_int == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Game card" in page.text and "CARD10 option" in page.text
    assert text_of(page, "#checkout-quantity") == "2"
    rows = [" ".join(tr.get_text(" ").split()) for tr in page.html.select("#breakdown tr")]
    assert rows[0].startswith("Subtotal") and "CNY 10.00 × 2" in rows[0] and rows[0].endswith("CNY 20.00")
    assert rows[1].startswith("Spring sale") and rows[1].endswith("CNY -1.50")
    assert rows[-1] == "Total CNY 18.50"
    assert text_of(page, "#checkout-total") == "CNY 18.50"
    # a guest is asked for a contact and a query password; the methods are offered, the test ones marked
    assert {"contact", "query_password", "payment_method", "idempotency_key", "csrf_token"} <= set(form.fields)
    methods = {m.select_one("input")["value"]: " ".join(m.get_text(" ").split())
               for m in page.html.select("#checkout-form label.method")}
    assert set(methods) == {"sandbox", "ordertest"} and "balance" not in methods
    assert "Test payment" in methods["sandbox"]
    assert len(form["idempotency_key"].value) >= 30
    # the page wrote nothing
    assert orders(sregistry) == []
    assert key_counts(sregistry, _sku_id(sregistry))["reserved"] == 0


def test_breakdown_of_a_special_price_and_a_discount():
    from kameng.storefront.orders import breakdown

    steps = [{"step": "base", "unit": 1000, "quantity": 2, "amount": 2000},
             {"step": "special_price", "tier": "gold", "level": None, "unit": 900, "amount": -200},
             {"step": "adjustment", "source": "promo", "label": "Spring sale", "code": "", "amount": -300},
             {"step": "total", "amount": 1500}]
    rows = [(str(r["label"]), r["amount"]) for r in breakdown(steps, "CNY")]
    assert rows == [("Price", "CNY 20.00"), ("Agent price", "CNY -2.00"), ("Subtotal", "CNY 18.00"),
                    ("Spring sale", "CNY -3.00"), ("Total", "CNY 15.00")]
    steps[1].update(tier=None, level="vip")
    assert str(breakdown(steps, "CNY")[1]["label"]) == "Member price"


def _sku_id(registry, code="CARD10"):
    from kameng.catalog.models import Sku

    with app_request(registry) as req:
        return req.db.scalar(select(Sku.id).where(Sku.code == code))


def test_product_page_buy_form_leads_to_checkout(web, card):
    page = web.get(f"/p/{card}")
    form = page.forms["buy-form"]
    assert form.method.lower() == "get" and form.action.endswith(f"/checkout/{card}")
    form["quantity"] = "3"
    confirm = form.submit()
    assert confirm.request.path == f"/checkout/{card}"
    assert text_of(confirm, "#checkout-quantity") == "3" and "CNY 30.00" in confirm.text


def test_placing_an_order_redirects_to_the_payment(web, card, sregistry):
    resp = place(web, card)
    assert resp.status_int == 303
    assert "/pay/sandbox/pay/P" in resp.location  # the sandbox answers with a redirect to its page
    (order,) = orders(sregistry)
    assert (order.status, order.contact, order.quantity, order.amount) == ("pending", "guest@example.com", 1, 1000)
    assert key_counts(sregistry, _sku_id(sregistry))["reserved"] == 1
    # this browser opens the order without a password
    page = web.get(f"/orders/{order.order_no}")
    assert page.headers["Cache-Control"] == "no-store"
    assert text_of(page, "#order-status") == "Awaiting payment"
    assert page.html.select_one("#pay-now")["href"].endswith(f"/orders/{order.order_no}/pay/"
                                                             + resp.location.rsplit("/", 1)[1])


def test_a_double_submit_gives_the_same_order(web, card, sregistry):
    _page, form = checkout_form(web, card)
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    first = form.submit()
    second = form.submit()
    assert first.status_int == second.status_int == 303
    assert first.location == second.location
    assert len(orders(sregistry)) == 1
    assert key_counts(sregistry, _sku_id(sregistry))["reserved"] == 1


def test_a_double_submit_of_the_last_key_gives_the_same_order(web, sregistry):
    enable_sandbox(sregistry)
    product_id, sku_id = make_sku(sregistry, "LAST1", price="5.00", keys=1)
    _page, form = checkout_form(web, product_id, sku="LAST1")
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    first, second = form.submit(), form.submit()
    assert first.status_int == second.status_int == 303 and first.location == second.location
    assert len(orders(sregistry)) == 1 and key_counts(sregistry, sku_id)["available"] == 0


@pytest.mark.parametrize("params, status, message", [
    ({"quantity": "0"}, 422, "Order between 1 and 10"),
    ({"quantity": "11"}, 422, "Order between 1 and 10"),
    ({"quantity": "two"}, 422, "whole number"),
    ({"sku": "NOPE"}, 404, "no such product option"),
    ({"quantity": "6"}, 409, "not enough left"),
])
def test_bad_choices_show_a_message_and_write_nothing(web, card, sregistry, params, status, message):
    page = web.get(f"/checkout/{card}", {"sku": "CARD10", "quantity": "1", **params}, status=status)
    assert message in text_of(page, "#checkout-error")
    assert "checkout-form" not in page.forms
    assert page.html.select_one(".checkout-error a.button")["href"].startswith(f"http://localhost/p/{card}?")
    assert orders(sregistry) == []


def test_a_sold_out_option_is_refused_on_submit_too(web, card, sregistry):
    _page, form = checkout_form(web, card, quantity="5")
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    # someone else buys a key meanwhile
    other = place(browser(web.app), card)
    assert other.status_int == 303
    resp = form.submit(status=409)
    assert "not enough left" in text_of(resp, "#checkout-error")
    assert len(orders(sregistry)) == 1


def test_submit_errors_rerender_the_form_and_write_nothing(web, card, sregistry):
    _page, form = checkout_form(web, card)
    form["contact"], form["query_password"] = "not a contact", "pass1234"
    resp = form.submit(status=422)
    assert "Enter an email address or a phone number" in text_of(resp, "#checkout-error")
    form = resp.forms["checkout-form"]
    assert form["contact"].value == "not a contact" and form["query_password"].value == ""
    form["contact"], form["query_password"] = "guest@example.com", "abc"
    resp = form.submit(status=422)
    assert "query password of 4 to 64" in text_of(resp, "#checkout-error")
    # a quantity tampered with in the hidden field
    form = resp.forms["checkout-form"]
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    form.fields["quantity"][0].force_value("99")
    resp = form.submit(status=422)
    assert "Order between 1 and 10" in resp.text
    assert orders(sregistry) == []
    assert key_counts(sregistry, _sku_id(sregistry))["reserved"] == 0


def test_checkout_needs_the_csrf_token(web, card, sregistry):
    web.post(f"/checkout/{card}", {"sku": "CARD10", "quantity": "1", "contact": "guest@example.com",
                                   "query_password": "pass1234", "payment_method": "sandbox"}, status=400)
    assert orders(sregistry) == []


def test_unknown_or_hidden_product_checkout_is_404(web, card, sregistry):
    web.get("/checkout/99999", {"sku": "CARD10"}, status=404)
    web.get("/checkout/abc", status=404)
    with app_request(sregistry) as req:
        req.db.get(Product, card).visible = False
    web.get(f"/checkout/{card}", {"sku": "CARD10"}, status=404)


def test_an_option_of_another_product_is_refused(web, card, sregistry):
    make_sku(sregistry, "OTHER", price="1.00", keys=1, name="Other")
    page = web.get(f"/checkout/{card}", {"sku": "OTHER", "quantity": "1"}, status=404)
    assert "no such product option" in page.text
    page, form = checkout_form(web, card)
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    form.fields["sku"][0].force_value("OTHER")
    assert "no such product option" in form.submit(status=404).text
    assert orders(sregistry) == []


RECHARGE = [{"name": "phone", "label": "手机号", "kind": "mobile_cn"}]


def test_direct_recharge_shows_the_account_and_refuses_a_bad_one(web, sregistry):
    enable_sandbox(sregistry)
    product_id, _sku = make_sku(sregistry, "TOPUP50", price="49.80", type_="direct_recharge",
                                recharge_fields=RECHARGE, name="话费直充")
    page = web.get(f"/checkout/{product_id}", {"sku": "TOPUP50", "recharge.phone": "12345"}, status=422)
    assert "手机号" in text_of(page, "#checkout-error") and "mobile number" in text_of(page, "#checkout-error")
    assert "recharge.phone=12345" in page.html.select_one(".checkout-error a.button")["href"]
    page = web.get(f"/checkout/{product_id}", {"sku": "TOPUP50", "recharge.phone": "13800138000"})
    assert "13800138000" in text_of(page, ".facts") and "手机号" in text_of(page, ".facts")
    form = page.forms["checkout-form"]
    assert form["recharge.phone"].value == "13800138000"
    form["contact"], form["query_password"] = "13800138000", "pass1234"
    form.fields["recharge.phone"][0].force_value("999")
    assert "mobile number" in form.submit(status=422).text
    assert orders(sregistry) == []
    form["recharge.phone"].force_value("13800138000")
    assert form.submit().status_int == 303
    (order,) = orders(sregistry)
    page = web.get(f"/orders/{order.order_no}")
    assert "13800138000" in text_of(page, ".facts")


def test_a_coupon_is_applied_through_the_quote(web, card, sregistry):
    set_plugin(sregistry, "ordertest", enabled=True)
    page, form = checkout_form(web, card)
    coupon = page.forms["coupon-form"]
    coupon["coupon"] = "SAVE2"
    page = coupon.submit()
    assert "This coupon does not apply" in page.text  # no plugin offers it yet
    plug.ADJUSTMENTS.append(Adjustment(source="ordertest", label="Coupon SAVE2", amount=-200, code="SAVE2"))
    page = coupon.submit()
    assert "This coupon does not apply" not in page.text
    assert text_of(page, "#checkout-total") == "CNY 8.00"
    form = page.forms["checkout-form"]
    assert form["coupon"].value == "SAVE2"
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    form.submit(status=303)
    (order,) = orders(sregistry)
    assert order.amount == 800


def test_a_qr_code_gateway_gets_our_pay_page(web, card, sregistry):
    set_plugin(sregistry, "ordertest", enabled=True)
    resp = place(web, card, method="ordertest")
    assert resp.status_int == 303
    (order,) = orders(sregistry)
    assert re.search(rf"/orders/{order.order_no}/pay/P\d+$", resp.location)
    page = resp.follow()
    assert page.headers["Cache-Control"] == "no-store"
    assert page.html.select_one("#pay-qr svg") is not None
    assert "TEST PAYMENT" in page.text and "CNY 10.00" in page.text
    assert page.html.select_one("#pay-page")["data-poll-url"].startswith(
        f"http://localhost/api/v1/orders/{order.order_no}?token=")
    qr = web.get(resp.location.replace("/pay/", "/qr/") + ".svg")
    assert qr.content_type == "image/svg+xml" and qr.text.startswith("<svg")
    # another browser sees neither
    other = browser(web.app)
    other.get(resp.location, status=404)
    other.get(resp.location.replace("/pay/", "/qr/") + ".svg", status=404)


def test_a_form_post_gateway_is_sent_by_our_pay_page(web, card, sregistry, monkeypatch):
    from kameng.types import PaymentAction

    set_plugin(sregistry, "ordertest", enabled=True)
    monkeypatch.setattr(plug.FakeGateway, "create_payment", lambda self, request, attempt: PaymentAction(
        kind="form_post", url="https://pay.example/submit", fields={"out_trade_no": attempt.attempt_no, "sign": "s"}))
    resp = place(web, card, method="ordertest")
    page = resp.follow()
    form = page.html.select_one("form#gateway-form")
    assert form["action"] == "https://pay.example/submit" and form["method"] == "post"
    assert form.has_attr("data-autosubmit") and form.select_one("button[type=submit]")  # works without script
    fields = {i["name"]: i["value"] for i in form.select("input[type=hidden]")}
    assert fields["out_trade_no"] == resp.location.rsplit("/", 1)[1] and fields["sign"] == "s"
    assert "csrf_token" not in fields  # our token never goes to the gateway


def test_an_api_order_paid_on_the_sandbox_page_stays_there_for_a_stranger(web, card, sregistry):
    created = web.post_json("/api/v1/orders", {"sku": "CARD10", "quantity": 1, "contact": "api@example.com",
                                               "query_password": "pass1234", "payment_method": "sandbox"})
    pay_url = created.json["payment"]["pay_url"]
    stranger = browser(web.app)
    resp = simulate(stranger, pay_url)
    assert "/pay/sandbox/pay/P" in resp.location  # the order page would be a 404 for this browser
    assert "Back to the order" not in resp.follow().text
    assert orders(sregistry)[0].status == "delivered"


# -- the order page and who may see it -----------------------------------------------------------


def test_the_order_page_needs_the_token_the_session_or_the_password(web, card, sregistry):
    place(web, card)
    (order,) = orders(sregistry)
    no = order.order_no
    other = browser(web.app)
    other.get(f"/orders/{no}", status=404)
    other.get(f"/orders/{no}", {"token": "0" * 64}, status=404)
    other.get("/orders/12345678901234567890", status=404)
    other.post(f"/orders/{no}/cancel", {"csrf_token": "x"}, status=400)
    # the order's link carries its token, and opens it from then on
    link = web.get(f"/orders/{no}").html.select_one("#share-url")["value"]
    page = other.get(link)
    assert text_of(page, "#order-status") == "Awaiting payment"
    assert other.get(f"/orders/{no}").status_int == 200
    # a third browser finds it with the number and the query password
    third = browser(web.app)
    form = third.get("/query").forms["lookup-number"]
    form["order_no"], form["query_password"] = no, "wrong-password"
    resp = form.submit(status=404)
    assert "No order matches" in text_of(resp, "#lookup-error")
    third.get(f"/orders/{no}", status=404)
    form = resp.forms["lookup-number"]
    form["query_password"] = "pass1234"
    resp = form.submit(status=303)
    assert resp.location.endswith(f"/orders/{no}")
    assert text_of(resp.follow(), "#order-status") == "Awaiting payment"


def test_guest_buys_pays_in_the_sandbox_and_sees_the_keys(web, card, sregistry):
    resp = place(web, card, quantity="2")
    (order,) = orders(sregistry)
    paid = simulate(web, resp.location)
    assert paid.location.endswith(f"/orders/{order.order_no}")  # the sandbox sends the buyer back
    page = paid.follow()  # the keys came with the payment: the buyer lands on them
    assert text_of(page, "#order-status") == "Delivered"
    assert not page.html.select_one("#order-page").get("data-poll-url")
    secrets = [c.get_text() for c in page.html.select("#keys code.secret")]
    assert secrets == ["CARD10-KEY-0000", "CARD10-KEY-0001"]
    assert len(page.html.select("#keys button.copy")) == 2
    assert "Redeem at" in text_of(page, ".instructions") and "<script" not in str(page.html.select_one(".instructions"))
    events = text_of(page, "#events")
    assert "Awaiting payment" not in events and "Paid" in events and "Card keys delivered" in events
    assert page.html.select_one("#report-form") is not None and "#pay" not in page.text
    assert "order.js" in page.text


def test_a_failed_sandbox_payment_can_be_tried_again(web, card, sregistry):
    resp = place(web, card)
    assert len(orders(sregistry)) == 1
    back = simulate(web, resp.location, outcome="failed").follow()
    assert text_of(back, "#order-status") == "Awaiting payment"
    assert "The payment failed; you can try again." in text_of(back, "#events")
    form = back.forms["pay-form"]
    form["payment_method"] = "sandbox"
    again = form.submit(status=303)
    assert "/pay/sandbox/pay/P" in again.location and again.location != resp.location
    simulate(web, again.location)
    assert orders(sregistry)[0].status == "delivered"


def test_the_sandbox_page_of_a_test_payment_still_comes_back_to_itself(admin_app, registry):
    enable_sandbox(registry)
    form = admin_app.get("/admin/payments").forms["test-payment"]
    form["amount"] = "0.01"
    page = form.submit().follow()
    resp = page.forms["sandbox-paid"].submit()
    assert "/pay/sandbox/pay/P" in resp.location
    assert "Payment received." in resp.follow().text


def test_cancel(web, card, sregistry):
    place(web, card)
    (order,) = orders(sregistry)
    page = web.get(f"/orders/{order.order_no}")
    resp = page.forms["cancel-form"].submit(status=303)
    page = resp.follow()
    assert text_of(page, "#order-status") == "Cancelled"
    assert "The order is cancelled." in text_of(page, ".flash")
    assert "Cancelled by the buyer" in text_of(page, "#events")
    assert page.html.select_one("#pay") is None
    assert key_counts(sregistry, _sku_id(sregistry))["reserved"] == 0
    # cancelling again says why not, and changes nothing
    resp = web.post(f"/orders/{order.order_no}/cancel", {"csrf_token": _csrf(web, order.order_no)}, status=303)
    assert "Only unpaid orders can be cancelled." in text_of(resp.follow(), ".flash")
    web.post(f"/orders/{order.order_no}/explode", {"csrf_token": _csrf(web, order.order_no)}, status=404)


def _csrf(web, order_no=None):
    """The session's CSRF token (any form carries it)."""
    return web.get("/query").forms["lookup-number"]["csrf_token"].value


def test_report_a_problem_with_a_key(web, card, sregistry):
    resp = place(web, card)
    simulate(web, resp.location)
    run_jobs(sregistry)
    (order,) = orders(sregistry)
    page = web.get(f"/orders/{order.order_no}")
    form = page.forms["report-form"]
    form["message"] = "no"
    assert "in a few words" in text_of(form.submit(status=303).follow(), ".flash")
    form["message"] = "The code says it was used already"
    page = form.submit(status=303).follow()
    assert "the shop has been told" in text_of(page, ".flash")
    with app_request(sregistry) as req:
        event = req.db.scalar(select(OrderEvent).where(OrderEvent.kind == "report"))
        assert event.message.startswith("[key #") and "used already" in event.message
        assert "CARD10-KEY" not in event.message  # never the key itself


# -- members ---------------------------------------------------------------------------------


def test_register_browse_buy_pay_and_see_the_keys(web, card, sregistry):
    resp = sign_up(web)
    assert resp.status_int == 302 and resp.location.endswith("/account")
    page = resp.follow()
    assert text_of(page, "#account-email") == "member@example.com"
    assert "My account" in text_of(page, "header nav") and "Register" not in text_of(page, "header nav")
    # browse to the product and buy
    product = web.get(f"/p/{card}")
    confirm = product.forms["buy-form"].submit()
    form = confirm.forms["checkout-form"]
    assert "query_password" not in form.fields and form["contact"].value == "member@example.com"
    methods = [i["value"] for i in confirm.html.select("#checkout-form input[name=payment_method]")]
    assert methods == ["sandbox", "balance"]
    assert "CNY 0.00" in text_of(confirm, "label.method:last-child") and "not enough" in confirm.text
    form["payment_method"] = "sandbox"
    resp = form.submit(status=303)
    paid = simulate(web, resp.location)
    (order,) = orders(sregistry)
    assert order.user_id is not None and order.contact == "member@example.com"
    assert paid.location.endswith(f"/orders/{order.order_no}")
    run_jobs(sregistry)
    page = web.get(f"/orders/{order.order_no}")
    assert [c.get_text() for c in page.html.select("#keys code.secret")] == ["CARD10-KEY-0000"]
    # the account lists it
    history = web.get("/account/orders")
    assert order.order_no in text_of(history, "#order-table") and "Delivered" in text_of(history, "#order-table")
    assert order.order_no in text_of(web.get("/account"), "#latest-orders")


def test_a_member_pays_with_the_balance(web, card, sregistry):
    sign_up(web)
    with app_request(sregistry) as req:
        from kameng.accounts import find_user

        wallet.post(req.db, find_user(req.db, "member@example.com").id, 2500, "CNY", "admin", note="gift")
    resp = place(web, card, method="balance")
    (order,) = orders(sregistry)
    assert resp.location.endswith(f"/orders/{order.order_no}")
    assert order.status == "delivered"
    page = web.get(f"/orders/{order.order_no}")
    assert text_of(page, "#order-status") == "Delivered"
    assert "Account balance" in text_of(page, ".facts")
    balance = web.get("/account/balance")
    assert text_of(balance, "#balance") == "CNY 15.00"
    ledger = text_of(balance, "#ledger")
    assert "Order payment" in ledger and "CNY -10.00" in ledger and "Adjusted by the shop" in ledger
    assert balance.html.select_one("#ledger a")["href"].endswith(f"/orders/{order.order_no}")


def test_not_enough_balance_creates_no_order(web, card, sregistry):
    sign_up(web)
    resp = place(web, card, method="balance")
    assert resp.status_int == 409
    assert "is not enough for this order" in text_of(resp, "#checkout-error")
    assert orders(sregistry) == []  # the order created before the payment failed is gone too
    assert key_counts(sregistry, _sku_id(sregistry))["reserved"] == 0
    assert resp.forms["checkout-form"]  # and the buyer can choose again


def test_a_guest_cannot_pay_with_a_balance(web, card, sregistry):
    page, form = checkout_form(web, card)
    assert "balance" not in [i["value"] for i in page.html.select("input[name=payment_method]")]
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    form.fields["payment_method"][0].force_value("balance")
    resp = form.submit(status=422)
    assert "Sign in to pay with your balance." in text_of(resp, "#checkout-error")
    assert orders(sregistry) == []


def test_register_errors(web, sregistry):
    make_buyer(sregistry, "taken@example.com")
    for email, password, again, message in [
        ("not-an-email", PASSWORD, PASSWORD, "valid email address"),
        ("new@example.com", "short", "short", "at least 10 characters"),
        ("new@example.com", PASSWORD, PASSWORD + "x", "two passwords differ"),
        ("taken@example.com", PASSWORD, PASSWORD, "already exists"),
    ]:
        form = web.get("/register").forms["register-form"]
        form["email"], form["password"], form["password2"] = email, password, again
        resp = form.submit(status=400)
        assert message in text_of(resp, "#register-error")
        assert resp.forms["register-form"]["email"].value == email
        assert resp.forms["register-form"]["password"].value == ""
    web.post("/register", {"email": "x@example.com", "password": PASSWORD, "password2": PASSWORD}, status=400)
    with app_request(sregistry) as req:
        from kameng.accounts import find_user

        assert find_user(req.db, "new@example.com") is None and find_user(req.db, "x@example.com") is None


def test_registering_keeps_the_guest_orders_of_this_browser(web, card, sregistry):
    place(web, card)
    (order,) = orders(sregistry)
    sign_up(web)
    assert web.get(f"/orders/{order.order_no}").status_int == 200


@pytest.mark.parametrize("path", ["/account", "/account/orders", "/account/balance"])
def test_account_pages_need_a_sign_in(web, path):
    resp = web.get(path, status=302)
    assert "/login?next=" in resp.location and path.replace("/", "%2F") in resp.location


def test_header_links(web, card):
    nav = text_of(web.get("/"), "header nav")
    assert "Find my order" in nav and "Register" in nav and "Sign in" in nav and "My account" not in nav


# -- finding an order again ----------------------------------------------------------------------


def test_lookup_by_contact_lists_only_the_orders_with_that_password(web, card, sregistry):
    place(web, card, contact="guest@example.com", password="pass1234")
    place(browser(web.app), card, contact="guest@example.com", password="other-pass")
    place(browser(web.app), card, contact="someone@example.com", password="pass1234")
    mine = next(o.order_no for o in orders(sregistry) if o.contact == "guest@example.com")
    stranger = browser(web.app)
    form = stranger.get("/query").forms["lookup-contact"]
    form["contact"], form["query_password"] = "guest@example.com", "pass1234"
    page = form.submit()
    found = [a.get_text(" ", strip=True) for a in page.html.select("#lookup-results .order-no")]
    assert found == [mine]
    assert stranger.get(page.html.select_one("#lookup-results a")["href"]).status_int == 200
    form = page.forms["lookup-contact"]
    form["contact"], form["query_password"] = "guest@example.com", "nope-nope"
    resp = form.submit(status=404)
    assert "No order matches" in text_of(resp, "#lookup-error") and not resp.html.select("#lookup-results")


def test_lookups_are_rate_limited(testapp, registry):
    """The default app: 30 lookups a minute from one address."""
    web = browser(testapp.app)
    form = web.get("/query").forms["lookup-number"]
    form["query_password"] = "whatever"
    statuses = []
    for i in range(31):  # a number of its own each time: one number locks after 5 (test_bruteforce.py)
        form["order_no"] = str(12345678901234567890 + i)
        statuses.append(form.submit(expect_errors=True).status_int)
    assert statuses[:30] == [404] * 30 and statuses[30] == 429
    resp = form.submit(expect_errors=True)
    assert "Too many order lookups" in text_of(resp, "#lookup-error")
    assert count(registry, Order) == 0
