"""The epay gateway: creating payments, reading notifies, reconciling and refunding.

V1 creates trades with ``mapi.php`` and asks ``api.php``; V2 with the
RSA-signed ``api/pay/*``. A buyer who picked no channel gets a signed form
for ``submit.php`` (the platform's cashier page lets them choose there).
"""
from __future__ import annotations

import re
import time

from kameng.i18n import _
from kameng.money import MoneyError, format_minor, parse_decimal
from kameng.payments import GatewayError, NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, RefundResult, SettingError

from kameng_epay import config, notify, protocol, provider, refunds
from kameng_epay.config import Config

#: what buyers see for the usual channel codes (any other code is shown as it is)
CHANNEL_LABELS = {
    "alipay": _("Alipay"), "wxpay": _("WeChat Pay"), "qqpay": _("QQ Wallet"), "bank": _("UnionPay"),
    "jdpay": _("JD Pay"), "paypal": _("PayPal"),
}
#: the server cuts ``name`` at 127 bytes; cutting it ourselves keeps a re-submit identical
NAME_BYTES = 127
#: ``api.php?act=order`` / ``api/pay/query`` status → what the core is told
QUERY_STATUS = {"0": "pending", "1": "paid", "2": "closed", "3": "pending", "4": "pending"}
#: api/pay/create's pay_type → the V1 (mapi.php) field that carries the same thing
V2_PAY_TYPES = {"qrcode": "qrcode", "jump": "payurl", "urlscheme": "urlscheme", "html": "html"}
_SAFE_SCHEME = re.compile(r"(https?|weixin|alipays?|mqqapi|upwrp)://\S+", re.IGNORECASE)


def cut_name(subject: str) -> str:
    text = " ".join((subject or "").split()) or "order"
    raw = text.encode("utf-8")[:NAME_BYTES]
    return raw.decode("utf-8", "ignore")


def device_of(request) -> str:
    """``device`` for mapi/create from the buyer's browser (the platform picks H5 or QR by it)."""
    ua = (request.user_agent or "").lower()
    if "micromessenger" in ua:
        return "wechat"
    if "alipayclient" in ua:
        return "alipay"
    if any(w in ua for w in ("android", "iphone", "ipod", "mobile", "windows phone")):
        return "mobile"
    return "pc"


