"""The gateway conformance kit: the provider's side of a payment protocol,
played by a *driver*, and a suite of hostile notifies every gateway plugin
must survive.

A plugin's test module subclasses :class:`GatewayConformance` and gives it a
driver::

    from kameng.testing.gateways import GatewayConformance
    from my_gateway.testing import MyDriver

    class TestMyGatewayConformance(GatewayConformance):
        driver = MyDriver()

The suite makes its own shop (a card-key product priced 1.00 with stock),
opens payment attempts through the core without calling the provider, posts
the driver's notifies to ``/pay/<gateway>/notify`` and checks what the core
did: paid once or not at all, delivered once, nothing else moved.
"""
from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import pytest

#: ``with_signature(n, MISSING)`` leaves the signature out
MISSING = object()


@dataclass(frozen=True)
class NotifyRequest:
    """One HTTP request as the provider would send it."""

    method: str
    path: str
    #: query parameters in order; a name may repeat
    query: tuple[tuple[str, str], ...] = ()
    #: form fields of an ``application/x-www-form-urlencoded`` POST, in order
    form: tuple[tuple[str, str], ...] = ()
    #: a raw body (JSON protocols); ``content_type`` says what it is
    body: bytes | None = None
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def with_(self, **changes) -> "NotifyRequest":
        return replace(self, **changes)


class GatewayDriver:
    """The provider's side of one protocol, for the conformance suite.

    Subclass it next to the plugin's tests (or ship it in the plugin, as the
    bundled gateways do in ``<package>/testing.py``) and fill in every
    method. Amounts are passed in the protocol's own form (``"1.00"`` for
    epay, ``100`` fen for WeChat Pay): :meth:`amount_forms` and
    :meth:`malformed_amounts` say what those are.
    """

    #: the gateway's identifier (= its plugin id)
    gateway_id: str = ""
    #: ``(plugin_id, module)`` pairs to load when the plugin is not installed
    #: by entry point (a plugin's own checkout before ``pip install``)
    plugins: tuple = ()
    #: the setting holding the merchant key: saving it empty must be refused
    key_setting: str = ""
    #: the protocol carries a timestamp the gateway must hold to 300 s
    has_timestamp: bool = False
    #: the protocol names the merchant account (pid, seller_id, mchid)
    has_merchant_id: bool = False
    #: the protocol carries a currency
    has_currency: bool = False
    #: notifies carry the provider's own trade number (the sandbox derives it
    #: from the attempt number, so one trade can only ever pay one attempt)
    has_trade_no: bool = True
    #: unknown fields take part in the signature, so a signed extra field
    #: still verifies (epay, Alipay); ``False``: the gateway refuses them
    signs_extra_fields: bool = True
    #: the shop's currency for the suite's orders
    currency: str = "CNY"

    def settings(self) -> dict:
        """Plugin settings that verify this driver's notifies (test keys)."""
        raise NotImplementedError

    def notify(self, attempt_no: str, amount, *, trade_no: str, status: str = "paid",
               merchant_id: str | None = None, currency: str | None = None, timestamp: int | None = None,
               extra: dict | None = None, wrong_key: bool = False) -> NotifyRequest:
        """A correctly signed notify saying ``attempt_no`` was ``status``
        (``paid``, ``pending`` or ``failed``, in the protocol's words) with
        ``amount`` under the provider's ``trade_no``. ``merchant_id`` and
        ``currency`` replace the configured ones, ``timestamp`` (unix
        seconds) the current time, ``extra`` adds fields that are signed
        with the rest; ``wrong_key`` signs with a key that is not the
        merchant's."""
        raise NotImplementedError

    def amount_forms(self, minor: int) -> list:
        """Every way the protocol may write ``minor`` units that must pay it
        (epay: ``["1.00", "1", "1.0"]``); the first is what it normally sends."""
        raise NotImplementedError

    def malformed_amounts(self) -> list:
        """Amounts that must never pay (``"1e2"``, ``"-1"``, ``"NaN"``…), each
        sent correctly signed."""
        raise NotImplementedError

    def with_signature(self, n: NotifyRequest, value) -> NotifyRequest:
        """``n`` with its signature replaced by ``value``: :data:`MISSING`
        (left out), ``""``, a list of two strings (sent as an array or twice),
        ``True`` or a number, each encoded as the protocol's transport allows."""
        raise NotImplementedError

    def with_unsigned_field(self, n: NotifyRequest, name: str, value: str) -> NotifyRequest:
        """``n`` with one more field added after signing."""
        raise NotImplementedError

    def with_duplicate(self, n: NotifyRequest) -> NotifyRequest:
        """``n`` with its amount field sent a second time with another value
        (HTTP parameter pollution, or a JSON key twice), the signature over
        the first."""
        raise NotImplementedError

    def empty_fields(self, attempt_no: str, amount, trade_no: str) -> list[tuple[str, NotifyRequest]]:
        """``(field name, notify)`` for each field the protocol needs to pay
        (order number, amount, status, trade number, merchant…), that field
        sent empty and the notify signed again."""
        raise NotImplementedError

    def accepted(self, status: int, body: bytes) -> bool:
        """Whether the reply tells the provider the notify was taken (it
        stops retrying)."""
        raise NotImplementedError


