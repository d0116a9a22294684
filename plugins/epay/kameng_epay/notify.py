"""Reading an epay notify: verify, then report.

The signature is checked over every field that arrived, exactly as it
arrived (the platform adds fields such as ``api_trade_no``, ``buyer`` and
``param`` when it has them, and sends ``money`` as PHP's ``(float)``, so
"1.00" arrives as "1"). Only after it verifies are the fields read; the core
then decides (which attempt, this merchant's ``pid``, the amount).

Which signature a notify carries depends on how its trade was created, not
on the merchant (``includes/functions.php::creat_callback``): trades made
through ``api/pay/*`` are notified with RSA and a timestamp, trades made
through ``submit.php``/``mapi.php`` with MD5 and the merchant key. A V2 shop
creates its trades through ``api/pay/create``, except the cashier page
(no channel picked), which is ``submit.php``: its MD5 notifies are taken
only when the MD5 ``key`` is set too.
"""
from __future__ import annotations

import re

from kameng.money import MoneyError, parse_decimal
from kameng.payments import NotificationRejected
from kameng.types import Notification

from kameng_epay import protocol
from kameng_epay.config import Config

#: what a notify must carry to say anything about a payment
REQUIRED = ("pid", "trade_no", "out_trade_no", "money", "trade_status")
PAID_STATUS = "TRADE_SUCCESS"
#: epay settles in yuan; the protocol carries no currency
CURRENCY = "CNY"
_ORDER_NO = re.compile(r"[A-Za-z0-9._\-|]{1,64}")


def check_signature(fields: dict, cfg: Config, now: float) -> None:
    sign = fields.get("sign")
    if not sign:
        raise NotificationRejected("missing sign")
    sign_type = fields.get("sign_type", "")
    if sign_type == "RSA":
        if not cfg.v2:
            raise NotificationRejected("an RSA notify, and the gateway is set to version 1")
        if not protocol.rsa_verify(fields, sign, cfg.platform_key):
            raise NotificationRejected("bad signature")
        # creat_callback stamps the time of each send, so retries stay fresh
        if not protocol.fresh(fields.get("timestamp"), now):
            raise NotificationRejected("timestamp missing or outside the 300 s window")
    elif sign_type in ("", "MD5"):
        if not cfg.key:
            raise NotificationRejected("an MD5 notify, and no MD5 key is set")
        if not protocol.md5_verify(fields, sign, cfg.key, cfg.sign_mode):
            raise NotificationRejected("bad signature")
    else:
        raise NotificationRejected("unknown sign_type")


def verify(fields: dict, cfg: Config, now: float) -> Notification:
    """A :class:`Notification` for verified ``fields``; raises
    :class:`NotificationRejected` (with a reason that holds no secret) for
    anything else."""
    check_signature(fields, cfg, now)
    for name in REQUIRED:
        if protocol.is_empty(fields.get(name)):
            raise NotificationRejected(f"missing field {name}")
    if not _ORDER_NO.fullmatch(fields["out_trade_no"]):
        raise NotificationRejected("malformed out_trade_no")
    try:
        amount = parse_decimal(fields["money"], 2)
    except MoneyError:
        raise NotificationRejected("malformed money") from None
    # only TRADE_SUCCESS is a payment; anything else is acknowledged and changes nothing
    status = "paid" if fields["trade_status"] == PAID_STATUS else "pending"
    return Notification(attempt_no=fields["out_trade_no"], provider_trade_no=fields["trade_no"][:128],
                        amount=amount, currency=CURRENCY, status=status, merchant_id=fields["pid"],
                        raw=dict(fields))
