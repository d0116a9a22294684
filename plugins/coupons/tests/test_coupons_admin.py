"""The admin pages under /-/coupons/ through a signed-in browser (webtest):
coupons (create, validation on the form, edit, disable, search), batch
generation and the CSV export, promotions and sale prices; who may open
them; the product page block."""
import csv
import io
import re

import pytest
import webtest
from coupons_helpers import (
    add_coupon,
    add_promotion,
    add_sale,
    coupon_state,
    enable,
    make_product,
    place,
)
from sqlalchemy import func, select

from kameng.testing import app_request, login, set_plugin

PAGES = ["/-/coupons/", "/-/coupons/new", "/-/coupons/batch", "/-/coupons/export.csv", "/-/coupons/promotions",
         "/-/coupons/promotions/new", "/-/coupons/sales", "/-/coupons/sales/new"]


def coupon_id(registry, code):
    from kameng_coupons.models import Coupon

    with app_request(registry) as req:
        return req.db.scalar(select(Coupon.id).where(Coupon.code_key == code.upper()))


def count_coupons(registry, **where):
    from kameng_coupons.models import Coupon

    with app_request(registry) as req:
        stmt = select(func.count()).select_from(Coupon)
        for name, value in where.items():
            stmt = stmt.where(getattr(Coupon, name) == value)
        return req.db.scalar(stmt)


# -- who may open the pages --------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(capi, creg, shop, path):
    resp = capi.get(path, status=(302, 303))
    assert "/login" in resp.headers["Location"]


