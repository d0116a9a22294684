"""The catalog API: public reads, the admin API for products, SKUs and card
keys, its validation errors, and the OpenAPI entries (API.md)."""
import datetime as dt
import gc
import json

import pytest
from sqlalchemy import event, func, select, update

from kameng import accounts
from kameng.api import catalog as catalog_api
from kameng.audit import AuditEntry
from kameng.catalog.models import Category, Product, Sku
from kameng.db import utcnow
from kameng.inventory import service as inventory
from kameng.inventory.models import CardKey
from kameng.testing import app_request, login

ADMIN_PATHS = [
    ("get", "/api/v1/admin/categories"),
    ("post", "/api/v1/admin/categories"),
    ("get", "/api/v1/admin/products"),
    ("post", "/api/v1/admin/products"),
    ("get", "/api/v1/admin/products/{id}"),
    ("patch", "/api/v1/admin/products/{id}"),
    ("delete", "/api/v1/admin/products/{id}"),
    ("get", "/api/v1/admin/skus/{code}"),
    ("patch", "/api/v1/admin/skus/{code}"),
    ("post", "/api/v1/admin/skus/{code}/keys"),
    ("get", "/api/v1/admin/skus/{code}/stock"),
    ("get", "/api/v1/admin/skus/{code}/imports"),
]
# pyramid_retry copies a request body over 10 KB to a temporary file that
# WebOb never closes: a ResourceWarning whenever the garbage collector gets
# to it, so tests that send one collect it before they end
BIG_BODIES = pytest.mark.filterwarnings("ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning")
PUBLIC_PATHS = [("get", "/api/v1/categories"), ("get", "/api/v1/products"), ("get", "/api/v1/products/{id}")]


@pytest.fixture
def collect_garbage():
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _unlink_categories(registry):
    """kameng.testing empties tables with one DELETE each; a subcategory's
    parent (ON DELETE RESTRICT) would stop it, so untie the tree first."""
    yield
    with app_request(registry) as req:
        req.db.execute(update(Category).values(parent_id=None))


@pytest.fixture
def auth(registry, admin):
    with app_request(registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "catalog-tests")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def buyer_auth(registry):
    with app_request(registry) as req:
        user = accounts.create_user(req.db, "buyer@example.com", "buyer-password-1")
        token = accounts.create_token(req.db, user, "buyer")
    return {"Authorization": f"Bearer {token}"}


def product_body(**over):
    body = {"name": "Steam 钱包充值码", "type": "card_key",
            "skus": [{"code": "STEAM-50", "name": "50 元", "price": "50.00"}]}
    body.update(over)
    return body


def create(testapp, auth, status=201, **over):
    return testapp.post_json("/api/v1/admin/products", product_body(**over), headers=auth, status=status).json


def reserve(registry, code, quantity, order_ref="ORDER-1"):
    with app_request(registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == code))
        inventory.reserve(req.db, sku_id, quantity, order_ref, utcnow() + dt.timedelta(minutes=15))


def count(registry, model):
    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(model))


