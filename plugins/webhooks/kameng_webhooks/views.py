"""Admin pages under ``/-/webhooks/``: endpoints (list, create, edit,
enable/disable, delete, reveal or rotate the secret, send a test event) and
the delivery log (filters, one delivery's attempts, resend).

A secret is shown on the answer page of the POST that made or revealed it,
never stored in the session (a flash message would put it in the cookie),
and that page is not cached. While the plugin is disabled the core answers
404 here by itself."""
from __future__ import annotations

import json
import math

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.renderers import get_renderer
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from kameng import httpclient
from kameng.errors import APIError
from kameng.i18n import _

from kameng_webhooks import service
from kameng_webhooks.models import STATUSES, Attempt, Delivery, Endpoint

PAGE_SIZE = 50
STATUS_LABELS = {"pending": _("Pending"), "delivered": _("Delivered"), "failed": _("Failed")}
TRIGGER_LABELS = {"auto": _("Automatic"), "resend": _("Resend")}
ACTIONS = ("test", "reveal", "rotate", "enable", "disable", "delete")


def when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _flash(request, message, queue="info"):
    request.session.flash(request.localizer.translate(message), queue)


def _text(value, limit: int) -> str:
    return value.replace("\x00", "")[:limit] if isinstance(value, str) else ""


def _events_from_form(post) -> str:
    values = [v for v in post.getall("events") if v in service.GROUPS]
    values.append(_text(post.get("other_events"), 2000))
    return service.parse_events(values)


def _form_values(post) -> dict:
    chosen = [v for v in post.getall("events") if v in service.GROUPS]
    return {"url": _text(post.get("url"), 2000), "description": _text(post.get("description"), 400),
            "groups": chosen, "other_events": _text(post.get("other_events"), 2000),
            "active": post.get("active") in ("1", "on", "true")}


def _endpoint_values(endpoint: Endpoint) -> dict:
    events = endpoint.event_list
    return {"url": endpoint.url, "description": endpoint.description,
            "groups": [e for e in events if e in service.GROUPS],
            "other_events": " ".join(e for e in events if e not in service.GROUPS), "active": endpoint.active}


def _counts(db, endpoint_ids) -> dict:
    if not endpoint_ids:
        return {}
    rows = db.execute(select(Delivery.endpoint_id, Delivery.status, func.count())
                      .where(Delivery.endpoint_id.in_(endpoint_ids))
                      .group_by(Delivery.endpoint_id, Delivery.status)).all()
    out: dict = {}
    for eid, status, n in rows:
        out.setdefault(eid, {})[status] = n
    return out


