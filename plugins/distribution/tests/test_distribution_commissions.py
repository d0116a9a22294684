"""Commissions: credited to up to three levels of referrers when an order
is delivered (never when it is only paid), at the global or the product's
own rates, once; taken back in proportion when the order is refunded."""
import pytest
from distribution_helpers import (
    ADMIN,
    balance,
    buy,
    chain,
    check_ledgers,
    commissions,
    enable,
    load_order,
    make_sku,
    refund,
    register,
)
from sqlalchemy import select, update

from kameng.accounts import User
from kameng.orders import service
from kameng.testing import app_request

from kameng_distribution.models import Commission, LedgerEntry, ProductRate


def test_three_levels_at_the_global_rates(dreg, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    assert made["status"] == "delivered"
    # 100.00 paid: 10 % → 10.00, 5 % → 5.00, 2.5 % → 2.50; the buyer earns nothing for their own order
    assert commissions(dreg, made["order_no"]) == [(1, l1, 1000, 0, "credited"), (2, l2, 500, 0, "credited"),
                                                   (3, top, 250, 0, "credited")]
    assert (balance(dreg, l1), balance(dreg, l2), balance(dreg, top), balance(dreg, buyer)) == (1000, 500, 250, 0)
    check_ledgers(dreg)


def test_levels_limits_how_far_up_commissions_go_and_amounts_round_down(dreg, web, shop):
    enable(dreg, levels="2", rate_1="3.33", rate_2="0.01")
    make_sku(dreg, "ODD", price="9.99")
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer, sku="ODD")
    # floor(999 × 3.33 %) = 33 (33.2667), floor(999 × 0.01 %) = 0: nothing written for a zero
    assert commissions(dreg, made["order_no"]) == [(1, l1, 33, 0, "credited")]
    assert balance(dreg, top) == 0 and balance(dreg, l2) == 0


def test_a_products_own_rates_win_level_by_level(dreg, web, shop):
    with app_request(dreg) as req:
        req.db.add(ProductRate(product_id=shop, rate_1=2000, rate_2=None, rate_3=0))
    top, l2, l1, buyer = chain(dreg, 4, balance=200_00)
    made = buy(web, dreg, buyer)
    # level 1: the product's 20 %; level 2: blank, the global 5 %; level 3: the product's 0 %
    assert commissions(dreg, made["order_no"]) == [(1, l1, 2000, 0, "credited"), (2, l2, 500, 0, "credited")]
    # another product keeps the global rates
    make_sku(dreg, "OTHER", price="10.00")
    other = buy(web, dreg, buyer, sku="OTHER")
    assert commissions(dreg, other["order_no"]) == [(1, l1, 100, 0, "credited"), (2, l2, 50, 0, "credited"),
                                                    (3, top, 25, 0, "credited")]


def test_a_guest_order_and_a_buyer_without_referrer_earn_nothing(dreg, web, shop):
    loner = register(dreg, "loner@example.com", balance=100_00)
    made = buy(web, dreg, None, method="sandbox")
    assert load_order(dreg, made["order_no"]).status == "delivered"
    mine = buy(web, dreg, loner)
    assert mine["status"] == "delivered"
    assert commissions(dreg) == []


def test_credited_on_delivery_never_on_payment(dreg, web, shop):
    make_sku(dreg, "MANUAL", price="50.00", type_="manual", keys=0, stock=5)
    _top, _l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer, sku="MANUAL")
    order = load_order(dreg, made["order_no"])
    assert order.status == "delivering" and order.paid_at is not None
    assert commissions(dreg, made["order_no"]) == [] and balance(dreg, l1) == 0
    with app_request(dreg, actor=ADMIN) as req:
        service.fulfil_by_hand(req, service.get(req.db, made["order_no"], lock=True), "done", actor=ADMIN)
    assert [c[:3] for c in commissions(dreg, made["order_no"])] == [(1, l1, 500), (2, _l2, 250), (3, _top, 125)]
    check_ledgers(dreg)


def test_a_sandbox_paid_order_is_credited_when_its_keys_are_delivered(dreg, web, shop):
    _top, _l2, l1, buyer = chain(dreg, 4)
    made = buy(web, dreg, buyer, method="sandbox", pay=False)
    assert commissions(dreg, made["order_no"]) == []
    buy_paid = buy(web, dreg, buyer, method="sandbox")
    assert load_order(dreg, buy_paid["order_no"]).status == "delivered"
    assert commissions(dreg, buy_paid["order_no"])[0][:3] == (1, l1, 1000)