def import_text(testapp, auth, code, text, status=200, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return testapp.post(f"/api/v1/admin/skus/{code}/keys" + (f"?{qs}" if qs else ""),
                        text.encode() if isinstance(text, str) else text,
                        headers={**auth, "Content-Type": "text/plain; charset=utf-8"}, status=status).json


# -- public reads -----------------------------------------------------------------------


def test_categories_are_visible_only_and_ordered(testapp, auth):
    def cat(**body):
        return testapp.post_json("/api/v1/admin/categories", body, headers=auth, status=201).json

    games = cat(name="游戏", sort=2, icon="https://cdn.example.com/g.png")
    phone = cat(name="话费", sort=1)
    steam = cat(name="Steam", parent_id=games["id"])
    hidden = cat(name="Hidden", visible=False)
    cat(name="Under hidden", parent_id=hidden["id"])
    assert games == {"id": games["id"], "name": "游戏", "parent_id": None, "icon": "https://cdn.example.com/g.png",
                     "sort": 2, "visible": True}
    assert steam["parent_id"] == games["id"]

    items = testapp.get("/api/v1/categories").json["items"]
    assert [c["name"] for c in items] == ["Steam", "话费", "游戏"]  # sort, then id
    assert items[1] == {"id": phone["id"], "name": "话费", "parent_id": None, "icon": "", "sort": 1}
    admin_items = testapp.get("/api/v1/admin/categories", headers=auth).json["items"]
    assert len(admin_items) == 5 and {c["visible"] for c in admin_items} == {True, False}


def test_product_detail_shape(testapp, auth):
    cat = testapp.post_json("/api/v1/admin/categories", {"name": "游戏"}, headers=auth, status=201).json
    made = create(testapp, auth, category_id=cat["id"], description="<p>官方 <b>充值码</b></p>",
                  instructions="在 Steam 兑换", images=["https://cdn.example.com/a.png", "/static/b.png"],
                  tags=["steam", "游戏"], hot=True, skus=[
                      {"code": "STEAM-50", "name": "50 元", "price": "50", "cost_price": "45.10",
                       "min_quantity": 1, "max_quantity": 5, "attributes": {"region": "CN"},
                       "level_prices": {"gold": "48.00"}, "tier_prices": {"t1": "46.50"}},
                      {"code": "STEAM-100", "name": "100 元", "price": "100.00", "visible": False}])
    assert made["type"] == "card_key" and made["visible"] is True and made["archived"] is False
    sku = made["skus"][0]
    assert sku == {"code": "STEAM-50", "name": "50 元", "price": "50.00", "stock": 0, "min_quantity": 1,
                   "max_quantity": 5, "attributes": {"region": "CN"}, "id": sku["id"],
                   "product_id": made["id"], "cost_price": "45.10", "visible": True, "low_stock_threshold": 0,
                   "sort": 0, "level_prices": {"gold": "48.00"}, "tier_prices": {"t1": "46.50"}}
    assert made["skus"][1]["visible"] is False

    public = testapp.get(f"/api/v1/products/{made['id']}").json
    assert public == {
        "id": made["id"], "name": "Steam 钱包充值码", "type": "card_key", "category_id": cat["id"],
        "description": "<p>官方 <b>充值码</b></p>", "instructions": "在 Steam 兑换",
        "images": ["https://cdn.example.com/a.png", "/static/b.png"], "tags": ["steam", "游戏"],
        "hot": True, "recommended": False, "recharge_fields": [],
        "skus": [{"code": "STEAM-50", "name": "50 元", "price": "50.00", "stock": 0, "min_quantity": 1,
                  "max_quantity": 5, "attributes": {"region": "CN"}}]}  # no cost, no hidden SKU

    listing = testapp.get("/api/v1/products").json
    assert listing["total"] == 1 and listing["page"] == 1 and listing["per_page"] == 20
    assert listing["items"] == [{"id": made["id"], "name": "Steam 钱包充值码", "type": "card_key",
                                 "category_id": cat["id"], "image": "https://cdn.example.com/a.png",
                                 "tags": ["steam", "游戏"], "hot": True, "recommended": False,
                                 "min_price": "50.00", "in_stock": False}]


def test_direct_recharge_and_manual_products(testapp, auth):
    fields = [{"name": "phone", "label": "手机号", "kind": "mobile_cn"},
              {"name": "account", "kind": "text", "pattern": "[A-Za-z0-9_]{4,32}", "required": False}]
    made = create(testapp, auth, name="移动话费", type="direct_recharge", recharge_fields=fields,
                  skus=[{"code": "CMCC-50", "name": "50 元", "price": "49.80"}])
    public = testapp.get(f"/api/v1/products/{made['id']}").json
    assert public["type"] == "direct_recharge"
    assert [f["name"] for f in public["recharge_fields"]] == ["phone", "account"]
    assert public["recharge_fields"][1]["pattern"] == "[A-Za-z0-9_]{4,32}"

    manual = create(testapp, auth, name="代充", type="manual",
                    skus=[{"code": "M-1", "name": "一次", "price": "9.90", "stock": 3}])
    assert manual["skus"][0]["stock"] == 3
    assert testapp.get(f"/api/v1/products/{manual['id']}").json["skus"][0]["stock"] == 3


def test_a_new_non_card_sku_without_stock_is_unlimited(testapp, auth):
    made = create(testapp, auth, type="manual", skus=[{"code": "M-1", "name": "x", "price": "9.90"}])
    assert made["skus"][0]["stock"] is None
    assert testapp.get(f"/api/v1/products/{made['id']}").json["skus"][0]["stock"] is None


def test_unknown_product_is_404(testapp):
    for pid in ("999", "abc", "0", "-1", "99999999999999999999999"):
        resp = testapp.get(f"/api/v1/products/{pid}", status=404)
        assert resp.json["error"]["code"] == "not_found"


def test_hidden_and_archived_products_are_not_public(testapp, auth):
    shown = create(testapp, auth, name="Shown", skus=[
        {"code": "S-1", "name": "a", "price": "1.00"}, {"code": "S-2", "name": "b", "price": "2.00", "visible": False}])
    hidden = create(testapp, auth, name="Hidden", visible=False, skus=[{"code": "H-1", "name": "a", "price": "1.00"}])
    archived = create(testapp, auth, name="Archived", archived=True,
                      skus=[{"code": "A-1", "name": "a", "price": "1.00"}])
    secret_cat = testapp.post_json("/api/v1/admin/categories", {"name": "Off", "visible": False},
                                   headers=auth, status=201).json
    in_hidden_cat = create(testapp, auth, name="In a hidden category", category_id=secret_cat["id"],
                           skus=[{"code": "C-1", "name": "a", "price": "1.00"}])

    listing = testapp.get("/api/v1/products").json
    assert [p["name"] for p in listing["items"]] == ["Shown"] and listing["total"] == 1
    assert [s["code"] for s in testapp.get(f"/api/v1/products/{shown['id']}").json["skus"]] == ["S-1"]
    for product in (hidden, archived, in_hidden_cat):
        testapp.get(f"/api/v1/products/{product['id']}", status=404)
        assert testapp.get(f"/api/v1/admin/products/{product['id']}", headers=auth).json["id"] == product["id"]
    assert testapp.get(f"/api/v1/products?category={secret_cat['id']}").json["items"] == []
    # the admin listing has them all
    admin_listing = testapp.get("/api/v1/admin/products", headers=auth).json
    assert admin_listing["total"] == 4
    assert {(p["name"], p["visible"], p["archived"]) for p in admin_listing["items"]} >= {
        ("Hidden", False, False), ("Archived", True, True)}


def test_paging(testapp, auth):
    for i in range(25):
        create(testapp, auth, name=f"P{i:02d}", sort=-i if i >= 20 else 0,
               skus=[{"code": f"P-{i}", "name": "x", "price": "1.00"}])
    first = testapp.get("/api/v1/products?per_page=10").json
    assert first["total"] == 25 and (first["page"], first["per_page"]) == (1, 10)
    # sort first (P24 has the lowest), then id
    assert [p["name"] for p in first["items"]] == ["P24", "P23", "P22", "P21", "P20", "P00", "P01", "P02", "P03",
                                                   "P04"]
    third = testapp.get("/api/v1/products?per_page=10&page=3").json
    assert [p["name"] for p in third["items"]] == ["P15", "P16", "P17", "P18", "P19"]
    assert testapp.get("/api/v1/products?page=4&per_page=10").json["items"] == []
    assert testapp.get("/api/v1/products?per_page=500").json["per_page"] == 100
    for bad in ("page=0", "page=x", "page=-1", "per_page=0", "per_page=1.5", "page=1e3", "category=x",
                "page=99999999999"):
        resp = testapp.get(f"/api/v1/products?{bad}", status=400)
        assert resp.json["error"]["code"] == "invalid_request", bad


def test_search_is_literal_and_case_insensitive(testapp, auth):
    names = ["100% Steam Card", "Steam_Gift", "SteamXGift", "Netflix 会员", "Plain"]
    for i, name in enumerate(names):
        create(testapp, auth, name=name, tags="Video,流媒体" if "Netflix" in name else "",
               skus=[{"code": f"Q-{i}", "name": "x", "price": "1.00"}])

    def found(q):
        return [p["name"] for p in testapp.get("/api/v1/products", {"q": q}).json["items"]]

    assert found("%") == ["100% Steam Card"]
    assert found("_") == ["Steam_Gift"]
    assert found("m_g") == ["Steam_Gift"]  # "_" is not a wildcard: SteamXGift does not match
    assert found("steam") == ["100% Steam Card", "Steam_Gift", "SteamXGift"]
    assert found("VIDEO") == ["Netflix 会员"]  # tags, case-insensitive
    assert found("流媒体") == ["Netflix 会员"]
    assert found("会员") == ["Netflix 会员"]
    assert found("/") == [] and found("\\") == [] and found("'") == []
    assert found("  ") == names  # blank: no filter


def test_category_filter_includes_subcategories(testapp, auth):
    def cat(**body):
        return testapp.post_json("/api/v1/admin/categories", body, headers=auth, status=201).json["id"]

    games = cat(name="游戏")
    steam = cat(name="Steam", parent_id=games)
    steam_cn = cat(name="国区", parent_id=steam)
    phone = cat(name="话费")
    for i, cid in enumerate((games, steam, steam_cn, phone, None)):
        create(testapp, auth, name=f"P{i}", category_id=cid, skus=[{"code": f"F-{i}", "name": "x", "price": "1.00"}])

    def names(cid):
        return [p["name"] for p in testapp.get(f"/api/v1/products?category={cid}").json["items"]]

    assert names(games) == ["P0", "P1", "P2"]
    assert names(steam) == ["P1", "P2"]
    assert names(phone) == ["P3"]
    assert names(999) == []
    assert testapp.get("/api/v1/products").json["total"] == 5


def test_listing_queries_do_not_grow_with_products(app, testapp, auth):
    engine = app.registry["kameng.engine"]
    statements = []

    def counter(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    def queries_for(url):
        statements.clear()
        event.listen(engine, "before_cursor_execute", counter)
        try:
            testapp.get(url)
        finally:
            event.remove(engine, "before_cursor_execute", counter)
        return len(statements)

    create(testapp, auth, name="first", skus=[{"code": "N-0", "name": "x", "price": "1.00"}])
    one = queries_for("/api/v1/products")
    for i in range(1, 12):
        create(testapp, auth, name=f"p{i}", skus=[{"code": f"N-{i}", "name": "x", "price": "1.00"},
                                                  {"code": f"N-{i}b", "name": "y", "price": "2.00"}])
    assert queries_for("/api/v1/products") == one
    detail = queries_for(f"/api/v1/products/{testapp.get('/api/v1/products').json['items'][5]['id']}")
    assert detail <= one


# -- admin: validation -------------------------------------------------------------------------------

MISSING = "<missing>"
VALIDATION = [
    ({"name": MISSING}, "name"),
    ({"name": None}, "name"),
    ({"name": "   "}, "name"),
    ({"name": 5}, "name"),
    ({"type": "gift"}, "type"),
    ({"type": ["card_key"]}, "type"),
    ({"category_id": 999}, "category_id"),
    ({"category_id": "abc"}, "category_id"),
    ({"type": "direct_recharge"}, "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": []}, "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": [{"name": "acct", "kind": "text", "pattern": "([a-z"}]},
     "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": [{"name": "acct", "kind": "text", "pattern": "a" * 300}]},
     "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": [{"name": "acct", "kind": ["text"]}]}, "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": [{"name": "acct", "kind": {"a": 1}}]}, "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": [{"name": "Bad Name"}]}, "recharge_fields"),
    ({"type": "direct_recharge", "recharge_fields": "not json"}, "recharge_fields"),
    ({"recharge_fields": 5}, "recharge_fields"),
    ({"images": "javascript:alert(1)"}, "images"),
    ({"images": 3}, "images"),
    ({"images": [1]}, "images"),
    ({"tags": [1, 2]}, "tags"),
    ({"tags": {"a": "b"}}, "tags"),
    ({"hot": "maybe"}, "hot"),
    ({"visible": 1}, "visible"),
    ({"sort": {}}, "sort"),
    ({"sort": 1.5}, "sort"),
    ({"description": ["<p>"]}, "description"),
    ({"skus": []}, "skus"),
    ({"skus": "STEAM-50"}, "skus"),
    ({"skus": [1]}, "skus[0]"),
    ({"skus": MISSING}, "skus"),
    ({"skus": None}, "skus"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "12.345"}]}, "skus[0].price"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "-1"}]}, "skus[0].price"),
    ({"skus": [{"code": "S-1", "name": "x", "price": 12.5}]}, "skus[0].price"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "0"}]}, "skus[0].price"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1e3"}]}, "skus[0].price"),
    ({"skus": [{"code": "S-1", "name": "x"}]}, "skus[0].price"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "cost_price": "abc"}]}, "skus[0].cost_price"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "min_quantity": 5, "max_quantity": 2}]},
     "skus[0].max_quantity"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "min_quantity": 0}]}, "skus[0].min_quantity"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "max_quantity": "lots"}]}, "skus[0].max_quantity"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "attributes": ["a"]}]}, "skus[0].attributes"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "attributes": {"a": 1}}]}, "skus[0].attributes"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "level_prices": ["gold"]}]}, "skus[0].level_prices"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "level_prices": {"gold": 5}}]},
     "skus[0].level_prices.gold"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00", "tier_prices": {"t1": "1.001"}}]},
     "skus[0].tier_prices.t1"),
    ({"skus": [{"code": "bad code!", "name": "x", "price": "1.00"}]}, "skus[0].code"),
    ({"skus": [{"code": 7, "name": "x", "price": "1.00"}]}, "skus[0].code"),
    ({"skus": [{"name": "x", "price": "1.00"}]}, "skus[0].code"),
    ({"skus": [{"code": "S-1", "price": "1.00"}]}, "skus[0].name"),
    ({"skus": [{"code": "S-1", "name": "x", "price": "1.00"}, {"code": "S-1", "name": "y", "price": "2.00"}]},
     "skus[1].code"),
    ({"type": "manual", "skus": [{"code": "S-1", "name": "x", "price": "1.00", "stock": -1}]}, "skus[0].stock"),
]


