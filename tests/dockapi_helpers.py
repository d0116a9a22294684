"""Shared set-up for the docking API tests: an account with a balance and a
key, and signed requests through WebTest or real HTTP."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from kameng.dock.auth import sign_request
from kameng.dock.models import create_key
from kameng.testing import app_request


def make_account(registry, email="agent@example.com", balance=0, role="agent", ip_allowlist="", name="tests"):
    """An account with ``balance`` minor units and one docking key: ``(user_id, key_id, secret)``."""
    from kameng import accounts, wallet

    with app_request(registry) as req:
        user = accounts.create_user(req.db, email, "agent-password-123", role=role)
        if balance:
            wallet.post(req.db, user.id, balance, "CNY", "admin", note="test credit")
        key, secret = create_key(req.db, registry["kameng.keyring"], user.id, name=name, ip_allowlist=ip_allowlist)
        return user.id, key.key_id, secret


def body_bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


def signed(testapp, creds, method, url, body=None, *, status=None, headers=None, sign_body=None, remote=None,
           **sign_kw):
    """A signed request through WebTest. ``sign_body``: sign other bytes
    than are sent; ``headers`` override the signed ones."""
    _uid, key_id, secret = creds
    raw = body_bytes(body)
    h = sign_request(key_id, secret, method, url, raw if sign_body is None else sign_body, **sign_kw)
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    env = {"REMOTE_ADDR": remote} if remote else None
    if method == "GET":
        return testapp.get(url, headers=h, status=status, extra_environ=env)
    assert method == "POST"
    return testapp.post(url, raw, headers=h, content_type="application/json", status=status, extra_environ=env)


def http_signed(base_url, creds, method, path, body=None, timeout=120):
    """A signed request over real HTTP: ``(status, decoded JSON)``."""
    _uid, key_id, secret = creds
    raw = body_bytes(body)
    headers = sign_request(key_id, secret, method, path, raw)
    if raw:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base_url + path, data=raw or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")
