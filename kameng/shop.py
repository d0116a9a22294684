"""The shop's own settings (name, logo, contact, currency, language, ICP
number), kept in the database and edited in the admin."""
from __future__ import annotations

import json

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base
from kameng.i18n import _
from kameng.types import SettingField


class ShopSetting(Base):
    __tablename__ = "shop_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON


CURRENCIES = ("CNY", "USD", "EUR", "HKD", "TWD", "JPY")

FIELDS = (
    SettingField("name", _("Shop name"), required=True, default="kameng", max_length=80),
    SettingField("logo_url", _("Logo URL"), default="", max_length=500,
                 pattern=r"(https?://|/)[^\s\"'<>]*"),
    SettingField("contact", _("Customer service contact"), default="", max_length=200),
    SettingField("currency", _("Currency"), type="choice", choices=CURRENCIES, default="CNY", required=True),
    SettingField("default_language", _("Default language"), type="choice", choices=("zh_CN", "en"),
                 choice_labels=("简体中文", "English"), default="zh_CN", required=True),
    SettingField("icp", _("ICP filing number (shown in the footer)"), default="", max_length=64),
    SettingField("stock_display", _("Stock shown to buyers"), type="choice", choices=("number", "level"),
                 choice_labels=(_("The number of items"), _("Plenty / a few / sold out")), default="number",
                 required=True),
    SettingField("announcement", _("Announcement on the home page"), type="text", default="", max_length=2000),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}
DEFAULTS = {f.name: f.default for f in FIELDS}


def load(db, default_language: str | None = None) -> dict:
    """The settings in force; ``default_language`` is what an unset language
    falls back to (the ini's ``pyramid.default_locale_name``)."""
    values = dict(DEFAULTS)
    if default_language in ("zh_CN", "en"):
        values["default_language"] = default_language
    for row in db.scalars(select(ShopSetting)):
        if row.key in FIELDS_BY_NAME:
            values[row.key] = json.loads(row.value)
    return values


def save(db, raw: dict) -> dict:
    """Validate every submitted field first, then write (all or nothing).
    Raises :class:`kameng.types.SettingError` for the first bad field."""
    parsed = {}
    for name, value in raw.items():
        field = FIELDS_BY_NAME.get(name)
        if field is not None:
            v = field.parse(value)
            parsed[name] = field.default if v is None else v
    for name, value in parsed.items():
        row = db.get(ShopSetting, name)
        if row is None:
            db.add(ShopSetting(key=name, value=json.dumps(value, ensure_ascii=False)))
        else:
            row.value = json.dumps(value, ensure_ascii=False)
    db.flush()
    return parsed


def _shop(request) -> dict:
    return load(request.db, request.registry.settings.get("pyramid.default_locale_name"))


def includeme(config):
    config.add_request_method(_shop, "shop", reify=True)