@pytest.mark.parametrize("override,field", VALIDATION, ids=[f"{f}-{i}" for i, (_o, f) in enumerate(VALIDATION)])
def test_product_validation_errors(registry, testapp, auth, override, field):
    body = {k: v for k, v in product_body(**override).items() if v != MISSING}
    resp = testapp.post_json("/api/v1/admin/products", body, headers=auth, status=422)
    assert resp.content_type == "application/json"
    error = resp.json["error"]
    assert error["code"] == "invalid_request" and error["field"] == field, error
    assert isinstance(error["message"], str) and error["message"]
    # the doomed transaction left nothing behind
    assert count(registry, Product) == 0 and count(registry, Sku) == 0


def test_validation_messages(testapp, auth):
    def error(**over):
        return testapp.post_json("/api/v1/admin/products", product_body(**over), headers=auth,
                                 status=422).json["error"]

    assert error(name="") == {"code": "invalid_request", "message": "is required", "field": "name"}
    assert error(skus=[{"code": "S", "name": "x", "price": "12.345"}])["message"] == \
        'must be a decimal string like "12.50"'
    assert error(type="direct_recharge")["message"] == "a direct recharge product needs at least one input field"
    assert error(category_id=42)["message"] == "no such category"


def test_duplicate_code_of_another_product(testapp, auth):
    create(testapp, auth)
    error = create(testapp, auth, status=422, name="Other")["error"]
    assert error["field"] == "skus[0].code" and "STEAM-50" in error["message"]


