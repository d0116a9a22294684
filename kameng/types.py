"""Frozen values that cross the plugin boundary.

Plugins build these and hand them to the core; the core never gives a plugin
a mutable ORM object it does not own except where a hook says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from kameng.i18n import _


class SettingError(ValueError):
    """A plugin or shop setting has a value it cannot take."""

    def __init__(self, field_name: str, message):
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name
        self.message = message


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class SettingField:
    """One setting a plugin declares; the admin form and the CLI are built from it.

    ``type`` is one of ``string``, ``text`` (several lines), ``int``, ``bool``,
    ``choice``, ``url``. A ``secret`` field is stored encrypted and shown masked.
    """

    name: str
    label: str
    type: str = "string"
    required: bool = False
    default: Any = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""
    min_length: int = 0
    max_length: int = 20000
    min_value: int | None = None
    max_value: int | None = None
    pattern: str | None = None
    #: what the admin form shows for each of ``choices`` (same order)
    choice_labels: tuple = ()

    def choice_label(self, choice: str):
        if choice in self.choices and len(self.choice_labels) == len(self.choices):
            return self.choice_labels[self.choices.index(choice)]
        return choice

    def parse(self, raw) -> Any:
        """Turn a submitted value (a string, or already typed) into the stored value."""
        if raw is None:
            raw = ""
        if self.type == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise SettingError(self.name, _("must be true or false"))
        text = raw if isinstance(raw, str) else str(raw)
        if self.type != "text":
            text = text.strip()
        if text.strip() == "":
            if self.required:
                raise SettingError(self.name, _("is required"))
            return None
        if self.type == "int":
            if not re.fullmatch(r"-?\d{1,18}", text):
                raise SettingError(self.name, _("must be a whole number"))
            value = int(text)
            if self.min_value is not None and value < self.min_value:
                raise SettingError(self.name, _("must be at least ${n}", mapping={"n": self.min_value}))
            if self.max_value is not None and value > self.max_value:
                raise SettingError(self.name, _("must be at most ${n}", mapping={"n": self.max_value}))
            return value
        if len(text) < self.min_length:
            raise SettingError(self.name, _("must be at least ${n} characters", mapping={"n": self.min_length}))
        if len(text) > self.max_length:
            raise SettingError(self.name, _("must be at most ${n} characters", mapping={"n": self.max_length}))
        if self.type == "choice" and text not in self.choices:
            raise SettingError(self.name, _("must be one of: ${choices}", mapping={"choices": ", ".join(self.choices)}))
        if self.type == "url" and not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", text):
            raise SettingError(self.name, _("must be an http(s) URL"))
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise SettingError(self.name, _("has the wrong format"))
        return text


@dataclass(frozen=True)
class PluginMeta:
    """What a plugin says about itself: ``PLUGIN = PluginMeta(...)`` in its module.

    The version and the plugin id come from the distribution and its entry
    point name; ``kameng_api`` is a version specifier for :data:`kameng.API_VERSION`.
    """

    name: str
    description: str = ""
    author: str = ""
    kameng_api: str = ">=1,<2"
    category: str = "other"
    settings: tuple[SettingField, ...] = ()
    url: str = ""
    #: ``validate(values)`` checks the settings as a whole before they are
    #: stored (a key that does not parse, a field another one requires) and
    #: raises :class:`SettingError` naming the field; ``values`` holds every
    #: setting, stored and new, secrets decrypted
    validate: Callable[[dict], None] | None = None


@dataclass(frozen=True)
class MenuItem:
    """An entry in the admin menu (``kameng_admin_menu``)."""

    label: str
    route_name: str
    section: str = "plugins"
    order: int = 100
    permission: str = "admin"


@dataclass(frozen=True)
class StorefrontBlock:
    """HTML a plugin puts into a named slot of the storefront
    (``kameng_storefront_blocks``). ``html`` must already be escaped:
    render it from a template, never by string concatenation of user data."""

    slot: str
    html: str
    order: int = 100


@dataclass(frozen=True)
class ScheduledJob:
    """A job kind the worker enqueues every ``every_seconds``."""

    name: str
    kind: str
    every_seconds: int
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EncryptedColumn:
    """A column of a plugin's table that holds values encrypted with the
    shop's :class:`~kameng.crypto.KeyRing` (``kameng_encrypted_columns``):
    ``kameng keys rotate`` re-encrypts them and ``--drop-old`` keeps their
    keys. ``aad(row)`` gives the associated data a value is bound to; empty
    values are skipped."""

    model: type
    column: str
    aad: Callable[[Any], str]


@dataclass(frozen=True)
class JobHandler:
    """``func(request, payload)`` runs a job of ``kind`` inside a transaction.

    It must be idempotent: a job whose worker died is run again.
    """

    kind: str
    func: Callable
    max_attempts: int = 8


@dataclass(frozen=True)
class PaymentAction:
    """What the buyer is shown to pay: ``kind`` is ``redirect`` (``url``),
    ``qrcode`` (``payload`` is the text to encode), or ``form_post``
    (``url`` and ``fields``)."""

    kind: str
    url: str = ""
    payload: str = ""
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """A verified gateway notification, as a plugin reports it to the core.

    ``amount`` is a :class:`~decimal.Decimal` in major units exactly as the
    gateway sent it; ``status`` is ``paid``, ``failed`` or ``pending``.
    ``merchant_id`` is the merchant account the gateway says it paid (the
    core compares it with the configured one where the plugin declares it).
    """

    attempt_no: str
    provider_trade_no: str
    amount: Decimal
    currency: str
    status: str
    merchant_id: str | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    """A gateway's answer to a refund: ``status`` is ``succeeded``,
    ``pending`` (the provider confirms later; the core asks again) or
    ``failed`` (``message`` says why, without secrets)."""

    status: str
    provider_refund_no: str = ""
    message: str = ""


@dataclass(frozen=True)
class RiskVerdict:
    """An anti-fraud answer: ``action`` is ``allow``, ``review`` or ``deny``.

    A ``deny`` is answered with ``code`` (see :data:`kameng.risk.STATUS`):
    ``rate_limited`` is a 429 with ``Retry-After: retry_after``,
    ``captcha_required`` a 400, anything else (or nothing) a 403 ``blocked``.
    ``user_message`` is what the buyer reads (translatable); ``reasons``
    are for the risk log and the admin, never shown to the buyer.
    """

    action: str = "allow"
    reasons: tuple[str, ...] = ()
    user_message: str = ""
    score: int = 0
    code: str = ""
    retry_after: int = 0


@dataclass(frozen=True)
class Adjustment:
    """A price change offered by a pricing plugin; ``amount`` is in minor
    units and negative for a discount. The core keeps the best adjustment of
    each ``exclusive_group`` and rounds once."""

    source: str
    label: str
    amount: int
    code: str = ""
    exclusive_group: str = ""
    priority: int = 100


# -- supplier connectors ------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamSku:
    """One option an upstream sells. ``cost`` is what this shop pays per unit
    (a ``Decimal`` in the connection's currency); ``stock`` is ``None`` when
    the upstream does not count; ``available`` is false when it stopped
    selling it."""

    code: str
    name: str
    cost: Decimal
    stock: int | None = None
    available: bool = True


@dataclass(frozen=True)
class UpstreamGoods:
    """A product an upstream sells: ``type`` is a kameng product type
    (``card_key``, ``direct_recharge``, ``manual``); ``recharge_fields``
    the fields a direct recharge needs, in kameng's catalog format."""

    id: str
    name: str
    type: str
    skus: tuple[UpstreamSku, ...]
    category: str = ""
    description: str = ""
    recharge_fields: tuple = ()


@dataclass(frozen=True)
class UpstreamOrderRequest:
    """What the core asks a connector to place. ``out_order_no`` is unique,
    stored before the call and the same on every retry: the connector sends
    it as the upstream's idempotency key and queries by it before placing
    again."""

    out_order_no: str
    sku: str
    quantity: int
    recharge: dict = field(default_factory=dict)
    callback_url: str = ""
    #: what the buyer paid per unit here, for connectors that check a ceiling
    max_unit_cost: Decimal | None = None


@dataclass(frozen=True)
class UpstreamResult:
    """An upstream order's state, normalised. ``status`` is one of
    ``processing`` (accepted, not done), ``success``, ``failed`` (nothing was
    delivered and nothing was charged), ``partial`` (``delivered`` units
    of the quantity) or ``unknown`` (the call may have reached the upstream:
    query before doing anything else). ``keys`` are delivered card keys
    ``(number or None, secret)``: bearer secrets, encrypted by the core."""

    status: str
    out_order_no: str = ""
    upstream_order_no: str = ""
    keys: tuple[tuple[str | None, str], ...] = ()
    delivered: int | None = None
    cost: Decimal | None = None
    message: str = ""
