"""The connector against a REAL kameng shop as the upstream: a live app on
127.0.0.1 whose docking API (kameng.dock) sells to an agent account with a
key made by kameng.dock's own code. Goods at the account's price, orders
paid from its balance there, idempotent placing, refusals, and the
upstream's real signed callbacks verified by ``parse_callback``."""
from __future__ import annotations

from decimal import Decimal

import pytest
from dock_helpers import CallbackCatcher
from kameng_dock import protocol
from kameng_dock.connector import DockConnector

from kameng import accounts, wallet
from kameng.dock import auth
from kameng.dock.manage import issue
from kameng.suppliers.base import CallbackRejected, SupplierError
from kameng.testing import LiveServer, add_card_sku, app_request, free_port, run_jobs
from kameng.types import UpstreamOrderRequest

pytestmark = pytest.mark.slow


@pytest.fixture
def upstream(make_app):
    port = free_port()
    app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}"})
    server = LiveServer(app, port).start()
    server.registry = app.registry
    yield server
    server.stop()


@pytest.fixture
def account(upstream):
    """An agent with 20.00 CNY at the upstream and a docking key: ``(user id, key id, secret)``."""
    registry = upstream.registry
    add_card_sku(registry, code="UPC1", price="5.00", keys=3, name="Upstream card")
    add_card_sku(registry, code="UPC2", price="50.00", keys=1, name="Dear card")
    with app_request(registry, actor="admin@example.com") as req:
        user = accounts.create_user(req.db, "agent@example.com", "agent-password-123", role="agent")
        wallet.post(req.db, user.id, 2000, "CNY", "admin", note="test credit")
        key, secret = issue(req, user, name="downstream shop")
        return user.id, key.key_id, secret


@pytest.fixture
def connector(upstream, account):
    return DockConnector({"url": upstream.url, "key_id": account[1], "secret": account[2]})


def balance_at(upstream, user_id) -> int:
    with app_request(upstream.registry) as req:
        return wallet.balance(req.db, user_id)


def test_both_implementations_sign_alike(account):
    """kameng.dock.auth (the server) and kameng_dock.protocol (this plugin)
    produce and accept each other's signatures."""
    body = b'{"out_order_no":"X1","quantity":1,"sku":"UPC1"}'
    for args in [("POST", "/api/v1/dock/orders", "", body), ("GET", "/api/v1/dock/goods", "b=2&a=1", b"")]:
        method, path, query, raw = args
        assert protocol.sign("s3cret", method, path, query, raw, "1767225600", "nonce-0001") == auth.signature(
            "s3cret", method, path, query, raw, "1767225600", "nonce-0001")
        ours = protocol.signed_headers("dk_x", "s3cret", method, path, query, raw)
        auth.check_signature("s3cret", method, path + ("?" + query if query else ""), raw,
                             ours["X-Kameng-Timestamp"], ours["X-Kameng-Nonce"], ours["X-Kameng-Signature"])
        theirs = auth.sign_request("dk_x", "s3cret", method, path + ("?" + query if query else ""), raw)
        protocol.verify(theirs, "dk_x", "s3cret", method, path, query, raw)


def test_the_known_answers_hold_for_the_server_too():
    from test_dock_connector_kat import (
        KAT_BODY,
        KAT_GET_SIGNATURE,
        KAT_POST_SIGNATURE,
        KAT_SECRET,
        KAT_TS,
    )

    assert auth.signature(KAT_SECRET, "POST", "/api/v1/dock/orders", "", KAT_BODY, KAT_TS,
                          "kat-nonce-0001") == KAT_POST_SIGNATURE
    assert auth.signature(KAT_SECRET, "GET", "/api/v1/dock/goods", "b=x%20y&a=1&b=2", b"", KAT_TS,
                          "kat-nonce-0002") == KAT_GET_SIGNATURE


