"""The admin catalog pages: categories, products, SKUs and card-key stock,
driven through the forms an admin fills in (webtest)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
import webtest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kameng import accounts
from kameng.audit import AuditEntry
from kameng.catalog import service as catalog
from kameng.catalog.models import Category, Product, Sku, SkuPrice
from kameng.db import utcnow
from kameng.inventory import service as inventory
from kameng.inventory.models import CardKey, KeyImport
from kameng.testing import app_request, login

SECRETS = ["AAAA-1111-BBBB-2222", "CCCC-3333-DDDD-4444", "EEEE-5555-FFFF-6666"]


# -- helpers ------------------------------------------------------------------------------


def count(registry, model, *where):
    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(model).where(*where))


def make_category(registry, name="游戏点卡", parent_id=None, visible=True):
    with app_request(registry) as req:
        return catalog.save_category(req.db, {"name": name, "parent_id": parent_id or "",
                                               "visible": "1" if visible else "0"}).id


def make_product(registry, code="STEAM-50", ptype="card_key", category_id=None, **extra):
    data = {"name": f"Product {code}", "type": ptype, "category_id": category_id or "",
            "skus": [{"code": code, "name": "50 元", "price": "50.00"}], **extra}
    if ptype == "direct_recharge":
        data.setdefault("recharge_fields", [{"name": "phone", "label": "手机号", "kind": "mobile_cn"}])
    with app_request(registry) as req:
        return catalog.save_product(req.db, data, "CNY").id


def new_product_form(app, **fields):
    page = app.get("/admin/products/new")
    form = page.forms["product-form"]
    for name, value in fields.items():
        form[name] = value
    return form


def import_keys(app, code, keys="", upload=None, separator="none", action="import", status=None):
    page = app.get(f"/admin/skus/{code}/stock")
    form = page.forms["import-form"]
    form["keys"] = keys
    form["separator"] = separator
    if upload is not None:
        form["file"] = webtest.Upload(*upload)
    return form.submit("action", value=action, status=status)


def audit_rows(registry, action):
    with app_request(registry) as req:
        return [(r.actor, r.target, json.loads(r.detail)) for r in
                req.db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def key_ids(registry, code, state=None):
    with app_request(registry) as req:
        stmt = select(CardKey.id).join(Sku).where(Sku.code == code)
        if state:
            stmt = stmt.where(CardKey.state == state)
        return list(req.db.scalars(stmt.order_by(CardKey.id)))


def stock_of(registry, code):
    with app_request(registry) as req:
        return req.db.scalar(select(Sku.stock).where(Sku.code == code))


# -- categories ---------------------------------------------------------------------------


def test_category_tree_create_edit(admin_app, registry):
    page = admin_app.get("/admin/categories")
    assert "No category yet" in page.text
    form = page.forms["new-category"]
    form["name"] = "游戏点卡"
    form["sort"] = "5"
    resp = form.submit().follow()
    assert "Category 游戏点卡 created." in resp.text
    assert count(registry, Category) == 1
    with app_request(registry) as req:
        games_id = req.db.scalar(select(Category.id).where(Category.name == "游戏点卡"))

    # a child, through the "add subcategory" link (the parent is preselected)
    page = admin_app.get(f"/admin/categories?parent={games_id}")
    form = page.forms["new-category"]
    assert form["parent_id"].value == str(games_id)
    form["name"] = "Steam"
    form["visible"] = False
    form.submit().follow()
    page = admin_app.get("/admin/categories")
    form = page.forms["new-category"]
    form["name"] = "话费充值"
    form["sort"] = "1"
    page = form.submit().follow()

    rows = page.html.select("#categories tbody tr")
    names = [r.select_one("td.name a").text for r in rows]
    assert names == ["话费充值", "游戏点卡", "Steam"]  # sorted, the child under its parent
    assert rows[2]["class"] == ["depth-1"] and rows[1]["class"] == ["depth-0"]
    assert "Hidden" in rows[2].text and "Visible" in rows[1].text
    with app_request(registry) as req:
        steam = req.db.scalar(select(Category).where(Category.name == "Steam"))
        assert steam.parent_id == games_id and steam.visible is False
        steam_id = steam.id

    # edit: rename and move to the top level; a category cannot be its own parent
    page = admin_app.get(f"/admin/categories/{games_id}")
    options = [o[0] for o in page.forms["category-form"]["parent_id"].options]
    assert str(games_id) not in options and str(steam_id) not in options  # not itself, not its child
    form = page.forms["category-form"]
    form["name"] = "游戏"
    form.submit().follow()
    assert count(registry, Category, Category.name == "游戏") == 1

    page = admin_app.get(f"/admin/categories/{steam_id}")
    form = page.forms["category-form"]
    form["name"] = ""
    resp = form.submit(status=400)
    assert "is required" in resp.text
    assert count(registry, Category, Category.name == "Steam") == 1

    token = page.forms["category-form"]["csrf_token"].value
    resp = admin_app.post(f"/admin/categories/{games_id}", {"csrf_token": token, "name": "游戏",
                                                           "parent_id": str(steam_id), "sort": "0"}, status=400)
    assert "a category cannot be inside itself" in resp.text
    with app_request(registry) as req:
        assert req.db.get(Category, games_id).parent_id is None

    form = admin_app.get(f"/admin/categories/{steam_id}").forms["category-form"]
    form["icon"] = "javascript:alert(1)"
    resp = form.submit(status=400)
    assert "must be an http(s) URL or a path" in resp.text


def test_deleting_a_category_with_products_or_children_is_refused(admin_app, registry):
    parent = make_category(registry, "游戏点卡")
    child = make_category(registry, "Steam", parent_id=parent)
    make_product(registry, "STEAM-50", category_id=child)
    empty = make_category(registry, "空的")

    for cid in (parent, child):
        page = admin_app.get(f"/admin/categories/{cid}")
        resp = page.forms["delete-category"].submit().follow()
        assert "was not deleted" in resp.text
    assert count(registry, Category) == 3

    page = admin_app.get("/admin/categories")
    forms = [f for f in page.forms.values() if f.action.endswith(f"/admin/categories/{empty}/delete")]
    resp = forms[0].submit().follow()
    assert "Category 空的 deleted." in resp.text
    assert count(registry, Category) == 2
    assert audit_rows(registry, "category.delete")[0][1] == str(empty)


# -- products and SKUs --------------------------------------------------------------------


def test_create_card_key_product_and_edit_it(admin_app, registry):
    cat = make_category(registry, "游戏点卡")
    form = new_product_form(admin_app, name="Steam 钱包充值码", type="card_key", category_id=str(cat),
                            description="<p>官方充值码</p>", images="https://img.example.com/steam.png\n/static/x.png",
                            tags="steam， 游戏, 充值", sku_code="STEAM-50", sku_name="50 元", sku_price="50.00",
                            sku_cost_price="45.5", sku_min_quantity="1", sku_max_quantity="10")
    form["hot"] = True
    resp = form.submit()
    assert resp.status_int == 302
    page = resp.follow()
    assert "Product Steam 钱包充值码 created." in page.text
    with app_request(registry) as req:
        product = req.db.scalar(select(Product))
        sku = product.skus[0]
        assert (product.type, product.category_id, product.hot, product.recommended, product.visible) == \
            ("card_key", cat, True, False, True)
        assert json.loads(product.images) == ["https://img.example.com/steam.png", "/static/x.png"]
        assert product.tags == "steam,游戏,充值"
        assert (sku.code, sku.price, sku.cost_price, sku.max_quantity, sku.stock) == ("STEAM-50", 5000, 4550, 10, 0)
        pid = product.id

    # the edit page: the form, and the SKU table with links to the SKU and its stock
    row = page.html.select_one("#sku-STEAM-50")
    assert "50.00" in row.text and "45.50" in row.text
    assert row.select_one('a[href$="/admin/skus/STEAM-50"]') and row.select_one('a[href$="/admin/skus/STEAM-50/stock"]')
    form = page.forms["product-form"]
    assert form["name"].value == "Steam 钱包充值码" and form["category_id"].value == str(cat)
    form["name"] = "Steam 充值码"
    form["hot"] = False
    form["recommended"] = True
    form["visible"] = False
    page = form.submit().follow()
    assert "Product Steam 充值码 saved." in page.text
    with app_request(registry) as req:
        product = req.db.get(Product, pid)
        assert (product.name, product.hot, product.recommended, product.visible) == ("Steam 充值码", False, True, False)
    assert audit_rows(registry, "product.update")[0][1] == str(pid)

    # the list, its badges and its filters
    page = admin_app.get("/admin/products")
    row = page.html.select_one(f"#product-{pid}")
    cells = [td.text.strip() for td in row.select("td")]
    assert cells[:5] == ["Steam 充值码", "Card key", "游戏点卡", "1", "0"]
    assert "Recommended" in cells[5] and "Hidden" in cells[5] and "Hot" not in cells[5]
    assert admin_app.get("/admin/products", {"type": "direct_recharge"}).html.select_one(f"#product-{pid}") is None
    assert admin_app.get("/admin/products", {"q": "steam-5"}).html.select_one(f"#product-{pid}") is not None
    assert admin_app.get("/admin/products", {"q": "100%"}).html.select_one(f"#product-{pid}") is None
    assert admin_app.get("/admin/products", {"category": cat}).html.select_one(f"#product-{pid}") is not None
    assert admin_app.get("/admin/products", {"category": cat + 99}).html.select_one(f"#product-{pid}") is None


def test_products_list_pages_by_fifty(admin_app, registry):
    with app_request(registry) as req:
        for i in range(55):
            catalog.save_product(req.db, {"name": f"P{i:02d}", "sort": str(i),
                                          "skus": [{"code": f"C{i}", "name": "x", "price": "1"}]}, "CNY")
    page = admin_app.get("/admin/products")
    assert len(page.html.select("#products tbody tr")) == 50
    assert "Page 1 of 2" in page.text
    page = page.click(linkid=None, href=r"page=2", index=0)
    assert len(page.html.select("#products tbody tr")) == 5


def test_validation_errors_are_shown_and_nothing_is_written(admin_app, registry):
    base = {"name": "Steam", "type": "card_key", "sku_code": "STEAM-50", "sku_name": "50 元"}
    resp = new_product_form(admin_app, **base, sku_price="12.345").submit(status=400)
    field = resp.html.select_one("#s-price").find_parent("div")
    assert "must be a decimal string" in field.text
    assert resp.forms["product-form"]["name"].value == "Steam"  # what was typed comes back
    assert count(registry, Product) == 0 and count(registry, Sku) == 0

    resp = new_product_form(admin_app, **base, sku_price="abc").submit(status=400)
    assert "must be a decimal string" in resp.text
    resp = new_product_form(admin_app, **base, sku_price="0").submit(status=400)
    assert "must be more than zero" in resp.text
    resp = new_product_form(admin_app, **{**base, "name": ""}, sku_price="1").submit(status=400)
    assert "is required" in resp.html.select_one("#p-name").find_parent("div").text
    resp = new_product_form(admin_app, **{**base, "sku_name": ""}, sku_price="1").submit(status=400)
    assert "is required" in resp.html.select_one("#s-name").find_parent("div").text
    assert "is required" not in resp.html.select_one("#p-name").find_parent("div").text
    assert count(registry, Product) == 0

    new_product_form(admin_app, **base, sku_price="50").submit(status=302)
    resp = new_product_form(admin_app, **{**base, "name": "Other"}, sku_price="50").submit(status=400)
    assert "the code STEAM-50 is taken" in resp.html.select_one("#s-code").find_parent("div").text
    assert count(registry, Product) == 1 and count(registry, Sku) == 1

    # editing: a bad SKU price, min above max, a new SKU with a taken code
    page = admin_app.get("/admin/skus/STEAM-50")
    form = page.forms["sku-form"]
    form["price"] = "-1"
    resp = form.submit(status=400)
    assert "must be a decimal string" in resp.text
    form = admin_app.get("/admin/skus/STEAM-50").forms["sku-form"]
    form["min_quantity"] = "20"
    form["max_quantity"] = "10"
    form["name"] = "changed"
    resp = form.submit(status=400)
    assert "must not be less than min_quantity" in resp.text
    with app_request(registry) as req:
        sku = req.db.scalar(select(Sku))
        assert (sku.name, sku.price, sku.min_quantity) == ("50 元", 5000, 1)  # the transaction was doomed
        pid = sku.product_id
    form = admin_app.get(f"/admin/products/{pid}/skus/new").forms["sku-form"]
    form["code"], form["name"], form["price"] = "STEAM-50", "again", "1"
    resp = form.submit(status=400)
    assert "is taken" in resp.text
    assert count(registry, Sku) == 1


XSS = ('<p>ok</p><script>alert("s")</script><img src="x.png" onerror="alert(1)">'
       '<a href="javascript:alert(2)">link</a><b onclick="alert(3)">bold</b>')


def test_description_is_stored_sanitised_and_shown_escaped(admin_app, registry):
    cat = make_category(registry, "游戏点卡")
    resp = new_product_form(admin_app, name="XSS", category_id=str(cat), description=XSS,
                            instructions='<img src=x onerror="alert(4)">use it', sku_code="X1", sku_name="x",
                            sku_price="1").submit(status=302)
    with app_request(registry) as req:
        product = req.db.scalar(select(Product))
        stored = product.description + product.instructions
        pid = product.id
    for bad in ("<script", "alert(\"s\")", "onerror", "onclick", "javascript:"):
        assert bad not in stored
    assert "<p>ok</p>" in stored and "bold" in stored

    page = resp.follow()
    for bad in ("<script", "onerror", "onclick", "javascript:alert"):
        assert bad not in page.text
    assert page.forms["product-form"]["description"].value == product.description

    # the storefront shows it escaped or sanitised, never as live markup
    for url in ("/", f"/p/{pid}"):
        shop = admin_app.get(url, expect_errors=True)
        if shop.status_int == 200:
            assert "<script>" not in shop.text and "onerror" not in shop.text and "javascript:alert" not in shop.text


def test_direct_recharge_product_with_recharge_fields(admin_app, registry):
    base = {"name": "中国移动话费直充", "type": "direct_recharge", "sku_code": "CMCC-50", "sku_name": "50 元",
            "sku_price": "49.80"}
    resp = new_product_form(admin_app, **base).submit(status=400)
    assert "needs at least one input field" in resp.html.select_one("#p-recharge").find_parent("div").text
    resp = new_product_form(admin_app, **base, recharge_fields="[{not json").submit(status=400)
    assert "is not valid JSON" in resp.text
    assert count(registry, Product) == 0

    fields = '[{"name": "phone", "label": "手机号", "kind": "mobile_cn"}]'
    page = new_product_form(admin_app, **base, recharge_fields=fields, sku_stock="").submit().follow()
    with app_request(registry) as req:
        product = req.db.scalar(select(Product))
        assert json.loads(product.recharge_fields)[0] == {"name": "phone", "label": "手机号", "kind": "mobile_cn",
                                                          "required": True}
        assert product.skus[0].stock is None  # unlimited
    assert "手机号" in page.forms["product-form"]["recharge_fields"].value
    assert "unlimited" in page.html.select_one("#sku-CMCC-50").text
    assert page.html.select_one('#sku-CMCC-50 a[href$="/stock"]') is None
    admin_app.get("/admin/skus/CMCC-50/stock", status=404)

    # the SKU page sets a stock for a non-card-key SKU; empty means unlimited again
    form = admin_app.get("/admin/skus/CMCC-50").forms["sku-form"]
    form["stock"] = "7"
    form.submit().follow()
    assert stock_of(registry, "CMCC-50") == 7
    form = admin_app.get("/admin/skus/CMCC-50").forms["sku-form"]
    assert form["stock"].value == "7"
    form["stock"] = ""
    form.submit().follow()
    assert stock_of(registry, "CMCC-50") is None


def test_sku_page_attributes_and_special_prices(admin_app, registry):
    pid = make_product(registry, "STEAM-50")
    page = admin_app.get("/admin/skus/STEAM-50")
    assert "stock" not in page.forms["sku-form"].fields  # a card-key SKU's stock is its keys
    form = page.forms["sku-form"]
    form["name"] = "50 元 (国区)"
    form["price"] = "49.5"
    form["cost_price"] = "40"
    form["low_stock_threshold"] = "5"
    form["attributes"] = "region=CN\n\nserver = 电信一区"
    form["level_prices"] = "gold=45.00\nsilver=48"
    form["tier_prices"] = "t1=40.00"
    form["visible"] = False
    page = form.submit().follow()
    assert "SKU STEAM-50 saved." in page.text
    with app_request(registry) as req:
        sku = req.db.scalar(select(Sku))
        assert (sku.name, sku.price, sku.cost_price, sku.low_stock_threshold, sku.visible) == \
            ("50 元 (国区)", 4950, 4000, 5, False)
        assert json.loads(sku.attributes) == {"region": "CN", "server": "电信一区"}
        prices = {(p.kind, p.ref): p.price for p in req.db.scalars(select(SkuPrice))}
        assert prices == {("level", "gold"): 4500, ("level", "silver"): 4800, ("tier", "t1"): 4000}
    form = page.forms["sku-form"]
    assert form["level_prices"].value == "gold=45.00\nsilver=48.00"
    assert form["attributes"].value == "region=CN\nserver=电信一区"

    for field, value, message in (("level_prices", "gold=4.5.0", "the price for gold must be a decimal"),
                                  ("tier_prices", "t1=0", "the price for t1 must be more than zero"),
                                  ("level_prices", "bad code!=1", "codes are letters"),
                                  ("attributes", "no equals sign", "line 1: write name=value")):
        form = admin_app.get("/admin/skus/STEAM-50").forms["sku-form"]
        form[field] = value
        form["name"] = "should not be saved"
        resp = form.submit(status=400)
        box = resp.html.select_one(f"[name={field}]").find_parent("div")
        assert message in box.text, (field, box.text)
    with app_request(registry) as req:
        assert req.db.scalar(select(Sku.name)) == "50 元 (国区)"
        assert req.db.scalar(select(func.count()).select_from(SkuPrice)) == 3

    # a second SKU for the product
    form = admin_app.get(f"/admin/products/{pid}/skus/new").forms["sku-form"]
    form["code"], form["name"], form["price"] = "STEAM-100", "100 元", "99"
    page = form.submit().follow()
    assert page.request.path == f"/admin/products/{pid}"
    assert page.html.select_one("#sku-STEAM-100") is not None


def test_delete_product_deletes_or_archives(admin_app, registry):
    gone = make_product(registry, "GONE-1")
    kept = make_product(registry, "KEPT-1")
    import_keys(admin_app, "GONE-1", "\n".join(SECRETS))
    import_keys(admin_app, "KEPT-1", "\n".join(SECRETS))
    with app_request(registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "KEPT-1"))
        inventory.reserve(req.db, sku_id, 1, "ORDER-1", utcnow() + dt.timedelta(minutes=15))

    resp = admin_app.get(f"/admin/products/{gone}").forms["delete-product"].submit().follow()
    assert "Product Product GONE-1 deleted." in resp.text
    assert count(registry, Product, Product.id == gone) == 0
    assert count(registry, Sku, Sku.code == "GONE-1") == 0
    assert count(registry, CardKey) == 3 and count(registry, KeyImport) == 1  # KEPT-1's

    resp = admin_app.get(f"/admin/products/{kept}").forms["delete-product"].submit().follow()
    assert "was archived, not deleted" in resp.text
    with app_request(registry) as req:
        product = req.db.get(Product, kept)
        assert product.archived and not product.visible
    assert [a[1] for a in audit_rows(registry, "product.archived")] == [str(kept)]


# -- card-key stock -----------------------------------------------------------------------


def test_preview_writes_nothing(admin_app, registry):
    make_product(registry, "STEAM-50")
    resp = import_keys(admin_app, "STEAM-50", "\n".join(SECRETS + [SECRETS[0], "bad\x01line"]), action="preview")
    box = resp.html.select_one("#import-preview")
    assert "nothing was written" in box.text
    assert re.sub(r"\s+", " ", box.select_one("p").text) == "5 lines: 3 new keys, 1 duplicates, 1 invalid lines."
    sample = [td.text for td in box.select("#preview-sample td")]
    assert "AA***************22" in sample
    for secret in SECRETS:
        assert secret not in resp.text.replace(resp.forms["import-form"]["keys"].value, "")
    assert resp.forms["import-form"]["keys"].value.startswith(SECRETS[0])  # kept for the Import button
    assert count(registry, CardKey) == 0 and count(registry, KeyImport) == 0
    assert stock_of(registry, "STEAM-50") == 0


def test_paste_import_then_reimport_adds_nothing(admin_app, registry):
    make_product(registry, "STEAM-50")
    resp = import_keys(admin_app, "STEAM-50", "\n".join(SECRETS) + "\n\n" + SECRETS[1] + "\r\n")
    report = resp.html.select_one("#import-report")
    assert re.sub(r"\s+", " ", report.select_one("p").text) == \
        "3 keys imported, 1 duplicates skipped, 0 invalid lines skipped."
    assert resp.forms["import-form"]["keys"].value == ""
    assert stock_of(registry, "STEAM-50") == 3
    assert resp.html.select_one("#count-available strong").text == "3"

    resp = import_keys(admin_app, "STEAM-50", "\n".join(SECRETS))
    assert "0 keys imported, 3 duplicates skipped" in re.sub(r"\s+", " ", resp.html.select_one("#import-report").text)
    assert stock_of(registry, "STEAM-50") == 3 and count(registry, CardKey) == 3
    with app_request(registry) as req:
        runs = req.db.scalars(select(KeyImport).order_by(KeyImport.id)).all()
        assert [(r.source, r.created_by, r.total, r.lines, r.imported, r.duplicates) for r in runs] == [
            ("pasted", "admin@example.com", 4, 4, 3, 1), ("pasted", "admin@example.com", 3, 3, 0, 3)]
    rows = resp.html.select("#import-table tbody tr")
    assert len(rows) == 2 and rows[0]["id"] == f"import-{runs[1].id}"  # newest first
    assert [a[2]["imported"] for a in audit_rows(registry, "keys.import")] == [3, 0]


def test_file_upload_import_with_a_separator(admin_app, registry):
    make_product(registry, "QB-10")
    content = "卡号,卡密\nNO-0001,SECRET-AAAA-0001\nNO-0002,SECRET-AAAA-0002\nnot a pair\n\nNO-0003,SECRET-AAAA-0003\n"
    resp = import_keys(admin_app, "QB-10", upload=("keys.csv", content.encode("utf-8")), separator="comma")
    text = re.sub(r"\s+", " ", resp.html.select_one("#import-report").text)
    assert "3 keys imported, 0 duplicates skipped, 1 invalid lines skipped." in text
    assert "Invalid lines: 4" in text
    with app_request(registry) as req:
        run = req.db.scalar(select(KeyImport))
        assert (run.source, run.imported, run.invalid) == ("keys.csv", 3, 1)
        keys = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        plain = [inventory.reveal(registry["kameng.keyring"], k) for k in keys]
    assert plain == [("NO-0001", "SECRET-AAAA-0001"), ("NO-0002", "SECRET-AAAA-0002"),
                     ("NO-0003", "SECRET-AAAA-0003")]

    # "----" separated text file with a BOM and Windows line ends, previewed then imported
    content = "\ufeffNO-1----SECRET-BBBB-1\r\nNO-2----SECRET-BBBB-2\r\n".encode("utf-8")
    resp = import_keys(admin_app, "QB-10", upload=("批次2.txt", content), separator="dashes", action="preview")
    assert "2 new keys" in resp.html.select_one("#import-preview").text
    assert count(registry, CardKey) == 3
    resp = import_keys(admin_app, "QB-10", upload=("批次2.txt", content), separator="dashes")
    assert "2 keys imported" in resp.html.select_one("#import-report").text
    assert stock_of(registry, "QB-10") == 5


def test_bad_uploads_are_refused(admin_app, registry):
    make_product(registry, "QB-10")
    gbk = "卡号,卡密\n一,二\n".encode("gbk")
    resp = import_keys(admin_app, "QB-10", upload=("keys.txt", gbk), separator="comma", status=400)
    assert "The file is not UTF-8 text" in resp.html.select_one("#import-error").text
    resp = import_keys(admin_app, "QB-10", upload=("keys.xlsx", b"PK\x03\x04"), status=400)
    assert "Choose a .txt or .csv file." in resp.text
    resp = import_keys(admin_app, "QB-10", "  \n\n", status=400)
    assert "Paste some keys or choose a file." in resp.text
    token = resp.forms["import-form"]["csrf_token"].value
    resp = admin_app.post("/admin/skus/QB-10/import", {"csrf_token": token, "keys": "x", "separator": ";;",
                                                      "action": "import"}, status=400)
    assert "Choose a separator from the list." in resp.text
    assert count(registry, CardKey) == 0 and count(registry, KeyImport) == 0


def test_upload_size_limit(admin_app, registry, monkeypatch):
    from kameng.admin import catalog as views

    monkeypatch.setattr(views, "MAX_UPLOAD", 100)
    make_product(registry, "QB-10")
    resp = import_keys(admin_app, "QB-10", upload=("big.txt", b"x" * 101), status=400)
    assert "larger than 20 MB" in resp.text
    assert count(registry, KeyImport) == 0


def test_stock_page_never_shows_an_unrevealed_secret(admin_app, registry):
    make_product(registry, "STEAM-50")
    resp = import_keys(admin_app, "STEAM-50", "\n".join(SECRETS))
    for page in (resp, admin_app.get("/admin/skus/STEAM-50/stock"),
                 admin_app.get("/admin/skus/STEAM-50/stock", {"state": "available"})):
        for secret in SECRETS:
            assert secret not in page.text
            assert secret[:8] not in page.text and secret[-8:] not in page.text
        assert len(page.html.select("#key-table tbody tr")) == 3
    page = admin_app.get("/admin/skus/STEAM-50/stock")
    # the progress script is a static file, the form names the progress URL
    assert page.html.select_one('script[src$="/static/admin-import.js"]') is not None
    assert page.forms["import-form"].action.endswith("/admin/skus/STEAM-50/import")
    assert page.html.select_one("#import-form")["data-progress-url"].endswith("/api/v1/admin/skus/STEAM-50/imports")
    assert "style=" not in page.text and "<script>" not in page.text
    assert admin_app.get("/static/admin-import.js").content_type in ("application/javascript", "text/javascript")


def test_keys_list_pages_and_filters(admin_app, registry):
    make_product(registry, "STEAM-50")
    import_keys(admin_app, "STEAM-50", "\n".join(f"KEY-{i:04d}-XXXXXXXX" for i in range(60)))
    page = admin_app.get("/admin/skus/STEAM-50/stock")
    assert len(page.html.select("#key-table tbody tr")) == 50 and "Page 1 of 2" in page.text
    page = admin_app.get("/admin/skus/STEAM-50/stock", {"page": "2"})
    assert len(page.html.select("#key-table tbody tr")) == 10
    voids = [f for f in page.forms.values() if "/void" in f.action]
    voids[0].submit().follow()
    page = admin_app.get("/admin/skus/STEAM-50/stock", {"state": "void"})
    assert len(page.html.select("#key-table tbody tr")) == 1
    assert page.html.select_one("#count-void strong").text == "1"
    assert admin_app.get("/admin/skus/STEAM-50/stock", {"state": "sold"}).html.select_one("#key-table") is None


def test_reveal_shows_the_key_and_is_audited(admin_app, registry):
    make_product(registry, "STEAM-50")
    import_keys(admin_app, "STEAM-50", "NO-1,SECRET-REVEAL-ME-1\nNO-2,SECRET-REVEAL-ME-2", separator="comma")
    key_id = key_ids(registry, "STEAM-50")[1]
    page = admin_app.get("/admin/skus/STEAM-50/stock")
    form = next(f for f in page.forms.values() if f.action.endswith(f"/admin/keys/{key_id}/reveal"))
    resp = form.submit()
    assert resp.status_int == 200
    assert resp.html.select_one("#key-secret").text == "SECRET-REVEAL-ME-2"
    assert resp.html.select_one("#key-number").text == "NO-2"
    assert "SECRET-REVEAL-ME-1" not in resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    rows = audit_rows(registry, "key.reveal")
    assert rows == [("admin@example.com", str(key_id), {"sku": "STEAM-50"})]
    with app_request(registry) as req:
        assert "SECRET-REVEAL" not in " ".join(r.detail for r in req.db.scalars(select(AuditEntry)))
    admin_app.post("/admin/keys/999999/reveal", {"csrf_token": form["csrf_token"].value}, status=404)
    admin_app.post("/admin/keys/abc/reveal", {"csrf_token": form["csrf_token"].value}, status=404)


def test_void_takes_an_available_key_out_of_sale(admin_app, registry):
    make_product(registry, "STEAM-50")
    import_keys(admin_app, "STEAM-50", "\n".join(SECRETS))
    ids = key_ids(registry, "STEAM-50")
    page = admin_app.get("/admin/skus/STEAM-50/stock", {"state": "available"})
    form = next(f for f in page.forms.values() if f.action.endswith(f"/admin/keys/{ids[0]}/void"))
    resp = form.submit()
    assert resp.location.endswith("/admin/skus/STEAM-50/stock?state=available")
    assert f"Key #{ids[0]} is void" in resp.follow().text
    assert key_ids(registry, "STEAM-50", "void") == [ids[0]]
    assert stock_of(registry, "STEAM-50") == 2
    assert audit_rows(registry, "key.void") == [("admin@example.com", str(ids[0]), {"sku": "STEAM-50"})]

    resp = admin_app.post(f"/admin/keys/{ids[0]}/void", {"csrf_token": form["csrf_token"].value}).follow()
    assert "only an available key can be" in resp.text
    assert stock_of(registry, "STEAM-50") == 2 and len(audit_rows(registry, "key.void")) == 1
    page = admin_app.get("/admin/skus/STEAM-50/stock")
    assert page.html.select_one(f'#key-{ids[0]} form[action$="/void"]') is None


def test_export_has_exactly_the_available_keys_and_is_logged(admin_app, registry):
    make_product(registry, "STEAM-50")
    make_product(registry, "OTHER-1")
    import_keys(admin_app, "STEAM-50", "N1,S-0001\nN2,S-0002\nN3,\"S,3\"\nN4,S-0004", separator="pipe")
    import_keys(admin_app, "STEAM-50", "N1|S-0001\nN2|S-0002\nN3|S,3\nN4|S-0004", separator="pipe")
    import_keys(admin_app, "OTHER-1", "OTHER-SECRET-1")
    ids = key_ids(registry, "STEAM-50")
    with app_request(registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "STEAM-50"))
        reserved = inventory.reserve(req.db, sku_id, 1, "ORDER-1", utcnow() + dt.timedelta(minutes=15))
        inventory.void(req.db, ids[-1])
    assert reserved == [ids[0]]

    page = admin_app.get("/admin/skus/STEAM-50/stock")
    resp = page.forms["export-keys"].submit()
    assert resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="STEAM-50-available-keys.csv"'
    assert resp.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(resp.body.decode("utf-8"))))
    assert rows == [["number", "secret"], ["N2", "S-0002"], ["N3", "S,3"]]
    assert audit_rows(registry, "keys.export") == [("admin@example.com", "STEAM-50", {"count": 2})]
    with app_request(registry) as req:
        assert "S-0002" not in " ".join(r.detail for r in req.db.scalars(select(AuditEntry)))


# -- access -------------------------------------------------------------------------------


def test_unknown_ids_are_404(admin_app, registry):
    make_product(registry, "MANUAL-1", ptype="manual")
    for url in ("/admin/categories/999", "/admin/categories/x", "/admin/products/999", "/admin/products/0",
                "/admin/products/999/skus/new", "/admin/skus/NOPE", "/admin/skus/NOPE/stock",
                "/admin/skus/MANUAL-1/stock"):
        admin_app.get(url, status=404)
    token = admin_app.get("/admin/categories").forms["new-category"]["csrf_token"].value
    for url in ("/admin/categories/999/delete", "/admin/products/999/delete", "/admin/skus/NOPE/import",
                "/admin/skus/NOPE/export", "/admin/skus/MANUAL-1/export", "/admin/keys/999/void"):
        admin_app.post(url, {"csrf_token": token}, status=404)


def test_a_post_without_the_csrf_token_is_refused(admin_app, registry):
    pid = make_product(registry, "STEAM-50")
    admin_app.get("/admin/categories")
    resp = admin_app.post("/admin/categories", {"name": "no token"}, status=400)
    assert "did not come from this site" in resp.text
    admin_app.post("/admin/categories", {"name": "bad token", "csrf_token": "x" * 40}, status=400)
    admin_app.post(f"/admin/products/{pid}/delete", {}, status=400)
    admin_app.post("/admin/skus/STEAM-50/import", {"keys": "A", "action": "import"}, status=400)
    admin_app.post("/admin/skus/STEAM-50/export", {}, status=400)
    assert count(registry, Category) == 0 and count(registry, Product) == 1 and count(registry, CardKey) == 0


def test_a_buyer_gets_403_everywhere(testapp, registry):
    pid = make_product(registry, "STEAM-50")
    cat = make_category(registry)
    with app_request(registry) as req:
        accounts.create_user(req.db, "buyer@example.com", "buyer-password-1")
        sku_id = req.db.scalar(select(Sku.id))
    engine = registry["kameng.write_engine"]
    inventory.import_keys(lambda: Session(engine), registry["kameng.keyring"], sku_id, ["SECRET-1"])
    key_id = key_ids(registry, "STEAM-50")[0]
    assert login(testapp, "buyer@example.com", "buyer-password-1").status_int == 302
    for url in ("/admin/categories", f"/admin/categories/{cat}", "/admin/products", "/admin/products/new",
                f"/admin/products/{pid}", f"/admin/products/{pid}/skus/new", "/admin/skus/STEAM-50",
                "/admin/skus/STEAM-50/stock"):
        testapp.get(url, status=403)
    token = testapp.get("/").html.select_one('input[name="csrf_token"]')["value"]
    for url in ("/admin/categories", f"/admin/categories/{cat}", f"/admin/categories/{cat}/delete",
                "/admin/products/new", f"/admin/products/{pid}", f"/admin/products/{pid}/delete",
                f"/admin/products/{pid}/skus/new", "/admin/skus/STEAM-50", "/admin/skus/STEAM-50/import",
                "/admin/skus/STEAM-50/export", f"/admin/keys/{key_id}/reveal", f"/admin/keys/{key_id}/void"):
        resp = testapp.post(url, {"csrf_token": token, "name": "x", "keys": "A"}, status=403)
        assert "SECRET-1" not in resp.text
    assert count(registry, CardKey, CardKey.state == "available") == 1
    assert count(registry, Product) == 1 and count(registry, Category) == 1


@pytest.mark.parametrize("lang", ["en"])
def test_pages_render_without_errors(admin_app, registry, lang):
    cat = make_category(registry, "游戏点卡")
    pid = make_product(registry, "STEAM-50", category_id=cat)
    make_product(registry, "CMCC-50", ptype="direct_recharge", category_id=cat)
    for url in ("/admin/categories", f"/admin/categories/{cat}", "/admin/products", "/admin/products/new",
                f"/admin/products/{pid}", f"/admin/products/{pid}/skus/new", "/admin/skus/STEAM-50",
                "/admin/skus/CMCC-50", "/admin/skus/STEAM-50/stock"):
        page = admin_app.get(url)
        assert page.status_int == 200
        assert "style=" not in page.text
        # every POST form carries the CSRF token
        for form in page.forms.values():
            if form.method.upper() == "POST":
                assert "csrf_token" in form.fields, (url, form.id)