def test_a_replayed_delivered_hook_credits_nothing_more(dreg, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    for _ in range(2):
        with app_request(dreg) as req:
            order = service.get(req.db, made["order_no"], lock=True)
            req.hooks.kameng_order_delivered(request=req, order=order)
    assert len(commissions(dreg, made["order_no"])) == 3
    assert (balance(dreg, l1), balance(dreg, l2), balance(dreg, top)) == (1000, 500, 250)
    with app_request(dreg) as req:
        assert req.db.scalar(select(LedgerEntry.seq).where(LedgerEntry.user_id == l1)
                             .order_by(LedgerEntry.seq.desc()).limit(1)) == 1
    check_ledgers(dreg)


def test_a_partial_refund_takes_back_its_share_and_a_full_refund_the_rest(dreg, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    no = made["order_no"]
    refund(dreg, no, amount=30_00)
    # 30 % refunded: floor(1000 × 0.3) = 300, floor(500 × 0.3) = 150, floor(250 × 0.3) = 75
    assert commissions(dreg, no) == [(1, l1, 1000, 300, "partially_reversed"), (2, l2, 500, 150, "partially_reversed"),
                                     (3, top, 250, 75, "partially_reversed")]
    assert (balance(dreg, l1), balance(dreg, l2), balance(dreg, top)) == (700, 350, 175)
    refund(dreg, no, amount=33_33)
    # 63.33 % in all: floor(1000 × 6333 / 10000) = 633, 316, 158
    assert [c[3] for c in commissions(dreg, no)] == [633, 316, 158]
    refund(dreg, no)  # the rest: everything goes back
    assert load_order(dreg, no).status == "refunded"
    assert commissions(dreg, no) == [(1, l1, 1000, 1000, "reversed"), (2, l2, 500, 500, "reversed"),
                                     (3, top, 250, 250, "reversed")]
    assert (balance(dreg, l1), balance(dreg, l2), balance(dreg, top)) == (0, 0, 0)
    check_ledgers(dreg)


def test_a_replayed_refund_hook_reverses_nothing_more(dreg, web, shop):
    _top, _l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    refund_no = refund(dreg, made["order_no"], amount=50_00)
    from kameng.orders.models import Refund

    for _ in range(2):
        with app_request(dreg) as req:
            order = service.get(req.db, made["order_no"], lock=True)
            one = req.db.scalar(select(Refund).where(Refund.refund_no == refund_no))
            req.hooks.kameng_order_refunded(request=req, order=order, refund=one)
    assert commissions(dreg, made["order_no"])[0] == (1, l1, 1000, 500, "partially_reversed")
    assert balance(dreg, l1) == 500
    check_ledgers(dreg)


def test_a_refund_after_a_withdrawal_may_leave_a_negative_balance(dreg, web, shop):
    _top, _l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    from kameng_distribution import service as dist

    with app_request(dreg) as req:
        dist.request_withdrawal(req, req.db.get(User, l1), 1000)
    assert balance(dreg, l1) == 0
    refund(dreg, made["order_no"])
    assert balance(dreg, l1) == -1000
    with app_request(dreg) as req, pytest.raises(Exception) as exc:
        dist.request_withdrawal(req, req.db.get(User, l1), 1000)
    assert getattr(exc.value, "code", None) == "insufficient_balance"
    check_ledgers(dreg)


def test_a_refund_before_delivery_is_taken_off_at_once(dreg, web, shop):
    make_sku(dreg, "MANUAL2", price="40.00", type_="manual", keys=0, stock=5)
    _top, _l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer, sku="MANUAL2")
    refund(dreg, made["order_no"], amount=10_00)  # a quarter back while the shop still works on it
    with app_request(dreg, actor=ADMIN) as req:
        service.fulfil_by_hand(req, service.get(req.db, made["order_no"], lock=True), "done", actor=ADMIN)
    assert commissions(dreg, made["order_no"])[0] == (1, l1, 400, 100, "partially_reversed")
    assert balance(dreg, l1) == 300
    check_ledgers(dreg)


def test_a_disabled_referrer_earns_nothing_and_the_levels_above_keep_theirs(dreg, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    with app_request(dreg) as req:
        req.db.execute(update(User).where(User.id == l1).values(is_active=False))
    made = buy(web, dreg, buyer)
    assert commissions(dreg, made["order_no"]) == [(2, l2, 500, 0, "credited"), (3, top, 250, 0, "credited")]


def test_commissions_never_add_up_to_more_than_the_order(dreg, web, shop):
    enable(dreg, levels="3", rate_1="60", rate_2="40", rate_3="0")
    with app_request(dreg) as req:  # a product rate saved when the global ones were lower
        req.db.add(ProductRate(product_id=shop, rate_3=5000))
    _top, _l2, _l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    assert [c[2] for c in commissions(dreg, made["order_no"])] == [6000, 4000]


def test_every_ledger_adds_up_after_a_mixed_history(dreg, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=500_00)
    other = register(dreg, "other@example.com", code=None, balance=0)
    orders = [buy(web, dreg, buyer)["order_no"] for _ in range(4)]
    refund(dreg, orders[0], amount=12_34)
    refund(dreg, orders[1])
    from kameng_distribution import service as dist

    with app_request(dreg) as req:
        w = dist.request_withdrawal(req, req.db.get(User, l1), 1500)
        dist.request_withdrawal(req, req.db.get(User, l2), 1000)
        no = w.withdrawal_no
    with app_request(dreg, actor=ADMIN) as req:
        dist.decide(req, no, "reject", "wrong account", ADMIN)
    refund(dreg, orders[2], amount=99_99)
    check_ledgers(dreg)
    with app_request(dreg) as req:
        assert req.db.scalar(select(Commission.id).where(Commission.beneficiary_id == other)) is None
    assert balance(dreg, top) == 4 * 250 - 30 - 250 - 249
