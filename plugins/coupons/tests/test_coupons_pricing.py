"""Coupons, promotions and sale prices priced through the public order API:
each kind, scope, window, minimum spend, caps, per-buyer limits, and the
one rule for how they stack (sale → promotion → coupon, each on what the
previous left)."""
import datetime as dt

import pytest
from coupons_helpers import (
    add_coupon,
    add_promotion,
    add_sale,
    coupon_state,
    error_code,
    make_category,
    make_product,
    place,
    steps,
)
from sqlalchemy import update

from kameng.catalog.models import SkuPrice
from kameng.db import utcnow
from kameng.testing import app_request

HOUR = dt.timedelta(hours=1)


def adjustments(registry, order_no):
    return [(s["label"], s["code"], s["amount"]) for s in steps(registry, order_no) if s["step"] == "adjustment"]


def test_fixed_coupon_takes_its_amount_off(capi, creg, shop):
    add_coupon(creg, "SAVE3", "fixed", "3.00")
    resp = place(capi, quantity=2, coupon="save3")  # codes are case-insensitive
    assert resp.json["amount"] == "17.00"
    assert adjustments(creg, resp.json["order_no"]) == [("Coupon", "SAVE3", -300)]
    assert coupon_state(creg, "SAVE3") == (1, ["used"])


def test_percent_coupon_rounds_down_and_respects_its_cap(capi, creg, shop):
    add_coupon(creg, "P15", "percent", "15")
    add_coupon(creg, "P125", "percent", "12.5", max_discount="2.00")
    assert place(capi, quantity=1, coupon="P15").json["amount"] == "8.50"
    # 12.5 % of 10.00 is 1.25
    assert place(capi, quantity=1, coupon="P125").json["amount"] == "8.75"
    # 12.5 % of 30.00 is 3.75, capped at 2.00
    assert place(capi, quantity=3, coupon="P125").json["amount"] == "28.00"


def test_percent_discount_is_rounded_down_to_the_fen(capi, creg, shop):
    make_product(creg, "ODD", "0.99", keys=2)
    add_coupon(creg, "P15", "percent", "15")
    # 15 % of 0.99 is 0.1485: the buyer gets 0.14 off
    assert place(capi, sku="ODD", coupon="P15").json["amount"] == "0.85"


def test_a_coupon_never_takes_the_total_below_one_fen(capi, creg, shop):
    add_coupon(creg, "BIG", "fixed", "50.00")
    resp = place(capi, coupon="BIG")
    assert resp.json["amount"] == "0.01"


def test_minimum_spend(capi, creg, shop):
    add_coupon(creg, "MIN20", "fixed", "5.00", min_amount="20.00")
    assert error_code(place(capi, expect=409, quantity=1, coupon="MIN20")) == "coupon_unavailable"
    assert place(capi, quantity=2, coupon="MIN20").json["amount"] == "15.00"


def test_unknown_code_is_refused_and_nothing_is_written(capi, creg, shop):
    resp = place(capi, expect=409, coupon="NOPE-NOT-HERE")
    assert error_code(resp) == "coupon_unavailable"
    assert place(capi).json["amount"] == "10.00"


def test_validity_window(capi, creg, shop):
    now = utcnow()
    add_coupon(creg, "LATER", "fixed", "1.00", starts_at=(now + HOUR).isoformat())
    add_coupon(creg, "GONE", "fixed", "1.00", ends_at=(now - dt.timedelta(seconds=1)).isoformat())
    add_coupon(creg, "NOW", "fixed", "1.00", starts_at=(now - HOUR).isoformat(), ends_at=(now + HOUR).isoformat())
    assert error_code(place(capi, expect=409, coupon="LATER")) == "coupon_unavailable"
    assert error_code(place(capi, expect=409, coupon="GONE")) == "coupon_unavailable"
    assert place(capi, coupon="NOW").json["amount"] == "9.00"


def test_disabled_coupon_does_not_apply(capi, creg, shop):
    add_coupon(creg, "OFF", "fixed", "1.00", active=False)
    assert error_code(place(capi, expect=409, coupon="OFF")) == "coupon_unavailable"


