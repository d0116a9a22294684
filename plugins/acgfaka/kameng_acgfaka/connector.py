"""The ``acgfaka`` supplier connector: an acg-faka (异次元发卡) shop's legacy
"共享店铺" docking API (type 0) as the upstream.

The account prepays a balance at the upstream; ``/shared/commodity/trade``
charges it and answers synchronously, card keys included. What the protocol
cannot do shapes the rest:

- **No lookup by our number.** ``/shared/commodity/query`` finds an order by
  the upstream's own ``tradeNo`` only, which a lost answer never told us.
  So :meth:`query_order` can never say "no such order" and answers
  ``unknown``; an order whose placing went unanswered waits for the shop.
- **Duplicates are refused.** ``out_order_no`` travels as ``request_no`` and
  acg-faka refuses a number it has seen ("The request ID already exists"),
  so placing again under the same number can never buy twice. That refusal
  is read as "already placed" (``unknown``), never as a failure.
- **Refusals are clean.** Any other ``code != 200`` answer comes from inside
  acg-faka's order transaction (rolled back): nothing was charged, the order
  ``failed``.
- **No callbacks, no completion for goods delivered by hand.** Such an order
  stays ``processing`` with the upstream's message until the shop finishes it.
- **The key travels in every request body and nothing expires.** Calls go
  to https only, never follow a redirect, and no log line holds a body.
"""
from __future__ import annotations

import logging
import re

from kameng import httpclient
from kameng.i18n import _
from kameng.suppliers.base import SupplierConnector, SupplierError
from kameng.types import SettingField, UpstreamGoods, UpstreamOrderRequest, UpstreamResult

from kameng_acgfaka import goods, protocol
from kameng_acgfaka.catalogue import Catalogue
from kameng_acgfaka.protocol import UpstreamHTTPError

log = logging.getLogger(__name__)

#: the goods list holds every description: allow it more room than an order answer
ITEMS_MAX_BYTES = 16 * 1024 * 1024
ANSWER_MAX_BYTES = 1024 * 1024
#: HTTP answers after which the upstream surely did nothing (no route, refused before the app, a redirect)
NOT_PROCESSED = {301, 302, 303, 307, 308, 401, 403, 404, 405}
QUERY_UNSUPPORTED = ("acg-faka cannot look an order up by our number (request_no); check the purchase records "
                     "(购买记录) of the account at the upstream")


def _base_url(url) -> str:
    return str(url or "").strip().rstrip("/")


def _timeout(value) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 30.0
    return min(max(seconds, 0.1), 120.0)


