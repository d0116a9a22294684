"""The storefront a buyer browses: the home page (categories, hot and
recommended rows, the catalog), a category's page and a product's page with
its SKU picker, and what must never reach them (scripts, hidden things,
usage instructions)."""
from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import event, select

from kameng.catalog.models import Category, Product, Sku
from kameng.catalog.service import save_category, save_product
from kameng.testing import app_request

CNY = "CNY"


# -- arranging a shelf -----------------------------------------------------------------------


def category(db, name, parent=None, **extra):
    data = {"name": name, **extra}
    if parent is not None:
        data["parent_id"] = str(parent.id)
    return save_category(db, data)


_codes = itertools.count(1)


def product(db, name, cat=None, skus=None, **extra):
    data = {"name": name, "type": "card_key",
            "skus": skus or [{"code": f"SKU-{next(_codes)}", "name": "1 张", "price": "10.00"}], **extra}
    if cat is not None:
        data["category_id"] = str(cat.id)
    return save_product(db, data, CNY)


def set_stock(db, code, stock):
    """Set a SKU's stock counter (for card keys the inventory keeps it; a
    test may set it directly). None is unlimited: it has to be written by an
    UPDATE, because the ORM gives a new row the column's default 0 for None."""
    sku = db.scalar(select(Sku).where(Sku.code == code))
    sku.stock = stock
    db.flush()


@pytest.fixture(autouse=True)
def _unnest_categories_after_test(registry):
    """kameng.testing empties every table after a test, but categories.parent_id
    is ON DELETE RESTRICT, which refuses one DELETE of a parent and its
    children: flatten the tree first."""
    yield
    with app_request(registry) as req:
        for cat in req.db.scalars(select(Category).where(Category.parent_id.is_not(None))):
            cat.parent_id = None
        req.db.flush()


@pytest.fixture
def shelf(registry):
    """Two top-level categories, one with a child and one with a hidden
    child; products that are hot, recommended, hidden, archived."""
    ids = {}
    with app_request(registry) as req:
        db = req.db
        games = category(db, "游戏点卡", sort="1")
        steam_cat = category(db, "Steam 专区", parent=games)
        secret = category(db, "内部分类", parent=games, visible="false")
        phones = category(db, "话费充值", sort="2")
        hidden_top = category(db, "隐藏分类", visible="false", sort="3")
        steam = product(db, "Steam 钱包充值码", steam_cat, hot=True, description="<p>官方充值码</p>",
                        skus=[{"code": "STEAM-50", "name": "50 元", "price": "50.00"},
                              {"code": "STEAM-100", "name": "100 元", "price": "100.00"}])
        qb = product(db, "腾讯 Q 币卡", games, recommended=True,
                     skus=[{"code": "QB-10", "name": "10 Q币", "price": "10.00"}])
        cmcc = product(db, "中国移动话费直充", phones, type="direct_recharge",
                       recharge_fields=[{"name": "phone", "label": "手机号", "kind": "mobile_cn"}],
                       skus=[{"code": "CMCC-50", "name": "50 元", "price": "49.80"}])
        product(db, "下架商品", games, visible=False, skus=[{"code": "OFF-1", "name": "x", "price": "1.00"}])
        product(db, "归档商品", games, archived=True, skus=[{"code": "ARC-1", "name": "x", "price": "1.00"}])
        product(db, "内部商品", secret, skus=[{"code": "SECRET-1", "name": "x", "price": "1.00"}])
        product(db, "隐藏分类商品", hidden_top, skus=[{"code": "HID-1", "name": "x", "price": "1.00"}])
        set_stock(db, "STEAM-50", 12)
        set_stock(db, "STEAM-100", 3)
        set_stock(db, "QB-10", 40)
        set_stock(db, "CMCC-50", None)
        ids.update(games=games.id, steam_cat=steam_cat.id, secret=secret.id, phones=phones.id,
                   hidden_top=hidden_top.id, steam=steam.id, qb=qb.id, cmcc=cmcc.id)
        ids["off"] = db.scalar(select(Product.id).where(Product.name == "下架商品"))
        ids["archived"] = db.scalar(select(Product.id).where(Product.name == "归档商品"))
        ids["secret_product"] = db.scalar(select(Product.id).where(Product.name == "内部商品"))
        ids["hidden_cat_product"] = db.scalar(select(Product.id).where(Product.name == "隐藏分类商品"))
    return ids