@view_defaults(permission="admin")
class EndpointViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    def _common(self, **values):
        fields_tpl = get_renderer("kameng_webhooks:templates/endpoint_fields.pt").implementation()
        return {"when": when, "safe_url": httpclient.safe_url, "groups": service.GROUPS, "fields_tpl": fields_tpl,
                "group_labels": service.GROUP_LABELS, "status_labels": STATUS_LABELS,
                "secret": None, "errors": {}, **values}

    # -- the list and the new endpoint ------------------------------------------------------
    def _list(self, values=None, errors=None):
        endpoints = self.db.scalars(select(Endpoint).order_by(Endpoint.id)).all()
        values = values or {"url": "", "description": "", "groups": ["order.*"], "other_events": "", "active": True}
        return self._common(endpoints=endpoints, counts=_counts(self.db, [e.id for e in endpoints]),
                            values=values, errors=errors or {})

    @view_config(route_name="webhooks.endpoints", request_method="GET",
                 renderer="kameng_webhooks:templates/endpoints.pt")
    def list(self):
        return self._list()

    @view_config(route_name="webhooks.endpoints", request_method="POST",
                 renderer="kameng_webhooks:templates/endpoints.pt")
    def create(self):
        request = self.request
        values = _form_values(request.POST)
        try:
            events = _events_from_form(request.POST)
            endpoint, secret = service.create_endpoint(request, values["url"], values["description"], events,
                                                       active=values["active"])
        except APIError as exc:
            request.tm.doom()
            request.response.status = exc.status
            return self._list(values, {exc.extra.get("field", "url"): exc.message})
        return self._endpoint_page(endpoint, secret=secret, created=True)

    # -- one endpoint -----------------------------------------------------------------------
    def _endpoint(self, lock=False) -> Endpoint:
        raw = self.request.matchdict["id"]
        if not raw.isdigit() or not 0 < int(raw) < 2 ** 31:
            raise HTTPNotFound()
        stmt = select(Endpoint).where(Endpoint.id == int(raw))
        endpoint = self.db.scalar(stmt.with_for_update() if lock else stmt)
        if endpoint is None:
            raise HTTPNotFound()
        return endpoint

    def _endpoint_page(self, endpoint: Endpoint, secret=None, created=False, values=None, errors=None):
        renderer = "kameng_webhooks:templates/endpoint.pt"
        self.request.override_renderer = renderer
        if secret is not None:
            self.request.response.headers["Cache-Control"] = "no-store"
        recent = self.db.scalars(select(Delivery).where(Delivery.endpoint_id == endpoint.id)
                                 .order_by(Delivery.id.desc()).limit(10)).all()
        return self._common(endpoint=endpoint, secret=secret, created=created, recent=recent,
                            counts=_counts(self.db, [endpoint.id]).get(endpoint.id, {}),
                            values=values or _endpoint_values(endpoint), errors=errors or {})

    @view_config(route_name="webhooks.endpoint", request_method="GET",
                 renderer="kameng_webhooks:templates/endpoint.pt")
    def show(self):
        return self._endpoint_page(self._endpoint())

    @view_config(route_name="webhooks.endpoint", request_method="POST",
                 renderer="kameng_webhooks:templates/endpoint.pt")
    def save(self):
        request, endpoint = self.request, self._endpoint(lock=True)
        values = _form_values(request.POST)
        try:
            events = _events_from_form(request.POST)
            service.update_endpoint(request, endpoint, values["url"], values["description"], events,
                                    values["active"])
        except APIError as exc:
            request.tm.doom()
            self.db.expire_all()
            request.response.status = exc.status
            return self._endpoint_page(self._endpoint(), values=values,
                                       errors={exc.extra.get("field", "url"): exc.message})
        _flash(request, _("The endpoint is saved."))
        return HTTPFound(request.route_url("webhooks.endpoint", id=endpoint.id))

    @view_config(route_name="webhooks.endpoint.action", request_method="POST",
                 renderer="kameng_webhooks:templates/endpoint.pt")
    def act(self):
        request = self.request
        action = request.matchdict["action"]
        if action not in ACTIONS:
            raise HTTPNotFound()
        endpoint = self._endpoint(lock=True)
        back = HTTPFound(request.route_url("webhooks.endpoint", id=endpoint.id))
        if action == "reveal":
            return self._endpoint_page(endpoint, secret=service.reveal_secret(request, endpoint))
        if action == "rotate":
            return self._endpoint_page(endpoint, secret=service.rotate_secret(request, endpoint))
        if action in ("enable", "disable"):
            service.set_active(request, endpoint, action == "enable")
            _flash(request, _("The endpoint is enabled.") if action == "enable" else _("The endpoint is disabled."))
            return back
        if action == "delete":
            n = service.delete_endpoint(request, endpoint)
            _flash(request, _("The endpoint and its ${n} deliveries are deleted.", mapping={"n": n}))
            return HTTPFound(request.route_url("webhooks.endpoints"))
        try:  # test
            delivery = service.send_test(request, endpoint)
        except APIError as exc:
            request.tm.doom()
            _flash(request, exc.message, "error")
            return back
        _flash(request, _("A test event is queued: the worker sends it within seconds."))
        return HTTPFound(request.route_url("webhooks.delivery", delivery_id=delivery.delivery_id))