def test_category_validation(registry, testapp, auth):
    cases = [({}, "name"), ({"name": ""}, "name"), ({"name": ["x"]}, "name"), ({"name": "x" * 101}, "name"),
             ({"name": "x", "parent_id": 999}, "parent_id"), ({"name": "x", "parent_id": "up"}, "parent_id"),
             ({"name": "x", "icon": "javascript:alert(1)"}, "icon"), ({"name": "x", "sort": "first"}, "sort"),
             ({"name": "x", "visible": "perhaps"}, "visible")]
    for body, field in cases:
        error = testapp.post_json("/api/v1/admin/categories", body, headers=auth, status=422).json["error"]
        assert (error["code"], error["field"]) == ("invalid_request", field), body
    assert count(registry, Category) == 0


@BIG_BODIES
def test_bad_bodies_are_4xx_never_500(testapp, auth, collect_garbage):
    for path in ("/api/v1/admin/products", "/api/v1/admin/categories"):
        for raw in (b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100000):
            resp = testapp.post(path, raw, headers={**auth, "Content-Type": "application/json"}, status=400)
            assert resp.json["error"]["code"] == "invalid_request"


WEIRD = [None, True, 0, -1, 1.5, 10 ** 30, "", "x" * 60000, [], [1], {}, {"a": {"b": []}}]


@BIG_BODIES
def test_wrong_types_anywhere_are_never_a_500(testapp, auth, collect_garbage):
    product_fields = ["name", "type", "category_id", "description", "instructions", "images", "tags",
                      "recharge_fields", "hot", "recommended", "visible", "archived", "sort", "skus"]
    sku_fields = ["code", "name", "price", "cost_price", "min_quantity", "max_quantity", "attributes",
                  "level_prices", "tier_prices", "stock", "low_stock_threshold", "sort", "visible"]
    n = 0
    for field in product_fields:
        for value in WEIRD:
            n += 1
            body = product_body(skus=[{"code": f"W-{n}", "name": "x", "price": "1.00"}])
            body[field] = value
            resp = testapp.post_json("/api/v1/admin/products", body, headers=auth, expect_errors=True)
            assert resp.status_int in (201, 422), (field, value, resp.status, resp.text[:200])
            if resp.status_int == 422:
                assert resp.json["error"]["field"].split("[")[0].split(".")[0] == field, (field, value, resp.json)
    for field in sku_fields:
        for value in WEIRD:
            n += 1
            sku = {"code": f"W-{n}", "name": "x", "price": "1.00", field: value}
            resp = testapp.post_json("/api/v1/admin/products", product_body(type="manual", skus=[sku]),
                                     headers=auth, expect_errors=True)
            assert resp.status_int in (201, 422), (field, value, resp.status, resp.text[:200])
            if resp.status_int == 422:
                assert resp.json["error"]["field"].startswith(f"skus[0].{field}"), (field, value, resp.json)
    base = create(testapp, auth, name="base", type="manual", skus=[{"code": "W-BASE", "name": "x", "price": "1.00"}])
    for field in sku_fields:
        for value in WEIRD:
            resp = testapp.patch_json("/api/v1/admin/skus/W-BASE", {field: value}, headers=auth, expect_errors=True)
            assert resp.status_int in (200, 422), (field, value, resp.status, resp.text[:200])
            if resp.status_int == 422:
                assert resp.json["error"]["field"].startswith(field), (field, value, resp.json)
    for field in product_fields:
        for value in WEIRD:
            resp = testapp.patch_json(f"/api/v1/admin/products/{base['id']}", {field: value}, headers=auth,
                                      expect_errors=True)
            assert resp.status_int in (200, 422), (field, value, resp.status, resp.text[:200])
            if resp.status_int == 422:
                assert resp.json["error"]["field"] in (field, "recharge_fields"), (field, value, resp.json)


def test_unknown_fields_are_ignored(testapp, auth):
    made = create(testapp, auth, colour="blue", id=12345, created_at=["yesterday"],
                  skus=[{"code": "U-1", "name": "x", "price": "1.00", "bogus": [1], "id": "x"}])
    assert made["id"] != 12345 and "colour" not in made and "bogus" not in made["skus"][0]


