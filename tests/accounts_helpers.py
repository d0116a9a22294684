"""Shared set-up for the account tests (tests/test_accounts_*.py): browsers
with their own address, registering and signing in through the forms, and
the account test plugin (tests/plugins/kameng_accountstest.py)."""
from __future__ import annotations

import itertools

import kameng_accountstest as plug
import webtest
from sqlalchemy import select

from kameng import accounts
from kameng.testing import app_request, set_plugin

PASSWORD = "buyer-password-123"
NEW_PASSWORD = "a-brand-new-password-9"
#: the core's per-address limits off: the tests send many forms from few addresses
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0",
             "kameng.limits.logins_per_ip_per_minute": "0"}
EXTRA_PLUGINS = [("accountstest", plug)]

_addresses = itertools.count(1)


def browser(app, address: str | None = None) -> webtest.TestApp:
    """A fresh browser: its own cookies and its own address."""
    n = next(_addresses)
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": address or f"10.7.{n // 250 % 250}.{n % 250 + 1}"})


def enable_plugin(registry) -> None:
    plug.reset()
    set_plugin(registry, "accountstest", enabled=True)


def make_user(registry, email="buyer@example.com", password=PASSWORD, phone=None, role="buyer") -> int:
    with app_request(registry) as req:
        return accounts.create_user(req.db, email, password, role=role, phone=phone).id


def load_user(registry, user_id: int) -> dict:
    with app_request(registry) as req:
        u = req.db.get(accounts.User, user_id)
        return {"email": u.email, "phone": u.phone, "display_name": u.display_name, "sv": u.session_version,
                "hash": u.password_hash, "locked_until": u.locked_until, "last_login_at": u.last_login_at}


def user_count(registry) -> int:
    with app_request(registry) as req:
        return len(req.db.scalars(select(accounts.User.id)).all())


def sign_in(web, identifier: str, password: str = PASSWORD, expect_errors=True):
    form = web.get("/login").forms["login-form"]
    form["email"], form["password"] = identifier, password
    return form.submit(expect_errors=expect_errors)


def register(web, email, password=PASSWORD, again=None, phone="", **extra):
    form = web.get("/register").forms["register-form"]
    form["email"], form["password"], form["password2"] = email, password, again if again is not None else password
    form["phone"] = phone
    for name, value in extra.items():
        form[name] = value
    return form.submit(expect_errors=True)


def signed_in_email(web):
    """Whose account the browser is signed in to, per the JSON API (None: nobody)."""
    resp = web.get("/api/v1/account", expect_errors=True)
    return resp.json["email"] if resp.status_int == 200 else None


def text_of(resp, selector: str) -> str:
    node = resp.html.select_one(selector)
    return node.get_text(" ", strip=True) if node is not None else ""
