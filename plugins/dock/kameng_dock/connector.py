"""The ``dock`` supplier connector: another kameng shop as the upstream.

The upstream sells to this shop through its docking API (API.md): goods at
the price it quotes this account, orders paid from this account's balance
there, idempotent on our ``out_order_no``, and a signed callback when an
order finishes. Every call is signed with the connection's key; every answer
is read with :mod:`kameng.strictjson` and checked field by field.

Placing an order can never place it twice: the upstream keeps one order per
``out_order_no``, and when a POST ends without a usable answer (a timeout, a
5xx, garbage) the connector asks ``GET orders/{out_order_no}`` before anything
else. Only a definite "no such order" after a 5xx or garbage lets it POST
again (the same number), and a timeout followed by "no such order" is
reported as ``unknown``: the first POST may still be on its way.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from urllib.parse import quote, urlsplit

from kameng import httpclient
from kameng.i18n import _
from kameng.suppliers.base import CallbackRejected, SupplierConnector, SupplierError
from kameng.types import (
    SettingField,
    UpstreamGoods,
    UpstreamOrderRequest,
    UpstreamResult,
)
from kameng_dock import protocol

log = logging.getLogger(__name__)

#: error codes of a POST orders refusal after which nothing was placed or charged
REFUSALS = {
    "insufficient_balance": "the balance of this account at the upstream is too low",
    "out_of_stock": "the upstream is out of stock",
    "unknown_sku": "the upstream does not sell this SKU",
    "invalid_quantity": "the upstream refused the quantity",
    "invalid_recharge_account": "the upstream refused the recharge account",
    "invalid_request": "the upstream refused the order as invalid",
    "blocked": "the upstream's anti-fraud checks refused the order",
}
#: a refusal of the callback URL alone: the order is placed again without one
CALLBACK_REFUSED = "invalid_callback_url"


def _base_url(url: str) -> str:
    """The upstream shop's address without a trailing slash; the docking
    prefix pasted along is taken off (it is added to every call)."""
    base = (url or "").strip().rstrip("/")
    return base.removesuffix(protocol.API_PREFIX).rstrip("/")


def _segment(value: str) -> str:
    """A path segment percent-encoded the way a WebOb server rebuilds
    ``request.path`` (it leaves ``:@!$&'()*+,;=~`` alone), so the PATH we
    sign is the PATH it checks: ``D:1`` stays ``D:1``."""
    return quote(value, safe="~!$&'()*+,;=:@")


class NonceMemory:
    """Callback nonces seen in the last :data:`protocol.MAX_SKEW` seconds, so a
    callback replayed within its window is refused. Per process: a replay to
    another worker process gets through, which is harmless (the core applies
    an upstream state once and terminal states are sticky); this closes the
    easy case without a table."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def use(self, key_id: str, nonce: str, now: float) -> bool:
        """Record the nonce; false when it was seen already."""
        with self.lock:
            if len(self.seen) >= self.limit:
                horizon = now - 2 * protocol.MAX_SKEW
                self.seen = {k: t for k, t in self.seen.items() if t > horizon}
                if len(self.seen) >= self.limit:  # a flood of fresh nonces: forget the oldest half
                    self.seen = dict(sorted(self.seen.items(), key=lambda kv: kv[1])[self.limit // 2:])
            if (key_id, nonce) in self.seen:
                return False
            self.seen[(key_id, nonce)] = now
            return True


NONCES = NonceMemory()


class DockConnector(SupplierConnector):
    identifier = "dock"
    public_name = _("Another kameng shop (docking API)")
    settings = (
        SettingField("url", _("Upstream shop URL"), type="url", required=True, max_length=500,
                     help=_("The address of the kameng shop you buy from, e.g. https://upstream.example "
                            "(kameng appends /api/v1/dock/…).")),
        SettingField("key_id", _("Key ID"), required=True, max_length=128, pattern=r"[\x21-\x7e]{1,128}",
                     help=_("The docking key's id, shown by the upstream shop when it created the key.")),
        SettingField("secret", _("Key secret"), required=True, secret=True, max_length=500,
                     help=_("The docking key's secret, shown once by the upstream shop.")),
    )
    callbacks = True
    currency = "CNY"
    #: seconds per call (the tests shorten it)
    timeout = httpclient.DEFAULT_TIMEOUT

    @classmethod
    def validate(cls, values: dict) -> None:
        """The URL must be one kameng may call (https and public unless the
        operator allowed private targets) and carry no query, fragment or
        password: the API paths are appended to it and it is logged."""
        httpclient.check_url_setting("url", values.get("url"))

    # -- calls ---------------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str]:
        key_id, secret = self.config.get("key_id") or "", self.config.get("secret") or ""
        if not key_id or not secret:
            raise SupplierError("the connection has no key id or secret")
        return key_id, secret

    def _call(self, method: str, endpoint: str, body: bytes = b"") -> httpclient.HttpResponse:
        """One signed call to ``/api/v1/dock/<endpoint>``; transport failures
        become :class:`SupplierError` (``uncertain`` as the client says)."""
        base = _base_url(self.config.get("url") or "")
        if not base:
            raise SupplierError("the upstream shop URL is not set")
        key_id, secret = self._credentials()
        url = base + protocol.API_PREFIX + endpoint
        headers = protocol.signed_headers(key_id, secret, method, urlsplit(url).path, "", body)
        if body:
            headers["Content-Type"] = "application/json"
        try:
            return httpclient.request(method, url, content=body or None, headers=headers, timeout=self.timeout)
        except httpclient.HttpError as exc:
            raise SupplierError(str(exc), uncertain=exc.uncertain) from None

    def _refused(self, resp: httpclient.HttpResponse) -> SupplierError:
        code, message = protocol.error_of(resp.body)
        if resp.status == 401:
            text = "the upstream refused the signature: check the key id, the secret and this server's clock"
        elif resp.status == 403 and code == "ip_not_allowed":
            text = "the upstream does not allow this key from this server's address"
        else:
            text = f"the upstream answered HTTP {resp.status}"
        detail = f" ({code}: {message})" if code or message else ""
        return SupplierError(text + detail)

    def _get_json(self, endpoint: str, max_bytes: int = protocol.strictjson.MAX_BYTES):
        resp = self._call("GET", endpoint)
        if resp.status != 200:
            raise self._refused(resp)
        try:
            return protocol.loads(resp.body, max_bytes=max_bytes)
        except protocol.ProtocolError as exc:
            raise SupplierError(f"the upstream's answer is not JSON kameng reads: {exc}") from None

    def _balance(self):
        try:
            return protocol.parse_balance(self._get_json("/balance"))
        except protocol.ProtocolError as exc:
            raise SupplierError(f"the upstream's balance answer: {exc}") from None

    def _check_currency(self, currency: str) -> None:
        if currency != self.currency:
            raise SupplierError(f"the upstream sells in {currency}; this connector buys in {self.currency}")

    # -- SupplierConnector ---------------------------------------------------------------

    def test_connection(self) -> str:
        amount, currency = self._balance()
        self._check_currency(currency)
        return _("Connected; the balance there is ${balance} ${currency}.",
                 mapping={"balance": f"{amount}", "currency": currency})

    def balance(self) -> str | None:
        amount, currency = self._balance()
        return f"{amount} {currency}"

    def list_goods(self) -> list[UpstreamGoods]:
        doc = self._get_json("/goods", max_bytes=httpclient.MAX_BYTES)
        # the costs are in the upstream's currency: never read them as ours
        # (kameng names it on every entry; else the balance says it)
        for currency in sorted(protocol.goods_currencies(doc) or {self._balance()[1]}):
            self._check_currency(currency)
        try:
            return protocol.parse_goods_list(doc)
        except protocol.ProtocolError as exc:
            raise SupplierError(f"the upstream's goods list: {exc}") from None

    def get_goods(self, goods_id: str) -> UpstreamGoods | None:
        """One goods entry (``GET goods/{id}``); ``None`` when the upstream
        does not sell it (any more). Not part of the contract; handy for an
        admin preview."""
        resp = self._call("GET", "/goods/" + _segment(str(goods_id)))
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._refused(resp)
        try:
            return protocol.parse_goods(protocol.loads(resp.body, max_bytes=httpclient.MAX_BYTES))
        except protocol.ProtocolError as exc:
            raise SupplierError(f"the upstream's goods answer: {exc}") from None

    def place_order(self, req: UpstreamOrderRequest) -> UpstreamResult:
        try:
            body = protocol.order_body(req.out_order_no, req.sku, req.quantity, req.recharge, req.callback_url)
        except protocol.ProtocolError as exc:
            raise SupplierError(f"cannot place the order: {exc}") from None
        placed, why, maybe_in_flight = self._post_order(req, body)
        if placed is not None:
            return placed
        # no usable answer: the upstream may have the order; ask before anything else
        try:
            found = self.query_order(req.out_order_no)
        except SupplierError as exc:
            return UpstreamResult("unknown", req.out_order_no, message=f"{why}; asking about it failed: {exc}")
        if found is not None:
            log.info("dock_order_found_after_uncertain_post", extra={"out_order_no": req.out_order_no})
            return found
        if maybe_in_flight:
            # a timed-out POST may still be on its way to being committed
            return UpstreamResult("unknown", req.out_order_no,
                                  message=f"{why}; the upstream has no such order yet")
        # the upstream answered and has no such order: it was never placed
        placed, why2, _in_flight = self._post_order(req, body)
        if placed is not None:
            return placed
        return UpstreamResult("unknown", req.out_order_no, message=f"{why}; then {why2}")

    def _post_order(self, req: UpstreamOrderRequest, body: bytes) -> tuple[UpstreamResult | None, str, bool]:
        """POST the order once: ``(result, "", False)`` for an answer that
        says what happened, else ``(None, why, may_still_land)``. A definite
        refusal of the whole call (auth, rate limit) raises."""
        out_order_no = req.out_order_no
        try:
            resp = self._call("POST", "/orders", body)
        except SupplierError as exc:
            if not exc.uncertain:
                raise  # never reached the upstream (connection refused): nothing placed
            return None, str(exc), True
        if resp.status >= 500:
            return None, f"the upstream answered HTTP {resp.status}", False
        if resp.status in (200, 201):
            try:
                order = protocol.parse_order(protocol.loads(resp.body, httpclient.MAX_BYTES), out_order_no)
                return protocol.result(order), "", False
            except protocol.ProtocolError as exc:
                return None, f"the upstream's answer to the order: {exc}", False
        code, message = protocol.error_of(resp.body)
        if 400 <= resp.status < 500 and resp.status not in (401, 429):
            if code in REFUSALS:
                text = REFUSALS[code] + (f" ({message})" if message else "")
                return UpstreamResult("failed", out_order_no, message=text), "", False
            if code == CALLBACK_REFUSED and req.callback_url:
                # refused before anything was made: the upstream will not call this shop's address
                # back (http, private): place it without, and the core polls
                log.warning("dock_callback_url_refused", extra={"out_order_no": out_order_no})
                return self._post_order(replace(req, callback_url=""),
                                        protocol.order_body(req.out_order_no, req.sku, req.quantity, req.recharge))
        raise self._refused(resp)

    def query_order(self, out_order_no: str) -> UpstreamResult | None:
        resp = self._call("GET", "/orders/" + _segment(out_order_no))
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._refused(resp)
        try:
            return protocol.result(protocol.parse_order(protocol.loads(resp.body, httpclient.MAX_BYTES),
                                                        out_order_no))
        except protocol.ProtocolError as exc:
            raise SupplierError(f"the upstream's answer about the order: {exc}") from None

    def parse_callback(self, request) -> UpstreamResult:
        """A callback is ``POST`` with the order as JSON, signed like a
        request (over the path and query it arrived at) with our key."""
        if request.method != "POST":
            raise CallbackRejected("a docking callback is a POST")
        if (request.content_length or 0) > protocol.MAX_CALLBACK_BODY:
            raise CallbackRejected("the callback body is too large")
        body = request.body or b""
        try:
            key_id, secret = self._credentials()
        except SupplierError as exc:
            raise CallbackRejected(str(exc)) from None
        now = time.time()
        try:
            verified = protocol.verify(request.headers, key_id, secret, "POST", request.path,
                                       request.query_string or "", body, now=now)
        except protocol.ProtocolError as exc:
            raise CallbackRejected(f"callback refused: {exc}") from None
        if not NONCES.use(verified.key_id, verified.nonce, now):
            raise CallbackRejected("callback refused: the nonce was used already (a replay)")
        try:
            return protocol.result(protocol.parse_order(protocol.loads(body, protocol.MAX_CALLBACK_BODY)))
        except protocol.ProtocolError as exc:
            raise CallbackRejected(f"callback refused: {exc}") from None
