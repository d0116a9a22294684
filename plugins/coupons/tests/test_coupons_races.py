"""Real concurrency: buyers in real threads, each its own HTTP request to a
real waitress server on 127.0.0.1, against the suite's database (SQLite by
default, PostgreSQL or MariaDB through KAMENG_TEST_DATABASE_URL)."""
import threading
import types

import httpx
import pytest
from coupons_helpers import NO_LIMITS, add_coupon, add_sale, coupon_state, enable, make_product, order_body, sale_state
from kameng_coupons import pricing
from kameng_coupons.models import Coupon, Sale
from sqlalchemy import update

from kameng.errors import APIError
from kameng.testing import LiveServer, app_request, free_port
from kameng.types import Adjustment


BUYERS = 20


@pytest.fixture
def server(make_app):
    import kameng_coupons
    import kameng_sandbox

    port = free_port()
    app = make_app(extra_plugins=[("coupons", kameng_coupons), ("sandbox", kameng_sandbox)],
                   **{"kameng.plugins.load_entrypoints": "false", "kameng.base_url": f"http://127.0.0.1:{port}"},
                   **NO_LIMITS)
    srv = LiveServer(app, port).start()
    srv.registry = app.registry
    enable(app.registry)
    make_product(app.registry, "CARD10", "10.00", keys=30)
    yield srv
    srv.stop()


def at_once(n, fn):
    """``fn(i)`` in ``n`` threads released together; the results in order of ``i``."""
    start = threading.Barrier(n)
    results = [None] * n

    def run(i):
        start.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return results


def post_order(server, body):
    with httpx.Client(timeout=120) as client:
        r = client.post(f"{server.url}/api/v1/orders", json=body)
        return r.status_code, r.json()


@pytest.mark.slow
def test_a_single_use_coupon_taken_by_20_concurrent_orders_is_granted_once(server):
    add_coupon(server.registry, "ONLYONE", "fixed", "2.00", max_uses=1)
    results = at_once(BUYERS, lambda i: post_order(server, order_body(coupon="ONLYONE",
                                                                      contact=f"buyer{i}@example.com")))
    assert all(isinstance(r, tuple) for r in results), results
    created = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status != 201]
    assert len(created) == 1, results
    assert created[0]["amount"] == "8.00"
    assert len(refused) == BUYERS - 1
    assert all(status == 409 for status, _body in results if status != 201), results
    assert {body["error"]["code"] for body in refused} == {"coupon_unavailable"}
    assert coupon_state(server.registry, "ONLYONE") == (1, ["used"])


@pytest.mark.slow
def test_one_buyer_racing_a_once_per_buyer_coupon_gets_it_once(server):
    add_coupon(server.registry, "PERBUYER", "fixed", "2.00", per_buyer=1)
    n = 10
    results = at_once(n, lambda i: post_order(server, order_body(coupon="PERBUYER", contact="same@example.com")))
    statuses = sorted(status for status, _body in results)
    assert statuses == [201] + [409] * (n - 1), results
    assert coupon_state(server.registry, "PERBUYER") == (1, ["used"])


@pytest.mark.slow
def test_the_last_sale_unit_goes_to_one_buyer(server):
    sale = add_sale(server.registry, "CARD10", price="5.00", cap=1)
    results = at_once(BUYERS, lambda i: post_order(server, order_body(contact=f"buyer{i}@example.com")))
    assert all(isinstance(r, tuple) for r in results), results
    # a buyer whose price was quoted with the sale unit that another took is refused (409 out_of_stock);
    # one quoted after it was taken pays the list price
    discounted = [body for status, body in results if status == 201 and body["amount"] == "5.00"]
    full = [body for status, body in results if status == 201 and body["amount"] == "10.00"]
    refused = [body for status, body in results if status != 201]
    assert len(discounted) == 1, results
    assert len(discounted) + len(full) + len(refused) == BUYERS
    assert all(body["error"]["code"] == "out_of_stock" for body in refused), refused
    assert sale_state(server.registry, sale) == (1, [(1, "used")])


# -- the guards themselves, without timing luck (on SQLite, writers queue at BEGIN, so
# -- the races above never reach them there) --------------------------------------------------


def _order_like(sku_id, quantity=1, unit_price=1000, contact="x@example.com"):
    return types.SimpleNamespace(id=10 ** 8, order_no="0" * 20, sku_id=sku_id, quantity=quantity,
                                 unit_price=unit_price, contact=contact, user_id=None)


def test_the_coupon_update_refuses_a_use_past_the_limit(creg, shop):
    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1)
    with app_request(creg) as req:  # another order took the use after this one was priced
        req.db.execute(update(Coupon).values(used=1))
    taken = Adjustment(source="coupons", label="Coupon", amount=-100, code="ONCE", exclusive_group="coupon",
                       priority=30)
    with app_request(creg) as req:
        with pytest.raises(APIError) as err:
            pricing.commit(req, _order_like(shop), [taken])
    assert (err.value.status, err.value.code) == (409, "coupon_unavailable")
    assert coupon_state(creg, "ONCE") == (1, [])


def test_the_sale_update_refuses_units_another_order_took(creg, shop, monkeypatch):
    sale_id = add_sale(creg, "CARD10", price="8.00", cap=1)
    with app_request(creg) as req:
        stale = req.db.get(Sale, sale_id)
        req.db.expunge(stale)
    with app_request(creg) as req:  # sold out after this order's price was read
        req.db.execute(update(Sale).values(sold=1))
    monkeypatch.setattr(pricing, "plan_sale", lambda db, sku, quantity, unit_price, now: (stale, 1, 200))
    taken = Adjustment(source="coupons", label="Sale", amount=-200, exclusive_group="sale", priority=10)
    with app_request(creg) as req:
        with pytest.raises(APIError) as err:
            pricing.commit(req, _order_like(shop), [taken])
    assert (err.value.status, err.value.code) == (409, "out_of_stock")
    assert sale_state(creg, sale_id) == (1, [])