@pytest.mark.parametrize("path", PAGES)
def test_buyers_may_not_open_the_pages(coupons_app, creg, shop, path):
    from kameng import accounts

    with app_request(creg) as req:
        accounts.create_user(req.db, "buyer@example.com", "buyer-password-123")
    app = webtest.TestApp(coupons_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(app, "buyer@example.com", "buyer-password-123").status_int == 302
    app.get(path, status=403)


@pytest.mark.parametrize("path", PAGES)
def test_pages_answer_404_while_the_plugin_is_disabled(admin_web, creg, shop, path):
    admin_web.get(path, status=200)
    set_plugin(creg, "coupons", enabled=False)
    admin_web.get(path, status=404)


def test_menu_items_appear_only_while_enabled(admin_web, creg, shop):
    page = admin_web.get("/admin")
    for path in ("/-/coupons/", "/-/coupons/promotions", "/-/coupons/sales"):
        assert f'href="http://localhost{path}"' in page.text
    set_plugin(creg, "coupons", enabled=False)
    assert "/-/coupons/" not in admin_web.get("/admin").text


def test_posts_need_the_csrf_token(admin_web, creg, shop):
    admin_web.post("/-/coupons/new", {"code": "NOCSRF", "kind": "fixed", "value": "1.00", "scope": "all"},
                   status=400)
    assert count_coupons(creg) == 0


# -- coupons -----------------------------------------------------------------------------------


def test_create_a_coupon_through_the_form(admin_web, creg, shop, capi):
    form = admin_web.get("/-/coupons/new").forms["coupon-form"]
    form["code"] = "Welcome5"
    form["kind"] = "fixed"
    form["value"] = "5.00"
    form["min_amount"] = "12.00"
    form["max_uses"] = "100"
    form["per_buyer"] = "1"
    form["starts_at"] = "2020-01-01T00:00"
    form["scope"] = "skus"
    form["skus"] = "CARD10"
    resp = form.submit()
    assert resp.status_int == 302
    page = resp.follow()
    assert "Welcome5" in page.text and "Coupon Welcome5 created." in page.text
    assert place(capi, quantity=2, coupon="WELCOME5").json["amount"] == "15.00"
    assert "Welcome5" in admin_web.get("/-/coupons/").text
    edit = admin_web.get(f"/-/coupons/{coupon_id(creg, 'Welcome5')}")
    assert 'id="redemptions"' in edit.text and "buyer@example.com" in edit.text


@pytest.mark.parametrize("field,value,message", [
    ("value", "abc", "Write an amount like 10.00."),
    ("value", "-1", "Write an amount like 10.00."),
    ("value", "0", "The amount must be more than zero."),
    ("max_discount", "2.00", "Only a percentage coupon has a cap."),
    ("max_uses", "0", "Write a number from 1 to"),
    ("per_buyer", "x", "Write a whole number."),
    ("ends_at", "2019-01-01T00:00", "The end must come after the start."),
    ("code", "a b", "A code has 3 to 64 letters"),
    ("skus", "NO-SUCH-SKU", "There is no SKU NO-SUCH-SKU."),
])
def test_coupon_form_errors_are_shown_on_the_form(admin_web, creg, shop, field, value, message):
    form = admin_web.get("/-/coupons/new").forms["coupon-form"]
    form["code"] = "GOODCODE"
    form["kind"] = "fixed"
    form["value"] = "1.00"
    form["starts_at"] = "2020-01-01T00:00"
    if field == "skus":
        form["scope"] = "skus"
    form[field] = value
    resp = form.submit(status=422)
    assert message in resp.text
    assert resp.forms["coupon-form"][field].value == value  # what was typed is kept
    assert count_coupons(creg) == 0


def test_a_used_code_is_refused_on_the_form(admin_web, creg, shop):
    add_coupon(creg, "TAKEN", "fixed", "1.00")
    form = admin_web.get("/-/coupons/new").forms["coupon-form"]
    form["code"] = "taken"
    form["value"] = "1.00"
    resp = form.submit(status=409)
    assert "A coupon with this code already exists." in resp.text
    assert count_coupons(creg) == 1


def test_edit_and_disable_a_coupon(admin_web, creg, shop, capi):
    cid = add_coupon(creg, "EDITME", "fixed", "1.00")
    form = admin_web.get(f"/-/coupons/{cid}").forms["coupon-form"]
    assert "code" not in form.fields  # the code cannot change
    form["kind"] = "percent"
    form["value"] = "20"
    form["max_discount"] = "1.50"
    form.submit().follow()
    assert place(capi, coupon="EDITME").json["amount"] == "8.50"

    page = admin_web.get(f"/-/coupons/{cid}")
    page = page.forms["toggle-form"].submit().follow()
    assert "disabled" in page.text
    assert place(capi, expect=409, coupon="EDITME", contact="b@example.com").json["error"]["code"] == \
        "coupon_unavailable"
    listing = admin_web.get("/-/coupons/", {"status": "disabled"})
    assert "EDITME" in listing.text
    assert "EDITME" not in admin_web.get("/-/coupons/", {"status": "active"}).text
    page.forms["toggle-form"].submit().follow()
    assert place(capi, coupon="EDITME", contact="c@example.com").json["amount"] == "8.50"


def test_list_search_and_status(admin_web, creg, shop):
    add_coupon(creg, "ALPHA1", "fixed", "1.00", note="spring mailing")
    add_coupon(creg, "BETA22", "fixed", "1.00", max_uses=1)
    from kameng_coupons.models import Coupon
    from sqlalchemy import update

    with app_request(creg) as req:
        req.db.execute(update(Coupon).where(Coupon.code == "BETA22").values(used=1))
    page = admin_web.get("/-/coupons/", {"q": "alp"})
    assert "ALPHA1" in page.text and "BETA22" not in page.text
    assert "ALPHA1" in admin_web.get("/-/coupons/", {"q": "spring"}).text
    used_up = admin_web.get("/-/coupons/", {"status": "used_up"})
    assert "BETA22" in used_up.text and "ALPHA1" not in used_up.text
    assert re.search(r"1 / 1", used_up.text)
    admin_web.get("/-/coupons/", {"status": "bogus", "page": "x"}, status=200)


def test_unknown_ids_are_404(admin_web, creg, shop):
    for path in ("/-/coupons/999999", "/-/coupons/promotions/999999", "/-/coupons/sales/999999"):
        admin_web.get(path, status=404)


# -- batches and CSV ---------------------------------------------------------------------------


def test_generate_a_batch_and_export_it(admin_web, creg, shop, capi):
    add_coupon(creg, "NOTINBATCH", "fixed", "1.00")
    form = admin_web.get("/-/coupons/batch").forms["batch-form"]
    form["prefix"] = "SPRING-"
    form["count"] = "300"
    form["kind"] = "percent"
    form["value"] = "10"
    form["max_uses"] = "1"
    resp = form.submit()
    assert resp.status_int == 302
    batch = re.search(r"batch=([^&]+)", resp.headers["Location"]).group(1)
    page = resp.follow()
    assert "300 codes made in batch" in page.text
    assert count_coupons(creg, batch=batch) == 300

    export = admin_web.get("/-/coupons/export.csv", {"batch": batch})
    assert export.content_type == "text/csv"
    assert export.headers["Cache-Control"] == "no-store"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(export.body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["code", "kind", "value"]
    codes = [r[0] for r in rows[1:]]
    assert len(codes) == len(set(codes)) == 300
    assert all(re.fullmatch(r"SPRING-[A-HJ-NP-Z2-9]{10}", c) for c in codes)
    assert {r[1] for r in rows[1:]} == {"percent"} and {r[2] for r in rows[1:]} == {"10"}
    assert "NOTINBATCH" not in export.text

    # a generated code works once
    assert place(capi, coupon=codes[0].lower()).json["amount"] == "9.00"
    assert place(capi, expect=409, coupon=codes[0], contact="b@example.com").json["error"]["code"] == \
        "coupon_unavailable"
    assert coupon_state(creg, codes[0]) == (1, ["used"])


def test_batch_form_limits(admin_web, creg, shop):
    form = admin_web.get("/-/coupons/batch").forms["batch-form"]
    form["count"] = "10001"
    form["value"] = "1.00"
    assert "Write a number from 1 to 10000." in form.submit(status=422).text
    form["count"] = "5"
    form["prefix"] = "-BAD"
    assert "A prefix has up to 20 letters" in form.submit(status=422).text
    form["prefix"] = "OK"
    form["value"] = ""
    assert "Give the discount." in form.submit(status=422).text
    assert count_coupons(creg) == 0


def test_a_batch_of_ten_thousand(admin_web, creg, shop):
    form = admin_web.get("/-/coupons/batch").forms["batch-form"]
    form["count"] = "10000"
    form["value"] = "1.00"
    form["prefix"] = "BIG"
    resp = form.submit()
    batch = re.search(r"batch=([^&]+)", resp.headers["Location"]).group(1)
    assert count_coupons(creg, batch=batch) == 10000
    export = admin_web.get("/-/coupons/export.csv", {"batch": batch})
    assert export.body.count(b"\r\n") == 10001


def test_csv_cells_cannot_start_a_formula(admin_web, creg, shop):
    add_coupon(creg, "FORMULA", "fixed", "1.00", note="=HYPERLINK(\"http://evil\")")
    export = admin_web.get("/-/coupons/export.csv")
    rows = list(csv.reader(io.StringIO(export.body.decode("utf-8-sig"))))
    assert rows[1][13].startswith("'=")


# -- promotions --------------------------------------------------------------------------------


def test_create_and_edit_a_promotion(admin_web, creg, shop, capi):
    form = admin_web.get("/-/coupons/promotions/new").forms["promotion-form"]
    form["name"] = "春季满减"
    form["threshold_0"] = "20.00"
    form["tier_value_0"] = "3.00"
    form["threshold_1"] = "40.00"
    form["tier_value_1"] = "10"
    form["tier_kind_1"] = "percent"
    page = form.submit().follow()
    assert "春季满减" in page.text and "3.00 off orders of 20.00 or more" in page.text
    assert place(capi, quantity=2).json["amount"] == "17.00"
    assert place(capi, quantity=5).json["amount"] == "45.00"

    from kameng_coupons.models import Promotion

    with app_request(creg) as req:
        pid = req.db.scalar(select(Promotion.id))
    form = admin_web.get(f"/-/coupons/promotions/{pid}").forms["promotion-form"]
    assert form["threshold_1"].value == "40.00" and form["tier_kind_1"].value == "percent"
    form["active"] = False
    form.submit().follow()
    assert place(capi, quantity=2).json["amount"] == "20.00"


@pytest.mark.parametrize("changes,message", [
    ({"threshold_0": "", "tier_value_0": ""}, "Give at least one tier."),
    ({"tier_value_0": "25.00"}, "The discount must be less than the amount to reach."),
    ({"tier_kind_0": "percent", "tier_value_0": "100"}, "The percentage must be more than 0 and less than 100."),
    ({"threshold_1": "20.00", "tier_value_1": "1.00"}, "Two tiers have the same amount to reach."),
    ({"name": ""}, "This is required."),
    ({"scope": "categories"}, "Choose at least one."),
])
def test_promotion_form_errors(admin_web, creg, shop, changes, message):
    form = admin_web.get("/-/coupons/promotions/new").forms["promotion-form"]
    form["name"] = "Test"
    form["threshold_0"] = "20.00"
    form["tier_value_0"] = "3.00"
    for name, value in changes.items():
        form[name] = value
    assert message in form.submit(status=422).text


# -- sale prices -------------------------------------------------------------------------------


def test_create_and_edit_a_sale_price(admin_web, creg, shop, capi):
    form = admin_web.get("/-/coupons/sales/new").forms["sale-form"]
    form["sku"] = "CARD10"
    form["price"] = "6.00"
    form["cap"] = "2"
    form["starts_at"] = "2020-01-01T00:00"
    form["ends_at"] = "2100-01-01T00:00"
    page = form.submit().follow()
    assert "CARD10" in page.text and "0 / 2" in page.text
    assert place(capi, quantity=3).json["amount"] == "22.00"
    page = admin_web.get("/-/coupons/sales")
    assert "2 / 2" in page.text and "Sold out" in page.text

    from kameng_coupons.models import Sale

    with app_request(creg) as req:
        sid = req.db.scalar(select(Sale.id))
    form = admin_web.get(f"/-/coupons/sales/{sid}").forms["sale-form"]
    form["cap"] = "1"
    assert "2 units have already sold at this price" in form.submit(status=422).text
    form["cap"] = "3"
    form.submit().follow()
    assert place(capi, quantity=1).json["amount"] == "6.00"


@pytest.mark.parametrize("changes,message", [
    ({"sku": "NOPE"}, "There is no SKU with this code."),
    ({"price": "10.00"}, "The sale price must be lower than the list price (10.00)."),
    ({"cap": ""}, "Give how many units sell at this price."),
    ({"ends_at": ""}, "Give the end time."),
    ({"ends_at": "2019-01-01T00:00"}, "The end must come after the start."),
])
def test_sale_form_errors(admin_web, creg, shop, changes, message):
    form = admin_web.get("/-/coupons/sales/new").forms["sale-form"]
    values = {"sku": "CARD10", "price": "6.00", "cap": "2", "starts_at": "2020-01-01T00:00",
              "ends_at": "2100-01-01T00:00", **changes}
    for name, value in values.items():
        form[name] = value
    assert message in form.submit(status=422).text


def test_two_sales_of_one_sku_may_not_overlap(admin_web, creg, shop):
    add_sale(creg, "CARD10", price="8.00", cap=5)
    form = admin_web.get("/-/coupons/sales/new").forms["sale-form"]
    for name, value in {"sku": "CARD10", "price": "6.00", "cap": "2", "starts_at": "2020-01-01T00:00",
                        "ends_at": "2100-01-01T00:00"}.items():
        form[name] = value
    assert "This SKU has another sale" in form.submit(status=422).text
    form["active"] = False  # a disabled one may be prepared
    form.submit(status=302)


# -- the product page --------------------------------------------------------------------------


def product_page(capi, creg, code="CARD10"):
    from kameng.catalog.models import Sku

    with app_request(creg) as req:
        product_id = req.db.scalar(select(Sku.product_id).where(Sku.code == code))
    return capi.get(f"/p/{product_id}")


def test_product_page_shows_tiers_and_sale_with_units_and_time_left(capi, creg, shop):
    assert "coupons-offers" not in product_page(capi, creg).text
    add_sale(creg, "CARD10", price="8.00", cap=5)
    add_promotion(creg, "<b>Big</b> sale", tiers=[{"threshold": "100.00", "kind": "amount", "value": "10.00"},
                                                 {"threshold": "200.00", "kind": "percent", "value": "15"}])
    place(capi, quantity=2)
    page = product_page(capi, creg)
    block = page.html.find(id="coupons-offers")
    assert block is not None
    text = block.get_text(" ", strip=True)
    assert "CNY 8.00" in text and "CNY 10.00" in text and "only 3 left" in text and "UTC" in text
    assert "10.00 off orders of 100.00 or more" in text and "15% off orders of 200.00 or more" in text
    assert "&lt;b&gt;Big&lt;/b&gt; sale" in page.text  # escaped


def test_product_page_block_follows_the_setting_and_the_plugin(capi, creg, shop):
    add_sale(creg, "CARD10", price="8.00", cap=5)
    set_plugin(creg, "coupons", show_offers=False)
    assert "coupons-offers" not in product_page(capi, creg).text
    set_plugin(creg, "coupons", show_offers=True)
    assert "coupons-offers" in product_page(capi, creg).text
    set_plugin(creg, "coupons", enabled=False)
    assert "coupons-offers" not in product_page(capi, creg).text
    enable(creg)


def test_a_promotion_for_another_category_is_not_shown(capi, creg, shop):
    from coupons_helpers import make_category

    other = make_category(creg, "Other")
    make_product(creg, "ELSE", "10.00", keys=1, category_id=other)
    add_promotion(creg, "Other only", tiers=[{"threshold": "10.00", "kind": "amount", "value": "1.00"}],
                  categories=[other])
    assert "Other only" not in product_page(capi, creg).text
    assert "Other only" in product_page(capi, creg, "ELSE").text
