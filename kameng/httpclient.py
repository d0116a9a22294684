"""Outbound HTTP for plugins that talk to payment gateways and suppliers.

One place sets what every such call must have: a timeout, no redirects
(a gateway that redirects an API call is misconfigured, and following it
could carry a signed request elsewhere), TLS verification always on, a cap
on the response size, and a log line that never holds the query string
(epay V1 puts the merchant key there) or a body.

Plugins call :func:`request` (or the ``get``/``post_form``/``post_json``
shortcuts) and get a :class:`HttpResponse` with the raw bytes: signatures
are verified over exactly what arrived, so nothing here parses bodies.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

#: seconds to connect and to wait for each read
DEFAULT_TIMEOUT = 10.0
#: responses larger than this are refused (a gateway answer is a few KiB)
MAX_BYTES = 2 * 1024 * 1024
USER_AGENT = "kameng"
#: calls to loopback and private addresses and plain http are refused unless
#: ``kameng.http.allow_private_targets`` is on (a gateway on the same LAN;
#: the tests' fake providers on 127.0.0.1). Set by :func:`configure`.
ALLOW_PRIVATE = False


def configure(settings: dict) -> None:
    global ALLOW_PRIVATE
    ALLOW_PRIVATE = str(settings.get("kameng.http.allow_private_targets", "false")).strip().lower() in (
        "1", "true", "yes", "on")


class HttpError(Exception):
    """The call did not produce a usable response: refused, timed out, too
    large, or a transport error. ``uncertain`` is true when the request may
    have reached the provider (a timeout after sending), so the caller must
    query before trying again. The message holds no secrets."""

    def __init__(self, message: str, uncertain: bool = False):
        super().__init__(message)
        self.uncertain = uncertain


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def safe_url(url: str) -> str:
    """The URL without query string, fragment or credentials: what may be logged."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _private(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # the call itself will fail to connect
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not addr.is_global:
            return True
    return False


def check_url(url: str, resolve: bool = True) -> None:
    """Refuse a URL a gateway or supplier setting may not point at: not
    https, or (resolving its host) a loopback, private or link-local address.
    Both are allowed when ``kameng.http.allow_private_targets`` is on."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError("only http and https URLs can be called")
    if ALLOW_PRIVATE:
        return
    if parts.scheme != "https":
        raise HttpError("the URL must start with https://")
    if resolve and _private(parts.hostname):
        raise HttpError("the URL points at a private or loopback address")


def request(method: str, url: str, *, params=None, data=None, content: bytes | None = None, headers=None,
            timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_BYTES) -> HttpResponse:
    """Send one request and read the whole answer (up to ``max_bytes``)."""
    check_url(url)
    started = time.monotonic()
    sent = False
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, verify=True,
                          headers={"User-Agent": USER_AGENT}, trust_env=False) as client:
            req = client.build_request(method, url, params=params, data=data, content=content, headers=headers)
            resp = client.send(req, stream=True)
            sent = True
            try:
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise HttpError("the response is too large")
                    chunks.append(chunk)
            finally:
                resp.close()
            out = HttpResponse(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, b"".join(chunks))
    except HttpError:
        raise
    except httpx.ConnectError:
        raise HttpError(f"cannot connect to {safe_url(url)}") from None
    except httpx.TimeoutException as exc:
        # a connect timeout never reached the provider; a read timeout may have
        raise HttpError(f"{safe_url(url)} did not answer in time",
                        uncertain=not isinstance(exc, httpx.ConnectTimeout)) from None
    except httpx.HTTPError as exc:
        raise HttpError(f"calling {safe_url(url)} failed: {type(exc).__name__}", uncertain=sent) from None
    log.info("http_call", extra={"method": method, "url": safe_url(url), "status": out.status,
                                 "ms": round((time.monotonic() - started) * 1000)})
    return out


def get(url: str, **kw) -> HttpResponse:
    return request("GET", url, **kw)


def post_form(url: str, fields: dict, **kw) -> HttpResponse:
    return request("POST", url, data=fields, **kw)


def post_json(url: str, body: bytes, headers=None, **kw) -> HttpResponse:
    """POST exact JSON bytes (signed protocols sign the bytes they send)."""
    return request("POST", url, content=body, headers={"Content-Type": "application/json", **(headers or {})}, **kw)


def check_url_setting(field: str, url: str | None, base: bool = True) -> None:
    """For a plugin's ``validate``: refuse a URL setting kameng may not call
    (:func:`check_url`), and with ``base`` one carrying a query, fragment
    or password (API paths are appended to it, and it is logged). Raises
    :class:`kameng.types.SettingError` naming ``field``; an empty value passes
    (``required`` is the field's own check)."""
    from kameng.i18n import _
    from kameng.types import SettingError

    if not url:
        return
    parts = urlsplit(url)
    if base and (parts.query or parts.fragment or parts.username or parts.password):
        raise SettingError(field, _("must be an address without a query, fragment or password"))
    try:
        check_url(url)
    except HttpError as exc:
        reason = str(exc)
        if "https://" in reason:
            raise SettingError(field, _("must start with https://")) from None
        if "private" in reason:
            raise SettingError(field, _("points at a private or loopback address")) from None
        raise SettingError(field, _("is not an address kameng can call")) from None