# -- admin: XSS -------------------------------------------------------------------------------------


def test_description_is_sanitised(testapp, auth):
    dirty = ('<p>hello</p><script>alert(1)</script><img src="x.png" onerror="alert(2)">'
             '<a href="javascript:alert(3)">click</a><a href="https://example.com/ok" onclick="alert(4)">ok</a>'
             '<iframe src="https://evil.example"></iframe><p style="background:url(javascript:alert(5))">s</p>')
    made = create(testapp, auth, description=dirty, instructions='<b onmouseover="alert(6)">redeem</b>')
    for doc in (made, testapp.get(f"/api/v1/products/{made['id']}").json):
        html = doc["description"]
        assert "<script" not in html and "alert(1)" not in html
        assert "onerror" not in html and "onclick" not in html and "javascript:" not in html
        assert "<iframe" not in html and "style=" not in html
        assert "<p>hello</p>" in html and 'href="https://example.com/ok"' in html
        assert "onmouseover" not in doc["instructions"] and "<b>redeem</b>" in doc["instructions"]
    patched = testapp.patch_json(f"/api/v1/admin/products/{made['id']}",
                                 {"description": "<svg onload=alert(1)><a href='JaVaScRiPt:x'>y</a>"},
                                 headers=auth).json
    assert "onload" not in patched["description"] and "avascript" not in patched["description"].lower()


# -- admin: changes ----------------------------------------------------------------------------------


def test_patch_product(registry, testapp, auth):
    made = create(testapp, auth, tags="a,b")
    pid = made["id"]
    cat = testapp.post_json("/api/v1/admin/categories", {"name": "游戏"}, headers=auth, status=201).json
    patched = testapp.patch_json(f"/api/v1/admin/products/{pid}",
                                 {"name": "新名字", "category_id": cat["id"], "recommended": True, "tags": ["x", "y"],
                                  "skus": [{"code": "IGNORED", "name": "no", "price": "1.00"}], "whatever": 1},
                                 headers=auth).json
    assert (patched["name"], patched["category_id"], patched["recommended"], patched["tags"]) == (
        "新名字", cat["id"], True, ["x", "y"])
    assert [s["code"] for s in patched["skus"]] == ["STEAM-50"]
    assert patched["description"] == made["description"]  # untouched fields stay

    resp = testapp.patch_json(f"/api/v1/admin/products/{pid}", {"name": "", "hot": True}, headers=auth, status=422)
    assert resp.json["error"]["field"] == "name"
    assert testapp.get(f"/api/v1/products/{pid}").json["name"] == "新名字"
    assert testapp.get(f"/api/v1/products/{pid}").json["hot"] is False  # nothing of the failed PATCH stayed

    testapp.patch_json(f"/api/v1/admin/products/{pid}", {"category_id": None}, headers=auth)
    assert testapp.get(f"/api/v1/products/{pid}").json["category_id"] is None
    testapp.patch_json(f"/api/v1/admin/products/{pid}", {"visible": False}, headers=auth)
    testapp.get(f"/api/v1/products/{pid}", status=404)
    testapp.patch_json(f"/api/v1/admin/products/{pid}", {"visible": True, "archived": True}, headers=auth)
    testapp.get(f"/api/v1/products/{pid}", status=404)
    testapp.patch_json(f"/api/v1/admin/products/{pid}", {"archived": False}, headers=auth)
    testapp.get(f"/api/v1/products/{pid}")

    error = testapp.patch_json(f"/api/v1/admin/products/{pid}", {"type": "direct_recharge"}, headers=auth,
                               status=422).json["error"]
    assert error["field"] == "recharge_fields"
    testapp.patch_json("/api/v1/admin/products/999", {"name": "x"}, headers=auth, status=404)
    testapp.patch(f"/api/v1/admin/products/{pid}", "nope", headers={**auth, "Content-Type": "application/json"},
                  status=400)
    testapp.get("/api/v1/admin/products/abc", headers=auth, status=404)


def test_card_key_product_with_keys_cannot_change_type(testapp, auth):
    made = create(testapp, auth)
    import_text(testapp, auth, "STEAM-50", "K1\nK2\n")
    error = testapp.patch_json(f"/api/v1/admin/products/{made['id']}", {"type": "manual"}, headers=auth,
                               status=422).json["error"]
    assert error["field"] == "type"


def test_patch_sku(registry, testapp, auth):
    made = create(testapp, auth, skus=[{"code": "S-1", "name": "one", "price": "10.00"},
                                       {"code": "S-2", "name": "two", "price": "20.00"}])
    sku = testapp.patch_json("/api/v1/admin/skus/S-1", {
        "price": "9.50", "cost_price": "8.00", "min_quantity": 2, "max_quantity": 9, "name": "一个",
        "low_stock_threshold": 5, "level_prices": {"gold": "9.00"}, "tier_prices": {"t1": "8.80"},
        "attributes": {"server": "一区"}, "code": "RENAMED", "unknown": True}, headers=auth).json
    assert {k: sku[k] for k in ("code", "name", "price", "cost_price", "min_quantity", "max_quantity",
                                "low_stock_threshold", "level_prices", "tier_prices", "attributes")} == {
        "code": "S-1", "name": "一个", "price": "9.50", "cost_price": "8.00", "min_quantity": 2, "max_quantity": 9,
        "low_stock_threshold": 5, "level_prices": {"gold": "9.00"}, "tier_prices": {"t1": "8.80"},
        "attributes": {"server": "一区"}}
    assert testapp.get("/api/v1/admin/skus/S-1", headers=auth).json == sku
    public = testapp.get(f"/api/v1/products/{made['id']}").json["skus"][0]
    assert (public["price"], public["min_quantity"], public["max_quantity"]) == ("9.50", 2, 9)

    testapp.patch_json("/api/v1/admin/skus/S-2", {"visible": False}, headers=auth)
    assert [s["code"] for s in testapp.get(f"/api/v1/products/{made['id']}").json["skus"]] == ["S-1"]

    for body, field in [({"price": "12.345"}, "price"), ({"price": "-1"}, "price"), ({"price": 12.5}, "price"),
                        ({"min_quantity": 20}, "max_quantity"), ({"max_quantity": 1}, "max_quantity"),
                        ({"stock": 5}, "stock"), ({"visible": "no way"}, "visible"),
                        ({"level_prices": {"gold": "x"}}, "level_prices.gold"),
                        ({"tier_prices": "cheap"}, "tier_prices"), ({"name": ""}, "name"),
                        ({"attributes": {"k": ["v"]}}, "attributes")]:
        error = testapp.patch_json("/api/v1/admin/skus/S-1", body, headers=auth, status=422).json["error"]
        assert (error["code"], error["field"]) == ("invalid_request", field), body
    assert testapp.get("/api/v1/admin/skus/S-1", headers=auth).json == sku  # nothing half-written
    testapp.patch_json("/api/v1/admin/skus/NOPE", {"price": "1.00"}, headers=auth, status=404)


