"""The contract a supplier connector implements.

A connector talks to one kind of upstream (another kameng shop, a top-up
platform): it lists goods, places orders, asks about them and verifies the
upstream's callbacks. The core owns every decision: which connection, which
out-order number (stored before any call), when to retry, when to give up
and refund, and what the buyer sees. A connector changes no state.

One connector serves any number of *connections* (upstream accounts); each
connection has its own settings, declared by :attr:`SupplierConnector.settings`
and stored by the core (secrets encrypted), passed to ``__init__``.
"""
from __future__ import annotations

from kameng.types import SettingField, UpstreamGoods, UpstreamOrderRequest, UpstreamResult  # noqa: F401


class SupplierError(Exception):
    """A call to the upstream failed or its answer did not verify. The
    message is shown to the admin and logged: no secrets in it.
    ``uncertain``: the upstream may have acted (a timeout after sending), so
    the core queries before it places again."""

    def __init__(self, message: str, uncertain: bool = False):
        super().__init__(message)
        self.uncertain = uncertain


class CallbackRejected(Exception):
    """Raised by :meth:`SupplierConnector.parse_callback` for a callback that
    does not verify. The message is logged; no secrets in it."""


class SupplierConnector:
    #: the plugin id that provides the connector
    identifier: str = ""
    #: shown to the admin (translatable)
    public_name: str = ""
    #: the settings of one connection (URL, credentials), as SettingFields
    settings: tuple[SettingField, ...] = ()
    #: the upstream calls back when an order finishes (else the core polls)
    callbacks: bool = False
    #: the currency the upstream's costs are in
    currency: str = "CNY"
    #: the upstream itself refuses a second order with a used ``out_order_no``
    #: (and says so), so placing again is safe even when asking is not possible
    places_idempotently: bool = False

    def __init__(self, settings: dict):
        self.config = settings

    @classmethod
    def validate(cls, values: dict) -> None:
        """Check a connection's settings as a whole; raise
        :class:`kameng.types.SettingError`. Optional."""

    def test_connection(self) -> str:
        """Ask the upstream something harmless (its name, the balance);
        a short message, or raise :class:`SupplierError`."""
        raise NotImplementedError

    def balance(self) -> str | None:
        """This account's balance at the upstream, as text, if it has one."""
        return None

    def list_goods(self) -> list[UpstreamGoods]:
        """Everything the upstream sells to this account, with its cost and
        stock now. Raise :class:`SupplierError`."""
        raise NotImplementedError

    def place_order(self, req: UpstreamOrderRequest) -> UpstreamResult:
        """Place ``req`` at the upstream. Idempotent on ``req.out_order_no``:
        on a retry, ask the upstream about it first and never place it a
        second time. A timeout is ``UpstreamResult("unknown")`` or a
        ``SupplierError(uncertain=True)``, never ``failed``."""
        raise NotImplementedError

    def query_order(self, out_order_no: str) -> UpstreamResult | None:
        """The upstream's state of the order placed as ``out_order_no``;
        ``None`` when the upstream has no such order (it was never placed)."""
        raise NotImplementedError

    def parse_callback(self, request) -> UpstreamResult:
        """Verify a callback (its signature over what arrived) and report it.
        Raise :class:`CallbackRejected`. Only when ``callbacks``."""
        raise CallbackRejected("this connector takes no callbacks")

    def callback_ack(self, accepted: bool) -> tuple[int, str, str]:
        """The reply the upstream expects: ``(status, body, content_type)``."""
        return (200, "success", "text/plain") if accepted else (400, "fail", "text/plain")
