"""Blacklist (and watchlist) entries: one a line.

- ``bob@example.com``: that address (case does not matter);
- ``*@example.com`` (or ``@example.com``): every address at that domain;
  ``*@*.example.com``: every address at a subdomain of it. ``*`` stands
  for any run of characters other than ``@``, anywhere in the address
  (``spam*@example.com``);
- ``+86 138 0013 8000``: a phone number (spaces, dashes, brackets and the
  ``+`` do not matter: the digits are compared, with or without a country
  code of 1 to 3 digits in front);
- ``203.0.113.7``, ``2001:db8::1``: an IP address;
- ``203.0.113.0/24``, ``2001:db8::/32``: a network (CIDR), IPv4 or IPv6.

Empty lines are skipped; ``#`` starts a comment (at the start of a line or
after a space).
"""
from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from kameng.i18n import _

PHONE = re.compile(r"\+?[0-9]{6,15}")
_PHONE_NOISE = re.compile(r"[\s\-()]")
_COMMENT = re.compile(r"(?:^|\s)#")

#: what an entry is, as the admin reads it
KIND_LABELS = {"email": _("email address"), "domain": _("email pattern"), "phone": _("phone number"),
               "ip": _("IP address"), "network": _("network")}


class EntryError(ValueError):
    def __init__(self, line_no: int, text: str):
        super().__init__(f"line {line_no}")
        self.line_no, self.text = line_no, text


@dataclass(frozen=True)
class Entry:
    line_no: int
    kind: str  # email | domain | phone | ip | network
    text: str  # as written
    value: object  # the lowercased address, a compiled pattern, the digits, an ip_address or ip_network

    @property
    def subject(self) -> str:
        """What it matched: ``email``, ``phone`` or ``ip``."""
        return {"email": "email", "domain": "email", "phone": "phone"}.get(self.kind, "ip")

    def describe(self) -> str:
        """For logs and the risk log: never the entry itself (a buyer's address)."""
        return f"line {self.line_no} ({self.kind})"


def _email_pattern(text: str) -> re.Pattern:
    return re.compile("".join("[^@]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", text)),
                      re.IGNORECASE)


def parse_entry(line_no: int, text: str) -> Entry:
    if "@" in text:
        if text.startswith("@"):
            text = "*" + text
        local, _sep, domain = text.partition("@")
        if not local or not domain or "@" in domain or re.search(r"\s", text) or domain.startswith(".") \
                or domain.endswith(".") or len(text) > 254:
            raise EntryError(line_no, text)
        if "*" in text:
            return Entry(line_no, "domain", text, _email_pattern(text.lower()))
        return Entry(line_no, "email", text, text.lower())
    try:
        if "/" in text:
            return Entry(line_no, "network", text, ipaddress.ip_network(text, strict=False))
        return Entry(line_no, "ip", text, ipaddress.ip_address(text))
    except ValueError:
        pass
    compact = _PHONE_NOISE.sub("", text)
    if PHONE.fullmatch(compact):
        return Entry(line_no, "phone", text, compact.lstrip("+"))
    raise EntryError(line_no, text)


def _lines(text: str):
    for n, line in enumerate((text or "").splitlines(), start=1):
        line = _COMMENT.split(line, 1)[0].strip()
        if line:
            yield n, line


@functools.lru_cache(maxsize=16)
def parse(text: str) -> tuple[Entry, ...]:
    """Every entry of the setting's text; raises :class:`EntryError` on the first bad line."""
    return tuple(parse_entry(n, line) for n, line in _lines(text))


@functools.lru_cache(maxsize=16)
def parse_lenient(text: str) -> tuple[Entry, ...]:
    """The entries that parse (stored settings were checked when saved; this never fails)."""
    out = []
    for n, line in _lines(text):
        try:
            out.append(parse_entry(n, line))
        except EntryError:
            continue
    return tuple(out)


def validate(field_name: str, text: str | None) -> None:
    from kameng.types import SettingError

    try:
        parse(text or "")
    except EntryError as exc:
        raise SettingError(field_name, _(
            "line ${line} (${text}) is not an email address, *@domain, phone number, IP address or network",
            mapping={"line": exc.line_no, "text": exc.text[:80]})) from None


def client_ip(value):
    """The address as an ``ip_address`` (an IPv4-mapped IPv6 address as IPv4), or None."""
    if not value:
        return None
    try:
        addr = ipaddress.ip_address(str(value).split("%", 1)[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def ip_bucket(value) -> str:
    """What the per-address limits count: an IPv4 address, or the /64
    network of an IPv6 address (one host or household can use a whole
    /64); anything else as given."""
    addr = client_ip(value)
    if addr is None:
        return str(value or "")[:64]
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def phone_digits(value: str) -> str:
    return _PHONE_NOISE.sub("", value or "").lstrip("+")


def same_phone(a: str, b: str) -> bool:
    """Digits equal, or equal but for a country code of 1 to 3 digits in
    front of one of them (``8613800138000`` is ``13800138000``)."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 7 and 1 <= len(long_) - len(short) <= 3 and long_.endswith(short)


def match(entries, emails=(), phones=(), ip=None) -> Entry | None:
    """The first entry (in line order) that matches one of ``emails``,
    ``phones`` or the address ``ip``, or None."""
    emails = [e.strip().lower() for e in emails if e and "@" in e]
    phones = [d for d in (phone_digits(p) for p in phones if p) if d]
    addr = client_ip(ip)
    for entry in entries:
        if entry.kind == "email":
            if entry.value in emails:
                return entry
        elif entry.kind == "domain":
            if any(entry.value.fullmatch(e) for e in emails):
                return entry
        elif entry.kind == "phone":
            if any(same_phone(entry.value, p) for p in phones):
                return entry
        elif addr is not None:
            if entry.kind == "ip" and addr == entry.value:
                return entry
            if entry.kind == "network" and addr.version == entry.value.version and addr in entry.value:
                return entry
    return None


def split_contact(contact: str) -> tuple[list[str], list[str]]:
    """A contact as ``(emails, phones)``."""
    contact = (contact or "").strip()
    if "@" in contact:
        return [contact], []
    if PHONE.fullmatch(_PHONE_NOISE.sub("", contact)):
        return [], [contact]
    return [], []