def test_patch_stock_of_a_manual_sku(testapp, auth):
    made = create(testapp, auth, type="manual", skus=[{"code": "M-1", "name": "x", "price": "5.00", "stock": 2}])
    assert made["skus"][0]["stock"] == 2
    assert testapp.patch_json("/api/v1/admin/skus/M-1", {"stock": 7}, headers=auth).json["stock"] == 7
    assert testapp.get(f"/api/v1/products/{made['id']}").json["skus"][0]["stock"] == 7
    assert testapp.patch_json("/api/v1/admin/skus/M-1", {"stock": None}, headers=auth).json["stock"] is None


def test_admin_actions_are_audited(registry, testapp, auth):
    cat = testapp.post_json("/api/v1/admin/categories", {"name": "游戏"}, headers=auth, status=201).json
    made = create(testapp, auth, category_id=cat["id"])
    testapp.patch_json(f"/api/v1/admin/products/{made['id']}", {"hot": True}, headers=auth)
    testapp.patch_json("/api/v1/admin/skus/STEAM-50", {"price": "49.00"}, headers=auth)
    import_text(testapp, auth, "STEAM-50", "SECRET-AAA-111\nSECRET-BBB-222\n")
    reserve(registry, "STEAM-50", 1)
    testapp.delete(f"/api/v1/admin/products/{made['id']}", headers=auth)
    with app_request(registry) as req:
        entries = req.db.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        rows = [(e.actor, e.action, e.target, json.loads(e.detail)) for e in entries]
    assert [r[1] for r in rows] == ["category.create", "product.create", "product.update", "sku.update",
                                    "keys.import", "product.archive"]
    assert {r[0] for r in rows} == {"admin@example.com"}
    assert rows[1][2] == f"product:{made['id']}" and rows[1][3]["skus"] == ["STEAM-50"]
    assert rows[2][3] == {"fields": ["hot"]} and rows[3][3] == {"fields": ["price"]}
    assert rows[4][2] == "sku:STEAM-50" and rows[4][3]["imported"] == 2
    assert "SECRET" not in json.dumps(rows, ensure_ascii=False)


def test_failed_saves_are_not_audited(registry, testapp, auth):
    create(testapp, auth, status=422, name="")
    testapp.post_json("/api/v1/admin/categories", {"name": ""}, headers=auth, status=422)
    assert count(registry, AuditEntry) == 0


# -- admin: card keys ---------------------------------------------------------------------------------


def test_keys_import_text_and_json(registry, testapp, auth):
    made = create(testapp, auth)
    report = import_text(testapp, auth, "STEAM-50", "\ufeffAAAA-1111\r\nBBBB-2222\n\nAAAA-1111\nCCCC-3333\n"
                                                     "bad\x01line\n" + "x" * 501 + "\n", source="may.txt")
    assert report == {"imported": 3, "skipped": 3, "duplicates": 1, "invalid": 2, "invalid_lines": [6, 7],
                      "lines": 6, "import_id": report["import_id"]}  # lines: the non-empty ones
    assert testapp.get("/api/v1/admin/skus/STEAM-50/stock", headers=auth).json == {
        "available": 3, "reserved": 0, "sold": 0, "void": 0, "stock": 3}
    assert testapp.get(f"/api/v1/products/{made['id']}").json["skus"][0]["stock"] == 3

    again = import_text(testapp, auth, "STEAM-50", "AAAA-1111\nBBBB-2222\nDDDD-4444\n")
    assert (again["imported"], again["duplicates"], again["skipped"]) == (1, 2, 2)

    body = {"keys": ["CCCC-3333", "EEEE-5555", "EEEE-5555", "", "two\nlines", "FFFF-6666"], "source": "api test"}
    as_json = testapp.post_json("/api/v1/admin/skus/STEAM-50/keys", body, headers=auth).json
    assert (as_json["imported"], as_json["duplicates"], as_json["invalid"]) == (2, 2, 1)
    stock = testapp.get("/api/v1/admin/skus/STEAM-50/stock", headers=auth).json
    assert stock == {"available": 6, "reserved": 0, "sold": 0, "void": 0, "stock": 6}

    imports = testapp.get("/api/v1/admin/skus/STEAM-50/imports", headers=auth).json["items"]
    assert [i["id"] for i in imports] == [as_json["import_id"], again["import_id"], report["import_id"]]
    assert imports[0]["source"] == "api test" and imports[2]["source"] == "may.txt"
    assert imports[1]["source"] == "api"
    assert {k: imports[2][k] for k in ("total", "lines", "imported", "duplicates", "invalid")} == {
        "total": 6, "lines": 6, "imported": 3, "duplicates": 1, "invalid": 2}
    assert imports[2]["created_by"] == "admin@example.com"
    assert dt.datetime.fromisoformat(imports[0]["created_at"]).tzinfo is not None
    with app_request(registry) as req:  # stored encrypted
        secrets = req.db.scalars(select(CardKey.secret)).all()
    assert len(secrets) == 6 and not any("AAAA" in s for s in secrets)


