"""USDT-TRC20 through the merchant's own epusdt (or BEpusdt) server.

The shop asks the server for a trade in CNY; the server picks a wallet
address and a USDT amount, shows the buyer its cashier page and watches the
chain; when the transfer lands it POSTs a signed JSON callback to
``/pay/usdt/notify`` and retries until the shop answers ``ok``.

There is no signed query call (only the cashier page's unsigned status
poll, which carries no amount) and no refund call: reconciliation rests on
the server's callback retries, and a refund is a transfer the merchant
sends back by hand.
"""
from __future__ import annotations

import logging
from decimal import Decimal

from kameng import httpclient
from kameng.i18n import _
from kameng.money import format_minor
from kameng.payments import GatewayError, NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, RefundResult

from kameng_usdt import protocol

log = logging.getLogger(__name__)

#: the protocol's amounts are CNY (``amount`` is "支付金额(CNY)")
CURRENCY = "CNY"
#: the order number of the connection test: a create with amount 0, which
#: both servers refuse after checking the signature and before making a trade
TEST_ORDER_ID = "kameng-connection-test"


class UsdtGateway(PaymentGateway):
    identifier = "usdt"
    public_name = _("USDT (TRC20)")
    merchant_id_setting = None  # the protocol names no merchant: the API token is the account
    refund_supported = False
    connection_test_supported = True
    close_supported = False
    #: seconds per call to the server (the tests shorten it)
    timeout = httpclient.DEFAULT_TIMEOUT

    # -- calls to the server ------------------------------------------------------

    def _token(self) -> str:
        token = self.settings.get("api_token") or ""
        if not token:
            raise GatewayError("the API token is not set")
        return token

    def _url(self) -> str:
        base = (self.settings.get("api_url") or "").strip().rstrip("/")
        if not base:
            raise GatewayError("the epusdt server URL is not set")
        # the whole endpoint pasted in works too
        return base.removesuffix(protocol.CREATE_PATH) + protocol.CREATE_PATH

    def _post(self, body: bytes) -> bytes:
        """POST a signed body; the answer's bytes (errors come as HTTP 200 too)."""
        url = self._url()
        try:
            resp = httpclient.post_json(url, body, timeout=self.timeout)
        except httpclient.HttpError as exc:
            raise GatewayError(str(exc), uncertain=exc.uncertain) from None
        if resp.status != 200:
            raise GatewayError(f"the epusdt server answered HTTP {resp.status}")
        return resp.body

    # -- PaymentGateway -----------------------------------------------------------

    def create_payment(self, request, attempt) -> PaymentAction:
        if attempt.currency.upper() != CURRENCY:
            raise GatewayError(f"epusdt takes CNY amounts; this payment is in {attempt.currency}")
        try:
            body = protocol.create_request(
                attempt.attempt_no, Decimal(format_minor(attempt.amount, attempt.currency)),
                request.public_url("pay.notify", gateway=self.identifier),
                request.public_url("pay.return", attempt_no=attempt.attempt_no), self._token())
        except protocol.ProtocolError as exc:
            raise GatewayError(str(exc)) from None
        try:
            created = protocol.parse_created(self._post(body), attempt.attempt_no)
        except protocol.ProtocolError as exc:
            raise GatewayError(f"epusdt: {exc}") from None
        log.info("usdt_trade_created", extra={"attempt_no": attempt.attempt_no, "trade_id": created.trade_id})
        return PaymentAction(kind="redirect", url=created.payment_url,
                             fields={"trade_id": created.trade_id, "address": created.address,
                                     "actual_amount": created.actual_amount,
                                     "expiration_time": created.expiration_time})

    def parse_notification(self, request) -> Notification:
        if request.method != "POST":
            raise NotificationRejected("epusdt notifies by POST")
        if request.GET:
            # the notify URL we hand out has no query string: a field there is
            # a field the signature does not cover, or one sent twice
            raise NotificationRejected("query parameters on a JSON notify")
        if (request.content_length or 0) > protocol.MAX_BODY:
            raise NotificationRejected("the body is too large")
        try:
            fields = protocol.loads(request.body)
            cb = protocol.verify_callback(fields, self.settings.get("api_token") or "")
        except protocol.ProtocolError as exc:
            raise NotificationRejected(str(exc)) from None
        return Notification(attempt_no=cb.order_id, provider_trade_no=cb.trade_id, amount=cb.amount,
                            currency=CURRENCY, status=cb.status, merchant_id=None, raw=cb.raw)

    def ack(self, accepted: bool) -> tuple[int, str, str]:
        # epusdt retries until the body is exactly "ok"; BEpusdt until HTTP 200
        return (200, "ok", "text/plain") if accepted else (400, "fail", "text/plain")

    # query_payment is deliberately not overridden: neither epusdt nor BEpusdt
    # has a signed query call, and the core skips the reconciliation query for
    # a gateway that inherits the base method. The callback retries are the
    # reconciliation (docs/gateways/usdt.md).

    def test_connection(self, request) -> str:
        """Create with amount 0: the server checks the signature first (a
        wrong token says so), then refuses the amount, so no trade is made."""
        fields = {"order_id": TEST_ORDER_ID, "amount": protocol.Number("0"),
                  "notify_url": request.public_url("pay.notify", gateway=self.identifier),
                  "redirect_url": request.public_url("home")}
        fields["signature"] = protocol.sign(fields, self._token())
        try:
            code, message, _data = protocol.reply(self._post(protocol.dumps(fields)))
        except protocol.ProtocolError as exc:
            raise GatewayError(f"epusdt: {exc}") from None
        if protocol.signature_refused(code, message):
            raise GatewayError("the epusdt server refused the signature: check the API token")
        if code == 200:
            return _("Connected, and the API token is right (the server even accepted a zero amount).")
        return _("Connected, and the API token is right.")

    def refund(self, request, attempt, refund) -> RefundResult:
        raise GatewayError("epusdt cannot refund: send the USDT back from your wallet by hand")
