"""Faults between the connector and the upstream (SECURITY.md B3 #47, #50,
#55): a POST that ends without a usable answer is followed by a query, and
however it ends there is exactly one upstream order and one debit."""
from __future__ import annotations

from decimal import Decimal

import pytest
from dock_helpers import KEY_ID, make_connector

from kameng.suppliers.base import SupplierError
from kameng.types import UpstreamOrderRequest

REQ = UpstreamOrderRequest("D1000", "GC-10", 1)
#: a hung upstream answers nothing; the connector gives up after this (no
#: assertion depends on how long anything takes)
SHORT = 0.5


def one_order(fake):
    [order] = fake.orders_of(KEY_ID)
    assert fake.accounts[KEY_ID].balance == Decimal("91.00")
    return order


def test_timeout_after_the_upstream_made_the_order_finds_it(fake):
    fake.post_modes = ["hang_after"]
    r = make_connector(fake, timeout=SHORT).place_order(REQ)
    assert (r.status, r.out_order_no, r.keys) == ("success", "D1000", (("N-GC-10-0", "S-GC-10-0"),))
    one_order(fake)
    assert fake.posts() == 0  # the hung POST never answered; the query did
    assert ("GET", "/api/v1/dock/orders/D1000", 200) in fake.log


def test_timeout_before_the_upstream_made_anything_is_unknown_and_nothing_is_placed_twice(fake):
    fake.post_modes = ["hang"]
    conn = make_connector(fake, timeout=SHORT)
    r = conn.place_order(REQ)
    assert r.status == "unknown" and "no such order yet" in r.message
    assert fake.orders_of(KEY_ID) == []
    # the core queries before placing again (the contract), then places with the same number
    assert conn.query_order("D1000") is None
    assert conn.place_order(REQ).status == "success"
    one_order(fake)


def test_a_post_that_lands_after_the_timeout_is_found_and_not_placed_again(fake):
    """The worst case: the POST times out, the query says "no such order"
    while the first POST is still on its way, then it lands. The connector
    said ``unknown`` (not "never placed"), and the same out_order_no can only
    find that one order."""
    fake.post_modes = ["hang_then_create"]
    conn = make_connector(fake, timeout=SHORT)
    assert conn.place_order(REQ).status == "unknown"
    fake.release.set()
    assert fake.landed.wait(10)
    assert conn.query_order("D1000").status == "success"
    assert conn.place_order(REQ).status == "success"
    one_order(fake)


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_an_answer_without_the_order_is_queried_then_placed_once(fake, mode):
    fake.post_modes = [mode]
    r = make_connector(fake).place_order(REQ)
    assert r.status == "success"
    one_order(fake)
    assert [entry for entry in fake.log if entry[0] == "POST" or "/orders/" in entry[1]] == [
        ("POST", "/api/v1/dock/orders", 500 if mode == "500" else 200),
        ("GET", "/api/v1/dock/orders/D1000", 404),
        ("POST", "/api/v1/dock/orders", 201)]


@pytest.mark.parametrize("mode", ["500_after", "garbage_after"])
def test_an_answer_lost_after_the_order_was_made_is_found_by_the_query(fake, mode):
    fake.post_modes = [mode]
    r = make_connector(fake).place_order(REQ)
    assert (r.status, r.upstream_order_no) == ("success", "UP00000001")
    one_order(fake)
    assert fake.posts() == 1


def test_when_the_query_fails_too_the_state_is_unknown(fake):
    fake.post_modes, fake.get_modes = ["500"], ["500"]
    r = make_connector(fake).place_order(REQ)
    assert r.status == "unknown" and "HTTP 500" in r.message


def test_when_the_query_times_out_the_state_is_unknown(fake):
    fake.post_modes, fake.get_modes = ["500_after"], ["hang"]
    r = make_connector(fake, timeout=SHORT).place_order(REQ)
    assert r.status == "unknown" and "did not answer in time" in r.message
    one_order(fake)
    assert make_connector(fake).place_order(REQ).status == "success"
    one_order(fake)


def test_two_5xx_in_a_row_are_unknown_and_placed_nothing(fake):
    fake.post_modes = ["500", "500"]
    r = make_connector(fake).place_order(REQ)
    assert r.status == "unknown" and r.message.count("HTTP 500") == 2
    assert fake.orders_of(KEY_ID) == []


def test_the_upstream_down_is_a_certain_error(fake):
    conn = make_connector(fake)
    fake.stop()
    with pytest.raises(SupplierError, match="cannot connect") as exc:
        conn.place_order(REQ)
    assert exc.value.uncertain is False
    with pytest.raises(SupplierError, match="cannot connect"):
        conn.query_order("D1000")


@pytest.mark.parametrize("mode,reason", [("429", "HTTP 429 .rate_limited"), ("redirect", "HTTP 302")])
def test_a_refused_call_raises_and_places_nothing(fake, mode, reason):
    fake.post_modes = [mode]
    with pytest.raises(SupplierError, match=reason) as exc:
        make_connector(fake).place_order(REQ)
    assert exc.value.uncertain is False and fake.orders_of(KEY_ID) == []


@pytest.mark.parametrize("mode,reason", [("garbage", "not JSON"), ("500", "HTTP 500"), ("redirect", "HTTP 302"),
                                         ("huge", "too large")])
@pytest.mark.parametrize("call", ["balance", "list_goods", "test_connection", "query_order"])
def test_bad_answers_to_reads_are_errors(fake, call, mode, reason):
    fake.get_modes = [mode]
    conn = make_connector(fake)
    with pytest.raises(SupplierError, match=reason):
        getattr(conn, call)(*(["D1000"] if call == "query_order" else []))


def test_a_read_that_times_out_is_an_error(fake):
    fake.get_modes = ["hang"]
    with pytest.raises(SupplierError, match="did not answer in time"):
        make_connector(fake, timeout=SHORT).list_goods()


def test_a_query_answered_for_another_order_is_refused(fake, monkeypatch):
    conn = make_connector(fake)
    conn.place_order(UpstreamOrderRequest("D2000", "GC-10", 1))
    real = conn._call
    monkeypatch.setattr(conn, "_call", lambda method, endpoint, body=b"": real(
        method, endpoint.replace("D1000", "D2000"), body))
    with pytest.raises(SupplierError, match="about another order"):
        conn.query_order("D1000")
