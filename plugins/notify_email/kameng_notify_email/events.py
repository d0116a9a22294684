"""The events this plugin emails, who gets each, the placeholders its
template may use, and the default texts (English message ids, translated
through the shop's catalog; zh_CN is the Chinese default).

Placeholders are written ``{name}``; ``{{`` and ``}}`` are literal braces.
"""
from __future__ import annotations

from dataclasses import dataclass

from kameng.i18n import _

BUYER, ADMIN, ACCOUNT, TEST = "buyer", "admin", "account", "test"

#: every email may use these
COMMON = ("shop_name", "shop_url")
#: what the core sends about an order (kameng.orders.service.event_data), without its link
ORDER = ("order_no", "product", "sku", "sku_name", "quantity", "amount", "currency", "status")
#: an alert about an order also names the buyer's contact and links to the admin's order page
ORDER_ADMIN = (*ORDER, "contact", "reason", "admin_url")


@dataclass(frozen=True)
class EventSpec:
    name: str
    audience: str
    label: object  # a TranslationString
    subject: object
    body: object
    placeholders: tuple[str, ...]
    #: one email per order (and refund, and recipient) however often the core says it
    once_per_order: bool = False
    #: the merchant may turn it off (a password reset must always go out)
    optional: bool = True

    @property
    def allowed(self) -> frozenset:
        return frozenset((*COMMON, *self.placeholders))


