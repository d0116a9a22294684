"""Serving uploaded images, and uploading them: the admin page (with the
forms on the product and shop-settings pages posting to it) and the admin API.

``/media/<name>`` answers only names of the store's own form
(``<sha256>.<png|jpg|gif|webp>``) with the file's bytes, its exact image
type, ``nosniff``, a CSP that sandboxes and allows nothing (a browser
opening it directly runs no script even if one hid in the pixels) and
a year of caching: a name is its content's hash, so it never changes.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config

from kameng import audit, shop
from kameng.admin.views import flash
from kameng.api import api_csrf
from kameng.catalog import service as catalog
from kameng.catalog.models import Product
from kameng.catalog.service import CatalogError
from kameng.errors import APIError
from kameng.i18n import _
from kameng.media.images import ImageRejected, human_size, too_large
from kameng.media.storage import content_type
from kameng.theming import tpl
from kameng.types import SettingError

CACHE_CONTROL = "public, max-age=31536000, immutable"
MEDIA_CSP = "default-src 'none'; sandbox"
ACCEPT = "image/png,image/jpeg,image/gif,image/webp"
#: room in a request for the multipart framing and the other form fields
FORM_OVERHEAD = 64 * 1024
MAX_PRODUCT_IMAGES = 12
_TARGET = re.compile(r"product:([1-9][0-9]{0,17})")


def _store(request):
    return request.registry["kameng.media"]


# -- serving -------------------------------------------------------------------------------


@view_config(route_name="media", request_method="GET")
def serve(request):
    name = request.matchdict["name"]
    data = _store(request).read(name)
    if data is None:
        raise HTTPNotFound()
    resp = Response(body=data, content_type=content_type(name), conditional_response=True)
    resp.etag = name.split(".", 1)[0]
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = MEDIA_CSP
    resp.headers["Cache-Control"] = CACHE_CONTROL
    resp.headers["Content-Disposition"] = f'inline; filename="{name}"'
    return resp


# -- receiving -----------------------------------------------------------------------------


def _original_name(upload) -> str:
    name = re.split(r"[\\/]", getattr(upload, "filename", None) or "")[-1]
    return "".join(ch for ch in name if ch.isprintable())[:255]


def receive(request):
    """Store the image sent as the ``file`` field; ``(StoredImage, original
    file name)``. Raises :class:`ImageRejected`."""
    store = _store(request)
    if not store.enabled:
        raise ImageRejected(503, "media_unavailable", _("Image uploads are not set up: set kameng.media_dir "
                                                        "(or kameng.data_dir) in the configuration."))
    if (request.content_length or 0) > store.max_bytes + FORM_OVERHEAD:
        raise too_large(store.max_bytes)  # refused before the file is looked at
    try:
        upload = request.POST.get("file")
    except Exception:  # a multipart body WebOb cannot parse
        raise ImageRejected(400, "invalid_request", _("The upload could not be read. Send the image as the "
                                                      "'file' field of a multipart/form-data request.")) from None
    if getattr(upload, "file", None) is None:
        raise ImageRejected(400, "missing_file", _("Choose an image file to upload."))
    return store.save(upload.file), _original_name(upload)


def _record(request, stored, original, **extra):
    image = stored.image
    audit.record(request.db, audit.actor_of(request), "media.upload", stored.name, original=original,
                 bytes=len(image.data), format=image.format, width=image.width, height=image.height,
                 new=stored.created, **extra)


# -- the admin page ------------------------------------------------------------------------


def _target(request):
    """What an upload is for: ``("product", Product)``, ``("logo", None)`` or ``(None, None)``."""
    value = request.params.get("for", "")
    if value == "logo":
        return "logo", None
    match = _TARGET.fullmatch(value)
    if match:
        product = request.db.get(Product, int(match[1]))
        if product is None:
            raise HTTPNotFound()
        return "product", product
    return None, None


def _for_value(target) -> str:
    kind, product = target
    return f"product:{product.id}" if product is not None else (kind or "")


def _page(request, target=(None, None), error=None):
    store = _store(request)
    files = [{"name": f.name, "url": request.route_path("media", name=f.name), "size": human_size(f.size),
              "at": dt.datetime.fromtimestamp(f.mtime, dt.UTC).strftime("%Y-%m-%d %H:%M")}
             for f in store.recent()]
    kind, product = target
    return {"files": files, "error": error, "enabled": store.enabled, "max_size": human_size(store.max_bytes),
            "accept": ACCEPT, "target": kind, "product": product, "for_value": _for_value(target)}


@view_config(route_name="admin.media", request_method="GET", permission="admin",
             renderer=tpl("admin/media.pt"))
def media_page(request):
    return _page(request, _target(request))


def _attach_to_product(request, product, stored) -> None:
    path = request.route_path("media", name=stored.name)
    images = json.loads(product.images or "[]")
    if path in images:
        flash(request, _("This image is already one of the images of ${name}.", mapping={"name": product.name}))
        return
    catalog.save_product(request.db, {"images": images + [path]}, request.shop["currency"], product)
    audit.record(request.db, audit.actor_of(request), "product.update", str(product.id), name=product.name,
                 image_added=path)
    flash(request, _("The image was uploaded and added to ${name}.", mapping={"name": product.name}))


def _use_as_logo(request, stored) -> None:
    shop.save(request.db, {"logo_url": request.route_path("media", name=stored.name)})
    audit.record(request.db, audit.actor_of(request), "shop.settings", "", fields=["logo_url"])
    flash(request, _("The logo was uploaded and saved."))


@view_config(route_name="admin.media", request_method="POST", permission="admin",
             renderer=tpl("admin/media.pt"))
def upload(request):
    target = _target(request)
    kind, product = target
    try:
        if kind == "product" and len(json.loads(product.images or "[]")) >= MAX_PRODUCT_IMAGES:
            raise ImageRejected(409, "too_many_images", _(
                "${name} already has ${n} images. Remove one from its list of images first.",
                mapping={"name": product.name, "n": MAX_PRODUCT_IMAGES}))
        stored, original = receive(request)
        _record(request, stored, original, used_for=_for_value(target))
        if kind == "product":
            _attach_to_product(request, product, stored)
            return HTTPFound(request.route_url("admin.product", id=product.id, _anchor="product-images"))
        if kind == "logo":
            _use_as_logo(request, stored)
            return HTTPFound(request.route_url("admin.settings", _anchor="logo-upload"))
    except ImageRejected as exc:
        request.response.status = exc.status
        request.tm.doom()
        return _page(request, target, error=exc.message)
    except (CatalogError, SettingError) as exc:
        request.response.status = 400
        request.tm.doom()
        return _page(request, target, error=exc.message)
    flash(request, _("The image was uploaded. Its address is ${url}",
                     mapping={"url": request.route_path("media", name=stored.name)}))
    return HTTPFound(request.route_url("admin.media"))


# -- the admin API -------------------------------------------------------------------------


def image_json(request, stored) -> dict:
    image = stored.image
    return {"name": stored.name, "path": request.route_path("media", name=stored.name),
            "url": request.public_url("media", name=stored.name), "content_type": image.content_type,
            "format": image.format.lower(), "width": image.width, "height": image.height,
            "bytes": len(image.data), "created": stored.created}


@view_config(route_name="api.admin.media", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def api_upload(request):
    try:
        stored, original = receive(request)
    except ImageRejected as exc:
        request.tm.doom()
        raise APIError(exc.status, exc.code, exc.message) from None
    _record(request, stored, original)
    request.response.status = 201
    return image_json(request, stored)
