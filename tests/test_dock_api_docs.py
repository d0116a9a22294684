"""docs/docking.md stays true: its Python client and callback check run
against a live shop, and its worked example is the known answer."""
import os
import re

import pytest
from dockapi_fake import Downstream
from dockapi_helpers import make_account
from orders_helpers import NO_LIMITS, make_sku

from kameng import httpclient
from kameng.dock import auth
from kameng.testing import LiveServer, free_port, run_jobs

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
BOTH = pytest.mark.parametrize("doc", ["docking.md", "docking.zh_CN.md"])


def read(doc: str) -> str:
    with open(os.path.join(DOCS, doc), encoding="utf-8") as fh:
        return fh.read()


def load(code: str, doc: str) -> dict:
    scope: dict = {}
    exec(compile(code, doc, "exec"), scope)  # noqa: S102 - our own documentation
    return scope


@pytest.fixture
def server(make_app, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)
    port = free_port()
    app = make_app(**NO_LIMITS, **{"kameng.base_url": f"http://127.0.0.1:{port}"})
    srv = LiveServer(app, port).start()
    srv.app = app
    yield srv
    srv.stop()


@BOTH
def test_the_worked_example_is_the_known_answer(doc):
    sig = re.search(r"X-Kameng-Signature: ([0-9a-f]{64})", read(doc)).group(1)
    assert sig == auth.signature("dks_test-secret-0123456789", "POST", "/api/v1/dock/orders", "b=2&a=1",
                                 b'{"sku":"CARD10","quantity":1,"out_order_no":"A-1"}', 1767225600,
                                 "n0nce-0001-abcdef")


@BOTH
@pytest.mark.slow
def test_the_documented_client_and_callback_check_work(server, doc):
    blocks = re.findall(r"```python\n(.*?)```", read(doc), re.DOTALL)
    client, check = (load(code, doc) for code in blocks[:2])
    dock_call, genuine = client["dock_call"], check["callback_is_genuine"]
    registry = server.app.registry
    make_sku(registry, code="CARD10", price="10.00", keys=3)
    _uid, key_id, secret = make_account(registry, balance=5000)
    status, goods = dock_call(server.url, key_id, secret, "GET", "/api/v1/dock/goods?x=1&a=2")
    assert status == 200 and goods["items"][0]["skus"][0]["code"] == "CARD10"
    with Downstream() as down:
        status, made = dock_call(server.url, key_id, secret, "POST", "/api/v1/dock/orders",
                                 {"sku": "CARD10", "quantity": 1, "out_order_no": "DOC-1",
                                  "callback_url": f"{down.url}/cb?shop=1"})
        assert status == 201 and made["keys"][0]["secret"] == "CARD10-KEY-0000"
        run_jobs(registry)
    got = down.received[0]
    path, _, query = got["path"].partition("?")
    assert genuine(secret, path, query, got["body"], got["headers"])
    assert not genuine(secret, path, query, got["body"] + b" ", got["headers"])
    assert not genuine("dks_wrong", path, query, got["body"], got["headers"])
    status, err = dock_call(server.url, key_id, "dks_wrong", "GET", "/api/v1/dock/balance")
    assert status == 401 and err["error"]["code"] == "invalid_signature"