def test_scope_skus_products_and_categories(capi, creg, shop):
    games = make_category(creg, "Games")
    steam = make_category(creg, "Steam", parent_id=games)
    other = make_category(creg, "Other")
    pid, _sku = make_product(creg, "STEAM1", "10.00", keys=3, category_id=steam, more_skus=("STEAM2",))
    make_product(creg, "MISC", "10.00", keys=3, category_id=other)
    add_coupon(creg, "SKUONLY", "fixed", "1.00", skus=["STEAM2"])
    add_coupon(creg, "PRODONLY", "fixed", "1.00", products=[pid])
    add_coupon(creg, "CATONLY", "fixed", "1.00", categories=[games])  # a subcategory counts

    assert error_code(place(capi, expect=409, sku="STEAM1", coupon="SKUONLY")) == "coupon_unavailable"
    assert place(capi, sku="STEAM2", coupon="SKUONLY").json["amount"] == "9.00"
    assert place(capi, sku="STEAM1", coupon="PRODONLY").json["amount"] == "9.00"
    assert error_code(place(capi, expect=409, sku="MISC", coupon="PRODONLY")) == "coupon_unavailable"
    assert place(capi, sku="STEAM1", coupon="CATONLY").json["amount"] == "9.00"
    assert error_code(place(capi, expect=409, sku="MISC", coupon="CATONLY")) == "coupon_unavailable"
    assert error_code(place(capi, expect=409, sku="CARD10", coupon="CATONLY")) == "coupon_unavailable"


def test_total_use_limit(capi, creg, shop):
    add_coupon(creg, "TWICE", "fixed", "1.00", max_uses=2)
    place(capi, coupon="TWICE", contact="a@example.com")
    place(capi, coupon="TWICE", contact="b@example.com")
    assert error_code(place(capi, expect=409, coupon="TWICE", contact="c@example.com")) == "coupon_unavailable"
    assert coupon_state(creg, "TWICE") == (2, ["used", "used"])


def test_per_buyer_limit_counts_the_contact_and_the_account(capi, creg, shop):
    from kameng import accounts

    add_coupon(creg, "ONCEEACH", "fixed", "1.00", per_buyer=1)
    place(capi, coupon="ONCEEACH", contact="A@Example.com")
    # the same contact, in another case
    assert error_code(place(capi, expect=409, coupon="ONCEEACH", contact="a@example.COM")) == "coupon_unavailable"
    place(capi, coupon="ONCEEACH", contact="b@example.com")
    # a signed-in buyer is counted by account, whatever contact the order names
    with app_request(creg) as req:
        user = accounts.create_user(req.db, "member@example.com", "member-password-123")
        token = accounts.create_token(req.db, user, "t")
    auth = {"Authorization": f"Bearer {token}"}
    place(capi, headers=auth, coupon="ONCEEACH", contact="c@example.com", query_password="")
    resp = place(capi, expect=409, headers=auth, coupon="ONCEEACH", contact="d@example.com", query_password="")
    assert error_code(resp) == "coupon_unavailable"
    assert coupon_state(creg, "ONCEEACH")[0] == 3


def test_phone_contacts_are_one_buyer_however_written(capi, creg, shop):
    add_coupon(creg, "PHONE1", "fixed", "1.00", per_buyer=1)
    place(capi, coupon="PHONE1", contact="138 0013 8000")
    assert error_code(place(capi, expect=409, coupon="PHONE1", contact="13800138000")) == "coupon_unavailable"


def test_promotion_tiers_pick_the_best_reached(capi, creg, shop):
    add_promotion(creg, "满减", tiers=[{"threshold": "20.00", "kind": "amount", "value": "2.00"},
                                      {"threshold": "40.00", "kind": "amount", "value": "6.00"}])
    assert place(capi, quantity=1).json["amount"] == "10.00"      # below every tier
    assert place(capi, quantity=2).json["amount"] == "18.00"      # 20.00 reached: 2.00 off
    assert place(capi, quantity=5).json["amount"] == "44.00"      # 40.00 reached: 6.00 off


def test_percent_promotion_and_the_best_of_two_promotions(capi, creg, shop):
    add_promotion(creg, "九折", tiers=[{"threshold": "30.00", "kind": "percent", "value": "10"}])
    add_promotion(creg, "满减", tiers=[{"threshold": "30.00", "kind": "amount", "value": "5.00"}])
    # 40.00: 10 % is 4.00, the amount tier 5.00: the best one counts, not both
    resp = place(capi, quantity=4)
    assert resp.json["amount"] == "35.00"
    assert [a[2] for a in adjustments(creg, resp.json["order_no"])] == [-500]
    # 80.00: 10 % is 8.00
    assert place(capi, quantity=8).json["amount"] == "72.00"


def test_promotion_scope_window_and_active_flag(capi, creg, shop):
    games = make_category(creg, "Games")
    make_product(creg, "GAME", "10.00", keys=3, category_id=games)
    now = utcnow()
    tiers = [{"threshold": "10.00", "kind": "amount", "value": "1.00"}]
    add_promotion(creg, "Games only", tiers=tiers, categories=[games])
    add_promotion(creg, "Not yet", tiers=[{"threshold": "10.00", "kind": "amount", "value": "3.00"}],
                  starts_at=(now + HOUR).isoformat())
    add_promotion(creg, "Off", tiers=[{"threshold": "10.00", "kind": "amount", "value": "4.00"}], active=False)
    assert place(capi, sku="GAME").json["amount"] == "9.00"
    assert place(capi, sku="CARD10").json["amount"] == "10.00"


