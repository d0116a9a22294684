"""The admin page /-/notify_telegram/: the send log, the test button (POST,
CSRF), the menu item, who may see it, and 404 while the plugin is off."""
from __future__ import annotations

import notify_telegram_fake as tg
from notify_telegram_helpers import ORDER_DATA, configure, emit, log_rows, run_all

from kameng import accounts
from kameng.testing import app_request, login, set_plugin

ADMIN = ("tg-admin@example.com", "admin-password-1")
BUYER = ("tg-buyer@example.com", "buyer-password-1")


def signed_in(testapp, registry, who=ADMIN, role="admin"):
    with app_request(registry) as req:
        accounts.create_user(req.db, who[0], who[1], role=role)
    assert login(testapp, *who).status_int == 302
    return testapp


def test_page_shows_the_log_and_the_menu_item(tg_registry, tg_testapp, fake):
    configure(tg_registry, fake)
    fake.answer(tg.ok(), tg.forbidden())
    emit(tg_registry, "order.failed", ORDER_DATA)
    emit(tg_registry, "stock.low", {"sku": "TG<1>", "name": "Card", "available": 0, "threshold": 3})
    run_all(tg_registry)
    app = signed_in(tg_testapp, tg_registry)

    page = app.get("/-/notify_telegram/")
    assert page.status_int == 200
    table = page.html.find(id="telegram-log")
    rows = table.find("tbody").find_all("tr")
    assert [r.find_all("td")[1].get_text(strip=True) for r in rows] == ["stock.low", "order.failed"]
    assert "Forbidden: bot was blocked by the user" in rows[0].get_text()
    assert ORDER_DATA["order_no"] in rows[1].get_text()
    assert page.html.find(id="telegram-chat").get_text() == tg.CHAT_ID
    assert tg.TOKEN.split(":", 1)[1] not in page.text
    # the failed tab lists only the failed row
    failed = app.get("/-/notify_telegram/", params={"status": "failed"})
    assert len(failed.html.find(id="telegram-log").find("tbody").find_all("tr")) == 1
    # the admin menu links the page
    dashboard = app.get("/admin")
    assert dashboard.html.find("a", href="http://localhost/-/notify_telegram/") is not None


def test_test_button_sends_a_message(tg_registry, tg_testapp, fake):
    configure(tg_registry, fake)
    app = signed_in(tg_testapp, tg_registry)
    page = app.get("/-/notify_telegram/")
    resp = page.forms["telegram-test"].submit()
    assert resp.status_int == 302
    (body,) = fake.messages
    assert body["chat_id"] == tg.CHAT_ID and body["parse_mode"] == "HTML"
    assert body["text"].startswith("<b>Test message from kameng</b>")
    after = resp.follow()
    assert "The test message was sent" in after.text
    (row,) = log_rows(tg_registry)
    assert (row.event, row.status, row.attempts, row.order_no) == ("test", "sent", 1, None)


def test_test_button_shows_telegrams_refusal(tg_registry, tg_testapp, fake):
    configure(tg_registry, fake)
    fake.answer(tg.chat_not_found())
    app = signed_in(tg_testapp, tg_registry)
    resp = app.get("/-/notify_telegram/").forms["telegram-test"].submit().follow()
    assert "Bad Request: chat not found" in resp.html.find(class_="error").get_text()
    (row,) = log_rows(tg_registry)
    assert (row.status, row.error) == ("failed", "Bad Request: chat not found")


def test_test_button_needs_the_csrf_token(tg_registry, tg_testapp, fake):
    configure(tg_registry, fake)
    app = signed_in(tg_testapp, tg_registry)
    resp = app.post("/-/notify_telegram/test", {"csrf_token": "forged"}, expect_errors=True)
    assert resp.status_int == 400
    resp = app.post("/-/notify_telegram/test", {}, expect_errors=True)
    assert resp.status_int == 400
    assert fake.requests == [] and log_rows(tg_registry) == []


def test_visitors_and_buyers_cannot_use_it(tg_registry, tg_testapp, fake):
    configure(tg_registry, fake)
    resp = tg_testapp.get("/-/notify_telegram/", expect_errors=True)
    assert resp.status_int == 302 and "/login" in resp.location
    resp = tg_testapp.post("/-/notify_telegram/test", expect_errors=True)
    assert resp.status_int == 302 and "/login" in resp.location
    signed_in(tg_testapp, tg_registry, BUYER, role="buyer")
    assert tg_testapp.get("/-/notify_telegram/", expect_errors=True).status_int == 403
    token = tg_testapp.get("/account").html.find("input", {"name": "csrf_token"})["value"]
    assert tg_testapp.post("/-/notify_telegram/test", {"csrf_token": token}, expect_errors=True).status_int == 403
    assert fake.requests == []


def test_page_is_404_while_disabled(tg_registry, tg_testapp, fake):
    configure(tg_registry, fake)
    app = signed_in(tg_testapp, tg_registry)
    token = app.get("/-/notify_telegram/").forms["telegram-test"]["csrf_token"].value
    set_plugin(tg_registry, "notify_telegram", enabled=False)
    assert app.get("/-/notify_telegram/", expect_errors=True).status_int == 404
    assert app.post("/-/notify_telegram/test", {"csrf_token": token}, expect_errors=True).status_int == 404
    assert fake.requests == []
    dashboard = app.get("/admin")
    assert dashboard.html.find("a", href="http://localhost/-/notify_telegram/") is None
