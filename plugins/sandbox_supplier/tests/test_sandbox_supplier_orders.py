"""Placing and querying orders at the simulated upstream: card keys at once,
direct recharges processing → success/failed, idempotency on out_order_no."""
import re
import threading
from decimal import Decimal

import pytest

from kameng.types import UpstreamOrderRequest
from kameng_sandbox_supplier import protocol, simulator

KEY = re.compile(r"SANDBOX-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}")
PHONE = {"phone": "13800138000"}


def card(no, sku="SBX-STEAM-50", quantity=1, **kw):
    return UpstreamOrderRequest(out_order_no=no, sku=sku, quantity=quantity, **kw)


def topup(no, sku="SBX-CMCC-50", quantity=1, recharge=None, **kw):
    return UpstreamOrderRequest(out_order_no=no, sku=sku, quantity=quantity,
                                recharge=PHONE if recharge is None else recharge, **kw)


def stock_of(c, code):
    return {s.code: s.stock for g in c.list_goods() for s in g.skus}[code]


def cost_of(c, code):
    return {s.code: s.cost for g in c.list_goods() for s in g.skus}[code]


# -- card keys --------------------------------------------------------------------------


def test_card_keys_are_delivered_at_once(connector):
    c = connector(seed="cards")
    before, unit = stock_of(c, "SBX-STEAM-50"), cost_of(c, "SBX-STEAM-50")
    result = c.place_order(card("K1", quantity=3))
    assert result.status == "success" and result.out_order_no == "K1"
    assert result.upstream_order_no.startswith("SBX")
    assert result.delivered == 3 and result.cost == unit * 3
    assert len(result.keys) == 3 and len({secret for _n, secret in result.keys}) == 3
    assert all(number is None and KEY.fullmatch(secret) for number, secret in result.keys)
    assert stock_of(c, "SBX-STEAM-50") == before - 3
    assert Decimal(c.balance()) == simulator.STARTING_BALANCE - unit * 3
    assert c.query_order("K1") == result


def test_numbered_cards_come_with_a_card_number(connector):
    result = connector().place_order(card("K1", sku="SBX-RAZER-10", quantity=2))
    assert all(re.fullmatch(r"SBX\d{13}", number) and KEY.fullmatch(secret) for number, secret in result.keys)


def test_keys_follow_from_the_seed_and_the_order_number(connector):
    first = connector(seed="s1").place_order(card("K1", quantity=2)).keys
    simulator.reset()  # a restart: the same order placed again gets the same keys
    assert connector(seed="s1").place_order(card("K1", quantity=2)).keys == first
    assert connector(seed="s1").place_order(card("K2", quantity=2)).keys != first
    assert connector(seed="s2").place_order(card("K1", quantity=2)).keys != first


def test_placing_the_same_order_twice_gives_the_first_result(connector):
    c = connector(seed="idem")
    before = stock_of(c, "SBX-QB-10")
    first = c.place_order(card("K1", sku="SBX-QB-10", quantity=2))
    again = c.place_order(card("K1", sku="SBX-QB-10", quantity=2))
    changed = c.place_order(card("K1", sku="SBX-STEAM-100", quantity=5))  # whatever a retry says
    assert first == again == changed
    assert stock_of(c, "SBX-QB-10") == before - 2
    assert Decimal(c.balance()) == simulator.STARTING_BALANCE - first.cost


def test_concurrent_retries_place_one_order(connector):
    c = connector(seed="race")
    before = stock_of(c, "SBX-STEAM-50")
    results, start = [], threading.Barrier(8)

    def place():
        start.wait()
        results.append(c.place_order(card("K1", quantity=2)))

    threads = [threading.Thread(target=place) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert stock_of(c, "SBX-STEAM-50") == before - 2


def test_concurrent_orders_each_take_their_stock(connector):
    c = connector(seed="many")
    before = stock_of(c, "SBX-STEAM-100")
    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(c.place_order(card(f"K{n}", "SBX-STEAM-100"))))
               for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == ["success"] * 10
    assert stock_of(c, "SBX-STEAM-100") == before - 10


def test_too_little_stock_is_a_partial_delivery(connector):
    c = connector(seed="partial")
    simulator.upstream("partial").stock["SBX-STEAM-50"] = 2
    result = c.place_order(card("K1", quantity=5))
    assert result.status == "partial" and result.delivered == 2 and len(result.keys) == 2
    assert result.cost == cost_of(c, "SBX-STEAM-50") * 2
    assert stock_of(c, "SBX-STEAM-50") == 0