# -- the suite ---------------------------------------------------------------------------

PRICE, MINOR = "1.00", 100
SKU = "KITCARD"
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"}
_trade_numbers = itertools.count(1)


def new_trade_no() -> str:
    return f"KIT{int(time.time())}{next(_trade_numbers):06d}"


def _url(n: NotifyRequest) -> str:
    return n.path + ("?" + urlencode(list(n.query)) if n.query else "")


def _body(n: NotifyRequest) -> tuple[bytes, str]:
    if n.form:
        return urlencode(list(n.form)).encode(), "application/x-www-form-urlencoded"
    if n.body is not None:
        return n.body, n.content_type or "application/octet-stream"
    return b"", ""


def send(testapp, n: NotifyRequest):
    """Post ``n`` to the app through WebTest; the response (any status)."""
    import webtest

    body, ctype = _body(n)
    kw = {"method": n.method, "headers": dict(n.headers), "environ": {"REMOTE_ADDR": "127.0.0.1"}}
    if n.method != "GET" or body:
        kw["body"] = body
        if ctype:
            kw["content_type"] = ctype
    req = webtest.TestRequest.blank(_url(n), **kw)
    return testapp.do_request(req, status=None, expect_errors=True)


def send_live(base_url: str, n: NotifyRequest) -> tuple[int, bytes]:
    """Send ``n`` over real HTTP to a running shop."""
    body, ctype = _body(n)
    headers = dict(n.headers)
    if ctype:
        headers["Content-Type"] = ctype
    req = urllib.request.Request(base_url + _url(n), data=body if n.method != "GET" else None,
                                 headers=headers, method=n.method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass(frozen=True)
class Outcome:
    attempt: str
    order: str
    sold_keys: int
    deliveries: int
    refunds: tuple
    last_notice: str


class GatewayConformance:
    """Subclass with a ``driver`` (see the module doc). Every test opens its
    own orders; the database is emptied after each."""

    #: the provider's side of the protocol under test
    driver: GatewayDriver

    @pytest.fixture(scope="class")
    @classmethod
    def kit_app(cls, make_app):
        from kameng.testing import othergateway

        driver = cls.driver
        return make_app(extra_plugins=[*driver.plugins, (othergateway.PLUGIN_ID, othergateway)],
                        # reconciliation queries stay far off: the suite judges notifies alone
                        **{**NO_LIMITS, "kameng.payments.query_delay_scale": "1000"})

    @pytest.fixture
    def kit(self, kit_app):
        import webtest

        from kameng.testing import add_card_sku, set_plugin
        from kameng.testing import othergateway

        registry, driver = kit_app.registry, self.driver
        set_plugin(registry, driver.gateway_id, enabled=True, **driver.settings())
        set_plugin(registry, othergateway.PLUGIN_ID, enabled=True, secret=othergateway.SECRET)
        if driver.currency != "CNY":
            from kameng import shop
            from kameng.testing import app_request

            with app_request(registry) as req:
                shop.save(req.db, {**req.shop, "currency": driver.currency})
        add_card_sku(registry, SKU, PRICE, keys=30, currency=driver.currency)
        return webtest.TestApp(kit_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})

    # -- helpers ---------------------------------------------------------------------

    def open(self, kit, driver, gateway_id=None) -> tuple[str, str]:
        from kameng.testing import open_order

        return open_order(kit.app.registry, SKU, gateway_id or driver.gateway_id)

    def outcome(self, kit, order_no: str, attempt_no: str) -> Outcome:
        from sqlalchemy import func, select

        from kameng.inventory.models import SOLD, CardKey
        from kameng.orders.models import Order, OrderEvent, Refund
        from kameng.payments.models import PaymentAttempt, PaymentNotice
        from kameng.testing import app_request, run_jobs

        registry = kit.app.registry
        run_jobs(registry)
        with app_request(registry) as req:
            db = req.db
            order = db.scalar(select(Order).where(Order.order_no == order_no))
            attempt = db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == attempt_no))
            sold = db.scalar(select(func.count()).select_from(CardKey).where(
                CardKey.order_ref == order_no, CardKey.state == SOLD))
            deliveries = db.scalar(select(func.count()).select_from(OrderEvent).where(
                OrderEvent.order_id == order.id, OrderEvent.to_status == "delivered",
                OrderEvent.from_status != "delivered"))
            refunds = tuple((r.attempt_id == attempt.id, r.amount) for r in db.scalars(
                select(Refund).where(Refund.order_id == order.id)))
            notice = db.scalar(select(PaymentNotice.outcome).where(
                PaymentNotice.attempt_no == attempt_no, ~PaymentNotice.outcome.startswith("query:"))
                .order_by(PaymentNotice.id.desc()).limit(1))
            return Outcome(attempt.status, order.status, sold, deliveries, refunds, notice or "")

    def assert_untouched(self, kit, order_no, attempt_no, why: str):
        got = self.outcome(kit, order_no, attempt_no)
        assert (got.attempt, got.order, got.sold_keys) == ("pending", "pending", 0), f"{why}: {got}"

    def assert_paid_once(self, kit, order_no, attempt_no, why: str):
        got = self.outcome(kit, order_no, attempt_no)
        assert (got.attempt, got.order, got.sold_keys, got.deliveries) == ("paid", "delivered", 1, 1), f"{why}: {got}"

    def refused(self, driver, resp, why: str):
        assert resp.status_int < 500, f"{why}: a server error ({resp.status})"
        assert not driver.accepted(resp.status_int, resp.body), f"{why}: the gateway was told the notify was taken"

    def paid_notify(self, driver, attempt_no, **kw) -> NotifyRequest:
        return driver.notify(attempt_no, driver.amount_forms(MINOR)[0], trade_no=kw.pop("trade_no", new_trade_no()),
                             **kw)

    # -- a good notify -----------------------------------------------------------------

    def test_a_valid_notify_pays_and_delivers_once(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, self.paid_notify(driver, attempt_no))
        assert resp.status_int < 300 and driver.accepted(resp.status_int, resp.body), resp
        self.assert_paid_once(kit, order_no, attempt_no, "a valid notify")

    def test_every_form_of_the_amount_pays(self, kit):
        driver = self.driver
        for form in driver.amount_forms(MINOR):
            order_no, attempt_no = self.open(kit, driver)
            resp = send(kit, driver.notify(attempt_no, form, trade_no=new_trade_no()))
            assert driver.accepted(resp.status_int, resp.body), f"amount {form!r}: {resp}"
            self.assert_paid_once(kit, order_no, attempt_no, f"amount {form!r}")

    # -- signatures ----------------------------------------------------------------------

    @pytest.mark.parametrize("value", [MISSING, "", ["0" * 32, "1" * 32], True, 12345],
                             ids=["missing", "empty", "array", "boolean", "number"])
    def test_a_bad_signature_is_refused(self, kit, value):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, driver.with_signature(self.paid_notify(driver, attempt_no), value))
        self.refused(driver, resp, f"signature {value!r}")
        self.assert_untouched(kit, order_no, attempt_no, f"signature {value!r}")

    def test_a_notify_signed_with_another_key_is_refused(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, self.paid_notify(driver, attempt_no, wrong_key=True))
        self.refused(driver, resp, "wrong key")
        self.assert_untouched(kit, order_no, attempt_no, "wrong key")

    def test_a_field_added_after_signing_is_refused(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, driver.with_unsigned_field(self.paid_notify(driver, attempt_no), "kit_extra", "1"))
        self.refused(driver, resp, "unsigned extra field")
        self.assert_untouched(kit, order_no, attempt_no, "unsigned extra field")

    def test_signed_unknown_fields(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, self.paid_notify(driver, attempt_no, extra={"kit_extra": "1", "buyer": "someone"}))
        if driver.signs_extra_fields:  # the provider may add fields: they are signed, so they verify
            assert driver.accepted(resp.status_int, resp.body), resp
            self.assert_paid_once(kit, order_no, attempt_no, "signed extra fields")
        else:
            self.refused(driver, resp, "extra fields where the protocol has none")
            self.assert_untouched(kit, order_no, attempt_no, "extra fields")

    def test_a_parameter_sent_twice_is_refused(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, driver.with_duplicate(self.paid_notify(driver, attempt_no)))
        self.refused(driver, resp, "duplicate parameter")
        self.assert_untouched(kit, order_no, attempt_no, "duplicate parameter")

    def test_empty_fields_never_pay(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        cases = driver.empty_fields(attempt_no, driver.amount_forms(MINOR)[0], new_trade_no())
        assert cases, "the driver names no field the protocol needs"
        for name, n in cases:
            resp = send(kit, n)
            assert resp.status_int < 500, f"empty {name}: {resp.status}"
            self.assert_untouched(kit, order_no, attempt_no, f"empty {name}")

    def test_a_stale_or_future_timestamp_is_refused(self, kit):
        driver = self.driver
        if not driver.has_timestamp:
            pytest.skip("the protocol carries no timestamp")
        order_no, attempt_no = self.open(kit, driver)
        for skew in (-301, 301, -86400):
            resp = send(kit, self.paid_notify(driver, attempt_no, timestamp=int(time.time()) + skew))
            self.refused(driver, resp, f"timestamp {skew:+d} s")
        self.assert_untouched(kit, order_no, attempt_no, "stale timestamps")

    # -- what a signature cannot vouch for: the core's checks ------------------------------

    def test_a_status_that_is_not_paid_does_not_pay(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        for status in ("pending", "failed"):
            resp = send(kit, self.paid_notify(driver, attempt_no, status=status))
            assert resp.status_int < 500, f"status {status}: {resp.status}"
        got = self.outcome(kit, order_no, attempt_no)
        assert got.attempt in ("pending", "failed") and got.order == "pending" and got.sold_keys == 0, got

    def test_a_lower_or_higher_amount_does_not_pay(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        for minor in (1, MINOR - 1, MINOR + 1, MINOR * 100):
            resp = send(kit, driver.notify(attempt_no, driver.amount_forms(minor)[0], trade_no=new_trade_no()))
            self.refused(driver, resp, f"amount {minor} for {MINOR}")
        self.assert_untouched(kit, order_no, attempt_no, "wrong amounts")
        assert self.outcome(kit, order_no, attempt_no).last_notice == "amount_mismatch"

    def test_malformed_amounts_do_not_pay(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        for amount in driver.malformed_amounts():
            resp = send(kit, driver.notify(attempt_no, amount, trade_no=new_trade_no()))
            self.refused(driver, resp, f"amount {amount!r}")
        self.assert_untouched(kit, order_no, attempt_no, "malformed amounts")

    def test_an_unknown_order_is_refused(self, kit):
        driver = self.driver
        from kameng.payments.service import new_attempt_no

        resp = send(kit, self.paid_notify(driver, new_attempt_no()))
        self.refused(driver, resp, "unknown attempt")

    def test_another_merchant_is_refused(self, kit):
        driver = self.driver
        if not driver.has_merchant_id:
            pytest.skip("the protocol names no merchant")
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, self.paid_notify(driver, attempt_no, merchant_id="9999999999"))
        self.refused(driver, resp, "another merchant")
        self.assert_untouched(kit, order_no, attempt_no, "another merchant")

    def test_another_currency_is_refused(self, kit):
        driver = self.driver
        if not driver.has_currency:
            pytest.skip("the protocol carries no currency")
        order_no, attempt_no = self.open(kit, driver)
        resp = send(kit, self.paid_notify(driver, attempt_no, currency="USD"))
        self.refused(driver, resp, "another currency")
        self.assert_untouched(kit, order_no, attempt_no, "another currency")

    def test_an_attempt_of_another_gateway_is_refused(self, kit):
        driver = self.driver
        from kameng.testing import othergateway

        order_no, attempt_no = self.open(kit, driver, othergateway.PLUGIN_ID)
        resp = send(kit, self.paid_notify(driver, attempt_no))
        self.refused(driver, resp, "an attempt of another gateway")
        self.assert_untouched(kit, order_no, attempt_no, "an attempt of another gateway")
        assert self.outcome(kit, order_no, attempt_no).last_notice == "wrong_gateway"

    def test_another_gateways_notify_posted_here_is_refused(self, kit):
        driver = self.driver
        from kameng.testing import othergateway

        order_no, attempt_no = self.open(kit, driver)
        fields = {"attempt_no": attempt_no, "amount": PRICE, "trade_no": new_trade_no()}
        fields["sign"] = othergateway.sign(**fields)
        path = f"/pay/{driver.gateway_id}/notify"
        for n in (NotifyRequest("POST", path, form=tuple(fields.items())),
                  NotifyRequest("GET", path, query=tuple(fields.items()))):
            self.refused(driver, send(kit, n), "another gateway's notify")
        self.assert_untouched(kit, order_no, attempt_no, "another gateway's notify")

    def test_one_trade_cannot_pay_two_attempts(self, kit):
        driver = self.driver
        if not driver.has_trade_no:
            pytest.skip("the protocol derives the trade number from the attempt")
        first_order, first = self.open(kit, driver)
        second_order, second = self.open(kit, driver)
        trade_no = new_trade_no()
        assert driver.accepted(*_status_body(send(kit, self.paid_notify(driver, first, trade_no=trade_no))))
        resp = send(kit, self.paid_notify(driver, second, trade_no=trade_no))
        self.refused(driver, resp, "a trade number already used")
        self.assert_paid_once(kit, first_order, first, "the first attempt")
        self.assert_untouched(kit, second_order, second, "the trade number reused")

    # -- replays, races, late and double payments -------------------------------------------

    def test_a_replayed_notify_changes_nothing(self, kit):
        driver = self.driver
        order_no, attempt_no = self.open(kit, driver)
        n = self.paid_notify(driver, attempt_no)
        for _ in range(3):
            resp = send(kit, n)
            assert driver.accepted(resp.status_int, resp.body), resp  # the provider must stop retrying
        self.assert_paid_once(kit, order_no, attempt_no, "a replayed notify")
        assert self.outcome(kit, order_no, attempt_no).last_notice == "duplicate"

    def test_twenty_concurrent_identical_notifies_pay_once(self, kit):
        driver = self.driver
        from kameng.testing import LiveServer, free_port

        order_no, attempt_no = self.open(kit, driver)
        n = self.paid_notify(driver, attempt_no)
        server = LiveServer(kit.app, free_port()).start()
        try:
            barrier = threading.Barrier(20)

            def one():
                barrier.wait()
                return send_live(server.url, n)

            with ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(lambda _: one(), range(20)))
        finally:
            server.stop()
        assert all(status < 500 or status == 503 for status, _ in replies), replies
        assert any(driver.accepted(status, body) for status, body in replies), replies
        self.assert_paid_once(kit, order_no, attempt_no, "20 concurrent notifies")

    def test_a_second_payment_of_a_paid_order_is_refunded_not_delivered(self, kit):
        driver = self.driver
        from kameng.orders.models import Order
        from kameng.payments.models import PaymentAttempt
        from kameng.payments.service import create_attempt, get_gateway
        from kameng.testing import app_request
        from sqlalchemy import select

        order_no, first = self.open(kit, driver)
        # the buyer opened a second payment before the first one went through, then paid both
        with app_request(kit.app.registry) as req:
            order = req.db.scalar(select(Order).where(Order.order_no == order_no))
            second = create_attempt(req, get_gateway(req, driver.gateway_id), order.amount, order.currency,
                                    "second payment")
            second.order_id = order.id
            second = second.attempt_no
        assert driver.accepted(*_status_body(send(kit, self.paid_notify(driver, first))))
        assert driver.accepted(*_status_body(send(kit, self.paid_notify(driver, second))))
        got = self.outcome(kit, order_no, first)
        assert (got.order, got.sold_keys, got.deliveries) == ("delivered", 1, 1), got
        with app_request(kit.app.registry) as req:
            assert req.db.scalar(select(PaymentAttempt.status).where(PaymentAttempt.attempt_no == second)) == "paid"
        assert self.outcome(kit, order_no, second).refunds == ((True, MINOR),), "the second payment is refunded"
        if driver.has_trade_no:  # the same attempt paid again under another trade: recorded, not delivered
            resp = send(kit, self.paid_notify(driver, first))
            assert resp.status_int < 500
            got = self.outcome(kit, order_no, first)
            assert (got.sold_keys, got.deliveries, got.last_notice) == (1, 1, "second_payment"), got

    def test_a_notify_after_expiry_is_not_lost(self, kit):
        driver = self.driver
        from kameng.orders.models import Order
        from kameng.orders.service import expire_due
        from kameng.testing import app_request
        from sqlalchemy import update

        order_no, attempt_no = self.open(kit, driver)
        with app_request(kit.app.registry) as req:
            req.db.execute(update(Order).where(Order.order_no == order_no).values(
                expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)))
            assert expire_due(req) == 1
        resp = send(kit, self.paid_notify(driver, attempt_no))
        assert driver.accepted(resp.status_int, resp.body), resp  # the money arrived: take it, then decide
        got = self.outcome(kit, order_no, attempt_no)
        assert got.attempt == "paid", got
        # stock was still there: the late payment is delivered (else it would be refunded in full)
        assert (got.order, got.sold_keys) == ("delivered", 1) or got.refunds == ((True, MINOR),), got

    # -- settings -------------------------------------------------------------------------

    def test_an_empty_merchant_key_is_refused(self, kit):
        driver = self.driver
        from kameng.pluginhost import configure
        from kameng.testing import app_request
        from kameng.types import SettingError

        assert driver.key_setting, "the driver names no merchant key setting"
        with pytest.raises(SettingError), app_request(kit.app.registry) as req:
            configure(req, driver.gateway_id, {driver.key_setting: ""})
        with pytest.raises(SettingError), app_request(kit.app.registry) as req:
            configure(req, driver.gateway_id, {driver.key_setting: "   "})


def _status_body(resp) -> tuple[int, bytes]:
    return resp.status_int, resp.body
