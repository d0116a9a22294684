"""Errors: JSON ``{"error": {"code", "message"}}`` on the API, a themed page
elsewhere; a 500 shows neither a traceback nor the exception's text."""
from __future__ import annotations

import logging
from urllib.parse import unquote_to_bytes

from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPFound
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config

from kameng.i18n import _
from kameng.theming import tpl

log = logging.getLogger(__name__)


class APIError(Exception):
    """A 4xx answer with a stable ``code`` and a human ``message``."""

    def __init__(self, status: int, code: str, message, **extra):
        super().__init__(code)
        self.status, self.code, self.message, self.extra = status, code, message, extra


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
          422: "invalid_request", 429: "rate_limited"}
_MESSAGES = {400: _("The request is not valid."), 401: _("Sign in first."),
             403: _("You may not do this."), 404: _("Not found."),
             405: _("This method is not allowed here."), 500: _("Something went wrong on our side.")}


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def json_error(request, status: int, code: str, message, **extra):
    _make_readable(request.environ)
    request.response.status = status
    request.response.content_type = "application/json"
    body = {"error": {"code": code, "message": request.localizer.translate(message), **extra}}
    return render_json(request, body, status)


def render_json(request, body, status=200):
    from pyramid.renderers import render_to_response

    resp = render_to_response("json", body, request=request)
    resp.status = status
    return resp


def html_error(request, status: int, message):
    _make_readable(request.environ)
    from pyramid.renderers import render_to_response

    resp = render_to_response(tpl("error.pt"), {"status": status, "message": message}, request=request)
    resp.status = status
    return resp


@exception_view_config(APIError)
def api_error_view(exc, request):
    if is_api(request):
        return json_error(request, exc.status, exc.code, exc.message, **exc.extra)
    return html_error(request, exc.status, exc.message)


@exception_view_config(BadCSRFToken)
@exception_view_config(BadCSRFOrigin)
def csrf_view(exc, request):
    msg = _("The form has expired or did not come from this site. Reload the page and try again.")
    if is_api(request):
        return json_error(request, 400, "csrf_failed", msg)
    return html_error(request, 400, msg)


@forbidden_view_config()
def forbidden_view(exc, request):
    if is_api(request):
        if request.user is None:
            return json_error(request, 401, "unauthorized", _MESSAGES[401])
        return json_error(request, 403, "forbidden", _MESSAGES[403])
    if request.user is None:
        return HTTPFound(request.route_url("login", _query={"next": request.path_qs}))
    return html_error(request, 403, _MESSAGES[403])


@notfound_view_config()
def notfound_view(exc, request):
    if is_api(request):
        return json_error(request, 404, "not_found", _MESSAGES[404])
    return html_error(request, 404, _MESSAGES[404])


@exception_view_config(HTTPException)
def http_exception_view(exc, request):
    if exc.code < 400:
        return exc
    if isinstance(exc, HTTPForbidden):
        return forbidden_view(exc, request)
    if is_api(request):
        return json_error(request, exc.code, _CODES.get(exc.code, "error"), _MESSAGES.get(exc.code, exc.title))
    return html_error(request, exc.code, _MESSAGES.get(exc.code, exc.title))


def _undecodable(environ) -> bool:
    """Whether the request's path or query string is not UTF-8."""
    try:
        environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        unquote_to_bytes(environ.get("QUERY_STRING", "").replace("+", " ")).decode("utf-8")
    except UnicodeError:
        return True
    return False


def _make_readable(environ) -> None:
    """A path that is not UTF-8 made readable and such a query string
    dropped, so that an error page can be drawn (the locale is read from
    the query string)."""
    if _undecodable(environ):
        path = environ.get("PATH_INFO", "").encode("latin-1")
        environ["PATH_INFO"] = path.decode("utf-8", "replace").encode("utf-8").decode("latin-1")
        environ["QUERY_STRING"] = ""


@exception_view_config(UnicodeDecodeError)
def undecodable_view(exc, request):
    """A URL that is not UTF-8 (``/p/%FF``, ``?q=%FF``) is the client's
    mistake: a 400, not a 500."""
    if not _undecodable(request.environ):
        return server_error_view(exc, request)
    _make_readable(request.environ)
    if is_api(request):
        return json_error(request, 400, "bad_request", _MESSAGES[400])
    return html_error(request, 400, _MESSAGES[400])


@exception_view_config(Exception)
def server_error_view(exc, request):
    # the route's pattern, not the path: a path can carry a capability
    # (/password/reset/{token}, /orders/{order_no}?token=)
    route = getattr(request, "matched_route", None)
    log.error("unhandled_error", exc_info=(type(exc), exc, exc.__traceback__),
              extra={"path": route.pattern if route is not None else request.path, "method": request.method})
    if is_api(request):
        return json_error(request, 500, "server_error", _MESSAGES[500])
    try:
        return html_error(request, 500, _MESSAGES[500])
    except Exception:  # the database is down and the page itself fails
        from pyramid.response import Response

        return Response("500 Internal Server Error", status=500, content_type="text/plain")
