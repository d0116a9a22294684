"""Uploaded images: product pictures and the shop's logo.

An upload is judged by its content, never by its name or the client's
Content-Type: Pillow must decode it as a PNG, JPEG, GIF or WebP image
within the size and pixel caps (:mod:`kameng.media.images`). What is kept
is a new encoding of its pixels, without metadata or anything appended,
stored in ``kameng.media_dir`` under the SHA-256 of those bytes
(:mod:`kameng.media.storage`). ``/media/<name>`` serves the files as bytes
with their exact image type, ``nosniff`` and a sandboxing CSP
(:mod:`kameng.media.views`); nothing there is ever imported, executed or
served from a code directory.

Settings: ``kameng.media_dir`` (default ``<kameng.data_dir>/media``),
``kameng.media.max_bytes`` (default 2 MiB), ``kameng.media.max_pixels``
(default 4096 × 4096).
"""
from __future__ import annotations

import os

from kameng.media.storage import MediaStore

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
#: Pillow warns above 89 million pixels and refuses above twice that; the
#: cap stays below its own guard
PIXELS_CEILING = 89_000_000


def media_dir(settings: dict) -> str | None:
    """Where uploads are stored: ``kameng.media_dir``, else ``<kameng.data_dir>/media``
    (``None`` when neither is set: uploads are then refused)."""
    if settings.get("kameng.media_dir"):
        return settings["kameng.media_dir"]
    if settings.get("kameng.data_dir"):
        return os.path.join(settings["kameng.data_dir"], "media")
    return None


def _int_setting(name: str, raw, default: int, lowest: int, highest: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if not lowest <= value <= highest:
        raise ValueError(f"{name} must be between {lowest} and {highest}")
    return value


def store_from_settings(settings: dict) -> MediaStore:
    return MediaStore(
        media_dir(settings),
        max_bytes=_int_setting("kameng.media.max_bytes", settings.get("kameng.media.max_bytes"),
                               DEFAULT_MAX_BYTES, 1024, 64 * 1024 * 1024),
        max_pixels=_int_setting("kameng.media.max_pixels", settings.get("kameng.media.max_pixels"),
                                DEFAULT_MAX_PIXELS, 1, PIXELS_CEILING))


def includeme(config):
    """Read the settings once at start-up (a bad value stops the start)."""
    config.registry["kameng.media"] = store_from_settings(config.get_settings())
