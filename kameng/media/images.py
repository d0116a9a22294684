"""Judging an uploaded image by its content and re-encoding its pixels.

Pillow is only asked to try the four formats the shop serves (never EPS,
PSD, SVG or the others it knows, some of which call outside programs). The
size in bytes is capped while reading, the size in pixels before anything
is decoded, and only the first frame of an animation is kept. The result is
a new image made from the decoded pixels alone: no EXIF (camera, GPS), no
text chunks or comments, no ICC profile, nothing appended after the image
data (the payload of a GIF+HTML or PNG+PHP polyglot).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from kameng.i18n import _

#: Pillow's format name -> (file extension, Content-Type)
FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "GIF": ("gif", "image/gif"),
           "WEBP": ("webp", "image/webp")}
#: the longest side every format can encode (WebP's limit)
MAX_SIDE = 16383
_SAVE_OPTIONS = {"JPEG": {"quality": 90, "optimize": True}, "PNG": {}, "GIF": {},
                 "WEBP": {"quality": 90, "method": 4}}
_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageRejected(Exception):
    """An upload that is not kept: ``status`` (4xx), a stable ``code`` and a
    message for the person who sent it."""

    def __init__(self, status: int, code: str, message):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{round(n / (1024 * 1024), 1):g} MB"
    return f"{-(-n // 1024)} KB"


def too_large(max_bytes: int) -> ImageRejected:
    return ImageRejected(413, "too_large", _("The file is larger than ${size}. Make the image smaller and try "
                                             "again.", mapping={"size": human_size(max_bytes)}))


def read_capped(fileobj, max_bytes: int) -> bytes:
    """At most ``max_bytes`` from ``fileobj``; one byte more is a 413."""
    chunks, total = [], 0
    while total <= max_bytes:
        chunk = fileobj.read(min(64 * 1024, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise too_large(max_bytes)
    return b"".join(chunks)


def _unsupported() -> ImageRejected:
    return ImageRejected(415, "unsupported_image", _("This file is not a PNG, JPEG, GIF or WebP image."))


def _damaged() -> ImageRejected:
    return ImageRejected(422, "invalid_image", _("The image is damaged or incomplete and cannot be read."))


def _too_many_pixels(max_pixels: int) -> ImageRejected:
    return ImageRejected(422, "image_too_large", _(
        "The image has too many pixels. At most ${megapixels} million pixels and ${side} pixels on a side are "
        "accepted.", mapping={"megapixels": f"{max_pixels / 1e6:.3g}", "side": MAX_SIDE}))


def _orientation(img) -> int | None:
    try:
        return img.getexif().get(_ORIENTATION)
    except Exception:  # an unreadable EXIF block only loses the rotation
        return None


def _has_alpha(img) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _pixels_only(img, fmt: str) -> tuple[Image.Image, int | None]:
    """A new image holding ``img``'s pixels (and palette) and nothing else;
    with the palette index that is transparent, if any."""
    transparency = img.info.get("transparency")
    if img.mode == "P" and fmt in ("PNG", "GIF") and (transparency is None or isinstance(transparency, int)):
        out = Image.frombytes("P", img.size, img.tobytes())
        out.putpalette(img.getpalette())
        return out, transparency
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: scale, do not clip, to 8 bits
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if fmt == "JPEG":
        target = "L" if img.mode in ("L", "1") else "RGB"
    elif _has_alpha(img):
        target = "RGBA"
    else:
        target = "L" if img.mode in ("L", "1") else "RGB"
    converted = img if img.mode == target else img.convert(target)
    return Image.frombytes(target, img.size, converted.tobytes()), None


def clean(raw: bytes, max_pixels: int) -> CleanImage:
    """Decode ``raw`` as one of :data:`FORMATS` and encode its pixels again in
    the same format. Raises :class:`ImageRejected`."""
    if not raw:
        raise ImageRejected(400, "empty_file", _("The file is empty. Choose a PNG, JPEG, GIF or WebP image."))
    try:
        img = Image.open(io.BytesIO(raw), formats=list(FORMATS))
    except Image.UnidentifiedImageError:
        raise _unsupported() from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # a header Pillow recognised and then could not parse
        raise _damaged() from None
    with img:
        fmt = img.format
        if fmt not in FORMATS:
            raise _unsupported()
        width, height = img.size
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > max_pixels:
            raise _too_many_pixels(max_pixels)
        try:
            img.load()  # the first frame only: an animation's other frames are never decoded
            orientation = _orientation(img)
            pixels, transparency = _pixels_only(img, fmt)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(max_pixels) from None
        except Exception:  # truncated data, a bad chunk, a decoder error
            raise _damaged() from None
    if orientation in _TRANSPOSE:  # a phone photo stands the way it was taken
        pixels = pixels.transpose(_TRANSPOSE[orientation])
    options = dict(_SAVE_OPTIONS[fmt])
    if transparency is not None:
        options["transparency"] = transparency
    buf = io.BytesIO()
    try:
        pixels.save(buf, format=fmt, **options)
    except (OSError, ValueError):
        raise _damaged() from None
    return CleanImage(buf.getvalue(), fmt, pixels.width, pixels.height)