def test_sale_price_with_its_own_stock_cap(capi, creg, shop):
    sale = add_sale(creg, "CARD10", price="8.00", cap=3)
    # two units at the sale price
    assert place(capi, quantity=2).json["amount"] == "16.00"
    # one sale unit left: it goes to the first unit, the second is at the list price
    resp = place(capi, quantity=2)
    assert resp.json["amount"] == "18.00"
    # the cap is reached: the list price again
    assert place(capi, quantity=1).json["amount"] == "10.00"
    from coupons_helpers import sale_state

    assert sale_state(creg, sale) == (3, [(2, "used"), (1, "used")])


def test_sale_window_and_member_prices(capi, creg, shop):
    now = utcnow()
    add_sale(creg, "CARD10", price="8.00", cap=10, starts=now + HOUR, ends=now + 2 * HOUR)
    assert place(capi).json["amount"] == "10.00"


def test_a_sale_above_the_agent_price_gives_the_agent_nothing_more(capi, creg, shop):
    from kameng import accounts
    from kameng.accounts import User

    add_sale(creg, "CARD10", price="8.00", cap=10)
    with app_request(creg) as req:
        user = accounts.create_user(req.db, "agent@example.com", "agent-password-123", role="agent")
        token = accounts.create_token(req.db, user, "t")
        if not hasattr(User, "tier"):
            pytest.skip("accounts have no agent tier yet")
        req.db.execute(update(User).where(User.id == user.id).values(tier="gold"))
        req.db.add(SkuPrice(sku_id=shop, kind="tier", ref="gold", price=700))
    resp = place(capi, headers={"Authorization": f"Bearer {token}"}, query_password="", contact="")
    assert resp.json["amount"] == "7.00"
    assert adjustments(creg, resp.json["order_no"]) == []


def test_sale_then_promotion_then_coupon_stack_in_that_order(capi, creg, shop):
    """10.00 × 3 = 30.00 → sale 8.00 each: 24.00 (6.00 off) → promotion: the
    amount after the sale (24.00) reaches the 20.00 tier, not the 30.00 one:
    2.00 off, 22.00 → coupon 10 % of 22.00 = 2.20, and its minimum spend of
    22.00 is checked on 22.00: 19.80."""
    add_sale(creg, "CARD10", price="8.00", cap=10)
    add_promotion(creg, "满减", tiers=[{"threshold": "20.00", "kind": "amount", "value": "2.00"},
                                      {"threshold": "30.00", "kind": "amount", "value": "9.00"}])
    add_coupon(creg, "TEN", "percent", "10", min_amount="22.00")
    add_coupon(creg, "TOOHIGH", "percent", "10", min_amount="22.01")
    resp = place(capi, quantity=3, coupon="TEN")
    assert resp.json["amount"] == "19.80"
    labels = adjustments(creg, resp.json["order_no"])
    assert [(code, amount) for _label, code, amount in labels] == [("", -600), ("", -200), ("TEN", -220)]
    assert labels[0][0] == "Sale price: 3 at 8.00"
    assert labels[1][0].startswith("满减: ")
    assert error_code(place(capi, expect=409, quantity=3, coupon="TOOHIGH")) == "coupon_unavailable"


def test_the_checkout_page_shows_the_breakdown_and_an_unusable_coupon(capi, creg, shop):
    from sqlalchemy import select

    from kameng.catalog.models import Sku

    add_coupon(creg, "SAVE1", "fixed", "1.00")
    with app_request(creg) as req:
        product_id = req.db.scalar(select(Sku.product_id).where(Sku.id == shop))
    page = capi.get(f"/checkout/{product_id}", {"sku": "CARD10", "quantity": "1", "coupon": "save1"})
    assert "SAVE1" in page.text and "9.00" in page.text
    page = capi.get(f"/checkout/{product_id}", {"sku": "CARD10", "quantity": "1", "coupon": "nope"})
    assert "does not apply" in page.text


@pytest.mark.parametrize("code", ["AB\x00CD", "x" * 64 + "y", "' OR 1=1 --", "SAVE%", "优惠券", "SA VE1", "ab"])
def test_codes_no_coupon_can_have_are_refused_cleanly(capi, creg, shop, code):
    add_coupon(creg, "SAVE1", "fixed", "1.00")
    assert error_code(place(capi, expect=409, coupon=code)) == "coupon_unavailable"
    assert coupon_state(creg, "SAVE1") == (0, [])
