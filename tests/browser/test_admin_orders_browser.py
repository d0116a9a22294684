"""An admin in a real browser: the dashboard's order tiles, the orders list
with its filters, one order's page (payments, trail, keys revealed) and a
refund of it; then the users page and a balance adjustment."""
from __future__ import annotations

import itertools
import re

import webtest
from sqlalchemy import select

from kameng.inventory import service as inventory
from kameng.inventory.models import CardKey
from kameng.testing import app_request
from kameng_sandbox.gateway import signed_fields

from orders_helpers import SECRET, enable_sandbox, make_sku, order_body, run_jobs

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None

_ips = itertools.count(1)


def sign_in(page, email, password):
    page.goto("/login")
    form = page.locator("form#login-form")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()


def place(app, registry, sku="CARD10", pay=True, **extra) -> dict:
    buyer = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": f"10.9.{next(_ips)}.1"})
    made = buyer.post_json("/api/v1/orders", order_body(sku, **extra), status=201).json
    if pay:
        buyer.post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], made["amount"], "paid", SECRET))
        run_jobs(registry)
    return made


def test_admin_finds_an_order_and_refunds_it(page, app, registry, admin, screenshot):
    make_sku(registry, name="Steam 钱包充值码")
    make_sku(registry, code="MAN5", price="5.00", type_="manual", name="爱奇艺黄金会员月卡")
    enable_sandbox(registry)
    card = place(app, registry, quantity=2)
    place(app, registry, "MAN5", contact="+8613800000000")
    place(app, registry, pay=False, contact="13900000000")
    with app_request(registry) as req:
        keyring = req.registry["kameng.keyring"]
        secrets = [inventory.reveal(keyring, k)[1] for k in req.db.scalars(
            select(CardKey).where(CardKey.order_ref == card["order_no"]).order_by(CardKey.id))]

    sign_in(page, *admin)
    page.wait_for_url(re.compile(r"/admin$"))
    tiles = page.locator("#order-stats .stat strong")
    expect(tiles).to_have_text(["2", "CNY 25.00", "1", "0"])
    screenshot("admin-dashboard-orders")

    # the list
    page.locator(".sidebar nav a", has_text="Orders").click()
    page.wait_for_url(re.compile(r"/admin/orders$"))
    expect(page.locator("h1")).to_have_text("Orders")
    expect(page.locator("#orders tbody tr")).to_have_count(3)
    expect(page.locator("#tab-delivered .count")).to_have_text("1")
    expect(page.locator("#tab-pending .count")).to_have_text("1")
    screenshot("admin-orders")

    page.locator("#order-filters input[name=q]").fill(card["order_no"][-10:])
    page.locator("#order-filters button[type=submit]").click()
    expect(page.locator("#orders tbody tr")).to_have_count(1)
    page.locator(f"#order-{card['order_no']} a").click()

    # one order
    page.wait_for_url(re.compile(rf"/admin/orders/{card['order_no']}$"))
    expect(page.locator("#order-status")).to_have_text("Delivered")
    expect(page.locator(f"#attempt-{card['payment']['attempt_no']} .notices .badge")).to_have_text(["Applied"])
    expect(page.locator("#events tbody tr")).to_have_count(4)
    expect(page.locator("#key-table .masked")).to_have_count(2)
    for secret in secrets:
        expect(page.get_by_text(secret)).to_have_count(0)
    screenshot("admin-order")

    page.locator("#reveal-form button").click()
    expect(page.locator("#key-table .secret-value")).to_have_text(secrets)
    page.goto(f"/admin/orders/{card['order_no']}")  # shown once: not on the next visit
    expect(page.locator("#key-table .secret-value")).to_have_count(0)

    # a refund without a reason is stopped by the browser; with one, it is started
    refund = page.locator("#refund-form")
    refund.locator("input[name=amount]").fill("5.00")
    refund.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"/admin/orders/{card['order_no']}$"))
    assert page.locator("#refund-form input[name=reason]").evaluate("e => !e.validity.valid")
    refund.locator("input[name=reason]").fill("buyer asked for half back")
    refund.locator("select[name=destination]").select_option("gateway")
    refund.locator("button[type=submit]").click()
    expect(page.locator(".flash p.info")).to_have_text("The refund is started.")
    run_jobs(registry)
    page.reload()
    expect(page.locator("#refunded")).to_contain_text("CNY 5.00")
    expect(page.locator("#refund-table tbody tr .badge")).to_have_text(["Succeeded"])
    screenshot("admin-order-refunded-part")

    refund = page.locator("#refund-form")
    refund.locator("input[name=reason]").fill("the rest as well")
    refund.locator("button[type=submit]").click()
    run_jobs(registry)
    page.reload()
    expect(page.locator("#order-status")).to_have_text("Refunded")
    expect(page.locator("#no-actions")).to_be_visible()
    page.locator("#trail").scroll_into_view_if_needed()
    screenshot("admin-order-refunded")


def test_admin_adjusts_a_balance(page, admin, screenshot):
    sign_in(page, *admin)
    page.wait_for_url(re.compile(r"/admin$"))
    page.locator(".sidebar nav a", has_text="Users").click()
    page.wait_for_url(re.compile(r"/admin/users$"))
    form = page.locator("#user-form")
    form.locator("input[name=email]").fill("agent@example.com")
    form.locator("input[name=password]").fill("agent-password-1")
    form.locator("select[name=role]").select_option("agent")
    form.locator("button[type=submit]").click()
    expect(page.locator("#user-email")).to_have_text("agent@example.com")
    adjust = page.locator("#balance-form")
    adjust.locator("input[name=amount]").fill("100.00")
    adjust.locator("input[name=reason]").fill("prepaid by bank transfer")
    adjust.locator("button[type=submit]").click()
    expect(page.locator("#balance strong")).to_have_text("CNY 100.00")
    adjust = page.locator("#balance-form")
    adjust.locator("input[name=amount]").fill("-200.00")
    adjust.locator("input[name=reason]").fill("too much")
    adjust.locator("button[type=submit]").click()
    expect(page.locator("#adjust-error")).to_contain_text("less than")
    expect(page.locator("#balance strong")).to_have_text("CNY 100.00")
    screenshot("admin-user")
    page.locator(".crumbs a").click()
    expect(page.locator("#users tbody tr")).to_have_count(2)
    screenshot("admin-users")