class AcgFakaConnector(SupplierConnector):
    identifier = "acgfaka"
    public_name = _("acg-faka shop (异次元发卡 共享店铺)")
    callbacks = False
    currency = "CNY"
    #: placing again under the same ``out_order_no`` is safe: the upstream refuses a used ``request_no``
    places_idempotently = True
    settings = (
        SettingField("url", _("Shop address"), type="url", required=True, max_length=500,
                     help=_("The address of the acg-faka shop you buy from, like https://shop.example.com "
                            "(its front page, not its admin page). https only.")),
        SettingField("app_id", _("Merchant ID (app_id)"), required=True, pattern=r"[0-9]{1,18}", max_length=18,
                     help=_("商户 ID: the number of your account at that shop, shown in its user center "
                            "(个人资料 → 安全).")),
        SettingField("app_key", _("Merchant key (app_key)"), required=True, secret=True, max_length=256,
                     help=_("商户密钥, on the same page. acg-faka sends it in every request: if it ever "
                            "leaks, press 重置 there and paste the new one here.")),
        SettingField("currency", _("Currency of that shop"), default="CNY", pattern=r"[A-Z]{3}", max_length=3,
                     help=_("The currency the upstream's prices are in (CNY for almost every acg-faka shop).")),
        SettingField("timeout", _("Timeout (seconds)"), type="int", default=30, min_value=5, max_value=120,
                     help=_("How long to wait for an answer. An order that goes unanswered is left for you to "
                            "check, never placed twice.")),
    )

    def __init__(self, settings: dict):
        super().__init__(settings)
        cfg = settings or {}
        self.url = _base_url(cfg.get("url"))
        self.app_id = str(cfg.get("app_id") or "").strip()
        self._app_key = str(cfg.get("app_key") or "")
        self.currency = str(cfg.get("currency") or "CNY")
        self.timeout = _timeout(cfg.get("timeout") if cfg.get("timeout") is not None else 30)

    def __repr__(self) -> str:  # never the key
        return f"<AcgFakaConnector {httpclient.safe_url(self.url or 'https://unset')} app_id={self.app_id}>"

    @classmethod
    def validate(cls, values: dict) -> None:
        """The address must be one kameng may call (https and public unless
        private targets are allowed) and carry no query, fragment or
        password: the API paths are appended to it."""
        httpclient.check_url_setting("url", values.get("url"))

    # -- calls -----------------------------------------------------------------------------

    def _post(self, path: str, params: dict, max_bytes: int = ANSWER_MAX_BYTES):
        """POST a signed form; the answer's ``data``. Raises
        :class:`protocol.Refusal` (the upstream said no), :class:`SupplierError`
        (no answer; ``uncertain`` when it may have acted) or
        :class:`UpstreamHTTPError` (an answer that is not the protocol)."""
        if not self.url or not re.fullmatch(r"[0-9]{1,18}", self.app_id) or not self._app_key:
            raise SupplierError("the connection has no shop address, app_id or app_key")
        form = protocol.signed_form(params, self.app_id, self._app_key)
        try:
            resp = httpclient.post_form(self.url + path, form, timeout=self.timeout, max_bytes=max_bytes)
        except httpclient.HttpError as exc:
            raise SupplierError(str(exc), uncertain=exc.uncertain) from None
        if resp.status != 200:
            raise UpstreamHTTPError(f"the upstream answered {path} with HTTP {resp.status}", resp.status,
                                    uncertain=resp.status not in NOT_PROCESSED)
        try:
            return protocol.read_envelope(resp.body, self._app_key, max_bytes=max_bytes)
        except protocol.ProtocolError as exc:
            raise UpstreamHTTPError(f"the upstream's answer to {path} is not acg-faka's: {exc}", 200,
                                    uncertain=True) from None

    def _ask(self, path: str, params: dict, what: str, max_bytes: int = ANSWER_MAX_BYTES):
        """:meth:`_post` for a call that changes nothing: a refusal is an error."""
        try:
            return self._post(path, params, max_bytes)
        except protocol.Refusal as exc:
            raise SupplierError(f"the upstream refused {what}: {exc.message}") from None

    def _connect(self) -> dict:
        data = self._ask(protocol.PATH_CONNECT, {}, "the connection")
        if not isinstance(data, dict) or protocol.decimal_of(data.get("balance")) is None:
            raise SupplierError("the upstream's answer to connect has no balance")
        return data

    # -- SupplierConnector -----------------------------------------------------------------

    def test_connection(self) -> str:
        data = self._connect()
        name = protocol.clean_message(data.get("shopName"), self._app_key)[:100] or "acg-faka"
        return _("Connected to ${shop}; the balance there is ${balance} ${currency}.",
                 mapping={"shop": name, "balance": str(protocol.decimal_of(data.get("balance"))),
                          "currency": self.currency})

    def balance(self) -> str | None:
        return str(protocol.decimal_of(self._connect().get("balance")))

    def list_goods(self) -> list[UpstreamGoods]:
        data = self._ask(protocol.PATH_ITEMS, {}, "the goods list", max_bytes=ITEMS_MAX_BYTES)
        try:
            rows = goods.goods_rows(data)
        except protocol.ProtocolError as exc:
            raise SupplierError(f"the upstream's goods list: {exc}") from None
        reader = Catalogue(self._post)
        out = []
        for category, row in rows:
            item = goods.listing(row, category)
            found = reader.read(item) if item is not None else None
            if found is not None:
                out.append(found)
        return out

    # -- orders ----------------------------------------------------------------------------

    def place_order(self, req: UpstreamOrderRequest) -> UpstreamResult:
        out = req.out_order_no
        try:
            ref = protocol.parse_sku(req.sku)
        except protocol.ProtocolError:
            return UpstreamResult("failed", out, message="not a SKU code of the acg-faka connector")
        if not isinstance(req.quantity, int) or req.quantity < 1:
            return UpstreamResult("failed", out, message="the quantity must be at least 1")
        inputs = {}
        for name, value in (req.recharge or {}).items():
            upstream = protocol.upstream_name(name)
            if upstream is None:
                return UpstreamResult("failed", out, message=f"the recharge field {str(name)[:40]!r} cannot be sent")
            inputs[upstream] = str(value)
        if req.max_unit_cost is not None:
            refused = self._check_ceiling(ref, req)
            if refused is not None:
                return refused
        params = {"shared_code": ref.code, "contact": out, "num": req.quantity, "card_id": 0, "device": 0,
                  "password": "", "race": ref.race, "request_no": out, "sku": ref.options or None, **inputs}
        try:
            data = self._post(protocol.PATH_TRADE, params)
        except protocol.Refusal as exc:
            if exc.duplicate:
                log.warning("acgfaka_duplicate", extra={"out_order_no": out})
                return UpstreamResult("unknown", out, message="the upstream already has an order with this number; "
                                                              + QUERY_UNSUPPORTED)
            log.info("acgfaka_refused", extra={"out_order_no": out})
            return UpstreamResult("failed", out, message=f"the upstream refused the order: {exc.message}")
        except UpstreamHTTPError as exc:
            if exc.status == 200:  # answered, but not the protocol: it may have been charged
                return UpstreamResult("unknown", out, message=str(exc)[:255])
            raise
        return self._traded(ref, req, data)

    def _traded(self, ref: protocol.SkuRef, req: UpstreamOrderRequest, data) -> UpstreamResult:
        """Read a trade that went through (the account was charged)."""
        out = req.out_order_no
        if not isinstance(data, dict):
            return UpstreamResult("unknown", out, message="the upstream took the order but its answer has no data")
        trade_no = str(data.get("tradeNo") or "")[:128]
        cost = protocol.decimal_of(data.get("amount"))
        log.info("acgfaka_traded", extra={"out_order_no": out, "upstream_order_no": trade_no})
        if ref.kind == "m":
            text = protocol.clean_message(data.get("secret"), self._app_key)
            return UpstreamResult("processing", out, trade_no, cost=cost,
                                  message=("the upstream took the order and delivers it by hand; acg-faka never "
                                           "reports when that is done: " + text)[:255])
        keys = protocol.parse_keys(data.get("secret"), req.quantity)
        if len(keys) >= req.quantity:
            return UpstreamResult("success", out, trade_no, keys=keys, delivered=len(keys), cost=cost)
        said = protocol.clean_message(data.get("secret"), self._app_key) if not keys else ""
        return UpstreamResult("partial", out, trade_no, keys=keys, delivered=len(keys), cost=cost,
                              message=(f"the upstream charged for {req.quantity} but delivered {len(keys)}"
                                       + (f": {said}" if said else ""))[:255])

    def _check_ceiling(self, ref: protocol.SkuRef, req: UpstreamOrderRequest) -> UpstreamResult | None:
        """Ask ``/shared/commodity/valuation`` what the order would cost and
        refuse it above ``max_unit_cost``. An upstream without valuation (or
        one that refuses to quote) is not checked: the trade itself decides."""
        params = {"code": ref.code, "num": req.quantity, "race": ref.race, "sku": ref.options or None, "card_id": 0}
        try:
            data = self._post(protocol.PATH_VALUATION, params)
        except (protocol.Refusal, UpstreamHTTPError):
            return None
        except SupplierError as exc:
            raise SupplierError(str(exc), uncertain=False) from None  # nothing was ordered yet
        price = protocol.decimal_of(data.get("price")) if isinstance(data, dict) else None
        if price is None:
            return None
        currency = str(data.get("currency_code") or "").strip().upper()
        if currency and currency != self.currency:
            return UpstreamResult("failed", req.out_order_no,
                                  message=f"the upstream prices in {currency[:8]}, this connection in {self.currency}")
        unit = price / req.quantity
        if unit > req.max_unit_cost:
            return UpstreamResult("failed", req.out_order_no,
                                  message=f"the upstream now charges {unit:.2f} per unit, more than "
                                          f"{req.max_unit_cost}")
        return None

    def query_order(self, out_order_no: str) -> UpstreamResult | None:
        """Never ``None``: acg-faka looks orders up by its own ``tradeNo``
        only, so it cannot say that ours was never placed."""
        return UpstreamResult("unknown", out_order_no, message=QUERY_UNSUPPORTED)

    def query_trade(self, upstream_order_no: str, sku: str, quantity: int,
                    out_order_no: str = "") -> UpstreamResult | None:
        """``/shared/commodity/query`` by the upstream's own order number (the
        ``upstream_order_no`` of a placed order): what it holds now. Not
        part of the contract (the core asks by ``out_order_no``); handy to
        fetch the keys of an order again. ``None`` when the upstream has no
        such order of this account."""
        ref = protocol.parse_sku(sku)
        try:
            data = self._post(protocol.PATH_QUERY, {"tradeNo": str(upstream_order_no)})
        except protocol.Refusal:
            return None
        if not isinstance(data, dict):
            raise SupplierError("the upstream's answer to query has no data")
        if ref.kind == "m":
            text = protocol.clean_message(data.get("secret"), self._app_key)
            return UpstreamResult("processing", out_order_no, str(upstream_order_no)[:128],
                                  message=("the upstream delivers it by hand; it says: " + text)[:255])
        keys = protocol.parse_keys(data.get("secret"), quantity)
        status = "success" if len(keys) >= quantity else "partial"
        return UpstreamResult(status, out_order_no, str(upstream_order_no)[:128], keys=keys, delivered=len(keys))
