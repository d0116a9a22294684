"""Uploaded images (SECURITY.md 66, 67): judged by their content with
Pillow, re-encoded without metadata or appended payloads, capped in bytes
and pixels, stored under their hash outside any code folder and served
with their exact type, nosniff and a sandboxing CSP. Uploads through the
admin form (CSRF, admin only) and the admin API."""
from __future__ import annotations

import io
import json
import os
import struct
import zlib

import pytest
import webtest
from PIL import ExifTags, Image, PngImagePlugin
from sqlalchemy import select

from kameng import accounts, shop
from kameng.audit import AuditEntry
from kameng.catalog import service as catalog
from kameng.catalog.models import Product
from kameng.config import prepare_settings
from kameng.media import DEFAULT_MAX_BYTES, media_dir, store_from_settings
from kameng.media.images import ImageRejected, read_capped
from kameng.testing import ADMIN_EMAIL, app_request, login

# pyramid_retry copies a request body over 10 KB to a temporary file that
# WebOb never closes (see tests/test_api_catalog.py)
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning")

MAX_PIXELS = 1_000_000
MARKER = b"CameraMaker-XYZ"
GPS_MARKER = b"SecretModel-GPS"
PAYLOAD = b"<html><body><script>alert(document.cookie)</script></body></html>"
PHP = b"<?php system($_GET['c']); ?>"
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(1)</script><rect width="10" height="10"/></svg>')


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("media-root")


@pytest.fixture(scope="module")
def app(make_app, media_root):
    """The shop with its own media folder (inside a parent that also holds
    a file no upload may reach) and a small pixel cap."""
    (media_root / "secret.txt").write_text("not for the web")
    return make_app(**{"kameng.media_dir": str(media_root / "media"), "kameng.media.max_pixels": str(MAX_PIXELS)})


@pytest.fixture
def store(app):
    return app.registry["kameng.media"]


def stored_files(store) -> set[str]:
    return set(os.listdir(store.directory)) if os.path.isdir(store.directory) else set()


@pytest.fixture
def anon(app):
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def admin_web(app, admin):
    web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(web, *admin).status_int == 302
    return web


@pytest.fixture
def auth(app, admin):
    with app_request(app.registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, ADMIN_EMAIL), "media-tests")
    return {"Authorization": f"Bearer {token}"}


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MARKER.decode()
    exif[ExifTags.Base.Orientation] = 1
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (31.0, 14.0, 5.0)
    gps[ExifTags.GPS.GPSProcessingMethod] = GPS_MARKER
    return exif


def image_bytes(fmt: str, size=(40, 30), metadata=True, **extra) -> bytes:
    """A small image in ``fmt`` carrying EXIF with a GPS position, and a text
    chunk or comment where the format has one."""
    img = Image.new("RGB", size, (200, 30, 30))
    img.putpixel((0, 0), (0, 0, 255))
    options = dict(extra)
    if metadata:
        if fmt in ("JPEG", "WEBP", "PNG"):
            options["exif"] = _exif().tobytes()
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_text("Comment", PAYLOAD.decode())
            options["pnginfo"] = info
        if fmt == "GIF":
            options["comment"] = PAYLOAD
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def api_upload(web, headers, data, filename="image.png", content_type="image/png", status=201):
    return web.post("/api/v1/admin/media", upload_files=[("file", filename, data, content_type)],
                    headers=headers, status=status)


def product_id(registry, images=()) -> int:
    with app_request(registry) as req:
        return catalog.save_product(req.db, {"name": "Steam 钱包充值码", "type": "card_key", "images": list(images),
                                             "skus": [{"code": "STEAM-50", "name": "50 元", "price": "50.00"}]},
                                    "CNY").id


