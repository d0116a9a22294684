"""The referrer's page, the account page's link, the admin pages, and the
shop with the plugin switched off (checkout and delivery unaffected)."""
import webtest
from distribution_helpers import (
    PASSWORD,
    balance,
    buy,
    chain,
    code_of,
    commissions,
    enable,
    load_order,
    register,
)
from sqlalchemy import func, select

from kameng import accounts
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login, set_plugin

from kameng_distribution import members
from kameng_distribution.models import Commission, LedgerEntry, ProductRate


def signed_in(app, email, password=PASSWORD):
    client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(client, email, password).status_int == 302
    return client


def make_admin(registry):
    with app_request(registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")


def test_emails_are_masked():
    assert members.mask_email("alice@example.com") == "a***e@example.com"
    assert members.mask_email("bo@example.com") == "b***@example.com"
    assert members.mask_email("x") == "***"


def test_the_referrer_page_needs_a_sign_in(web, shop):
    resp = web.get("/-/distribution/", status=302)
    assert resp.headers["Location"].endswith("/login?next=%2F-%2Fdistribution%2F")
    resp = web.post("/-/distribution/withdraw", {"amount": "10"}, status=302)
    assert "/login?next=" in resp.headers["Location"]


def test_the_referrer_page_shows_link_referrals_commissions_and_ledger(dreg, dist_app, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=200_00)
    made = buy(web, dreg, buyer)
    page = signed_in(dist_app, "u1@example.com").get("/-/distribution/")
    code = code_of(dreg, l2)
    assert page.html.select_one("#ref-code").text == code
    assert page.html.select_one("#ref-link")["value"] == f"http://localhost/?ref={code}"
    assert page.html.select_one("#ref-short-link").text == f"http://localhost/-/distribution/r/{code}"
    assert [li.strong.text for li in page.html.select("#referral-counts li")] == ["1", "1", "0"]
    emails = [td.text for td in page.html.select(".referral-email")]
    assert emails == ["u***@example.com", "u***@example.com"]  # masked
    assert "u2@example.com" not in page.text and "u3@example.com" not in page.text
    row = page.html.select_one(f"#commission-{made['order_no']}-2")
    assert row is not None and "CNY 5.00" in row.text
    assert page.html.select_one("#commission-balance").text == "CNY 5.00"
    assert len(page.html.select("#ledger tbody tr")) == 1
    assert [r.text for r in page.html.select("#rate-1, #rate-2, #rate-3")][0].strip().endswith("10%")


def test_the_account_page_links_to_the_referrer_page(dreg, dist_app, shop):
    register(dreg, "alice@example.com")
    page = signed_in(dist_app, "alice@example.com").get("/account")
    link = page.html.select_one("#distribution-link a")
    assert link["href"].endswith("/-/distribution/")
    set_plugin(dreg, "distribution", enabled=False)
    page = signed_in(dist_app, "alice@example.com").get("/account")
    assert page.html.select_one("#distribution-link") is None


def test_admin_pages_for_the_admin_only(dreg, dist_app, web, shop):
    make_admin(dreg)
    top, l2, l1, buyer = chain(dreg, 4, balance=200_00)
    made = buy(web, dreg, buyer)
    pages = ["/-/distribution/admin/", "/-/distribution/admin/commissions", "/-/distribution/admin/withdrawals",
             "/-/distribution/admin/rates", "/-/distribution/admin/referrers", f"/-/distribution/admin/users/{l1}"]
    for url in pages:
        resp = web.get(url, status=302)
        assert "/login?next=" in resp.headers["Location"]
    buyer_client = signed_in(dist_app, "u3@example.com")
    for url in pages:
        buyer_client.get(url, status=403)
    admin = signed_in(dist_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    overview = admin.get("/-/distribution/admin/")
    assert [a.text for a in overview.html.select("#top-earners td a")] == ["u2@example.com", "u1@example.com",
                                                                           "u0@example.com"]
    assert "CNY 17.50" in overview.html.select_one("#stat-credited").text
    menu = [a.text for a in overview.html.select(".sidebar nav a")]
    assert {"Commissions", "Withdrawals", "Product rates", "Referrers"} <= set(menu)
    found = admin.get("/-/distribution/admin/", {"q": code_of(dreg, l1)}, status=303)
    assert found.headers["Location"].endswith(f"/-/distribution/admin/users/{l1}")
    listing = admin.get("/-/distribution/admin/commissions", {"level": "2"})
    assert len(listing.html.select("#commissions tbody tr")) == 1 and made["order_no"] in listing.text
    assert len(admin.get("/-/distribution/admin/commissions", {"q": "u0@example.com"})
               .html.select("#commissions tbody tr")) == 1
    assert len(admin.get("/-/distribution/admin/commissions", {"q": made["order_no"]})
               .html.select("#commissions tbody tr")) == 3
    assert admin.get("/-/distribution/admin/commissions", {"status": "reversed"}).html.select_one("#no-commissions")
    user = admin.get(f"/-/distribution/admin/users/{buyer}")
    assert [a.text for a in user.html.select("#referrer-chain a")] == ["u2@example.com", "u1@example.com",
                                                                       "u0@example.com"]
    admin.get("/-/distribution/admin/users/999999", status=404)
    assert "Withdrawals waiting" in admin.get("/admin").text  # the dashboard widget


def test_admin_sets_product_rates(dreg, dist_app, web, shop):
    make_admin(dreg)
    admin = signed_in(dist_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    form = admin.get("/-/distribution/admin/rates").forms["rate-form"]
    form["product_id"], form["rate_1"], form["rate_2"], form["rate_3"] = str(shop), "80", "30", ""
    resp = form.submit(expect_errors=True)
    assert resp.status_int == 422  # 80 + 30 + the global 2.5 > 100
    form = resp.forms["rate-form"]
    form["rate_1"], form["rate_2"], form["rate_3"] = "20", "", "0"
    assert form.submit().status_int == 303
    with app_request(dreg) as req:
        row = req.db.get(ProductRate, shop)
        assert (row.rate_1, row.rate_2, row.rate_3, row.updated_by) == (2000, None, 0, ADMIN_EMAIL)
    page = admin.get("/-/distribution/admin/rates")
    assert page.html.select_one(f"#rates-{shop}") is not None
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    made = buy(web, dreg, buyer)
    assert [c[2] for c in commissions(dreg, made["order_no"])] == [2000, 500]
    form = page.forms["rate-form"]
    form["product_id"], form["rate_1"], form["rate_2"], form["rate_3"] = str(shop), "", "", ""
    assert form.submit().status_int == 303
    with app_request(dreg) as req:
        assert req.db.get(ProductRate, shop) is None


def test_admin_changes_a_referrer(dreg, dist_app, shop):
    make_admin(dreg)
    a = register(dreg, "a@example.com")
    b = register(dreg, "b@example.com", code=code_of(dreg, a))
    c = register(dreg, "c@example.com")
    admin = signed_in(dist_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    form = admin.get("/-/distribution/admin/referrers").forms["referrer-form"]
    form["account"], form["referrer"] = "a@example.com", "b@example.com"
    resp = form.submit(expect_errors=True)
    assert resp.status_int == 422 and "loop" in resp.text
    form = resp.forms["referrer-form"]
    form["account"], form["referrer"] = "b@example.com", code_of(dreg, c)
    assert form.submit().status_int == 303
    with app_request(dreg) as req:
        member = members.get(req.db, b)
        assert (member.referrer_id, member.bound_via) == (c, "admin")
    user_page = admin.get(f"/-/distribution/admin/users/{b}")
    form = user_page.forms["referrer-form"]
    form["referrer"] = ""
    assert form.submit().headers["Location"].endswith(f"/-/distribution/admin/users/{b}")
    with app_request(dreg) as req:
        assert members.get(req.db, b).referrer_id is None
    form = admin.get("/-/distribution/admin/referrers").forms["referrer-form"]
    form["account"], form["referrer"] = "nobody@example.com", ""
    assert form.submit(expect_errors=True).status_int == 404


def test_disabled_plugin_leaves_checkout_and_delivery_alone(dreg, dist_app, web, shop):
    top, l2, l1, buyer = chain(dreg, 4, balance=200_00)
    set_plugin(dreg, "distribution", enabled=False)
    paid_by_balance = buy(web, dreg, buyer)
    assert paid_by_balance["status"] == "delivered"
    by_gateway = buy(web, dreg, buyer, method="sandbox")
    assert load_order(dreg, by_gateway["order_no"]).status == "delivered"
    guest = buy(web, dreg, None, method="sandbox")
    assert load_order(dreg, guest["order_no"]).status == "delivered"
    with app_request(dreg) as req:
        assert req.db.scalar(select(func.count()).select_from(Commission)) == 0
        assert req.db.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    client = signed_in(dist_app, "u3@example.com")
    client.get("/-/distribution/", status=404)
    assert client.get(f"/p/{shop}").status_int == 200
    enable(dreg)  # back on: only orders delivered from now on earn
    buy(web, dreg, buyer)
    assert balance(dreg, l1) == 1000 and len(commissions(dreg)) == 3


def test_a_ref_link_served_from_the_page_cache_still_sets_the_cookie(make_app, dreg, shop):
    import kameng_distribution
    import kameng_sandbox

    cached = make_app(extra_plugins=[("distribution", kameng_distribution), ("sandbox", kameng_sandbox)],
                      **{"kameng.plugins.load_entrypoints": "false", "kameng.storefront.cache_seconds": "60"})
    code = code_of(dreg, register(dreg, "alice@example.com"))
    for _ in range(2):  # the second answer comes from the cache
        client = webtest.TestApp(cached, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        assert client.get(f"/?ref={code}").headers["Set-Cookie"].startswith(f"kameng_ref={code};")
    assert cached.registry["kameng.page_cache"].entries  # it was cached


def test_hostile_input_never_breaks_a_page(dreg, dist_app, web, shop):
    make_admin(dreg)
    top, l2, l1, buyer = chain(dreg, 4, balance=100_00)
    buy(web, dreg, buyer)
    admin = signed_in(dist_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    for params in ({"q": "a\x00b"}, {"q": "#²"}, {"q": "x@\x00.com"}, {"q": "<script>"}):
        assert admin.get("/-/distribution/admin/", params, expect_errors=True).status_int in (200, 303)
        assert admin.get("/-/distribution/admin/commissions", {**params, "level": "²", "page": "¹"}).status_int == 200
    admin.get("/-/distribution/admin/withdrawals", {"status": "\x00", "page": "-1"}, status=200)
    admin.get("/-/distribution/admin/users/%C2%B2", status=404)
    form = admin.get("/-/distribution/admin/referrers").forms["referrer-form"]
    form["account"], form["referrer"] = "#²", "a\x00b@example.com"
    assert form.submit(expect_errors=True).status_int == 404
    form = admin.get("/-/distribution/admin/rates").forms["rate-form"]
    token = form["csrf_token"].value
    for values in ({"product_id": "²", "rate_1": "5"}, {"product_id": str(shop), "rate_1": "5%"},
                   {"product_id": str(shop), "rate_1": "NaN"}):
        assert admin.post("/-/distribution/admin/rates", {"csrf_token": token, **values},
                          expect_errors=True).status_int == 422
    client = signed_in(dist_app, "u2@example.com")
    page = client.get("/-/distribution/")
    token = page.forms["withdraw-form"]["csrf_token"].value
    for amount in ("1e3", "\x00", "-10", "10.001", "９", "99999999999999"):
        resp = client.post("/-/distribution/withdraw", {"csrf_token": token, "amount": amount, "payee": "a\x00b"},
                           expect_errors=True)
        assert resp.status_int in (409, 422), (amount, resp.status_int)
    resp = client.post("/-/distribution/withdraw", {"csrf_token": token, "amount": "10.00", "payee": "pay\x00me"})
    assert resp.status_int == 303
    from kameng_distribution.models import Withdrawal

    with app_request(dreg) as req:
        assert [w.payee for w in req.db.scalars(select(Withdrawal))] == ["payme"]
    assert balance(dreg, l1) == 0