@view_defaults(permission="admin")
class DeliveryViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    @view_config(route_name="webhooks.deliveries", request_method="GET",
                 renderer="kameng_webhooks:templates/deliveries.pt")
    def list(self):
        request, db = self.request, self.db
        get = request.GET
        filters, query, errors = {}, {}, []
        stmt = select(Delivery)
        raw = _text(get.get("endpoint"), 20)
        if raw:
            if raw.isdigit() and 0 < int(raw) < 2 ** 31:
                stmt = stmt.where(Delivery.endpoint_id == int(raw))
                filters["endpoint"] = query["endpoint"] = int(raw)
            else:
                errors.append("endpoint")
        raw = _text(get.get("status"), 20)
        if raw:
            if raw in STATUSES:
                stmt = stmt.where(Delivery.status == raw)
                filters["status"] = query["status"] = raw
            else:
                errors.append("status")
        raw = _text(get.get("event"), 80).strip().lower()
        if raw:
            if len(raw) <= 64 and (raw == "*" or service._PATTERN.fullmatch(raw)):
                if raw.endswith("*"):
                    if raw != "*":
                        stmt = stmt.where(Delivery.event.startswith(raw[:-1], autoescape=True))
                else:
                    stmt = stmt.where(Delivery.event == raw)
                filters["event"] = query["event"] = raw
            else:
                errors.append("event")
        total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        pages = max(1, math.ceil(total / PAGE_SIZE))
        try:
            page = min(max(int(get.get("page") or 1), 1), pages)
        except (TypeError, ValueError):
            page = 1
        rows = db.scalars(stmt.order_by(Delivery.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()

        def page_url(n):
            return request.route_url("webhooks.deliveries", _query={**query, "page": n})

        endpoints = {e.id: e for e in db.scalars(select(Endpoint).order_by(Endpoint.id))}
        events = sorted(db.scalars(select(Delivery.event).distinct()))
        return {"rows": rows, "filters": filters, "errors": errors, "endpoints": endpoints, "events": events,
                "statuses": STATUSES, "status_labels": STATUS_LABELS, "when": when, "safe_url": httpclient.safe_url,
                "total": total, "page": page, "pages": pages,
                "prev": page_url(page - 1) if page > 1 else None,
                "next": page_url(page + 1) if page < pages else None}

    def _delivery(self, lock=False) -> Delivery:
        raw = self.request.matchdict["delivery_id"]
        if len(raw) > 40:
            raise HTTPNotFound()
        stmt = select(Delivery).where(Delivery.delivery_id == raw)
        delivery = self.db.scalar(stmt.with_for_update() if lock else stmt)
        if delivery is None:
            raise HTTPNotFound()
        return delivery

    @view_config(route_name="webhooks.delivery", request_method="GET",
                 renderer="kameng_webhooks:templates/delivery.pt")
    def show(self):
        delivery = self._delivery()
        attempts = self.db.scalars(select(Attempt).where(Attempt.delivery_pk == delivery.id)
                                   .order_by(Attempt.number.desc(), Attempt.id.desc())).all()
        return {"delivery": delivery, "endpoint": self.db.get(Endpoint, delivery.endpoint_id),
                "attempts": attempts, "headers_of": _headers_of,
                "status_labels": STATUS_LABELS, "trigger_labels": TRIGGER_LABELS, "when": when,
                "safe_url": httpclient.safe_url}

    @view_config(route_name="webhooks.delivery.resend", request_method="POST")
    def resend(self):
        request = self.request
        delivery = self._delivery(lock=True)
        try:
            service.resend(request, delivery)
        except APIError as exc:
            request.tm.doom()
            _flash(request, exc.message, "error")
        else:
            _flash(request, _("The delivery is queued again: the worker sends it within seconds, with the same id."))
        return HTTPFound(request.route_url("webhooks.delivery", delivery_id=delivery.delivery_id))


def _headers_of(attempt: Attempt) -> list[tuple[str, str]]:
    try:
        headers = json.loads(attempt.request_headers or "{}")
    except ValueError:
        return []
    return [(str(k), str(v)) for k, v in headers.items()] if isinstance(headers, dict) else []