def product_images(registry, pid) -> list[str]:
    with app_request(registry) as req:
        return json.loads(req.db.get(Product, pid).images)


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its data is one row)."""
    raw = bytearray(image_bytes("PNG", size=(1, 1), metadata=False))
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    raw[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(raw[ihdr:ihdr + 17])))
    return bytes(raw)


# -- accepted and cleaned ------------------------------------------------------------------


@pytest.mark.parametrize("fmt, ext, ctype", [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"),
                                             ("GIF", "gif", "image/gif"), ("WEBP", "webp", "image/webp")])
def test_each_format_is_accepted_and_its_metadata_removed(anon, auth, registry, fmt, ext, ctype):
    original = image_bytes(fmt)
    if fmt != "GIF":
        assert MARKER in original and GPS_MARKER in original  # the test image does carry them
    body = api_upload(anon, auth, original, filename=f"photo.{ext}", content_type=ctype).json
    assert body["name"].endswith(f".{ext}") and body["content_type"] == ctype
    assert body["path"] == f"/media/{body['name']}" and body["url"] == f"http://localhost/media/{body['name']}"
    assert (body["width"], body["height"]) == (40, 30)

    served = anon.get(body["path"])
    assert served.content_type == ctype
    data = served.body
    assert len(data) == body["bytes"]
    for secret in (MARKER, GPS_MARKER, b"<script", b"Exif"):
        assert secret not in data, secret
    img = Image.open(io.BytesIO(data))
    assert img.format == fmt and img.size == (40, 30)
    assert len(img.getexif()) == 0
    assert not {"exif", "comment", "Comment", "icc_profile", "xmp"} & set(img.info)
    assert img.convert("RGB").getpixel((20, 20))[0] > 150  # the picture itself is kept

    with app_request(registry) as req:
        entry = req.db.scalar(select(AuditEntry).where(AuditEntry.action == "media.upload"))
    assert entry.target == body["name"] and entry.actor == ADMIN_EMAIL
    assert json.loads(entry.detail)["original"] == f"photo.{ext}"


def test_the_same_image_twice_is_one_file(anon, auth, store):
    data = image_bytes("PNG", size=(33, 33))
    first = api_upload(anon, auth, data).json
    second = api_upload(anon, auth, data, filename="again.png").json
    assert first["name"] == second["name"] and first["created"] and not second["created"]
    assert sum(1 for f in stored_files(store) if f == first["name"]) == 1


def test_a_photo_is_turned_upright(anon, auth):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90° clockwise to view"
    body = api_upload(anon, auth, image_bytes("JPEG", size=(40, 30), metadata=False, exif=exif.tobytes()),
                      filename="p.jpg", content_type="image/jpeg").json
    assert (body["width"], body["height"]) == (30, 40)


def test_a_gif_html_polyglot_loses_its_payload(anon, auth):
    polyglot = image_bytes("GIF") + PAYLOAD
    assert Image.open(io.BytesIO(polyglot)).format == "GIF"  # browsers and Pillow see a GIF
    body = api_upload(anon, auth, polyglot, filename="x.gif.html", content_type="text/html").json
    served = anon.get(body["path"])
    assert served.content_type == "image/gif"
    assert b"<script" not in served.body and b"<html" not in served.body
    assert served.body != polyglot[:len(served.body)] or len(served.body) < len(polyglot)


def test_a_png_named_php_is_stored_as_a_png(anon, auth):
    data = image_bytes("PNG") + PHP
    body = api_upload(anon, auth, data, filename="shell.php", content_type="application/x-php").json
    assert body["name"].endswith(".png") and ".php" not in body["name"]
    served = anon.get(body["path"])
    assert served.content_type == "image/png" and PHP not in served.body


# -- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case, data, filename, ctype, status, code", [
    ("php", PHP, "shell.php", "image/png", 415, "unsupported_image"),
    ("php behind a GIF signature", b"GIF89a" + PHP, "shell.gif", "image/gif", 415, "unsupported_image"),
    ("html", PAYLOAD, "page.html", "image/png", 415, "unsupported_image"),
    ("svg with a script", SVG, "logo.svg", "image/svg+xml", 415, "unsupported_image"),
    ("text", b"just some text\n", "notes.png", "image/png", 415, "unsupported_image"),
    ("bmp, which Pillow reads but the shop does not serve", image_bytes("BMP", metadata=False), "x.png",
     "image/png", 415, "unsupported_image"),
    ("tiff", image_bytes("TIFF", metadata=False), "x.png", "image/png", 415, "unsupported_image"),
    ("empty", b"", "empty.png", "image/png", 400, "empty_file"),
    ("truncated png", image_bytes("PNG", size=(200, 200))[:300], "cut.png", "image/png", 422, "invalid_image"),
    ("truncated jpeg", image_bytes("JPEG", size=(200, 200))[:400], "cut.jpg", "image/jpeg", 422, "invalid_image"),
    ("bomb past Pillow's guard", png_with_size(60000, 60000), "bomb.png", "image/png", 422, "image_too_large"),
    ("more pixels than the cap", png_with_size(1200, 1000), "big.png", "image/png", 422, "image_too_large"),
    ("a side too long", png_with_size(20000, 10), "long.png", "image/png", 422, "image_too_large"),
])
def test_not_an_acceptable_image_is_refused(anon, auth, store, case, data, filename, ctype, status, code):
    before = stored_files(store)
    resp = api_upload(anon, auth, data, filename=filename, content_type=ctype, status=status)
    assert resp.json["error"]["code"] == code, case
    assert resp.json["error"]["message"]
    assert stored_files(store) == before


def test_a_real_image_over_the_pixel_cap_is_refused_before_decoding(anon, auth, store):
    big = Image.new("L", (1100, 1000), 128)
    buf = io.BytesIO()
    big.save(buf, "PNG")
    before = stored_files(store)
    resp = api_upload(anon, auth, buf.getvalue(), status=422)
    assert resp.json["error"]["code"] == "image_too_large"
    assert stored_files(store) == before


def test_a_file_over_the_byte_cap_is_refused(anon, auth, store):
    data = image_bytes("PNG") + b"\0" * DEFAULT_MAX_BYTES  # an image, padded just past the cap
    assert DEFAULT_MAX_BYTES < len(data) < DEFAULT_MAX_BYTES + 64 * 1024
    before = stored_files(store)
    resp = api_upload(anon, auth, data, status=413)
    assert resp.json["error"]["code"] == "too_large" and "2 MB" in resp.json["error"]["message"]
    assert stored_files(store) == before


def test_a_body_far_over_the_cap_is_refused_without_reading_the_file(anon, auth, store, monkeypatch):
    calls = []
    monkeypatch.setattr(store, "save", lambda fileobj: calls.append(fileobj))
    resp = api_upload(anon, auth, b"\x89PNG" + b"\0" * (3 * DEFAULT_MAX_BYTES), status=413)
    assert resp.json["error"]["code"] == "too_large"
    assert calls == []


def test_reading_stops_one_byte_past_the_cap():
    class Endless(io.RawIOBase):
        given = 0

        def read(self, n=-1):
            assert n > 0, "read without a size"
            self.given += n
            return b"x" * n

    stream = Endless()
    with pytest.raises(ImageRejected) as exc:
        read_capped(stream, 1000)
    assert exc.value.status == 413 and stream.given == 1001
    assert read_capped(io.BytesIO(b"y" * 1000), 1000) == b"y" * 1000


def test_a_request_without_a_file_is_refused(anon, auth):
    resp = anon.post("/api/v1/admin/media", {"file": "not a file"}, headers=auth, status=400)
    assert resp.json["error"]["code"] == "missing_file"
    resp = anon.post("/api/v1/admin/media", b"garbage", headers={**auth, "Content-Type": "multipart/form-data"},
                     status=400)
    assert resp.json["error"]["code"] == "invalid_request"


# -- serving ------------------------------------------------------------------------------------


def test_served_files_have_safe_headers_and_are_cached(anon, auth):
    body = api_upload(anon, auth, image_bytes("GIF")).json
    resp = anon.get(body["path"])
    assert resp.headers["Content-Type"] == "image/gif"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = resp.headers["ETag"]
    assert anon.get(body["path"], headers={"If-None-Match": etag}, status=304).body == b""
    assert anon.head(body["path"]).headers["Content-Type"] == "image/gif"


def test_names_outside_the_store_are_not_found(anon, auth, store, media_root):
    name = api_upload(anon, auth, image_bytes("PNG", size=(7, 7))).json["name"]
    anon.get(f"/media/{name}", status=200)
    stem = name.split(".")[0]
    # a file with a store-like name beside the folder, and a link inside it to a secret outside
    outside = media_root / f"{'a' * 64}.png"
    outside.write_bytes(image_bytes("PNG", size=(5, 5)))
    os.symlink(media_root / "secret.txt", os.path.join(store.directory, f"{'b' * 64}.png"))
    # files in the folder that the store did not name (a half-written upload, something put there by hand)
    for other in ("page.html", ".upload-0123456789abcdef.tmp", f"{stem}.png.bak"):
        with open(os.path.join(store.directory, other), "wb") as fh:
            fh.write(b"not for the web" + PAYLOAD)
    for path in [
        "/media/../secret.txt", "/media/..%2Fsecret.txt", "/media/%2e%2e%2fsecret.txt", "/media/secret.txt",
        f"/media/..%2F{'a' * 64}.png", f"/media/%2e%2e/{'a' * 64}.png", f"/media/{'b' * 64}.png",
        f"/media/{stem}.php", f"/media/{stem}.html", f"/media/{stem.upper()}.png", f"/media/{stem}.PNG",
        f"/media/{stem}", f"/media/{stem}.png.html", f"/media/{name}%00.html", f"/media/{name}/",
        f"/media/{stem[:-1]}.png", f"/media/{'c' * 64}.png", "/media/", "/media/..", "/media/.",
        "/media/%2Fetc%2Fpasswd", "/media/..\\secret.txt", "/media/page.html",
        "/media/.upload-0123456789abcdef.tmp", f"/media/{stem}.png.bak",
    ]:
        resp = anon.get(path, expect_errors=True)
        assert resp.status_int == 404, path
        assert b"not for the web" not in resp.body, path
        assert resp.content_type != "image/png", path


# -- the admin form -----------------------------------------------------------------------------


def test_upload_on_the_product_page_adds_the_image(admin_web, anon, registry):
    pid = product_id(registry, images=["https://cdn.example.com/a.png"])
    page = admin_web.get(f"/admin/products/{pid}")
    form = page.forms["image-upload"]
    form["file"] = webtest.Upload("我的图片.png", image_bytes("PNG"), "image/png")
    resp = form.submit(status=302)
    assert resp.location.endswith(f"/admin/products/{pid}#product-images")
    images = product_images(registry, pid)
    assert images[0] == "https://cdn.example.com/a.png" and images[1].startswith("/media/")
    page = resp.follow()
    assert "uploaded and added" in page.text and images[1] in page.text
    # the buyer sees it
    shop_page = anon.get(f"/p/{pid}")
    assert f'src="{images[0]}"' in shop_page.text and images[1] in shop_page.text
    assert anon.get(images[1]).content_type == "image/png"
    with app_request(registry) as req:
        actions = [e.action for e in req.db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert "media.upload" in actions and "product.update" in actions
    # the same image again is not added twice
    form = admin_web.get(f"/admin/products/{pid}").forms["image-upload"]
    form["file"] = webtest.Upload("again.png", image_bytes("PNG"), "image/png")
    form.submit(status=302)
    assert product_images(registry, pid) == images


def test_a_refused_upload_shows_the_reason_and_changes_nothing(admin_web, registry, store):
    pid = product_id(registry)
    before = stored_files(store)
    form = admin_web.get(f"/admin/products/{pid}").forms["image-upload"]
    form["file"] = webtest.Upload("logo.svg", SVG, "image/svg+xml")
    resp = form.submit(status=415)
    assert "not a PNG, JPEG, GIF or WebP image" in resp.html.find(id="media-error").text
    assert resp.forms["media-form"]["for"].value == f"product:{pid}"  # try again for the same product
    assert product_images(registry, pid) == [] and stored_files(store) == before


def test_a_product_with_twelve_images_takes_no_more(admin_web, registry, store):
    pid = product_id(registry, images=[f"/img/{i}.png" for i in range(12)])
    before = stored_files(store)
    form = admin_web.get(f"/admin/products/{pid}").forms["image-upload"]
    form["file"] = webtest.Upload("x.png", image_bytes("PNG", size=(9, 9)), "image/png")
    resp = form.submit(status=409)
    assert "already has 12 images" in resp.text
    assert len(product_images(registry, pid)) == 12 and stored_files(store) == before


def test_upload_on_the_settings_page_sets_the_logo(admin_web, anon, registry):
    form = admin_web.get("/admin/settings").forms["logo-form"]
    form["file"] = webtest.Upload("logo.webp", image_bytes("WEBP"), "image/webp")
    resp = form.submit(status=302)
    assert resp.location.endswith("/admin/settings#logo-upload")
    with app_request(registry) as req:
        logo = shop.load(req.db)["logo_url"]
    assert logo.startswith("/media/") and logo.endswith(".webp")
    assert f'src="{logo}"' in anon.get("/").text
    assert anon.get(logo).content_type == "image/webp"


def test_the_media_page_lists_uploads(admin_web, anon, auth):
    name = api_upload(anon, auth, image_bytes("PNG", size=(11, 11))).json["name"]
    page = admin_web.get("/admin/media")
    assert f"/media/{name}" in page.text
    form = page.forms["media-form"]
    form["file"] = webtest.Upload("free.jpg", image_bytes("JPEG", size=(12, 12)), "image/jpeg")
    resp = form.submit(status=302).follow()
    assert "Its address is /media/" in resp.text


def test_an_unknown_product_is_not_found(admin_web):
    token = admin_web.get("/admin/media").forms["media-form"]["csrf_token"].value
    admin_web.post("/admin/media", {"csrf_token": token, "for": "product:999999"},
                   upload_files=[("file", "x.png", image_bytes("PNG"))], status=404)


# -- who may upload ---------------------------------------------------------------------------


def test_anonymous_and_buyers_cannot_upload(anon, app, store):
    before = stored_files(store)
    data = image_bytes("PNG", size=(13, 13))
    resp = anon.post("/admin/media", {"for": "logo"}, upload_files=[("file", "x.png", data)], expect_errors=True)
    assert resp.status_int == 302 and "/login?" in resp.headers["Location"]  # sign in first
    assert anon.post("/api/v1/admin/media", upload_files=[("file", "x.png", data)], status=401)
    with app_request(app.registry) as req:
        buyer = accounts.create_user(req.db, "buyer@example.com", "buyer-password-1")
        token = accounts.create_token(req.db, buyer, "buyer")
    api_upload(anon, {"Authorization": f"Bearer {token}"}, data, status=403)
    assert login(anon, "buyer@example.com", "buyer-password-1").status_int == 302
    token_field = anon.get("/account").html.find("input", {"name": "csrf_token"})
    fields = {"for": "logo", "csrf_token": token_field["value"] if token_field else ""}
    resp = anon.post("/admin/media", fields, upload_files=[("file", "x.png", data)], expect_errors=True)
    assert resp.status_int == 403
    assert stored_files(store) == before
    with app_request(app.registry) as req:
        assert shop.load(req.db)["logo_url"] == ""


def test_the_form_needs_its_csrf_token(admin_web, registry, store):
    before = stored_files(store)
    data = image_bytes("PNG", size=(14, 14))
    admin_web.post("/admin/media", {"for": "logo"}, upload_files=[("file", "x.png", data)], status=400)
    admin_web.post("/admin/media", {"for": "logo", "csrf_token": "forged"}, upload_files=[("file", "x.png", data)],
                   status=400)
    assert stored_files(store) == before
    with app_request(registry) as req:
        assert shop.load(req.db)["logo_url"] == ""


def test_the_api_with_a_session_cookie_needs_the_csrf_header(admin_web, store):
    data = image_bytes("PNG", size=(15, 15))
    before = stored_files(store)
    resp = api_upload(admin_web, {}, data, status=400)
    assert resp.json["error"]["code"] == "csrf_failed" and stored_files(store) == before
    token = admin_web.get("/admin/media").forms["media-form"]["csrf_token"].value
    api_upload(admin_web, {"X-CSRF-Token": token}, data, status=201)


# -- settings and the API document -------------------------------------------------------------


def test_media_dir_defaults_to_the_data_dir():
    assert prepare_settings({"kameng.data_dir": "/srv/k"})["kameng.media_dir"] == "/srv/k/media"
    assert prepare_settings({"kameng.data_dir": "/srv/k", "kameng.media_dir": "/x"})["kameng.media_dir"] == "/x"
    assert media_dir({"kameng.data_dir": "/srv/k"}) == "/srv/k/media"
    assert media_dir({}) is None
    store = store_from_settings({"kameng.data_dir": "/srv/k"})
    assert store.max_bytes == 2 * 1024 * 1024 and store.max_pixels == 4096 * 4096
    for bad in ({"kameng.media.max_bytes": "lots"}, {"kameng.media.max_pixels": "0"},
                {"kameng.media.max_pixels": str(10 ** 9)}):
        with pytest.raises(ValueError):
            store_from_settings(bad)


def test_without_a_folder_uploads_are_refused(anon, auth, app, monkeypatch):
    monkeypatch.setattr(app.registry["kameng.media"], "directory", None)
    resp = api_upload(anon, auth, image_bytes("PNG"), status=503)
    assert resp.json["error"]["code"] == "media_unavailable"
    anon.get(f"/media/{'d' * 64}.png", status=404)


def test_openapi_documents_the_upload(anon):
    doc = anon.get("/api/v1/openapi.json").json
    op = doc["paths"]["/api/v1/admin/media"]["post"]
    assert op["security"] == [{"bearerAuth": []}]
    assert "multipart/form-data" in op["requestBody"]["content"]
    assert {"201", "400", "401", "403", "413", "415", "422"} <= set(op["responses"])
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