SPECS = (
    # -- to the buyer ------------------------------------------------------------------
    EventSpec("order.paid", BUYER, _("Payment received"),
          _("Payment received for order {order_no}"),
          _("Hello,\n\n"
            "we received your payment for order {order_no}.\n\n"
            "Product: {product} {sku_name} × {quantity}\n"
            "Amount: {amount} {currency}\n\n"
            "We are preparing your order and will email you again once it is delivered. "
            "Your order page:\n{url}\n\n"
            "{shop_name}\n{shop_url}"),
          (*ORDER, "url"), once_per_order=True),
    EventSpec("order.delivered", BUYER, _("Order delivered (with the keys)"),
          _("Your order {order_no} is delivered"),
          _("Hello,\n\n"
            "thank you for your order at {shop_name}. It is delivered.\n\n"
            "Order: {order_no}\n"
            "Product: {product} {sku_name} × {quantity}\n"
            "Amount: {amount} {currency}\n\n"
            "{keys}\n\n"
            "Your order page (keep this link to yourself: it opens the order without a password):\n{url}\n\n"
            "{shop_name}\n{shop_url}"),
          (*ORDER, "url", "keys"), once_per_order=True),
    EventSpec("order.refunded", BUYER, _("Refund"),
          _("Refund {refund_no} for order {order_no}"),
          _("Hello,\n\n"
            "we refunded {refund_amount} {currency} for order {order_no} ({product} {sku_name}).\n"
            "Refund number: {refund_no}\n\n"
            "Depending on how you paid, the money may take a few days to arrive. Your order page:\n{url}\n\n"
            "{shop_name}\n{shop_url}"),
          (*ORDER, "url", "refund_no", "refund_amount"), once_per_order=True),
    EventSpec("order.key_replaced", BUYER, _("Key replaced"),
          _("A key of order {order_no} was replaced"),
          _("Hello,\n\n"
            "a key of your order {order_no} did not work; we replaced it. "
            "These are the keys of the order now:\n\n"
            "{keys}\n\n"
            "Your order page:\n{url}\n\n"
            "{shop_name}\n{shop_url}"),
          (*ORDER, "url", "keys")),
    EventSpec("order.key_refunded", BUYER, _("Key refunded"),
          _("A key of order {order_no} was refunded"),
          _("Hello,\n\n"
            "a key of your order {order_no} did not work and none was left to replace it, "
            "so we refund its price. Your order page:\n{url}\n\n"
            "{shop_name}\n{shop_url}"),
          (*ORDER, "url")),
    # -- to the shop ---------------------------------------------------------------------
    EventSpec("stock.low", ADMIN, _("Low stock"),
          _("Low stock: {name} ({sku}) has {available} left"),
          _("The stock of {name} (SKU {sku}) fell to {available}; the alert threshold is {threshold}.\n\n"
            "Add stock in the admin: {admin_url}\n\n"
            "{shop_name}"),
          ("sku", "name", "available", "threshold", "admin_url")),
    EventSpec("order.failed", ADMIN, _("Failed delivery"),
          _("Order {order_no} could not be delivered"),
          _("Order {order_no} ({product} {sku_name} × {quantity}, {amount} {currency}) could not be delivered: "
            "{reason}\n"
            "A refund was started. Buyer: {contact}\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          ORDER_ADMIN),
    EventSpec("order.supplier_overdue", ADMIN, _("Supplier down or late"),
          _("Supplier overdue for order {order_no}"),
          _("The supplier has not answered for order {order_no} ({product} {sku_name} × {quantity}) "
            "within the connection's deadline. Its number at the supplier: {out_order_no}.\n"
            "kameng keeps asking; please check the order at the supplier.\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          (*ORDER_ADMIN, "out_order_no")),
    EventSpec("order.supplier_late", ADMIN, _("Supplier delivered late"),
          _("The supplier delivered order {order_no} late"),
          _("The supplier delivered order {order_no} (its number there: {out_order_no}) after the shop had "
            "refunded or fulfilled it. Its keys are kept on the order, void, for you to check.\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          (*ORDER_ADMIN, "out_order_no")),
    EventSpec("order.held", ADMIN, _("Order held for review"),
          _("Order {order_no} is held for review"),
          _("The paid order {order_no} ({product} {sku_name} × {quantity}, {amount} {currency}) is held for "
            "review before delivery. Buyer: {contact}\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          ORDER_ADMIN),
    EventSpec("order.awaiting_fulfilment", ADMIN, _("Order waiting for the shop"),
          _("Order {order_no} waits for you"),
          _("The paid order {order_no} ({product} {sku_name} × {quantity}, {amount} {currency}) waits for the "
            "shop to fulfil it. Buyer: {contact}\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          ORDER_ADMIN),
    EventSpec("order.reported", ADMIN, _("Problem reported by a buyer"),
          _("The buyer of order {order_no} reported a problem"),
          _("The buyer of order {order_no} ({product} {sku_name}) wrote:\n\n"
            "{message}\n\n"
            "Buyer: {contact}\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          (*ORDER_ADMIN, "message")),
    EventSpec("refund.manual", ADMIN, _("Refund to pay by hand"),
          _("Refund {refund_no} for order {order_no} must be paid by hand"),
          _("Refund {refund_no} of {refund_amount} {currency} for order {order_no} cannot go back through the "
            "gateway: pay it to the buyer ({contact}) yourself, then mark it done on the order.\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          (*ORDER_ADMIN, "refund_no", "refund_amount")),
    EventSpec("refund.failed", ADMIN, _("Refund failed"),
          _("Refund {refund_no} for order {order_no} failed"),
          _("The gateway refused refund {refund_no} for order {order_no}: {error}\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          (*ORDER_ADMIN, "refund_no", "error")),
    EventSpec("payment.duplicate", ADMIN, _("Duplicate payment"),
          _("A second payment arrived for order {order_no}"),
          _("A second payment arrived for order {order_no}, which was already paid; it is being refunded.\n\n"
            "{admin_url}\n\n"
            "{shop_name}"),
          ORDER_ADMIN),
    EventSpec("payment.amount_mismatch", ADMIN, _("Payment with a wrong amount"),
          _("Payment {attempt_no} reports a wrong amount"),
          _("The gateway {gateway} reports {paid} {currency} for payment {attempt_no} (order {order_no}), "
            "which asked for {expected} {currency}. Nothing was delivered: please decide in the admin.\n\n"
            "{shop_name}"),
          ("attempt_no", "gateway", "order_no", "expected", "paid", "currency")),
    EventSpec("payment.paid_twice", ADMIN, _("Payment paid twice"),
          _("Payment {attempt_no} was paid twice"),
          _("The gateway {gateway} reports a second trade ({provider_trade_no}) for payment {attempt_no} "
            "(order {order_no}). Refund it at the provider by hand.\n\n"
            "{shop_name}"),
          ("attempt_no", "gateway", "order_no", "expected", "currency", "provider_trade_no")),
    EventSpec("backup.failed", ADMIN, _("Backup failed"),
          _("The backup of {shop_name} failed"),
          _("The scheduled backup failed: {error}\n"
            "Backup folder: {folder}\n\n"
            "{shop_name}"),
          ("error", "folder")),
    EventSpec("alert.other", ADMIN, _("Other alerts"),
          _("{shop_name}: {event}"),
          _("The shop reports {event}:\n\n"
            "{details}\n\n"
            "{shop_name}"),
          ("event", "details")),
    # -- accounts ----------------------------------------------------------------------
    EventSpec("account.password_reset", ACCOUNT, _("Password reset"),
          _("Reset your password at {shop_name}"),
          _("Hello,\n\n"
            "someone (we hope you) asked to reset the password of your account at {shop_name}. "
            "To choose a new password, open this link within {expires_minutes} minutes:\n\n"
            "{url}\n\n"
            "If you did not ask for it, ignore this email: your password stays as it is.\n\n"
            "{shop_name}\n{shop_url}"),
          ("url", "expires_minutes", "email"), optional=False),
    EventSpec("account.registered", ACCOUNT, _("Welcome (new account)"),
          _("Welcome to {shop_name}"),
          _("Hello {display_name},\n\n"
            "your account at {shop_name} is ready. You sign in with {email}.\n\n"
            "{shop_url}\n\n"
            "{shop_name}"),
          ("email", "display_name")),
)

EVENTS: dict[str, EventSpec] = {s.name: s for s in SPECS}

#: the core's admin alerts this plugin knows by name; any other event that
#: is not the buyer's nor an account's is mailed to the shop as ``alert.other``
OTHER = "alert.other"
#: never mailed as an alert, whatever comes: they may carry private data
PRIVATE_PREFIXES = ("account.",)

#: the test email of the send log page (not editable)
TEST_SUBJECT = _("Test email from {shop_name}")
TEST_BODY = _("This is a test email from {shop_name}. If you can read it, the email settings work.\n\n{shop_url}")

#: sample values for the template preview (never real data)
SAMPLE = {
    "order_no": "202612011234567890", "product": _("Game card"), "sku": "CARD100", "sku_name": _("100 points"),
    "quantity": "2", "amount": "198.00", "currency": "CNY", "status": "delivered", "contact": "buyer@example.com",
    "reason": _("Out of stock when the payment arrived: refunded."), "refund_no": "R20261201000001",
    "refund_amount": "99.00", "sku_code": "CARD100", "name": _("Game card 100 points"), "available": "3",
    "threshold": "5", "out_order_no": "K202612011234567890", "message": _("The second key does not work."),
    "error": _("connection refused"), "folder": "/var/lib/kameng/backups", "attempt_no": "P20261201000000001",
    "gateway": "alipay", "expected": "198.00", "paid": "1.98", "provider_trade_no": "2026120122001",
    "expires_minutes": "30", "email": "buyer@example.com", "display_name": _("Buyer"),
    "event": "payment.unknown", "details": "order_no: 202612011234567890",
}
SAMPLE_KEYS = [{"number": "CARD-0001", "secret": "XXXX-XXXX-XXXX-0001"},
               {"number": None, "secret": "XXXX-XXXX-XXXX-0002"}]


def spec_for(event: str) -> EventSpec | None:
    """The spec an event is mailed with, or ``None``: not mailed."""
    spec = EVENTS.get(event)
    if spec is not None:
        return spec
    if not isinstance(event, str) or event.startswith(PRIVATE_PREFIXES) or event == "test":
        return None
    return EVENTS[OTHER]
