"""Events become Telegram messages: a real order, escaping, the events
setting, account events, a disabled plugin, the shop's language."""
from __future__ import annotations

import pytest
from notify_telegram_fake import CHAT_ID, TOKEN
from notify_telegram_helpers import ORDER_DATA, configure, emit, log_rows, run_all

from kameng import shop
from kameng.orders import service
from kameng.testing import add_card_sku, app_request, open_order, set_plugin
from kameng.types import SettingError


def pay(registry, order_no):
    with app_request(registry) as req:
        order = service.get(req.db, order_no, lock=True)
        attempt = service.attempts_of(req.db, order)[0]
        attempt.status, attempt.provider_trade_no = "paid", "SBX" + attempt.attempt_no
        service.mark_paid(req, order, attempt, actor="test")


def test_a_real_order_sends_paid_and_delivered(tg_registry, fake):
    configure(tg_registry, fake)
    set_plugin(tg_registry, "sandbox", enabled=True, secret="x" * 32)
    add_card_sku(tg_registry, code="TG1", price="12.50", keys=2, name="Card <b>Gift</b> & more")
    order_no, _attempt = open_order(tg_registry, "TG1", "sandbox", contact="buyer-secret@example.com")
    pay(tg_registry, order_no)
    run_all(tg_registry)

    assert len(fake.requests) == 2
    for req in fake.requests:
        assert req["path"] == f"/bot{TOKEN}/sendMessage"
        assert req["content_type"].startswith("application/json")
    paid, delivered = fake.messages
    for body in (paid, delivered):
        assert body["chat_id"] == CHAT_ID
        assert body["parse_mode"] == "HTML"
        assert body["disable_web_page_preview"] is True
        text = body["text"]
        assert order_no in text
        assert "Card &lt;b&gt;Gift&lt;/b&gt; &amp; more" in text and "<b>Gift</b>" not in text
        assert "12.50 CNY" in text
        assert "TG1-KEY-" not in text  # never card keys
        assert "buyer-secret@example.com" not in text  # nor the buyer's contact
        assert "token=" not in text  # nor the buyer's order link
        assert f"http://localhost/admin/orders/{order_no}" in text
    assert paid["text"].startswith("<b>Order paid</b>")
    assert delivered["text"].startswith("<b>Order delivered</b>")
    assert "Status: Delivered" in delivered["text"]
    rows = log_rows(tg_registry)
    assert [(r.event, r.order_no, r.status, r.attempts, r.error) for r in rows] == [
        ("order.paid", order_no, "sent", 1, ""), ("order.delivered", order_no, "sent", 1, "")]