def test_keys_import_with_separator(registry, testapp, auth):
    create(testapp, auth)
    report = import_text(testapp, auth, "STEAM-50", "卡号,卡密\nN001,S001\nN002 , S002\nN003\n", separator=",")
    assert (report["imported"], report["invalid"]) == (2, 1)
    report = testapp.post_json("/api/v1/admin/skus/STEAM-50/keys",
                               {"keys": ["N004----S004", "N005 S005"], "separator": "----"}, headers=auth).json
    assert (report["imported"], report["invalid"]) == (1, 1)
    report = import_text(testapp, auth, "STEAM-50", "N006\tS006\n", separator="%09")
    assert report["imported"] == 1
    with app_request(registry) as req:
        keys = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        plain = [inventory.reveal(registry["kameng.keyring"], k) for k in keys]
    assert plain == [("N001", "S001"), ("N002", "S002"), ("N004", "S004"), ("N006", "S006")]
    error = testapp.post_json("/api/v1/admin/skus/STEAM-50/keys", {"keys": ["a"], "separator": 5},
                              headers=auth, status=422).json["error"]
    assert error["field"] == "separator"
    import_text(testapp, auth, "STEAM-50", "a\n", status=422, separator="x" * 11)


@BIG_BODIES
def test_keys_import_refusals(registry, testapp, auth, monkeypatch, collect_garbage):
    create(testapp, auth)
    create(testapp, auth, name="代充", type="manual", skus=[{"code": "M-1", "name": "x", "price": "1.00"}])
    resp = import_text(testapp, auth, "M-1", "K1\n", status=409)
    assert resp["error"]["code"] == "wrong_product_type"
    assert import_text(testapp, auth, "NOPE", "K1\n", status=404)["error"]["code"] == "not_found"
    assert import_text(testapp, auth, "STEAM-50", b"\xff\xfe\x00bad", status=400)["error"]["code"] == \
        "invalid_request"
    assert import_text(testapp, auth, "STEAM-50", "K1\n".encode("gbk") + "卡密".encode("gbk"), status=400)
    for keys in ("K1", [1, 2], None, {"a": "b"}):
        error = testapp.post_json("/api/v1/admin/skus/STEAM-50/keys", {"keys": keys}, headers=auth,
                                  status=422).json["error"]
        assert error["field"] == "keys"
    testapp.post("/api/v1/admin/skus/STEAM-50/keys", b"{bad", headers={**auth, "Content-Type": "application/json"},
                 status=400)
    testapp.post("/api/v1/admin/skus/STEAM-50/keys", b"[]", headers={**auth, "Content-Type": "application/json"},
                 status=400)
    resp = testapp.post("/api/v1/admin/skus/STEAM-50/keys", b"\x89PNG", headers={**auth, "Content-Type": "image/png"},
                        status=415)
    assert resp.json["error"]["code"] == "unsupported_media_type"

    big = b"K" * (catalog_api.MAX_KEYS_BODY + 1)
    assert import_text(testapp, auth, "STEAM-50", big, status=413)["error"]["code"] == "too_large"
    monkeypatch.setattr(catalog_api, "MAX_KEYS_BODY", 10)
    import_text(testapp, auth, "STEAM-50", "K1\nK2\nK3\nK4\n", status=413)
    assert testapp.get("/api/v1/admin/skus/STEAM-50/stock", headers=auth).json["available"] == 0
    assert count(registry, CardKey) == 0


def test_stock_counts_follow_reservations(registry, testapp, auth):
    create(testapp, auth)
    import_text(testapp, auth, "STEAM-50", "\n".join(f"KEY-{i:04d}" for i in range(10)))
    with app_request(registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "STEAM-50"))
        inventory.reserve(req.db, sku_id, 3, "ORDER-1", utcnow() + dt.timedelta(minutes=15))
        inventory.reserve(req.db, sku_id, 2, "ORDER-2", utcnow() + dt.timedelta(minutes=15))
        inventory.sell(req.db, "ORDER-2")
        key = req.db.scalar(select(CardKey).where(CardKey.state == "available").order_by(CardKey.id))
        inventory.void(req.db, key.id)
    assert testapp.get("/api/v1/admin/skus/STEAM-50/stock", headers=auth).json == {
        "available": 4, "reserved": 3, "sold": 2, "void": 1, "stock": 4}
    testapp.get("/api/v1/admin/skus/NOPE/stock", headers=auth, status=404)
    testapp.get("/api/v1/admin/skus/NOPE/imports", headers=auth, status=404)
    testapp.get("/api/v1/admin/skus/NOPE", headers=auth, status=404)


# -- admin: delete ------------------------------------------------------------------------------------


def test_delete_archives_a_product_with_reserved_keys(registry, testapp, auth):
    made = create(testapp, auth)
    import_text(testapp, auth, "STEAM-50", "K1\nK2\nK3\n")
    with app_request(registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "STEAM-50"))
        inventory.reserve(req.db, sku_id, 1, "ORDER-1", utcnow() + dt.timedelta(minutes=15))
    assert testapp.delete(f"/api/v1/admin/products/{made['id']}", headers=auth).json == {"result": "archived"}
    testapp.get(f"/api/v1/products/{made['id']}", status=404)
    assert testapp.get("/api/v1/products").json["total"] == 0
    kept = testapp.get(f"/api/v1/admin/products/{made['id']}", headers=auth).json
    assert kept["archived"] is True and kept["visible"] is False
    assert count(registry, CardKey) == 3  # the history stays


def test_delete_archives_a_product_with_sold_keys(registry, testapp, auth):
    made = create(testapp, auth)
    import_text(testapp, auth, "STEAM-50", "K1\n")
    with app_request(registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "STEAM-50"))
        inventory.reserve(req.db, sku_id, 1, "ORDER-1", utcnow() + dt.timedelta(minutes=15))
        inventory.sell(req.db, "ORDER-1")
    assert testapp.delete(f"/api/v1/admin/products/{made['id']}", headers=auth).json == {"result": "archived"}


