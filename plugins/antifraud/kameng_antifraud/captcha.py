"""A self-hosted picture captcha: no third-party service, nothing leaves the shop.

A challenge is 5 characters from an alphabet without look-alikes (no 0/O,
1/I, 2/Z, 5/S, 8/B, 6/G), drawn by Pillow with noise lines and dots. Its
answer stays on the server (:mod:`kameng_antifraud.backends`), under a
random id, for 5 minutes, and can be used once: a wrong answer uses it too.
Forms post ``captcha_id`` and ``captcha_answer``; API callers fetch a
challenge from ``POST /-/antifraud/captcha`` and send the headers
``X-Captcha-Id`` and ``X-Captcha-Answer``. Upper or lower case and spaces
do not matter; the comparison takes constant time.
"""
from __future__ import annotations

import hmac
import io
import random
import re
import secrets

from kameng_antifraud import backends

ALPHABET = "ACDEFHJKLMNPRTUVWXY3479"
LENGTH = 5
TTL_SECONDS = 300
#: new challenges one address may ask for per minute (forms shown and API calls)
NEW_PER_IP_PER_MINUTE = 60
ID = re.compile(r"[A-Za-z0-9_\-]{16,48}")
WIDTH, HEIGHT = 200, 70

OK, MISSING, WRONG = "ok", "missing", "wrong"


def new_challenge(request, cfg) -> str | None:
    """Store a new challenge; its id, or None when this address asked for
    too many within the minute."""
    ip = (request.remote_addr or "-")[:64]
    if backends.counters(request, cfg).hit(f"captcha_new:{ip}", NEW_PER_IP_PER_MINUTE, 60):
        return None
    cid = secrets.token_urlsafe(18)
    answer = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    backends.captcha_store(request, cfg).put(cid, answer, TTL_SECONDS)
    return cid


def answer_of(request, cfg, cid: str) -> str | None:
    """The answer of a live challenge (to draw it), without using it up."""
    if not isinstance(cid, str) or not ID.fullmatch(cid):
        return None
    return backends.captcha_store(request, cfg).peek(cid)


def normalize(text) -> str:
    return re.sub(r"\s+", "", str(text or "")).upper()[:16]


def submitted(request) -> tuple[str, str]:
    """``(captcha_id, captcha_answer)`` from the headers (API) or the form."""
    cid = request.headers.get("X-Captcha-Id", "")
    answer = request.headers.get("X-Captcha-Answer", "")
    if not cid:
        try:
            params = request.params
            cid, answer = params.get("captcha_id", ""), params.get("captcha_answer", "")
        except (ValueError, UnicodeDecodeError):  # a body that is not a form
            cid, answer = "", ""
    return str(cid)[:64], str(answer)[:64]


def verify(request, cfg) -> str:
    """``ok``, ``missing`` or ``wrong`` (also: unknown, expired, used). A
    request is checked once: a coupon and its order share the answer."""
    memo = request.__dict__.get("_antifraud_captcha")
    if memo is not None:
        return memo
    cid, answer = submitted(request)
    if not cid.strip() or not normalize(answer):
        result = MISSING
    elif not ID.fullmatch(cid):
        result = WRONG
    else:
        expected = backends.captcha_store(request, cfg).take(cid)
        given = normalize(answer)
        result = OK if expected is not None and hmac.compare_digest(given.encode(), expected.encode()) else WRONG
    request.__dict__["_antifraud_captcha"] = result
    return result


# -- the picture ---------------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's scalable built-in font (FreeType)
    except (TypeError, ImportError, OSError, AttributeError):
        return None


def _glyph(char: str, color, rng):
    from PIL import Image, ImageDraw, ImageFont

    font = _font(42)
    if font is not None:
        layer = Image.new("RGBA", (56, 60), (0, 0, 0, 0))
        ImageDraw.Draw(layer).text((28, 30), char, font=font, fill=color, anchor="mm")
    else:  # Pillow without FreeType: the bitmap font, scaled up
        small = Image.new("RGBA", (10, 12), (0, 0, 0, 0))
        ImageDraw.Draw(small).text((2, 0), char, font=ImageFont.load_default(), fill=color)
        layer = small.resize((50, 60), Image.Resampling.NEAREST)
    return layer.rotate(rng.uniform(-28, 28), resample=Image.Resampling.BICUBIC, expand=True)


def draw(answer: str) -> bytes:
    """The challenge as a PNG picture."""
    from PIL import Image, ImageDraw

    rng = random.Random(secrets.randbits(64))
    bg = tuple(rng.randint(225, 250) for _ in range(3))
    img = Image.new("RGB", (WIDTH, HEIGHT), bg)
    d = ImageDraw.Draw(img)
    for _ in range(260):  # dots
        x, y = rng.randrange(WIDTH), rng.randrange(HEIGHT)
        d.point((x, y), fill=tuple(rng.randint(120, 210) for _ in range(3)))
    for _ in range(4):  # faint lines behind the text
        d.line([(rng.randrange(WIDTH), rng.randrange(HEIGHT)) for _ in range(2)],
               fill=tuple(rng.randint(150, 210) for _ in range(3)), width=1)
    step = (WIDTH - 20) / max(len(answer), 1)
    for i, char in enumerate(answer):
        color = (rng.randint(10, 110), rng.randint(10, 110), rng.randint(10, 110), 255)
        glyph = _glyph(char, color, rng)
        x = int(10 + i * step + rng.uniform(-3, 3) + (step - glyph.width) / 2)
        y = int((HEIGHT - glyph.height) / 2 + rng.uniform(-6, 6))
        img.paste(glyph, (x, y), glyph)
    for _ in range(4):  # lines across the text
        points = [(rng.randrange(-10, WIDTH // 3), rng.randrange(HEIGHT)),
                  (rng.randrange(WIDTH // 3, 2 * WIDTH // 3), rng.randrange(HEIGHT)),
                  (rng.randrange(2 * WIDTH // 3, WIDTH + 10), rng.randrange(HEIGHT))]
        d.line(points, fill=tuple(rng.randint(70, 170) for _ in range(3)), width=rng.choice((1, 1, 2)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