def test_every_value_is_escaped(tg_registry, fake):
    configure(tg_registry, fake)
    emit(tg_registry, "order.failed", ORDER_DATA)
    run_all(tg_registry)
    (body,) = fake.messages
    text = body["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    assert "Steam &lt;Gift&gt; &amp; Co" in text
    assert "10 &quot;USD&quot;" in text
    assert "SECRET-ACCESS-TOKEN" not in text and "buyer@example.com" not in text
    # the only tags are the ones the plugin writes
    import re
    assert set(re.findall(r"</?([a-z]+)", text)) <= {"b", "code", "a"}


def test_events_setting_chooses_what_is_sent(tg_registry, fake):
    configure(tg_registry, fake, events="order.failed, stock.*")
    emit(tg_registry, "order.paid", ORDER_DATA)
    emit(tg_registry, "order.failed", ORDER_DATA)
    emit(tg_registry, "stock.low", {"sku": "TG1", "name": "Card", "available": 1, "threshold": 5})
    emit(tg_registry, "backup.failed", {"error": "disk full", "folder": "/var/backups"})
    run_all(tg_registry)
    assert [r.event for r in log_rows(tg_registry)] == ["order.failed", "stock.low"]
    assert len(fake.messages) == 2
    stock = fake.messages[1]["text"]
    assert stock.startswith("<b>Stock is low</b>") and "Available: 1" in stock and "Threshold: 5" in stock


def test_default_events(tg_registry, fake):
    configure(tg_registry, fake)  # events left at its default
    for event in ("order.paid", "order.awaiting_fulfilment", "refund.manual", "payment.duplicate",
                  "backup.failed"):
        emit(tg_registry, event, ORDER_DATA if event != "backup.failed" else {"error": "disk full"})
    run_all(tg_registry)
    assert [r.event for r in log_rows(tg_registry)] == ["order.paid", "refund.manual", "backup.failed"]


@pytest.mark.parametrize("events", [None, "*", "order.*"])
def test_account_events_are_never_sent(tg_registry, fake, events):
    configure(tg_registry, fake, **({"events": events} if events else {}))
    data = {"to": "someone@example.com", "url": "http://localhost/reset/SECRET-RESET-TOKEN",
            "expires_minutes": 30, "user_id": 1}
    emit(tg_registry, "account.password_reset", data)
    emit(tg_registry, "account.registered", {"user_id": 1, "email": "someone@example.com"})
    run_all(tg_registry)
    assert fake.requests == []
    assert log_rows(tg_registry) == []


@pytest.mark.parametrize("events", ["account.password_reset", "order.paid\naccount.*", "Order.Paid", "<b>"])
def test_events_setting_refuses_account_events_and_bad_names(tg_registry, fake, events):
    configure(tg_registry, fake)
    with pytest.raises(SettingError) as err:
        set_plugin(tg_registry, "notify_telegram", events=events)
    assert err.value.field_name == "events"


def test_api_base_must_be_https_and_public(tg_registry, fake, monkeypatch):
    from kameng import httpclient

    configure(tg_registry, fake)
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    for url in (fake.url, "https://127.0.0.1:8443", "https://api.telegram.org/?x=1"):
        with pytest.raises(SettingError) as err:
            set_plugin(tg_registry, "notify_telegram", api_base=url)
        assert err.value.field_name == "api_base"


@pytest.mark.parametrize("field,value", [("bot_token", "not-a-token"), ("chat_id", "12 34"),
                                         ("chat_id", "<script>")])
def test_token_and_chat_id_are_checked(tg_registry, fake, field, value):
    configure(tg_registry, fake)
    with pytest.raises(SettingError) as err:
        set_plugin(tg_registry, "notify_telegram", **{field: value})
    assert err.value.field_name == field


def test_disabled_plugin_sends_nothing(tg_registry, fake):
    configure(tg_registry, fake)
    set_plugin(tg_registry, "notify_telegram", enabled=False)
    emit(tg_registry, "order.failed", ORDER_DATA)
    emit(tg_registry, "stock.low", {"sku": "TG1", "name": "Card", "available": 1, "threshold": 5})
    run_all(tg_registry)
    assert fake.requests == []
    assert log_rows(tg_registry) == []


def test_disabled_between_event_and_delivery_sends_nothing(tg_registry, fake):
    configure(tg_registry, fake)
    emit(tg_registry, "order.failed", ORDER_DATA)  # queued while enabled
    set_plugin(tg_registry, "notify_telegram", enabled=False)
    run_all(tg_registry)
    assert fake.requests == []


def test_messages_are_in_the_shops_language(tg_registry, fake):
    configure(tg_registry, fake)
    with app_request(tg_registry) as req:
        shop.save(req.db, {"default_language": "zh_CN", "name": "测试小店"})
    emit(tg_registry, "order.failed", {**ORDER_DATA, "status": "delivered"})
    run_all(tg_registry)
    (body,) = fake.messages
    assert "测试小店" in body["text"]
    assert "已发货" in body["text"]  # the order status, from the shop's zh_CN catalog
    assert "Delivered" not in body["text"]


def test_unknown_event_gets_a_generic_title(tg_registry, fake):
    configure(tg_registry, fake, events="*")
    emit(tg_registry, "payment.something_new", {"order_no": "20261201000000000009", "note": {"x": 1}})
    run_all(tg_registry)
    (body,) = fake.messages
    assert body["text"].startswith("<b>Shop event: payment.something_new</b>")