def texts(resp, selector):
    return [" ".join(el.get_text(" ", strip=True).split()) for el in resp.html.select(selector)]


# -- home --------------------------------------------------------------------------------------


def test_home_shows_category_navigation_with_children(testapp, shelf):
    resp = testapp.get("/")
    nav = resp.html.select_one("nav.catnav")
    top = [li.find("a").get_text(strip=True) for li in nav.select(":scope > ul > li")]
    assert top == ["游戏点卡", "话费充值"]  # the hidden top-level category is not there
    children = [a.get_text(strip=True) for a in nav.select(":scope > ul > li ul a")]
    assert children == ["Steam 专区"]  # nor the hidden child
    assert nav.find("a", string="游戏点卡")["href"].endswith(f"/c/{shelf['games']}")


def test_home_shows_hot_and_recommended_rows(testapp, shelf):
    resp = testapp.get("/")
    assert texts(resp, ".row-hot .tile-name") == ["Steam 钱包充值码"]
    assert texts(resp, ".row-recommended .tile-name") == ["腾讯 Q 币卡"]
    hot = resp.html.select_one(".row-hot .tile")
    assert hot["href"].endswith(f"/p/{shelf['steam']}")
    assert "from CNY 50.00" in texts(resp, ".row-hot .tile-foot")[0]


def test_home_without_hot_or_recommended_products_has_no_rows(testapp, registry):
    with app_request(registry) as req:
        product(req.db, "普通商品", category(req.db, "分类"))
    resp = testapp.get("/")
    assert not resp.html.select(".row-hot") and not resp.html.select(".row-recommended")
    assert texts(resp, ".catalog article.product h3") == ["普通商品"]


def test_home_groups_products_by_category(testapp, shelf):
    resp = testapp.get("/")
    groups = {g.find("h2").get_text(strip=True): [h.get_text(strip=True) for h in g.select("article.product h3")]
              for g in resp.html.select(".catalog .category")}
    assert groups == {"游戏点卡": ["腾讯 Q 币卡"], "Steam 专区": ["Steam 钱包充值码"],
                      "话费充值": ["中国移动话费直充"]}
    for gone in ("下架商品", "归档商品", "内部商品", "隐藏分类商品"):
        assert gone not in resp.text
    steam = resp.html.find("a", string="Steam 钱包充值码")
    assert steam["href"].endswith(f"/p/{shelf['steam']}")
    assert "CNY 50.00" in texts(resp, ".catalog .skus .price")


