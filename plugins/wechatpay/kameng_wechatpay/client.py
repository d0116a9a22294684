"""Signed calls to the WeChat Pay API, through :mod:`kameng.httpclient` only.

Every request is signed over the exact bytes sent; every successful answer
must carry a valid WeChat Pay signature before anything in it is believed.
Platform certificates come from the settings and, for a serial the settings
do not know, from ``GET /v3/certificates`` (its entries are encrypted with
the APIv3 key, which is what makes a downloaded certificate trustworthy),
kept per process for a while.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from kameng import httpclient
from kameng.payments import GatewayError

from kameng_wechatpay import protocol
from kameng_wechatpay.settings import api_url

log = logging.getLogger(__name__)

#: at most one certificate download per merchant and process in this many
#: seconds, so callbacks with made-up serials cannot make us hammer WeChat Pay
REFRESH_INTERVAL = 60.0
#: downloaded certificates are trusted this long before they are fetched again
CACHE_SECONDS = 12 * 3600.0
#: a download may happen while a callback waits, and WeChat Pay gives a callback 5 s
DOWNLOAD_TIMEOUT = 4.0

_cache: dict[tuple[str, str], tuple[float, dict]] = {}
_last_try: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def forget_downloaded_certificates() -> None:
    """Drop every downloaded certificate (tests; a key rotation)."""
    with _lock:
        _cache.clear()
        _last_try.clear()


@dataclass(frozen=True)
class Reply:
    status: int
    data: object
    #: WeChat Pay's error ``code`` and ``message`` on a refusal ("" otherwise)
    code: str = ""
    message: str = ""
    #: the answer carried a valid WeChat Pay signature (WeChat Pay signs every
    #: answer to a correctly signed request, refusals included, but not a 401)
    verified: bool = True

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message}".strip()[:200]


class WechatPayClient:
    def __init__(self, settings: dict, timeout: float = httpclient.DEFAULT_TIMEOUT):
        self.settings = settings
        self.timeout = timeout
        self.base = api_url(settings)
        self.mchid = str(settings.get("mchid") or "")
        missing = [n for n in ("mchid", "apiv3_key", "merchant_serial_no", "merchant_private_key")
                   if not settings.get(n)]
        if missing:
            raise GatewayError(f"WeChat Pay is not configured: {', '.join(missing)} missing")
        self.apiv3_key = str(settings["apiv3_key"]).encode("utf-8")
        try:
            self.private_key = protocol.load_private_key(settings["merchant_private_key"])
            self.keys = configured_keys(settings)
        except protocol.ProtocolError as exc:
            raise GatewayError(f"a WeChat Pay key setting does not load: {exc}") from None

    # -- platform keys --------------------------------------------------------------------
    def find_key(self, serial: str):
        """The key WeChat Pay signed with, by ``Wechatpay-Serial``: configured
        first, then downloaded, then (once in a while) downloaded afresh."""
        key = self.keys.find(serial)
        if key is not None or serial.startswith(protocol.PUBLIC_KEY_PREFIX):
            return key
        number = protocol.serial_number(serial)
        if number is None:
            return None
        cache_key = (self.base, self.mchid)
        with _lock:
            fetched_at, certs = _cache.get(cache_key, (0.0, {}))
        if number in certs and time.monotonic() - fetched_at < CACHE_SECONDS:
            return certs[number]
        with _lock:
            if time.monotonic() - _last_try.get(cache_key, -REFRESH_INTERVAL) < REFRESH_INTERVAL:
                return None
            _last_try[cache_key] = time.monotonic()
        try:
            certs = self.download_certificates()
        except GatewayError as exc:
            log.warning("wechatpay_certificates_failed", extra={"reason": str(exc)})
            return None
        return certs.get(number)

    def download_certificates(self) -> dict:
        """``GET /v3/certificates``: each entry decrypted with the APIv3 key
        (a wrong key or a forged entry fails there), the answer's signature
        checked with the configured keys or the certificates it brings."""
        resp = self._send("GET", "/v3/certificates", "", b"", timeout=min(self.timeout, DOWNLOAD_TIMEOUT))
        if resp.status != 200:
            raise GatewayError(_refusal(resp).describe())
        try:
            data = protocol.loads(resp.body)
            entries = data["data"] if isinstance(data, dict) else None
            if not isinstance(entries, list) or not entries:
                raise protocol.ProtocolError("no certificates in the answer")
            certs = {}
            now = dt.datetime.now(dt.UTC)
            for entry in entries:
                if not isinstance(entry, dict):
                    raise protocol.ProtocolError("malformed certificate entry")
                pem = protocol.decrypt_resource(self.apiv3_key, entry.get("encrypt_certificate"))
                for number, cert in protocol.load_certificates(pem.decode("ascii", "replace")).items():
                    if number != protocol.serial_number(entry.get("serial_no")):
                        raise protocol.ProtocolError("a certificate's serial is not the one listed")
                    if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                        certs[number] = cert.public_key()
        except (protocol.ProtocolError, KeyError):
            raise GatewayError("WeChat Pay's certificate list does not decrypt with the APIv3 key or is malformed") \
                from None

        def find(serial):
            number = protocol.serial_number(serial)
            return self.keys.find(serial) or (certs.get(number) if number is not None else None)

        self._check(resp, find, uncertain=False)
        with _lock:
            _cache[(self.base, self.mchid)] = (time.monotonic(), certs)
        return certs

    # -- calls ------------------------------------------------------------------------------
    def _send(self, method: str, path: str, query: str, body: bytes,
              timeout: float | None = None) -> httpclient.HttpResponse:
        url = path + (f"?{query}" if query else "")
        headers = {"Accept": "application/json",
                   "Authorization": protocol.authorization(self.mchid, self.settings["merchant_serial_no"],
                                                           self.private_key, method, url, body)}
        if body:
            headers["Content-Type"] = "application/json"
        try:
            return httpclient.request(method, self.base + url, content=body or None, headers=headers,
                                      timeout=timeout or self.timeout)
        except httpclient.HttpError as exc:
            raise GatewayError(f"WeChat Pay: {exc}", uncertain=exc.uncertain) from None

    def _check(self, resp: httpclient.HttpResponse, find_key, uncertain: bool) -> None:
        headers = {name: resp.header(name.lower()) for name in (
            "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")}
        kind = resp.headers.get("wechatpay-signature-type")
        if kind is not None:
            headers["Wechatpay-Signature-Type"] = kind
        try:
            protocol.check_signed(headers, resp.body, find_key, require_type=False)
        except protocol.ProtocolError as exc:
            raise GatewayError(f"WeChat Pay's answer did not verify: {exc}", uncertain=uncertain) from None

    def call(self, method: str, path: str, query: str = "", body=None) -> Reply:
        """One signed call. A 2xx answer is verified and parsed, or this
        raises :class:`GatewayError` (``uncertain`` for anything but a GET:
        the provider may have acted). A refusal comes back as a
        :class:`Reply` with WeChat Pay's code, ``verified`` if it was signed
        (a signed refusal that does not verify raises); a 5xx raises."""
        raw = protocol.dumps(body) if body is not None else b""
        resp = self._send(method, path, query, raw)
        changes = method != "GET"
        if resp.status >= 500:
            raise GatewayError(f"WeChat Pay answered {_refusal(resp).describe()}", uncertain=changes)
        if not 200 <= resp.status < 300:
            refusal = _refusal(resp)
            if not resp.header("wechatpay-signature"):
                return Reply(refusal.status, refusal.data, refusal.code, refusal.message, verified=False)
            self._check(resp, self.find_key, uncertain=changes)
            return refusal
        self._check(resp, self.find_key, uncertain=changes)
        if not resp.body:
            return Reply(resp.status, None)
        try:
            return Reply(resp.status, protocol.loads(resp.body))
        except protocol.ProtocolError as exc:
            raise GatewayError(f"WeChat Pay's answer is not valid JSON ({exc})", uncertain=changes) from None


def configured_keys(settings: dict) -> protocol.PlatformKeys:
    keys = protocol.PlatformKeys()
    if settings.get("platform_certificates"):
        keys.certificates = {n: c.public_key()
                             for n, c in protocol.load_certificates(settings["platform_certificates"]).items()}
    if settings.get("platform_public_key") and settings.get("platform_public_key_id"):
        keys.public_key = protocol.load_public_key(settings["platform_public_key"])
        keys.public_key_id = str(settings["platform_public_key_id"])
    return keys


def _refusal(resp: httpclient.HttpResponse) -> Reply:
    """WeChat Pay's ``{"code", "message"}`` on an error, read for the admin
    only (an error answer is not always signed, and nothing acts on it but
    the caller's decision to stop)."""
    code = message = ""
    try:
        data = protocol.loads(resp.body)
    except protocol.ProtocolError:
        data = None
    if isinstance(data, dict):
        code = str(data.get("code") or "")[:64]
        message = str(data.get("message") or "")[:160]
    if not code:
        message = "no WeChat Pay error in the answer"
    return Reply(resp.status, data, code=code, message=message)
