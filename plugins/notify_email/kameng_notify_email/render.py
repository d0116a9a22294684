"""Templates: checking, rendering (plain text, and HTML made from the text
by a Chameleon template, so every value is escaped), the card-key block.

Placeholders are ``{name}`` with a name from the event's whitelist and
nothing else: no attribute or index access (``{a.b}``, ``{a[0]}``), no
positional field (``{}``, ``{0}``), no conversion (``{a!r}``) and no format
spec (``{a:>99999}``). The text is never passed to ``str.format``: the
fields are substituted one by one from :class:`string.Formatter`'s parse.
"""
from __future__ import annotations

import re
import string

from pyramid.i18n import make_localizer
from pyramid.interfaces import ITranslationDirectories
from pyramid.renderers import render

from kameng.i18n import _

SUBJECT_MAX = 255
BODY_MAX = 20000
_NAME = re.compile(r"[a-z][a-z_]{0,39}")
_FORMATTER = string.Formatter()
_LINE_BREAKS = re.compile(r"[\r\n\t\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_URL = re.compile(r"https?://[^\s<>\"'`]+")


class TemplateError(ValueError):
    """A template that cannot be used; ``message`` is translatable,
    ``part`` is ``subject`` or ``body``."""

    def __init__(self, part: str, message):
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


def fields_of(part: str, text: str) -> list[str]:
    """The placeholder names in ``text``; raises :class:`TemplateError`
    for anything but a plain name."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError:
        raise TemplateError(part, _("has an unmatched brace: write {{ and }} for a brace of its own.")) from None
    names = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not _NAME.fullmatch(field) or conversion is not None or spec:
            raise TemplateError(part, _("has a placeholder that is not a plain name: ${field}",
                                        mapping={"field": shown}))
        names.append(field)
    return names


def check(subject: str, body: str, allowed: frozenset) -> None:
    """Refuse a template that could not be rendered safely."""
    if not subject.strip():
        raise TemplateError("subject", _("is required"))
    if len(subject) > SUBJECT_MAX:
        raise TemplateError("subject", _("must be at most ${n} characters", mapping={"n": SUBJECT_MAX}))
    if _LINE_BREAKS.search(subject):
        raise TemplateError("subject", _("must be one line"))
    if not body.strip():
        raise TemplateError("body", _("is required"))
    if len(body) > BODY_MAX:
        raise TemplateError("body", _("must be at most ${n} characters", mapping={"n": BODY_MAX}))
    for part, text in (("subject", subject), ("body", body)):
        for name in fields_of(part, text):
            if name not in allowed:
                raise TemplateError(part, _("uses ${field}, which this email does not have. It may use: ${names}",
                                            mapping={"field": "{" + name + "}",
                                                     "names": " ".join("{" + n + "}" for n in sorted(allowed))}))


def fill(text: str, values: dict) -> str:
    """``text`` with each ``{name}`` replaced by ``values[name]`` (a string;
    a missing value is empty). Only call it on a checked template."""
    out = []
    for literal, field, _spec, _conversion in _FORMATTER.parse(text):
        out.append(literal)
        if field is not None:
            out.append(str(values.get(field, "")))
    return "".join(out)


def one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """A header value: line breaks (and the other characters mail readers
    break lines at) become spaces, so nothing can add a header."""
    return " ".join(_LINE_BREAKS.sub(" ", text).split())[:limit]


def html_of(request, text: str, language: str) -> str:
    """An HTML version of the plain text: the same lines, escaped by the
    template, with http(s) links made clickable."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = []
        for line in block.split("\n"):
            parts, pos = [], 0
            for m in _URL.finditer(line):
                url = m.group(0).rstrip(".,;:!?)）。，")
                start, end = m.start(), m.start() + len(url)
                if start > pos:
                    parts.append({"text": line[pos:start], "href": None})
                parts.append({"text": url, "href": url})
                pos = end
            if pos < len(line):
                parts.append({"text": line[pos:], "href": None})
            lines.append(parts)
        paragraphs.append(lines)
    return render("kameng_notify_email:templates/email.pt",
                  {"paragraphs": paragraphs, "language": language.replace("_", "-")}, request=request)


_LOCALIZERS: dict = {}


def localizer_for(request, language: str):
    """A localizer for ``language`` (emails are in the shop's language, not
    the reader's of the admin page)."""
    if getattr(request, "locale_name", None) == language:
        return request.localizer
    dirs = tuple(request.registry.queryUtility(ITranslationDirectories, default=[]))
    key = (id(request.registry), language, dirs)
    if key not in _LOCALIZERS:
        _LOCALIZERS[key] = make_localizer(language, list(dirs))
    return _LOCALIZERS[key]


def keys_block(localizer, keys: list[dict], note: str | None) -> str:
    """The card keys (and what a shop typed when it delivered by hand), as text."""
    lines = []
    if keys:
        lines.append(localizer.translate(_("Your card keys:")))
        number_label = localizer.translate(_("Card number"))
        key_label = localizer.translate(_("Card key"))
        for i, key in enumerate(keys, 1):
            if key.get("number"):
                lines.append(f"{i}. {number_label}: {key['number']}  {key_label}: {key['secret']}")
            else:
                lines.append(f"{i}. {key['secret']}")
    if note:
        if lines:
            lines.append("")
        lines.append(localizer.translate(_("Delivery details:")))
        lines.append(note)
    return "\n".join(lines)


def mask(address: str) -> str:
    """``buyer@example.com`` → ``bu***@example.com`` for pages and logs."""
    if not address:
        return ""
    local, _at, domain = address.partition("@")
    return f"{local[:2] if len(local) > 3 else local[:1]}***@{domain}"