def _count_queries(registry, fn) -> int:
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = registry["kameng.engine"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def _fill(registry, start, n):
    with app_request(registry) as req:
        cats = [category(req.db, f"分类 {start}-{i}") for i in range(3)]
        for i in range(start, start + n):
            product(req.db, f"商品 {i}", cats[i % 3], hot=i % 2 == 0, recommended=i % 3 == 0,
                    skus=[{"code": f"P{i}-A", "name": "A", "price": "1.00"},
                          {"code": f"P{i}-B", "name": "B", "price": "2.00", "visible": i % 4 != 0}])


def test_home_runs_the_same_few_queries_for_3_or_30_products(testapp, registry):
    _fill(registry, 0, 3)
    testapp.get("/")  # warm: first-request work is not the page's
    few = _count_queries(registry, lambda: testapp.get("/"))
    _fill(registry, 3, 27)
    resp = None

    def get():
        nonlocal resp
        resp = testapp.get("/")

    many = _count_queries(registry, get)
    assert len(resp.html.select(".catalog article.product")) == 30
    assert many == few, f"{few} queries for 3 products, {many} for 30"
    assert few <= 8


# -- category pages ----------------------------------------------------------------------------


def test_category_page_lists_its_own_and_its_subcategories_products(testapp, shelf):
    resp = testapp.get(f"/c/{shelf['games']}")
    assert resp.html.find("h1").get_text(strip=True) == "游戏点卡"
    assert texts(resp, ".subcategories a") == ["Steam 专区"]
    names = texts(resp, "article.product h3")
    assert sorted(names) == ["Steam 钱包充值码", "腾讯 Q 币卡"]
    for gone in ("下架商品", "归档商品", "内部商品"):
        assert gone not in resp.text
    assert "<title>游戏点卡 - kameng</title>" in resp.text


def test_subcategory_page_has_a_breadcrumb_of_its_parents(testapp, shelf):
    resp = testapp.get(f"/c/{shelf['steam_cat']}")
    crumbs = resp.html.select_one("nav.breadcrumb")
    assert [a.get_text(strip=True) for a in crumbs.find_all("a")] == ["Home", "游戏点卡"]
    assert crumbs.find("a", string="游戏点卡")["href"].endswith(f"/c/{shelf['games']}")
    assert crumbs.select_one(".here").get_text(strip=True) == "Steam 专区"
    assert texts(resp, "article.product h3") == ["Steam 钱包充值码"]
    # the section is highlighted, and the page itself is the current one
    assert texts(resp, "nav.catnav a.current") == ["游戏点卡", "Steam 专区"]
    assert texts(resp, "nav.catnav a[aria-current=page]") == ["Steam 专区"]


def test_empty_category_says_so(testapp, registry):
    with app_request(registry) as req:
        cid = category(req.db, "空分类").id
    resp = testapp.get(f"/c/{cid}")
    assert "No goods in this category yet." in resp.text


@pytest.mark.parametrize("which", ["secret", "hidden_top", "unknown", "word", "huge", "zero"])
def test_hidden_or_unknown_category_is_404(testapp, shelf, which):
    path = {"unknown": "/c/987654", "word": "/c/abc", "huge": "/c/99999999999999999999999",
            "zero": "/c/0"}.get(which) or f"/c/{shelf[which]}"
    resp = testapp.get(path, status=404)
    assert "Not found." in resp.text


def test_category_under_a_hidden_category_is_404(testapp, registry):
    with app_request(registry) as req:
        parent = category(req.db, "隐藏父类", visible="false")
        child = category(req.db, "可见子类", parent=parent)
        product(req.db, "子类商品", child)
        child_id = child.id
    testapp.get(f"/c/{child_id}", status=404)
    assert "子类商品" not in testapp.get("/").text


# -- product pages ----------------------------------------------------------------------------


def _radios(resp):
    return {r["value"]: r for r in resp.html.select("form#buy-form input[type=radio][name=sku]")}


def test_product_page_shows_skus_prices_and_stock(testapp, shelf):
    resp = testapp.get(f"/p/{shelf['steam']}")
    assert resp.html.find("h1").get_text(strip=True) == "Steam 钱包充值码"
    assert "<title>Steam 钱包充值码 - kameng</title>" in resp.text
    radios = _radios(resp)
    assert list(radios) == ["STEAM-50", "STEAM-100"]
    options = resp.html.select("label.sku-option")
    assert [o.select_one(".price").get_text(strip=True) for o in options] == ["CNY 50.00", "CNY 100.00"]
    assert [o.select_one(".stock").get_text(strip=True) for o in options] == ["Stock: 12", "Stock: 3"]
    assert radios["STEAM-50"].has_attr("checked") and not radios["STEAM-100"].has_attr("checked")
    assert "Card key, delivered automatically" in resp.text
    crumbs = [a.get_text(strip=True) for a in resp.html.select("nav.breadcrumb a")]
    assert crumbs == ["Home", "游戏点卡", "Steam 专区"]


def test_sold_out_sku_is_shown_but_not_selectable(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "点卡", skus=[{"code": "A-1", "name": "有货", "price": "50.00"},
                                            {"code": "A-2", "name": "售罄", "price": "60.00"}]).id
        set_stock(req.db, "A-1", 5)  # A-2 keeps the 0 keys it was created with
    resp = testapp.get(f"/p/{pid}")
    radios = _radios(resp)
    assert radios["A-2"].has_attr("disabled") and not radios["A-2"].has_attr("checked")
    assert not radios["A-1"].has_attr("disabled") and radios["A-1"].has_attr("checked")
    sold = resp.html.select("label.sku-option")[1]
    assert "disabled" in sold["class"] and sold.select_one(".stock").get_text(strip=True) == "Sold out"
    assert sold.select_one(".price").get_text(strip=True) == "CNY 60.00"


def test_a_product_sold_out_everywhere_cannot_be_bought(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "卖光了", skus=[{"code": "B-1", "name": "x", "price": "5.00"}]).id
    resp = testapp.get(f"/p/{pid}")
    assert all(r.has_attr("disabled") for r in _radios(resp).values())
    assert resp.html.select_one("button.buy").has_attr("disabled")
    assert "soldout-note" in resp.text


def test_unlimited_stock_shows_as_in_stock(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "人工代充", type="manual",
                      skus=[{"code": "M-1", "name": "一次", "price": "20.00"}]).id
        set_stock(req.db, "M-1", None)
    resp = testapp.get(f"/p/{pid}")
    option = resp.html.select_one("label.sku-option")
    assert option.select_one(".stock").get_text(strip=True) == "In stock"
    assert not _radios(resp)["M-1"].has_attr("disabled")
    assert "an admin fulfils this order by hand" in resp.text.lower()


def test_stock_as_plenty_few_or_out_when_the_shop_says_so(testapp, registry):
    from kameng import shop

    with app_request(registry) as req:
        shop.save(req.db, {"stock_display": "level"})
        pid = product(req.db, "库存档位", skus=[{"code": f"V-{i}", "name": f"v{i}", "price": "1.00"}
                                            for i in range(4)]).id
        for code, stock in (("V-0", 500), ("V-1", 3), ("V-2", 0), ("V-3", None)):
            set_stock(req.db, code, stock)
    resp = testapp.get(f"/p/{pid}")
    assert texts(resp, "label.sku-option .stock") == ["In stock", "Only a few left", "Sold out", "In stock"]
    assert "Stock: 500" not in resp.text


def test_quantity_input_is_bounded_by_the_sku_limits(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "限购商品", type="manual", skus=[
            {"code": "L-1", "name": "x", "price": "3.00", "min_quantity": "2", "max_quantity": "5", "stock": "9"}]).id
    qty = testapp.get(f"/p/{pid}").html.select_one("input[name=quantity]")
    assert (qty["type"], qty["min"], qty["max"], qty["value"]) == ("number", "2", "5", "2")


def test_quantity_never_exceeds_the_stock(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "少量库存", skus=[
            {"code": "S-1", "name": "x", "price": "3.00", "max_quantity": "50"}]).id
        set_stock(req.db, "S-1", 4)
    qty = testapp.get(f"/p/{pid}").html.select_one("input[name=quantity]")
    assert (qty["min"], qty["max"]) == ("1", "4")


def test_skus_with_different_limits_show_their_own(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "多规格", type="manual", skus=[
            {"code": "D-1", "name": "小", "price": "1.00", "max_quantity": "3"},
            {"code": "D-2", "name": "大", "price": "9.00", "min_quantity": "2", "max_quantity": "20"}]).id
        set_stock(req.db, "D-1", None)
        set_stock(req.db, "D-2", None)
    resp = testapp.get(f"/p/{pid}")
    qty = resp.html.select_one("input[name=quantity]")
    assert (qty["min"], qty["max"]) == ("1", "20")  # what any SKU allows; the server checks the order
    assert texts(resp, "label.sku-option .limits") == ["Per order: 1 to 3", "Per order: 2 to 20"]


def test_hidden_skus_are_absent(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "部分隐藏", skus=[
            {"code": "H-1", "name": "看得见", "price": "1.00"},
            {"code": "H-2", "name": "看不见的规格", "price": "2.00", "visible": "false"}]).id
    resp = testapp.get(f"/p/{pid}")
    assert list(_radios(resp)) == ["H-1"]
    assert "看不见的规格" not in resp.text and "H-2" not in resp.text
    assert "看不见的规格" not in testapp.get("/").text


def test_direct_recharge_product_asks_for_the_account(testapp, registry):
    with app_request(registry) as req:
        cat = category(req.db, "游戏直充")
        pid = product(req.db, "王者荣耀点券", cat, type="direct_recharge", recharge_fields=[
            {"name": "phone", "label": "手机号", "kind": "mobile_cn"},
            {"name": "qq", "label": "QQ 号", "kind": "qq"},
            {"name": "mail", "label": "邮箱", "kind": "email", "required": False},
            {"name": "server", "label": "区服", "kind": "choice", "choices": ["安卓 QQ 区", "苹果 QQ 区"]},
            {"name": "role", "label": "角色名", "kind": "text", "pattern": "[A-Za-z0-9_]{4,32}"},
        ], skus=[{"code": "WZ-60", "name": "60 点券", "price": "6.00"}]).id
    resp = testapp.get(f"/p/{pid}")
    form = resp.html.select_one("form#buy-form")
    phone = form.select_one("input[name='recharge.phone']")
    assert (phone["type"], phone["inputmode"], phone["pattern"], phone["maxlength"]) == (
        "tel", "numeric", r"1[3-9]\d{9}", "11")
    assert phone.has_attr("required")
    qq = form.select_one("input[name='recharge.qq']")
    assert (qq["inputmode"], qq["pattern"]) == ("numeric", r"[1-9]\d{4,11}")
    mail = form.select_one("input[name='recharge.mail']")
    assert mail["type"] == "email" and not mail.has_attr("required")
    server = form.select_one("select[name='recharge.server']")
    assert [o.get_text(strip=True) for o in server.find_all("option")][1:] == ["安卓 QQ 区", "苹果 QQ 区"]
    assert server.find("option")["value"] == "" and server.has_attr("required")
    role = form.select_one("input[name='recharge.role']")
    assert role["pattern"] == "[A-Za-z0-9_]{4,32}" and role["type"] == "text"
    labels = {lab["for"]: lab for lab in form.select(".recharge-fields label")}
    assert labels["recharge-phone"].select_one("abbr.req") is not None
    assert labels["recharge-mail"].select_one(".optional") is not None
    assert "Direct recharge" in resp.text


def test_card_key_products_have_no_recharge_fields(testapp, shelf):
    resp = testapp.get(f"/p/{shelf['steam']}")
    assert not resp.html.select(".recharge-fields")


def test_buy_form_goes_to_checkout(testapp, shelf):
    """The buy form asks for the confirm page with GET (it writes nothing,
    so it carries no CSRF token that a URL would leak)."""
    resp = testapp.get(f"/p/{shelf['steam']}")
    form = resp.html.select_one("form#buy-form")
    assert form["method"] == "get" and form["action"].endswith(f"/checkout/{shelf['steam']}")
    assert not form.select_one("button.buy").has_attr("disabled")
    assert "Checkout opens soon" not in resp.text
    assert not form.select("input[name=csrf_token]")
    page = resp.forms["buy-form"].submit()
    assert page.request.path == f"/checkout/{shelf['steam']}" and page.request.GET["sku"] == "STEAM-50"
    assert page.forms["checkout-form"]["sku"].value == "STEAM-50"


def test_choices_survive_a_round_trip_through_the_form(testapp, shelf):
    resp = testapp.get(f"/p/{shelf['steam']}", params={"sku": "STEAM-100", "quantity": "2"})
    radios = _radios(resp)
    assert radios["STEAM-100"].has_attr("checked") and not radios["STEAM-50"].has_attr("checked")
    assert resp.html.select_one("input[name=quantity]")["value"] == "2"
    # a value out of bounds, or not a number, falls back to the SKU's minimum
    for bad in ("0", "1000", "-1", "x", "1.5"):
        qty = testapp.get(f"/p/{shelf['steam']}", params={"quantity": bad}).html.select_one("input[name=quantity]")
        assert qty["value"] == "1"


@pytest.mark.parametrize("which", ["off", "archived", "secret_product", "hidden_cat_product"])
def test_hidden_or_archived_product_is_404(testapp, shelf, which):
    testapp.get(f"/p/{shelf[which]}", status=404)


@pytest.mark.parametrize("path", ["/p/987654", "/p/abc", "/p/-1", "/p/99999999999999999999999"])
def test_unknown_product_is_404(testapp, shelf, path):
    testapp.get(path, status=404)


def test_archived_product_that_is_still_visible_is_404(testapp, registry):
    with app_request(registry) as req:
        p = product(req.db, "旧商品")
        p.archived, p.visible = True, True
        req.db.flush()
        pid = p.id
    testapp.get(f"/p/{pid}", status=404)
    assert "旧商品" not in testapp.get("/").text


def test_product_without_a_category_has_a_page(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "无分类商品").id
    resp = testapp.get(f"/p/{pid}")
    assert [a.get_text(strip=True) for a in resp.html.select("nav.breadcrumb a")] == ["Home"]


def test_images_and_tags_are_shown(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "有图商品", images=["https://img.example.com/a.png", "/static/b.png"],
                      tags="热卖, 秒发，官方").id
    resp = testapp.get(f"/p/{pid}")
    assert resp.html.select_one(".gallery img.main-image")["src"] == "https://img.example.com/a.png"
    assert [i["src"] for i in resp.html.select(".gallery .thumbs img")] == ["/static/b.png"]
    assert texts(resp, ".tags .tag") == ["热卖", "秒发", "官方"]


# -- nothing unsafe reaches a page ----------------------------------------------------------------

XSS_DESCRIPTION = ('<p>Hello <b>buyer</b></p><script>alert("desc")</script>'
                   '<a href="javascript:alert(1)" onclick="steal()">link</a><img src="x" onerror="alert(2)">')


def test_description_is_sanitised_html(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "富文本商品", category(req.db, "分类"), description=XSS_DESCRIPTION).id
    resp = testapp.get(f"/p/{pid}")
    details = resp.html.select_one(".product-details .rich")
    assert details.find("b").get_text() == "buyer"  # rendered as HTML, not as text
    assert "<script" not in resp.text and 'alert("desc")' not in resp.text
    assert "javascript:" not in resp.text and "onclick" not in resp.text and "onerror" not in resp.text
    home = testapp.get("/")
    assert "<script" not in home.text and "onerror" not in home.text
    assert "Hello buyer" in texts(home, "article.product .desc")[0]


def test_a_description_written_around_the_service_is_still_sanitised(testapp, registry):
    with app_request(registry) as req:
        p = product(req.db, "旁路商品")
        p.description = XSS_DESCRIPTION  # as a careless import or migration might
        req.db.flush()
        pid = p.id
    resp = testapp.get(f"/p/{pid}")
    assert "<script" not in resp.text and "onerror" not in resp.text and "javascript:" not in resp.text


def test_names_and_tags_are_escaped(testapp, registry):
    evil = '<img src=x onerror="alert(1)">'
    with app_request(registry) as req:
        cat = Category(name=f"cat{evil}")
        req.db.add(cat)
        req.db.flush()
        p = Product(category_id=cat.id, name=f"name{evil}", type="card_key", tags=f"tag{evil},ok",
                    hot=True, recommended=True, images=json.dumps(['x" onerror="alert(3)']))
        req.db.add(p)
        req.db.flush()
        req.db.add(Sku(product_id=p.id, code="EVIL-1", name=f"sku{evil}", price=100, stock=5))
        req.db.flush()
        pid, cid = p.id, cat.id
    for path in ("/", f"/c/{cid}", f"/p/{pid}"):
        resp = testapp.get(path)
        assert "&lt;img src=x onerror=" in resp.text, path  # shown as text
        assert not resp.html.find_all("script"), path
        handlers = [(el.name, a) for el in resp.html.find_all(True) for a in el.attrs if a.startswith("on")]
        assert not handlers, (path, handlers)
        assert not resp.html.find_all("img", src="x"), path
    resp = testapp.get(f"/p/{pid}")
    assert texts(resp, ".tags .tag") == [f"tag{evil}", "ok"]
    assert texts(resp, "label.sku-option .sku-name") == [f"sku{evil}"]
    assert resp.html.find("h1").get_text() == f"name{evil}"


def test_usage_instructions_are_not_on_the_product_page(testapp, registry):
    with app_request(registry) as req:
        pid = product(req.db, "带说明商品", description="<p>商品介绍</p>",
                      instructions="<p>INSTRUCTIONS-ONLY-WITH-KEYS</p>").id
    resp = testapp.get(f"/p/{pid}")
    assert "商品介绍" in resp.text and "INSTRUCTIONS-ONLY-WITH-KEYS" not in resp.text


def test_pages_speak_chinese_where_translated(testapp, shelf):
    testapp.set_cookie("_LOCALE_", "zh_CN")
    resp = testapp.get(f"/p/{shelf['cmcc']}")
    assert "直充商品" in resp.text  # an existing translation: the markers are wired

