"""The WeChat Pay gateway: Native (QR code) and H5 payments, notifications,
queries, closing, refunds.

The plugin verifies and reports; the core compares the merchant (``mchid``),
the amount and the currency with the attempt. The AppID is checked here: the
core has no setting to compare it with.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import quote

from kameng.i18n import _
from kameng.payments import GatewayError, NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, RefundResult

from kameng_wechatpay import protocol
from kameng_wechatpay.client import WechatPayClient
from kameng_wechatpay.settings import CHANNEL_LABELS, enabled_channels

#: a callback body is a few hundred bytes; anything this large is not WeChat Pay
MAX_NOTIFY_BYTES = 64 * 1024
#: refusals worth trying again later with the same ``out_refund_no``
RETRY_REFUND_CODES = {"SYSTEM_ERROR", "FREQUENCY_LIMITED", "NOT_ENOUGH", "SYSTEMERROR"}
#: what ``description`` may hold, in UTF-8 bytes
MAX_DESCRIPTION = 127


def _description(subject: str, fallback: str) -> str:
    text = " ".join((subject or "").split()) or fallback
    while len(text.encode("utf-8")) > MAX_DESCRIPTION:
        text = text[:-1]
    return text


class WechatPayGateway(PaymentGateway):
    identifier = "wechatpay"
    public_name = _("WeChat Pay")
    merchant_id_setting = "mchid"
    refund_supported = True
    connection_test_supported = True
    close_supported = True
    #: seconds a call to WeChat Pay may take; a timed-out change (create, close, refund) is uncertain
    timeout = 10.0

    def channels(self) -> list[tuple[str, str]]:
        return [(code, CHANNEL_LABELS[code]) for code in enabled_channels(self.settings)]

    def client(self) -> WechatPayClient:
        return WechatPayClient(self.settings, timeout=self.timeout)

    # -- paying -----------------------------------------------------------------------------
    def create_payment(self, request, attempt) -> PaymentAction:
        enabled = enabled_channels(self.settings)
        channel = attempt.channel or ("native" if "native" in enabled or not enabled else enabled[0])
        if channel not in enabled:
            raise GatewayError(f"the WeChat Pay channel {channel[:16]} is not enabled")
        if attempt.currency.upper() != "CNY":
            raise GatewayError("WeChat Pay takes CNY only")
        client = self.client()
        body = {"appid": str(self.settings.get("appid") or ""), "mchid": client.mchid,
                "description": _description(attempt.subject, attempt.attempt_no),
                "out_trade_no": attempt.attempt_no,
                "notify_url": request.public_url("pay.notify", gateway=self.identifier),
                "amount": {"total": int(attempt.amount), "currency": "CNY"}}
        if channel == "h5":
            body["scene_info"] = {"payer_client_ip": self._buyer_ip(request), "h5_info": {"type": "Wap"}}
        reply = client.call("POST", f"/v3/pay/transactions/{channel}", body=body)
        if not reply.ok:
            raise GatewayError(f"WeChat Pay refused the payment: {reply.describe()}")
        data = reply.data if isinstance(reply.data, dict) else {}
        if channel == "native":
            code_url = data.get("code_url")
            if not isinstance(code_url, str) or not code_url.startswith("weixin://") or len(code_url) > 512:
                raise GatewayError("WeChat Pay's answer has no code_url")
            return PaymentAction(kind="qrcode", payload=code_url)
        h5_url = data.get("h5_url")
        if not isinstance(h5_url, str) or not h5_url.startswith("https://") or len(h5_url) > 1024:
            raise GatewayError("WeChat Pay's answer has no h5_url")
        # WeChat Pay sends the buyer back to redirect_url (on the domain
        # registered for H5 payments) after the payment
        back = request.public_url("pay.return", attempt_no=attempt.attempt_no)
        joiner = "&" if "?" in h5_url else "?"
        return PaymentAction(kind="redirect", url=f"{h5_url}{joiner}redirect_url={quote(back, safe='')}")

    @staticmethod
    def _buyer_ip(request) -> str:
        try:
            return str(ipaddress.ip_address((request.remote_addr or "").strip()))
        except ValueError:
            raise GatewayError("an H5 payment needs the buyer's IP address") from None

    # -- notifications ------------------------------------------------------------------------
    def parse_notification(self, request) -> Notification:
        if request.method != "POST":
            raise NotificationRejected("WeChat Pay notifies by POST")
        if request.query_string:
            raise NotificationRejected("the notify URL takes no query parameters")
        if (request.content_length or 0) > MAX_NOTIFY_BYTES:
            raise NotificationRejected("the body is too large")
        body = request.body or b""
        if len(body) > MAX_NOTIFY_BYTES:
            raise NotificationRejected("the body is too large")
        try:
            client = self.client()
        except GatewayError as exc:
            raise NotificationRejected(str(exc)) from None
        try:
            # the signature first, over the bytes exactly as they arrived
            protocol.check_signed(request.headers, body, client.find_key)
            envelope = protocol.loads(body)
            if not isinstance(envelope, dict):
                raise protocol.ProtocolError("the body is not an object")
            event = envelope.get("event_type")
            if not isinstance(event, str) or not event.startswith("TRANSACTION."):
                # refunds are confirmed by querying them; do not set a refund notify URL
                raise protocol.ProtocolError("not a payment notification")
            resource = envelope.get("resource")
            if not isinstance(resource, dict) or resource.get("original_type", "transaction") != "transaction":
                raise protocol.ProtocolError("the resource is not a transaction")
            tx = protocol.transaction(protocol.loads(protocol.decrypt_resource(client.apiv3_key, resource)))
        except protocol.ProtocolError as exc:
            raise NotificationRejected(str(exc)) from None
        self._check_appid(tx, NotificationRejected)
        raw = {"id": str(envelope.get("id", ""))[:64], "event_type": event[:64],
               "serial": str(request.headers.get("Wechatpay-Serial", ""))[:64],
               "timestamp": str(request.headers.get("Wechatpay-Timestamp", ""))[:16]}
        return self._notification(tx, raw)

    def _check_appid(self, tx: protocol.Transaction, error) -> None:
        ours = str(self.settings.get("appid") or "")
        if not ours or not hmac.compare_digest(tx.appid.encode(), ours.encode()):
            raise error("the transaction is for another appid")

    @staticmethod
    def _notification(tx: protocol.Transaction, raw: dict) -> Notification:
        raw = {**raw, "out_trade_no": tx.out_trade_no, "transaction_id": tx.transaction_id,
               "trade_state": tx.trade_state, "amount": str(tx.amount), "currency": tx.currency,
               "mchid": tx.mchid, "appid": tx.appid}
        return Notification(attempt_no=tx.out_trade_no, provider_trade_no=tx.transaction_id, amount=tx.amount,
                            currency=tx.currency, status=tx.status, merchant_id=tx.mchid, raw=raw)

    def ack(self, accepted: bool) -> tuple[int, str, str]:
        if accepted:
            return 204, "", "text/plain"
        return 400, '{"code":"FAIL","message":"失败"}', "application/json"

    # -- reconciliation -------------------------------------------------------------------------
    def _trade_path(self, attempt_no: str) -> str:
        if not protocol.OUT_TRADE_NO.fullmatch(attempt_no or ""):
            raise GatewayError("not a WeChat Pay out_trade_no")
        return f"/v3/pay/transactions/out-trade-no/{quote(attempt_no, safe='')}"

    def query_payment(self, request, attempt) -> Notification | None:
        client = self.client()
        reply = client.call("GET", self._trade_path(attempt.attempt_no), query=f"mchid={quote(client.mchid)}")
        if reply.status == 404 and reply.code == "ORDER_NOT_EXIST":
            return None
        if not reply.ok:
            raise GatewayError(f"WeChat Pay did not answer the query: {reply.describe()}")
        try:
            tx = protocol.transaction(reply.data)
        except protocol.ProtocolError as exc:
            raise GatewayError(f"WeChat Pay's query answer is malformed: {exc}") from None
        if tx.out_trade_no != attempt.attempt_no:
            raise GatewayError("WeChat Pay answered about another order")
        self._check_appid(tx, GatewayError)
        return self._notification(tx, {"source": "query"})

    def close_payment(self, request, attempt) -> None:
        client = self.client()
        reply = client.call("POST", self._trade_path(attempt.attempt_no) + "/close", body={"mchid": client.mchid})
        if reply.ok or reply.code in ("ORDER_NOT_EXIST", "ORDER_CLOSED"):
            return
        if reply.code == "ORDERPAID":
            raise GatewayError("the WeChat Pay order is already paid: its notification or the query applies it")
        raise GatewayError(f"WeChat Pay did not close the order: {reply.describe()}", uncertain=not reply.verified)

    # -- refunds ------------------------------------------------------------------------------
    def refund(self, request, attempt, refund) -> RefundResult:
        """Ask first, then refund: the refund job may have died after WeChat
        Pay took the request, and ``out_refund_no`` (our refund number) is
        what both calls name, so one refund is made however often this runs."""
        if not protocol.OUT_REFUND_NO.fullmatch(refund.refund_no or ""):
            raise GatewayError("not a WeChat Pay out_refund_no")
        if refund.currency.upper() != "CNY":
            return RefundResult(status="failed", message="WeChat Pay refunds CNY only")
        client = self.client()
        data = self._query_refund(client, refund.refund_no)
        if data is None:
            trade = ({"transaction_id": attempt.provider_trade_no} if attempt.provider_trade_no
                     else {"out_trade_no": attempt.attempt_no})
            body = {**trade, "out_refund_no": refund.refund_no,
                    "amount": {"refund": int(refund.amount), "total": int(attempt.amount), "currency": "CNY"}}
            reply = client.call("POST", "/v3/refund/domestic/refunds", body=body)
            if not reply.ok:
                if not reply.verified or reply.code in RETRY_REFUND_CODES or reply.status == 429:
                    raise GatewayError(f"WeChat Pay did not take the refund: {reply.describe()}",
                                       uncertain=not reply.verified)
                return RefundResult(status="failed", message=f"WeChat Pay refused the refund: {reply.describe()}")
            data = reply.data
        return self._refund_result(data, refund)

    def _query_refund(self, client: WechatPayClient, refund_no: str):
        reply = client.call("GET", f"/v3/refund/domestic/refunds/{quote(refund_no, safe='')}")
        if reply.ok:
            return reply.data
        if reply.status == 404 and reply.code in ("RESOURCE_NOT_EXISTS", "ORDER_NOT_EXIST"):
            return None
        raise GatewayError(f"WeChat Pay did not answer the refund query: {reply.describe()}")

    @staticmethod
    def _refund_result(data, refund) -> RefundResult:
        if not isinstance(data, dict) or data.get("out_refund_no") != refund.refund_no:
            raise GatewayError("WeChat Pay's refund answer is about another refund", uncertain=True)
        status = data.get("status")
        refund_id = data.get("refund_id")
        refund_id = refund_id[:128] if isinstance(refund_id, str) else ""
        amount = data.get("amount")
        if isinstance(amount, dict) and type(amount.get("refund")) is int and amount["refund"] != refund.amount:
            raise GatewayError("WeChat Pay's refund answer has another amount", uncertain=True)
        mapped = protocol.REFUND_STATES.get(status) if isinstance(status, str) else None
        if mapped is None:
            raise GatewayError("WeChat Pay's refund answer has no known status", uncertain=True)
        message = ""
        if status == "CLOSED":
            message = "WeChat Pay closed the refund"
        elif status == "ABNORMAL":
            message = ("the refund is abnormal at WeChat Pay (the buyer's card or account refused it): "
                       "handle it in the merchant platform")
        return RefundResult(status=mapped, provider_refund_no=refund_id, message=message)

    # -- settings check -------------------------------------------------------------------------
    def test_connection(self, request) -> str:
        """Query an order number that cannot exist: WeChat Pay answers
        ORDER_NOT_EXIST only to a correctly signed request (a wrong key or
        serial is a 401), and signs that answer with the platform key. Then,
        for merchants on platform certificates, download them."""
        client = self.client()
        probe = "KMTEST" + "".join(secrets.choice("0123456789") for _ in range(20))
        reply = client.call("GET", self._trade_path(probe), query=f"mchid={quote(client.mchid)}")
        if reply.status == 401:
            raise GatewayError("WeChat Pay refused our signature (401): check mchid, the merchant certificate "
                               "serial number and the merchant private key")
        if not (reply.status == 404 and reply.code == "ORDER_NOT_EXIST"):
            raise GatewayError(f"WeChat Pay answered the test query with {reply.describe()}")
        parts = [f"WeChat Pay accepted the merchant signature (mchid {client.mchid})"]
        if not reply.verified:
            parts.append("its answer carried no signature to check")
        if self.settings.get("platform_certificates") or not self.settings.get("platform_public_key"):
            certs = client.download_certificates()
            serials = ", ".join(sorted(protocol.serial_text(n) for n in certs)) or "none"
            parts.append(f"platform certificates downloaded and decrypted: {serials}")
        else:
            parts.append("the WeChat Pay public key will verify notifications")
        return "; ".join(parts)