@pytest.mark.parametrize("req,reason", [
    (card("K1", sku=protocol.SOLD_OUT), "out of stock"),
    (card("K1", sku=protocol.STOPPED), "stopped"),
    (card("K1", sku="NO-SUCH-SKU"), "unknown goods"),
    (card("K1", quantity=0), "quantity"),
    (card("K1", quantity=1001), "quantity"),
    (card("K1", max_unit_cost=Decimal("1.00")), "ceiling"),
])
def test_orders_the_upstream_refuses_fail_without_charge(connector, req, reason):
    c = connector(seed="refuse")
    before = {s.code: s.stock for g in c.list_goods() for s in g.skus}
    result = c.place_order(req)
    assert result.status == "failed" and reason in result.message
    assert result.keys == () and result.cost is None
    assert {s.code: s.stock for g in c.list_goods() for s in g.skus} == before
    assert c.balance() == "1000000.00"
    assert c.query_order("K1") == result  # the failed order exists upstream: a retry gets the same answer


def test_an_empty_balance_fails_without_charge(connector):
    c = connector(seed="poor")
    simulator.upstream("poor").balance = Decimal("1.00")
    for req in (card("K1"), topup("K2")):
        result = c.place_order(req)
        assert result.status == "failed" and "insufficient balance" in result.message
    assert c.balance() == "1.00"


def test_failure_rate_100_fails_card_orders(connector):
    c = connector(seed="fail", failure_rate=100)
    before = stock_of(c, "SBX-STEAM-50")
    result = c.place_order(card("K1"))
    assert result.status == "failed" and "failure_rate" in result.message and result.keys == ()
    assert stock_of(c, "SBX-STEAM-50") == before and c.balance() == "1000000.00"


def test_the_failure_rate_decides_per_order(connector):
    """Each order's fate is a function of (seed, out_order_no): the same
    answer on every connector of the account, about the share asked for."""
    outcomes = [connector(seed="half", failure_rate=50).place_order(card(f"K{n}")).status for n in range(200)]
    assert outcomes == ["failed" if protocol.fails("half", f"K{n}", 50) else "success" for n in range(200)]
    assert 60 < outcomes.count("failed") < 140
    assert all(connector(seed="half", failure_rate=50).query_order(f"K{n}").status == s
               for n, s in enumerate(outcomes))


# -- direct recharge ----------------------------------------------------------------------


def test_a_recharge_is_processing_then_succeeds(connector, clock):
    c = connector(seed="topup", processing_seconds=30, poll_only=True)
    unit = cost_of(c, "SBX-CMCC-50")
    placed = c.place_order(topup("R1"))
    assert placed.status == "processing" and placed.keys == () and placed.cost == unit
    assert Decimal(c.balance()) == simulator.STARTING_BALANCE - unit  # charged on acceptance
    clock.advance(29)
    assert c.query_order("R1").status == "processing"
    clock.advance(1)
    done = c.query_order("R1")
    assert done.status == "success" and done.delivered == 1 and done.cost == unit
    assert done.upstream_order_no == placed.upstream_order_no
    assert "138****8000" in done.message and "13800138000" not in done.message
    assert Decimal(c.balance()) == simulator.STARTING_BALANCE - unit


def test_a_recharge_that_fails_is_refunded(connector, clock):
    c = connector(seed="topfail", failure_rate=100, processing_seconds=5, poll_only=True)
    assert c.place_order(topup("R1")).status == "processing"
    clock.advance(5)
    done = c.query_order("R1")
    assert done.status == "failed" and done.cost is None and done.delivered is None
    assert "failure_rate" in done.message
    assert c.balance() == "1000000.00"


def test_processing_seconds_0_finishes_at_the_first_query(connector, clock):
    c = connector(seed="zero", processing_seconds=0, poll_only=True)
    assert c.place_order(topup("R1", quantity=2)).status == "processing"
    done = c.query_order("R1")
    assert done.status == "success" and done.delivered == 2


def test_placing_a_recharge_again_never_charges_twice(connector, clock):
    c = connector(seed="toprepeat", processing_seconds=10, poll_only=True)
    first = c.place_order(topup("R1"))
    assert c.place_order(topup("R1")) == first
    clock.advance(10)
    assert c.place_order(topup("R1")).status == "success"  # a late retry learns the outcome
    assert Decimal(c.balance()) == simulator.STARTING_BALANCE - first.cost


@pytest.mark.parametrize("fields", [{}, {"phone": "12345"}, {"phone": "23800138000"}, {"phone": 13800138000},
                                    {"qq": "10001"}])
def test_a_recharge_needs_a_mobile_number(connector, fields):
    result = connector(seed="phone").place_order(topup("R1", recharge=fields))
    assert result.status == "failed" and "phone" in result.message


def test_query_of_an_unknown_order_is_none(connector):
    c = connector(seed="known")
    c.place_order(card("K1"))
    assert c.query_order("K404") is None
    assert connector(seed="other").query_order("K1") is None  # another account
    simulator.reset()  # a restart forgets everything
    assert c.query_order("K1") is None
