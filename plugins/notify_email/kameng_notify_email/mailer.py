"""SMTP with the standard library: ``smtplib.SMTP_SSL`` for implicit TLS,
``starttls()`` for STARTTLS (never a fall-back to plain text when the
server does not offer it), certificates always verified (against the
system's CAs, or the operator's ``kameng.notify_email.cafile``), a timeout
on every connection, and error texts that name no secret."""
from __future__ import annotations

import email.utils
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage

from kameng.i18n import _

from kameng_notify_email.render import one_line

PORTS = {"tls": 465, "starttls": 587, "none": 25}
SECURITY = tuple(PORTS)
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")
HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]{2,45}\]?"
_SENDER = re.compile(r'\s*(?:"?([^"<>,;]*?)"?\s*<([^<>\s]+)>|([^<>\s"]+))\s*')
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


class SendError(Exception):
    """The email was not sent. The text names no secret (it is shown in the
    send log and kept in the job's last error)."""


class ConfigError(SendError):
    """The settings cannot send anything (no host, a bad sender)."""


def clean_address(value) -> str | None:
    """A plain ASCII mail address, or ``None`` (no name part, no line
    breaks, no list: exactly one mailbox)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > 254 or not ADDRESS.fullmatch(value):
        return None
    return value


def split_addresses(text) -> list[str]:
    """``admin_email``: one or more addresses separated by commas, semicolons
    or spaces. Raises ``ValueError`` for one that is not an address."""
    out = []
    for part in re.split(r"[,;\s]+", text or ""):
        if not part:
            continue
        address = clean_address(part)
        if address is None:
            raise ValueError(part)
        if address.lower() not in {a.lower() for a in out}:
            out.append(address)
    return out


def parse_sender(text) -> Address:
    """``shop@example.com`` or ``Shop name <shop@example.com>``."""
    if not isinstance(text, str) or re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError("sender")
    m = _SENDER.fullmatch(text)
    if m is None:
        raise ValueError("sender")
    name, address = (m.group(1) or "").strip(), m.group(2) or m.group(3)
    if clean_address(address) is None:
        raise ValueError("sender")
    username, _at, domain = address.rpartition("@")
    return Address(display_name=one_line(name, 100), username=username, domain=domain)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str
    password: str
    timeout: float
    cafile: str | None = None

    def secrets(self) -> list[str]:
        return [s for s in (self.password,) if s]


def config_from(settings: dict, registry_settings) -> SmtpConfig:
    host = (settings.get("host") or "").strip()
    if not host:
        raise ConfigError(_("No SMTP server is set."))
    security = settings.get("security") or "starttls"
    if security not in PORTS:
        raise ConfigError(_("The connection security setting is not valid."))
    return SmtpConfig(host=host.strip("[]"), port=int(settings.get("port") or PORTS[security]), security=security,
                      username=settings.get("username") or "", password=settings.get("password") or "",
                      timeout=float(settings.get("timeout") or 20),
                      cafile=(registry_settings.get("kameng.notify_email.cafile") or None))


def build(sender: Address, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    """The message. Headers hold one line each (``one_line``; the email
    package refuses line breaks in headers as well)."""
    msg = EmailMessage()
    msg["Subject"] = one_line(subject)
    msg["From"] = sender
    msg["To"] = Address(addr_spec=to)
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    # verified, with the host name checked: never turned off
    return ssl.create_default_context(cafile=config.cafile) if config.cafile else ssl.create_default_context()


def send(config: SmtpConfig, msg: EmailMessage, from_addr: str, to: str) -> None:
    """Hand ``msg`` to the server for ``to``; raises :class:`SendError`."""
    try:
        if config.security == "tls":
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                      context=tls_context(config))
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with client:
            client.ehlo()
            if config.security == "starttls":
                if not client.has_extn("starttls"):
                    raise SendError("the server does not offer STARTTLS")
                client.starttls(context=tls_context(config))
                client.ehlo()
            if config.username:
                client.login(config.username, config.password)
            refused = client.send_message(msg, from_addr=from_addr, to_addrs=[to])
            if refused:
                raise SendError("the server refused the recipient")
    except SendError:
        raise
    except Exception as exc:  # every failure of the connection, TLS or the dialogue
        raise SendError(describe(exc, config)) from None


def describe(exc: BaseException, config: SmtpConfig) -> str:
    """One line about what went wrong, with no secret in it."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _msg in exc.recipients.values()})
        text = f"the server refused the recipient ({', '.join(map(str, codes))})"
    elif isinstance(exc, smtplib.SMTPSenderRefused):
        text = f"the server refused the sender: {exc.smtp_code} {_decode(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        text = f"the server refused the user name or password: {exc.smtp_code} {_decode(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"SMTP error {exc.smtp_code}: {_decode(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        text = f"the server does not support this: {exc}"
    elif isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in str(exc):
        text = f"no answer from {config.host}:{config.port} within {config.timeout:g} s"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        text = "the server closed the connection"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        text = f"the server's TLS certificate is not trusted: {exc.verify_message or exc.reason}"
    elif isinstance(exc, ssl.SSLError):
        text = f"TLS error: {exc.reason or type(exc).__name__}"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        text = f"no answer from {config.host}:{config.port} within {config.timeout:g} s"
    elif isinstance(exc, ConnectionRefusedError):
        text = f"connection to {config.host}:{config.port} refused"
    elif isinstance(exc, socket.gaierror):
        text = f"cannot resolve {config.host}"
    elif isinstance(exc, OSError):
        text = f"cannot connect to {config.host}:{config.port}: {exc.strerror or type(exc).__name__}"
    else:
        text = f"{type(exc).__name__}"
    text = one_line(text, 400)
    for secret in config.secrets():
        text = text.replace(secret, "[redacted]")
    return text


def _decode(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
