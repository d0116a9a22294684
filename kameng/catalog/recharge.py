"""Recharge inputs of ``direct_recharge`` products: what the buyer types
(a phone number, a QQ number, a game account and server) and its checks.

A product declares its fields as JSON::

    [{"name": "phone", "label": "手机号", "kind": "mobile_cn"},
     {"name": "server", "label": "区服", "kind": "choice", "choices": ["电信一区", "网通一区"]},
     {"name": "account", "label": "游戏账号", "kind": "text", "pattern": "[A-Za-z0-9_]{4,32}"}]
"""
from __future__ import annotations

import json
import re

from kameng.i18n import _

KINDS = {
    # kind: (pattern, the message when a value does not match)
    # mainland China mobile numbers: 11 digits starting 13-19
    "mobile_cn": (r"1[3-9]\d{9}", _("must be a mainland China mobile number (11 digits)")),
    "qq": (r"[1-9]\d{4,11}", _("must be a QQ number (5 to 12 digits)")),
    "email": (r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}", _("must be an email address")),
    "text": (None, _("has the wrong format")),
    "choice": (None, _("must be one of the choices")),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
# a repeated group that repeats inside, like (a+)+: catastrophic backtracking
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


class RechargeError(ValueError):
    def __init__(self, field: str, message):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def parse_spec(raw) -> list[dict]:
    """Validate a product's field declaration (JSON text or a list)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "[]")
        except ValueError:
            raise RechargeError("recharge_fields", _("is not valid JSON")) from None
    if not isinstance(raw, list) or len(raw) > 10:
        raise RechargeError("recharge_fields", _("must be a list of at most 10 fields"))
    out, names = [], set()
    for item in raw:
        if not isinstance(item, dict):
            raise RechargeError("recharge_fields", _("each field must be an object"))
        name, kind = item.get("name"), item.get("kind", "text")
        if not isinstance(name, str) or not _NAME.match(name) or name in names:
            raise RechargeError("recharge_fields", _("field names are lowercase letters, digits and _, unique"))
        if not isinstance(kind, str) or kind not in KINDS:
            raise RechargeError("recharge_fields", _("unknown kind ${kind}", mapping={"kind": str(kind)[:20]}))
        field = {"name": name, "label": str(item.get("label") or name)[:50], "kind": kind,
                 "required": bool(item.get("required", True))}
        if kind == "choice":
            choices = item.get("choices")
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                raise RechargeError("recharge_fields", _("a choice field needs a list of choices"))
            field["choices"] = [c[:50] for c in choices[:100]]
        if kind == "text" and item.get("pattern"):
            pattern = item["pattern"]
            try:
                if not isinstance(pattern, str) or len(pattern) > 200 or _NESTED_QUANTIFIER.search(pattern):
                    raise re.error("refused")
                re.compile(pattern)
            except re.error:
                raise RechargeError("recharge_fields", _(
                    "the pattern of ${name} must be a simple regular expression of at most 200 characters",
                    mapping={"name": name})) from None
            field["pattern"] = pattern
        names.add(name)
        out.append(field)
    return out


def validate(spec: list[dict], values) -> dict:
    """The buyer's inputs, checked against the product's fields; unknown
    inputs are dropped. Raises :class:`RechargeError` for the first bad one."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RechargeError("recharge", _("must be an object"))
    clean = {}
    for field in spec:
        raw = values.get(field["name"], "")
        if not isinstance(raw, str):
            raise RechargeError(field["name"], _("must be text"))
        value = raw.strip()
        if not value:
            if field.get("required", True):
                raise RechargeError(field["name"], _("is required"))
            continue
        if len(value) > 100:
            raise RechargeError(field["name"], _("is too long"))
        kind = field["kind"]
        pattern = KINDS[kind][0] or field.get("pattern")
        if kind == "choice" and value not in field["choices"]:
            raise RechargeError(field["name"], _("must be one of the choices"))
        if pattern and not re.fullmatch(pattern, value):
            raise RechargeError(field["name"], KINDS[kind][1])
        clean[field["name"]] = value
    return clean