def test_delete_removes_a_product_without_used_keys(registry, testapp, auth):
    made = create(testapp, auth, skus=[{"code": "D-1", "name": "x", "price": "1.00", "level_prices": {"g": "0.90"}},
                                       {"code": "D-2", "name": "y", "price": "2.00"}])
    import_text(testapp, auth, "D-1", "K1\nK2\n")  # available keys go with it
    assert testapp.delete(f"/api/v1/admin/products/{made['id']}", headers=auth).json == {"result": "deleted"}
    testapp.get(f"/api/v1/admin/products/{made['id']}", headers=auth, status=404)
    assert count(registry, Product) == 0 and count(registry, Sku) == 0 and count(registry, CardKey) == 0


def test_delete_unknown_product(testapp, auth):
    testapp.delete("/api/v1/admin/products/999", headers=auth, status=404)


# -- auth ---------------------------------------------------------------------------------------------


def test_auth_matrix(registry, testapp, auth, buyer_auth):
    made = create(testapp, auth)
    pid = made["id"]
    import_text(testapp, auth, "STEAM-50", "K1\n")
    reserve(registry, "STEAM-50", 1)  # so that DELETE archives

    def call(method, path, headers, status):
        url = path.format(id=pid, code="STEAM-50")
        if method in ("post", "patch"):
            return getattr(testapp, f"{method}_json")(url, {}, headers=headers, status=status)
        return getattr(testapp, method)(url, headers=headers, status=status)

    for method, path in ADMIN_PATHS:
        assert call(method, path, {}, 401).json["error"]["code"] == "unauthorized", path
        assert call(method, path, buyer_auth, 403).json["error"]["code"] == "forbidden", path
        assert call(method, path, {"Authorization": "Bearer kmg_wrong"}, 401).json["error"]["code"] == \
            "unauthorized"
    for method, path in PUBLIC_PATHS:
        call(method, path, {}, 200)
        call(method, path, buyer_auth, 200)
    # the admin token passes (the empty bodies are validation errors, not auth errors)
    for method, path in ADMIN_PATHS:
        resp = call(method, path, auth, "*")
        assert resp.status_int in (200, 201, 422), (method, path, resp.status)


def test_admin_session_needs_the_csrf_header(testapp, admin):
    assert login(testapp, *admin).status_int == 302
    assert testapp.get("/api/v1/admin/products").json["total"] == 0
    resp = testapp.post_json("/api/v1/admin/categories", {"name": "x"}, status=400)
    assert resp.json["error"]["code"] == "csrf_failed"
    assert testapp.get("/api/v1/admin/categories").json["items"] == []


# -- OpenAPI -------------------------------------------------------------------------------------------


def test_openapi_lists_the_catalog(testapp):
    doc = testapp.get("/api/v1/openapi.json").json
    paths = doc["paths"]
    for method, path in ADMIN_PATHS + PUBLIC_PATHS:
        assert method in paths.get(path, {}), (method, path)
        op = paths[path][method]
        assert op["responses"] and op["summary"]
        if path.startswith("/api/v1/admin/"):
            assert op["security"] == [{"bearerAuth": []}] and "401" in op["responses"]
    assert "/api/v1/admin/plugins/{id}" in paths  # the existing entries stay
    schemas = doc["components"]["schemas"]
    assert {"Category", "Product", "Sku", "Stock", "ImportResult", "Error"} <= set(schemas)

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    # path parameters are declared
    for path, ops in paths.items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, path


def test_responses_have_the_documented_fields(testapp, auth):
    doc = testapp.get("/api/v1/openapi.json").json["components"]["schemas"]
    made = create(testapp, auth)
    report = import_text(testapp, auth, "STEAM-50", "K1\n")
    samples = {"Product": [made, testapp.get(f"/api/v1/products/{made['id']}").json],
               "Sku": [made["skus"][0], testapp.get("/api/v1/admin/skus/STEAM-50", headers=auth).json],
               "Stock": [testapp.get("/api/v1/admin/skus/STEAM-50/stock", headers=auth).json],
               "ImportResult": [report],
               "KeyImport": testapp.get("/api/v1/admin/skus/STEAM-50/imports", headers=auth).json["items"],
               "ProductSummary": testapp.get("/api/v1/products").json["items"],
               "Category": [testapp.post_json("/api/v1/admin/categories", {"name": "c"}, headers=auth).json]}
    for name, docs in samples.items():
        schema = doc[name]
        for sample in docs:
            assert set(schema["required"]) <= set(sample), name
            assert set(sample) <= set(schema["properties"]), (name, set(sample) - set(schema["properties"]))


def test_service_rules_found_in_review(registry):
    """Blank names on update, nested-quantifier patterns, non-text kinds,
    a type change resetting stock, and field names of bad special prices."""
    from kameng.catalog import recharge
    from kameng.catalog.service import CatalogError, save_product, save_sku

    with pytest.raises(recharge.RechargeError):
        recharge.parse_spec([{"name": "a", "kind": []}])
    with pytest.raises(recharge.RechargeError):
        recharge.parse_spec([{"name": "a", "kind": "text", "pattern": "(a+)+$"}])
    with pytest.raises(recharge.RechargeError):
        recharge.parse_spec([{"name": "a", "kind": "text", "pattern": "a" * 201}])
    with app_request(registry) as req:
        product = save_product(req.db, {"name": "m", "type": "manual",
                                        "skus": [{"code": "M1", "name": "m", "price": "1.00", "stock": "5"}]}, "CNY")
        sku = product.skus[0] if product.skus else None
        with pytest.raises(CatalogError) as info:
            save_product(req.db, {"name": "  "}, "CNY", product=product)
        assert info.value.field == "name"
        save_product(req.db, {"type": "card_key"}, "CNY", product=product)
        req.db.refresh(sku)
        assert sku.stock == 0  # a card-key SKU's stock is its keys: none yet
        with pytest.raises(CatalogError) as info:
            save_sku(req.db, {"level_prices": {"gold": "x"}}, "CNY", sku=sku)
        assert info.value.field == "level_prices.gold"