def test_connection_balance_and_goods(connector):
    assert connector.test_connection().interpolate() == "Connected; the balance there is 20.00 CNY."
    assert connector.balance() == "20.00 CNY"
    goods = {g.name: g for g in connector.list_goods()}
    card = goods["Upstream card"]
    assert card.type == "card_key"
    assert [(s.code, s.cost, s.stock, s.available) for s in card.skus] == [("UPC1", Decimal("5.00"), 3, True)]
    assert connector.get_goods(card.id) == card
    assert connector.get_goods("999999") is None


def test_an_order_is_paid_from_the_balance_there_and_delivered_with_its_keys(upstream, account, connector):
    req = UpstreamOrderRequest("DN-0001", "UPC1", 2)
    r = connector.place_order(req)
    assert (r.status, r.out_order_no, r.cost) == ("success", "DN-0001", Decimal("10.00"))
    assert sorted(secret for _n, secret in r.keys) == ["UPC1-KEY-0000", "UPC1-KEY-0001"]
    assert r.upstream_order_no
    assert balance_at(upstream, account[0]) == 1000
    # placing it again (a retry) finds the same order: no second debit, no more keys
    assert connector.place_order(req) == r
    assert connector.query_order("DN-0001") == r
    assert balance_at(upstream, account[0]) == 1000
    goods = {g.name: g for g in connector.list_goods()}
    assert goods["Upstream card"].skus[0].stock == 1


def test_refusals_at_the_upstream_are_failed_and_charge_nothing(upstream, account, connector):
    poor = connector.place_order(UpstreamOrderRequest("DN-0002", "UPC2", 1))
    assert (poor.status, poor.message.split(" (")[0]) == (
        "failed", "the balance of this account at the upstream is too low")
    sold_out = connector.place_order(UpstreamOrderRequest("DN-0003", "UPC1", 4))
    assert (sold_out.status, sold_out.message.split(" (")[0]) == ("failed", "the upstream is out of stock")
    unknown = connector.place_order(UpstreamOrderRequest("DN-0004", "NOPE", 1))
    assert (unknown.status, unknown.message.split(" (")[0]) == ("failed", "the upstream does not sell this SKU")
    assert balance_at(upstream, account[0]) == 2000
    assert connector.query_order("DN-0002") is None


def test_query_of_an_order_never_placed(connector):
    assert connector.query_order("DN-NEVER") is None
    assert connector.query_order("DN:NEVER") is None


def test_an_out_order_no_with_a_colon_signs_the_path_the_server_checks(connector):
    placed = connector.place_order(UpstreamOrderRequest("DN:0007", "UPC1", 1))
    assert placed.status == "success"
    assert connector.query_order("DN:0007") == placed


def test_a_wrong_secret_or_a_revoked_key_is_refused(upstream, account):
    bad = DockConnector({"url": upstream.url, "key_id": account[1], "secret": account[2] + "x"})
    with pytest.raises(SupplierError, match="refused the signature.*invalid_signature"):
        bad.test_connection()
    from kameng.dock.manage import revoke
    from kameng.dock.models import find_key

    with app_request(upstream.registry) as req:
        revoke(req, find_key(req.db, account[1]))
    with pytest.raises(SupplierError, match="refused the signature.*invalid_key"):
        DockConnector({"url": upstream.url, "key_id": account[1], "secret": account[2]}).place_order(
            UpstreamOrderRequest("DN-0005", "UPC1", 1))


def test_the_upstreams_real_callback_verifies(upstream, account, connector):
    with CallbackCatcher() as down:
        placed = connector.place_order(UpstreamOrderRequest("DN-0006", "UPC1", 1,
                                                            callback_url=down.url + "/supplier/callback/3"))
        run_jobs(upstream.registry)  # the upstream's worker sends the callback
        assert len(down.received) == 1
        r = connector.parse_callback(down.request())
        assert r == placed
        with pytest.raises(CallbackRejected, match="nonce was used already"):
            connector.parse_callback(down.request())  # the same callback again
        other = DockConnector({"url": upstream.url, "key_id": "dk_someone_else", "secret": account[2]})
        with pytest.raises(CallbackRejected, match="another key"):
            other.parse_callback(down.request())
