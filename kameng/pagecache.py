"""A short-lived cache of the storefront's public pages for anonymous visitors.

The home, category and product pages are the same for every visitor who is
not signed in: nothing on them depends on a session (prices for guests,
stock, the catalog), only on the URL and the language. Rendering one costs
a few database reads and a template; serving it from memory costs nothing.
So for ``kameng.storefront.cache_seconds`` (default 2) a rendered page is
kept and given to the next anonymous visitors of the same URL in the same
language, like a reverse proxy's micro-cache, but it knows who is signed in.

What is never cached: any request with a cookie other than the language
choice (a session: signed-in buyers, flash messages) or an Authorization
header, anything but a ``GET`` of those three routes, any answer other than
a 200 HTML page, and any answer that sets a cookie or says ``no-store``.

Staleness is bounded by the TTL: a stock figure or a price may show the old
value for that long (checkout always checks the database). An admin change
made through this process empties the cache at once; other processes of a
multi-process shop catch up within the TTL. ``0`` turns the cache off.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from pyramid.response import Response

ROUTES = frozenset({"home", "category", "product"})
MAX_ENTRIES = 512
#: the request cookies that may vary a cached page (anything else means a session)
ALLOWED_COOKIES = frozenset({"_LOCALE_"})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class PageCache:
    """URL → rendered page, for ``ttl`` seconds, least recently used out first.

    When a page expires, the first visitor renders it again while the others
    are still given the old copy for up to ``STALE_GRACE`` seconds more: a
    hundred visitors of a popular page never render it a hundred times at once.
    """

    STALE_GRACE = 10.0

    def __init__(self, ttl: float, max_entries: int = MAX_ENTRIES):
        self.ttl = ttl
        self.max_entries = max_entries
        self.lock = threading.Lock()
        # key -> [expires, refreshing, status, headers, body]
        self.entries: OrderedDict[tuple, list] = OrderedDict()

    def get(self, key) -> tuple[int, list, bytes] | None:
        """The page to serve, or None: then the caller renders it and puts it here."""
        now = time.monotonic()
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            expires = entry[0]
            if now >= expires + self.STALE_GRACE:
                del self.entries[key]
                return None
            if now >= expires and not entry[1]:
                entry[1] = True  # this visitor renders it again; the others get this copy meanwhile
                return None
            self.entries.move_to_end(key)
            return entry[2], entry[3], entry[4]

    def put(self, key, status: int, headers: list, body: bytes) -> None:
        with self.lock:
            self.entries[key] = [time.monotonic() + self.ttl, False, status, headers, body]
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def discard(self, key) -> None:
        with self.lock:
            self.entries.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


def _cache_key(request):
    """The key for an anonymous GET, or None when the request may be personal."""
    if request.method != "GET" or request.authorization is not None:
        return None
    if any(name not in ALLOWED_COOKIES for name in request.cookies):
        return None
    return (request.host, request.path_qs, request.cookies.get("_LOCALE_", ""))


def _cacheable(request, response) -> bool:
    route = getattr(request, "matched_route", None)
    if route is None or route.name not in ROUTES or response.status_code != 200:
        return False
    if response.content_type != "text/html" or "Set-Cookie" in response.headers:
        return False
    cache_control = response.headers.get("Cache-Control", "")
    return "no-store" not in cache_control and "private" not in cache_control


def page_cache_tween_factory(handler, registry):
    ttl = float(registry.settings.get("kameng.storefront.cache_seconds", 2))
    if ttl <= 0:
        return handler
    cache = registry["kameng.page_cache"] = PageCache(ttl)

    def page_cache_tween(request):
        if request.method in UNSAFE and request.path.startswith(("/admin", "/api/v1/admin")):
            cache.clear()  # an admin change: show it at once (this process)
            return handler(request)
        key = _cache_key(request)
        if key is None:
            return handler(request)
        hit = cache.get(key)
        if hit is not None:
            status, headers, body = hit
            return Response(status=status, headerlist=list(headers), body=body)
        response = handler(request)
        if _cacheable(request, response):
            cache.put(key, response.status_code,
                      [(k, v) for k, v in response.headerlist if k.lower() != "content-length"], response.body)
        else:
            cache.discard(key)  # gone, hidden or moved: no stale copy either
        return response

    return page_cache_tween


def includeme(config):
    # outermost: a hit skips the transaction, the session and the plugin lookups
    from pyramid.tweens import INGRESS

    config.add_tween("kameng.pagecache.page_cache_tween_factory", under=INGRESS)
