"""The JSON API under ``/api/v1/``."""
import json

from pyramid.csrf import check_csrf_token

from kameng.db import UNSAFE_METHODS
from kameng.errors import APIError
from kameng.i18n import _
from kameng.security import _bearer


def api_csrf(view):
    """API views skip Pyramid's form CSRF check; a request authenticated by a
    bearer token needs none, one riding on the session cookie must send the
    ``X-CSRF-Token`` header."""

    def wrapper(context, request):
        if request.method in UNSAFE_METHODS and _bearer(request) is None and "kameng_session" in request.cookies:
            check_csrf_token(request, header="X-CSRF-Token", token=None, raises=True)
        return view(context, request)

    return wrapper


def json_body(request) -> dict:
    """The request's JSON object, or a 400 ``invalid_request``."""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise APIError(400, "invalid_request", _("The body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_request", _("The body must be a JSON object."))
    return body
