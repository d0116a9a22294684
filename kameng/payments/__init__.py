"""Payments, the core side: attempts, the gateway registry, and the one path
every notify goes through (:func:`apply_notification`)."""
from kameng.payments.base import GatewayError, NotificationRejected, PaymentGateway  # noqa: F401
