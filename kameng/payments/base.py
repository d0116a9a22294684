"""The contract a payment gateway plugin implements.

A gateway builds requests to its provider and verifies what the provider
sends back; the core owns every money check (which attempt, which gateway,
amount, currency, merchant, replays) and every state change.
"""
from __future__ import annotations

from kameng.types import Notification, PaymentAction, RefundResult


class NotificationRejected(Exception):
    """Raised by :meth:`PaymentGateway.parse_notification` for a notify that
    does not verify (bad or missing signature, stale timestamp, malformed
    fields). The message is logged; it must not contain secrets."""


class GatewayError(Exception):
    """A call to the provider failed or its answer did not verify. The
    message is shown to the admin and logged: it must not contain secrets.
    ``uncertain`` says the provider may have acted (a timeout after the
    request went out), so the core must not treat it as a refusal."""

    def __init__(self, message: str, uncertain: bool = False):
        super().__init__(message)
        self.uncertain = uncertain


class PaymentGateway:
    #: the plugin id that provides the gateway; also the notify route's name
    identifier: str = ""
    #: shown to buyers (translatable)
    public_name: str = ""
    #: a test gateway: the storefront labels it as such and it moves no money
    is_test: bool = False
    #: the setting holding the merchant id the core compares with notifies
    merchant_id_setting: str | None = None
    refund_supported: bool = False
    #: :meth:`test_connection` asks the provider something harmless
    connection_test_supported: bool = False
    #: :meth:`close_payment` exists: the core closes an attempt whose order
    #: expired or was cancelled, so the buyer cannot pay it afterwards
    close_supported: bool = False

    def __init__(self, settings: dict):
        self.settings = settings

    def channels(self) -> list[tuple[str, str]]:
        """``[(code, label)]`` of the payment channels the merchant enabled
        (epay: ``alipay``, ``wxpay``…). The buyer picks one; the core
        refuses any other. Empty: the gateway has no channels."""
        return []

    def create_payment(self, request, attempt) -> PaymentAction:
        """Build what the buyer needs to pay ``attempt`` (its ``attempt_no``
        is the merchant order number the provider sees; ``attempt.channel``
        the channel the buyer picked). The core calls it once per attempt
        and keeps the answer; raise :class:`GatewayError` when the provider
        refuses or cannot be reached. No state changes."""
        raise NotImplementedError

    def parse_notification(self, request) -> Notification:
        """Verify a notify request and report it. Raise
        :class:`NotificationRejected` if it does not verify. No state changes."""
        raise NotImplementedError

    def ack(self, accepted: bool) -> tuple[int, str, str]:
        """The reply the provider expects: ``(status, body, content_type)``."""
        return (200, "success", "text/plain") if accepted else (400, "fail", "text/plain")

    @property
    def query_supported(self) -> bool:
        """The gateway implements :meth:`query_payment` (reconciliation)."""
        return type(self).query_payment is not PaymentGateway.query_payment

    def query_payment(self, request, attempt) -> Notification | None:
        """Ask the provider for the attempt's state (reconciliation). ``None``
        when the provider has no record of it."""
        return None

    def test_connection(self, request) -> str:
        """Check the settings against the provider without moving money
        (query an order number that does not exist, fetch certificates…).
        Return a short success message; raise :class:`GatewayError`."""
        raise NotImplementedError

    def close_payment(self, request, attempt) -> None:
        """Close an unpaid attempt at the provider (only when
        ``close_supported``). Raise :class:`GatewayError` to be retried."""
        raise NotImplementedError

    def refund(self, request, attempt, refund) -> RefundResult:
        """Refund ``refund.amount`` (minor units) of a paid ``attempt``.
        ``refund.refund_no`` was stored before this call and is the same on
        every retry: send it as the provider's refund request number so the
        provider refunds once. Only called when ``refund_supported``; may be
        called again after ``pending``."""
        raise NotImplementedError