class EpayGateway(PaymentGateway):
    identifier = "epay"
    public_name = _("Epay")
    merchant_id_setting = "pid"
    refund_supported = True
    connection_test_supported = True
    close_supported = False

    # -- settings ---------------------------------------------------------------------------
    def config(self) -> Config:
        try:
            return config.load(self.settings)
        except SettingError as exc:
            raise GatewayError(f"the epay settings are incomplete or wrong: {exc.field_name}") from None

    def channels(self) -> list[tuple[str, str]]:
        try:
            codes = config.parse_channels(self.settings.get("channels") or "")
        except SettingError:
            return []
        return [(code, CHANNEL_LABELS.get(code, code)) for code in codes]

    # -- paying -----------------------------------------------------------------------------
    def order_fields(self, request, attempt, cfg: Config) -> dict:
        if attempt.currency.upper() != notify.CURRENCY:
            raise GatewayError("epay takes payments in CNY only")
        return {"pid": cfg.pid, "out_trade_no": attempt.attempt_no,
                "notify_url": request.public_url("pay.notify", gateway=self.identifier),
                "return_url": request.public_url("pay.return", attempt_no=attempt.attempt_no),
                "name": cut_name(attempt.subject), "money": format_minor(attempt.amount, attempt.currency)}

    def page_jump(self, cfg: Config, fields: dict) -> PaymentAction:
        """A signed form for ``submit.php``. V2 signs it with RSA and needs no
        timestamp there, so the stored form does not go stale."""
        if cfg.v2:
            signed = {**fields, "sign": protocol.rsa_sign(fields, cfg.merchant_key), "sign_type": "RSA"}
        else:
            signed = provider.v1_sign(cfg, fields)
        return PaymentAction(kind="form_post", url=cfg.url("submit.php"), fields=signed)

    def create_payment(self, request, attempt) -> PaymentAction:
        cfg = self.config()
        fields = self.order_fields(request, attempt, cfg)
        if not attempt.channel:
            return self.page_jump(cfg, fields)
        if attempt.channel not in cfg.channels:
            raise GatewayError("this channel is not enabled for epay")
        fields["type"] = attempt.channel
        extra = {"clientip": (request.remote_addr or "127.0.0.1")[:64], "device": device_of(request)}
        if cfg.v2:
            data = provider.v2_call(cfg, "pay/create", {**fields, **extra, "method": "web"})
            if provider.code_of(data) != provider.V2_OK:
                raise GatewayError(f"epay refused the payment: {provider.clean_message(data.get('msg'))}")
            # V2 names the answer in pay_type; V1 by the field it fills
            name = V2_PAY_TYPES.get(provider.text(data.get("pay_type")))
            answer = {name: data.get("pay_info")} if name else {}
        else:
            data = provider.v1_mapi(cfg, {**fields, **extra})
            if provider.code_of(data) != provider.V1_OK:
                raise GatewayError(f"epay refused the payment: {provider.clean_message(data.get('msg'))}")
            answer = {k: data.get(k) for k in ("qrcode", "payurl", "urlscheme", "html") if data.get(k)}
        return self.action_from(cfg, fields, answer)

    def action_from(self, cfg: Config, fields: dict, answer: dict) -> PaymentAction:
        for name, kind in (("qrcode", "qrcode"), ("payurl", "redirect"), ("urlscheme", "redirect")):
            value = answer.get(name)
            if isinstance(value, str) and value:
                if not _SAFE_SCHEME.fullmatch(value) or len(value) > 2000:
                    raise GatewayError("epay answered a payment link kameng will not open")
                if kind == "qrcode":
                    return PaymentAction(kind="qrcode", payload=value)
                return PaymentAction(kind="redirect", url=value)
        if answer.get("html"):
            # an HTML form is not something to inject into the shop's page: the
            # same trade is opened through the signed page jump instead
            return self.page_jump(cfg, fields)
        raise GatewayError("epay answered without a payment link")

    # -- notifies ---------------------------------------------------------------------------
    def parse_notification(self, request, now: float | None = None) -> Notification:
        if request.method == "POST" and request.content_type not in (
                "", "application/x-www-form-urlencoded", "multipart/form-data"):
            raise NotificationRejected("the notify body is not a form")
        try:
            fields = protocol.collect_fields(request.GET.items(), request.POST.items())
        except protocol.Malformed as exc:
            raise NotificationRejected(str(exc)) from None
        try:
            cfg = config.load(self.settings)
        except SettingError:
            raise NotificationRejected("the epay gateway is not configured") from None
        return notify.verify(fields, cfg, time.time() if now is None else now)

    def ack(self, accepted: bool) -> tuple[int, str, str]:
        # the platform looks for "success" anywhere in the body (do_notify)
        return (200, "success", "text/plain") if accepted else (400, "fail", "text/plain")

    # -- reconciliation ---------------------------------------------------------------------
    def query_payment(self, request, attempt) -> Notification | None:
        data = self.order_state(self.config(), attempt.attempt_no)
        if data is None:
            return None
        return self.notification_from(data, attempt.attempt_no)

    def order_state(self, cfg: Config, out_trade_no: str) -> dict | None:
        """The trade as the platform knows it, or None when it has no such trade."""
        if cfg.v2:
            data = provider.v2_call(cfg, "pay/query", {"out_trade_no": out_trade_no})
            ok = provider.code_of(data) == provider.V2_OK
        else:
            data = provider.v1_order(cfg, out_trade_no)
            ok = provider.code_of(data) == provider.V1_OK
        if ok:
            return data
        message = provider.clean_message(data.get("msg"))
        if "订单号不存在" in message or "订单不存在" in message:
            return None
        raise GatewayError(f"epay refused the query: {message}")

    def notification_from(self, data: dict, attempt_no: str) -> Notification:
        fields = protocol.signed_fields_of(data)
        if fields.get("out_trade_no") != attempt_no:
            raise GatewayError("epay answered about another order")
        status = QUERY_STATUS.get(fields.get("status", ""))
        if status is None:
            raise GatewayError("epay answered an unknown order status")
        try:
            amount = parse_decimal(fields.get("money", ""), 2)
        except MoneyError:
            raise GatewayError("epay answered a malformed amount") from None
        raw = {k: v for k, v in fields.items() if k in ("trade_no", "out_trade_no", "type", "money", "status",
                                                         "pid", "addtime", "endtime", "refundmoney")}
        return Notification(attempt_no=attempt_no, provider_trade_no=fields.get("trade_no", "")[:128], amount=amount,
                            currency=notify.CURRENCY, status=status, merchant_id=fields.get("pid"), raw=raw)

    def test_connection(self, request) -> str:
        cfg = self.config()
        if cfg.v2:
            data = provider.v2_call(cfg, "merchant/info", {})
            if provider.code_of(data) != provider.V2_OK:
                raise GatewayError(f"epay refused: {provider.clean_message(data.get('msg'))}")
            return _("epay knows merchant ${pid}; both RSA keys verify.", mapping={"pid": cfg.pid})
        # an order number that cannot exist: "no such order" means the pid and key were accepted
        self.order_state(cfg, "KAMENGTEST" + str(int(time.time())))
        return _("epay knows merchant ${pid} and accepted the key.", mapping={"pid": cfg.pid})

    # -- refunds ----------------------------------------------------------------------------
    def refund(self, request, attempt, refund) -> RefundResult:
        cfg = self.config()
        money = format_minor(refund.amount, refund.currency)
        if cfg.v2:
            return refunds.refund_v2(cfg, attempt, refund, money)
        return refunds.refund_v1(self, request, cfg, attempt, refund, money)
