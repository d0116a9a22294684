"""Public pages: home, language switch, login and logout, health."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.security import forget, remember
from pyramid.view import view_config
from sqlalchemy import text

from kameng import accounts
from kameng.money import format_minor
from kameng.i18n import LANGUAGES, _
from kameng.theming import tpl


def safe_next(request, target: str | None, default: str) -> str:
    """Only same-site paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return request.application_url + target
    return default


@view_config(route_name="home", renderer=tpl("storefront/home.pt"))
def home(request):
    from kameng.catalog.models import visible_catalog

    return {"categories": visible_catalog(request.db), "fmt": format_minor}


@view_config(route_name="language")
def language(request):
    lang = request.matchdict["lang"]
    if lang not in LANGUAGES:
        raise HTTPNotFound()
    resp = HTTPFound(safe_next(request, request.params.get("next"), request.route_url("home")))
    resp.set_cookie("_LOCALE_", lang, max_age=365 * 86400, samesite="Lax", httponly=True)
    return resp


@view_config(route_name="login", renderer=tpl("login.pt"))
def login(request):
    next_url = request.params.get("next", "")
    form = {"email": "", "error": None}
    if request.method == "POST":
        email = request.POST.get("email", "")[:254]
        password = request.POST.get("password", "")
        form["email"] = email
        settings = request.registry.settings
        result = accounts.authenticate(request.db, email, password,
                                       max_failures=int(settings["kameng.login.max_failures"]),
                                       lockout_minutes=int(settings["kameng.login.lockout_minutes"]))
        if result.ok:
            headers = remember(request, result.user.id)
            default = request.route_url("admin.home") if result.user.is_admin else request.route_url("home")
            return HTTPFound(safe_next(request, next_url, default), headers=headers)
        if result.locked_until is not None:
            form["error"] = _("Too many failed sign-ins. This account is locked for a while; try again later.")
        else:
            form["error"] = _("Wrong email or password.")
        request.response.status = 400
    return {"form": form, "next": next_url}


@view_config(route_name="logout", request_method="POST")
def logout(request):
    return HTTPFound(request.route_url("home"), headers=forget(request))


@view_config(route_name="healthz", renderer="json")
@view_config(route_name="api.health", renderer="json")
def health(request):
    request.db.execute(text("SELECT 1"))
    return {"status": "ok"}
