"""Public pages: home, category and product pages, language switch, login
and logout, health."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from html import unescape

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.renderers import get_renderer
from pyramid.security import forget, remember
from pyramid.view import view_config
from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from kameng import accounts, ratelimit, risk
from kameng.catalog import recharge
from kameng.catalog.models import Category, Product
from kameng.catalog.service import buyable, buyer_price, price_for, sanitize_html, stock_label
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import LANGUAGES, _
from kameng.money import format_minor
from kameng.theming import tpl

ID = re.compile(r"^[1-9][0-9]{0,8}\Z")  # fits every database's INTEGER
ROW_SIZE = 12  # products in the hot and the recommended rows
EXCERPT = 80  # characters of a description on a product card
BLOCK_TAG = re.compile(r"</?(?:p|br|li|ul|ol|h[1-6]|blockquote|pre|table|thead|tbody|tr|td|th|hr|div)\b[^>]*>",
                       re.IGNORECASE)
ANY_TAG = re.compile(r"<[^>]*>")


def safe_next(request, target: str | None, default: str) -> str:
    """Only same-site paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return request.application_url + target
    return default


# -- the shelf: what buyers may see ------------------------------------------------------------


class Shelf:
    """The visible category tree, from one query. A category is visible
    when it and every category above it are."""

    def __init__(self, db):
        cats = db.scalars(select(Category).order_by(Category.sort, Category.id)).all()
        under = defaultdict(list)
        for c in cats:
            under[c.parent_id].append(c)
        self.visible: dict[int, Category] = {}
        self.parent: dict[int, Category | None] = {}
        self.children: dict[int, list[Category]] = {}

        def walk(parent):
            kids = [c for c in under.get(parent.id if parent else None, ()) if c.visible]
            for c in kids:
                self.visible[c.id] = c
                self.parent[c.id] = parent
                self.children[c.id] = walk(c)
            return kids

        self.roots = walk(None)

    def get(self, category_id) -> Category | None:
        return self.visible.get(category_id)

    def trail(self, category: Category) -> list[Category]:
        """The categories above ``category``, the top one first."""
        out, node = [], self.parent.get(category.id)
        while node is not None:
            out.append(node)
            node = self.parent.get(node.id)
        return out[::-1]

    def subtree(self, category: Category | None = None) -> list[Category]:
        """``category`` and every visible category below it, in tree order;
        without a category, the whole tree."""
        out = []

        def walk(nodes):
            for c in nodes:
                out.append(c)
                walk(self.children[c.id])

        walk([category] if category is not None else self.roots)
        return out


def listed_products(db, category_ids) -> list[Product]:
    """Products on sale in these categories, with their SKUs: two queries
    however many there are."""
    if not category_ids:
        return []
    return list(db.scalars(
        select(Product)
        .where(Product.category_id.in_(list(category_ids)), Product.visible.is_(True),
               Product.archived.is_(False))
        .order_by(Product.sort, Product.id)
        .options(selectinload(Product.skus))))


def _matched_id(request) -> int:
    raw = request.matchdict.get("id", "")
    if not ID.match(raw):
        raise HTTPNotFound()
    return int(raw)


def _images(product: Product) -> list[str]:
    try:
        images = json.loads(product.images or "[]")
    except ValueError:
        return []
    return [i for i in images if isinstance(i, str)] if isinstance(images, list) else []


def _tags(product: Product) -> list[str]:
    return [t.strip() for t in re.split(r"[,，]", product.tags or "") if t.strip()]


def _excerpt(html: str) -> str:
    """Plain text from a (sanitised) description, cut for a card; the
    template escapes it."""
    plain = " ".join(unescape(ANY_TAG.sub("", BLOCK_TAG.sub(" ", html or ""))).split())
    return plain if len(plain) <= EXCERPT else plain[:EXCERPT - 1].rstrip() + "…"


class Prices:
    """Buyer prices formatted in the shop's currency."""

    def __init__(self, request):
        self.db = request.db
        self.currency = request.shop["currency"]

    def of(self, sku) -> int:
        return price_for(self.db, sku)

    def text(self, minor: int) -> str:
        return f"{self.currency} {format_minor(minor, self.currency)}"


def product_card(request, product: Product, prices: Prices) -> dict:
    """What a product card shows (home, category pages, the hot and
    recommended rows)."""
    skus = [s for s in product.skus if s.visible]
    amounts = [prices.of(s) for s in skus]
    available = [a for s, a in zip(skus, amounts) if buyable(product, s)]
    images = _images(product)
    return {
        "id": product.id,
        "url": request.route_url("product", id=product.id),
        "name": product.name,
        "type": product.type,
        "image": images[0] if images else None,
        "initial": (product.name.strip() or "?")[0],
        "excerpt": _excerpt(product.description),
        "skus": [{"name": s.name, "price": prices.text(a), "sold_out": s.stock is not None and s.stock <= 0}
                 for s, a in zip(skus, amounts)],
        "from_price": prices.text(min(available or amounts)) if amounts else None,
        "several_prices": len(set(amounts)) > 1,
        "sold_out": not available,
    }


def _category_link(request, category: Category) -> dict:
    return {"id": category.id, "name": category.name, "icon": category.icon,
            "url": request.route_url("category", id=category.id)}


def category_nav(request, shelf: Shelf, current: Category | None = None) -> list[dict]:
    """Top-level categories with their children, for the navigation list;
    ``open`` marks the current category and those above it, ``current``
    the current one alone."""
    open_ids = ({c.id for c in shelf.trail(current)} | {current.id}) if current is not None else set()
    here = current.id if current is not None else None

    def link(c):
        return {**_category_link(request, c), "open": c.id in open_ids, "current": c.id == here}

    return [{**link(c), "children": [link(k) for k in shelf.children[c.id]]} for c in shelf.roots]


def _macros():
    return get_renderer(tpl("storefront/macros.pt")).implementation()


# -- pages -----------------------------------------------------------------------------------


@view_config(route_name="home", renderer=tpl("storefront/home.pt"))
def home(request):
    shelf = Shelf(request.db)
    order = shelf.subtree()
    products = listed_products(request.db, [c.id for c in order])
    prices = Prices(request)
    cards = {p.id: product_card(request, p, prices) for p in products}
    by_category = defaultdict(list)
    for p in products:
        by_category[p.category_id].append(cards[p.id])
    groups = [{**_category_link(request, c), "products": by_category[c.id]} for c in order if by_category[c.id]]
    return {
        "nav": category_nav(request, shelf),
        "hot": [cards[p.id] for p in products if p.hot][:ROW_SIZE],
        "recommended": [cards[p.id] for p in products if p.recommended][:ROW_SIZE],
        "groups": groups,
        "shelf": _macros(),
    }


@view_config(route_name="category", renderer=tpl("storefront/category.pt"))
def category(request):
    shelf = Shelf(request.db)
    current = shelf.get(_matched_id(request))
    if current is None:
        raise HTTPNotFound()
    prices = Prices(request)
    subtree = shelf.subtree(current)
    position = {c.id: i for i, c in enumerate(subtree)}
    products = sorted(listed_products(request.db, position), key=lambda p: position[p.category_id])
    return {
        "category": current,
        "trail": [_category_link(request, c) for c in shelf.trail(current)],
        "subcategories": [_category_link(request, c) for c in shelf.children[current.id]],
        "products": [product_card(request, p, prices) for p in products],
        "nav": category_nav(request, shelf, current),
        "shelf": _macros(),
    }


def checkout_url(request, product: Product) -> str | None:
    """Where the buy form posts, or None while the shop has no checkout."""
    try:
        return request.route_url("checkout", id=product.id)
    except KeyError:
        return None


def _stock_text(sku, mode: str):
    """The shop's choice (``stock_display``): the number of items, or
    plenty / a few / sold out."""
    label = stock_label(sku, "number" if mode == "number" else "level")
    if label is None:  # unlimited
        return _("In stock")
    if isinstance(label, int):
        return _("Stock: ${n}", mapping={"n": label})
    return label


def _quantity_limits(sku, most: int | None = None) -> tuple[int, int]:
    """The quantities one order of this SKU may have, within its stock
    (``most``: the buyer's maximum, an agent's may be larger)."""
    most = sku.max_quantity if most is None else most
    high = most if sku.stock is None else min(most, max(sku.stock, 0))
    return sku.min_quantity, high


def own_price(request, sku, list_price: int) -> tuple[str | None, object]:
    """What the signed-in buyer pays for one ``sku`` when it differs from
    the list price (member level or agent tier): ``(price text, label)``,
    else ``(None, None)``."""
    from kameng.orders.pricing import price_refs

    level, tier = price_refs(request.user)
    if not (level or tier):
        return None, None
    unit, how = buyer_price(request.db, sku, level=level, tier=tier)
    if how is None or unit == list_price:
        return None, None
    if how["source"] == "tier":
        return unit, _("Your agent price")
    return unit, _("Your price (${level} member)", mapping={"level": how.get("level_name") or how["level"]})


def _input_for(field: dict, value: str) -> dict:
    """How a recharge field is drawn: input type and hints from its kind."""
    kind = field["kind"]
    out = {"name": field["name"], "input_name": f"recharge.{field['name']}", "id": f"recharge-{field['name']}",
           "label": field["label"], "kind": kind, "required": field.get("required", True), "value": value,
           "type": "text", "inputmode": None, "pattern": None, "maxlength": 100, "autocomplete": "off",
           "placeholder": None, "choices": field.get("choices") or []}
    pattern = recharge.KINDS[kind][0] or field.get("pattern")
    if pattern and "(?" not in pattern:  # Python-only syntax: the server checks it alone
        out["pattern"] = pattern
    if kind == "mobile_cn":
        out.update(type="tel", inputmode="numeric", maxlength=11, autocomplete="tel-national",
                   placeholder=_("11-digit mobile number"))
    elif kind == "qq":
        out.update(inputmode="numeric", maxlength=12, placeholder=_("QQ number, 5 to 12 digits"))
    elif kind == "email":
        out.update(type="email", inputmode="email", autocomplete="email")  # validate() takes up to 100
    return out


@view_config(route_name="product", renderer=tpl("storefront/product.pt"))
def product(request):
    product = request.db.scalar(select(Product).where(Product.id == _matched_id(request))
                                .options(selectinload(Product.skus)))
    if product is None or not product.visible or product.archived:
        raise HTTPNotFound()
    shelf = Shelf(request.db)
    current = None
    if product.category_id is not None:
        current = shelf.get(product.category_id)
        if current is None:  # in a hidden category: not on sale
            raise HTTPNotFound()
    prices = Prices(request)
    params = request.params
    stock_mode = request.shop.get("stock_display", "number")
    from kameng.orders.checkout import max_quantity

    skus = []
    for s in (s for s in product.skus if s.visible):
        low, high = _quantity_limits(s, max_quantity(request, s, request.user))
        listed = prices.of(s)
        mine, mine_label = own_price(request, s, listed)
        skus.append({"code": s.code, "name": s.name, "price": prices.text(listed),
                     "your_price": prices.text(mine) if mine is not None else None, "your_label": mine_label,
                     "attributes": _attributes(s), "stock": _stock_text(s, stock_mode),
                     "sold_out": s.stock is not None and s.stock <= 0,
                     "selectable": buyable(product, s) and low <= high, "min": low, "max": high,
                     "limits": (s.min_quantity, s.max_quantity)})
    selectable = [s for s in skus if s["selectable"]]
    chosen = next((s for s in selectable if s["code"] == params.get("sku")), selectable[0] if selectable else None)
    for s in skus:
        s["checked"] = s is chosen
    # One quantity input for every SKU (no script): it allows what any of
    # them allows, each SKU shows its own limits when they are set apart,
    # and the server checks the order anyway.
    low = min((s["min"] for s in selectable), default=1)
    high = max((s["max"] for s in selectable), default=1)
    quantity = params.get("quantity", "")
    quantity = int(quantity) if re.fullmatch(r"[0-9]{1,6}", quantity) and low <= int(quantity) <= high \
        else (chosen["min"] if chosen else low)

    fields = []
    if product.type == "direct_recharge":
        try:
            spec = recharge.parse_spec(product.recharge_fields or "[]")
        except recharge.RechargeError:
            spec = []
        fields = [_input_for(f, params.get(f"recharge.{f['name']}", "")[:100]) for f in spec]

    images = _images(product)
    return {
        "product": product,
        "trail": [_category_link(request, c) for c in ([*shelf.trail(current), current] if current else [])],
        "images": images,
        "tags": _tags(product),
        "description": sanitize_html(product.description),  # sanitised on save; again, in case
        "skus": skus,
        "any_selectable": bool(selectable),
        "limits_differ": len({s["limits"] for s in selectable}) > 1,
        "quantity": {"min": low, "max": high, "value": quantity},
        "fields": fields,
        "coupon": params.get("coupon", "").strip()[:64],
        "checkout_url": checkout_url(request, product),
        "shelf": _macros(),
    }


def _attributes(sku) -> list[tuple[str, str]]:
    try:
        attrs = json.loads(sku.attributes or "{}")
    except ValueError:
        return []
    return [(str(k), str(v)) for k, v in attrs.items()] if isinstance(attrs, dict) else []


@view_config(route_name="language")
def language(request):
    lang = request.matchdict["lang"]
    if lang not in LANGUAGES:
        raise HTTPNotFound()
    resp = HTTPFound(safe_next(request, request.params.get("next"), request.route_url("home")))
    resp.set_cookie("_LOCALE_", lang, max_age=365 * 86400, samesite="Lax", httponly=True,
                    secure=request.scheme == "https")
    return resp


#: sign-in refusals: the same for an account that exists and one that does not
LOGIN_LOCKED = _("Too many failed sign-ins. This account is locked for a while; try again later.")
LOGINS_LIMITED = _("Too many sign-in attempts from your address. Wait a minute and try again.")


def login_subject(identifier: str) -> dict:
    """What the anti-fraud hooks hear about a sign-in name: ``email`` or ``phone``."""
    identifier = identifier.strip()
    if "@" in identifier:
        return {"email": identifier}
    try:
        return {"phone": accounts.normalize_phone(identifier)}
    except accounts.AccountError:
        return {"phone": identifier}


def _sign_in(request, email: str, password: str):
    """``(user, None)``, or ``(None, (status, message))``. ``email`` is the
    sign-in name: an email address or a phone number. Every attempt counts
    against the address (``kameng.limits.logins_per_ip_per_minute``); wrong
    passwords also against the account (:func:`kameng.accounts.authenticate`);
    an anti-fraud plugin may refuse first (:func:`kameng.risk.check`)."""
    settings = request.registry.settings
    engine = request.registry["kameng.write_engine"]
    per_ip = ratelimit.setting(request, "kameng.limits.logins_per_ip_per_minute")
    if not ratelimit.hit(engine, f"logins_per_ip_per_minute:{request.remote_addr or '-'}", per_ip):
        ratelimit.set_retry_after(request, ratelimit.retry_after())
        return None, (429, LOGINS_LIMITED)
    try:
        risk.check(request, "login", **login_subject(email))
    except APIError as exc:
        return None, (exc.status, exc.message)
    result = accounts.authenticate(request.db, email, password,
                                   max_failures=int(settings["kameng.login.max_failures"]),
                                   lockout_minutes=int(settings["kameng.login.lockout_minutes"]), engine=engine)
    if result.ok:
        return result.user, None
    if result.locked_until is not None:
        ratelimit.set_retry_after(request, (result.locked_until - utcnow()).total_seconds())
        return None, (429, LOGIN_LOCKED)
    return None, (400, _("Wrong email or password."))


@view_config(route_name="login", renderer=tpl("login.pt"))
def login(request):
    """Sign in with the email or the phone number, and the password."""
    next_url = request.params.get("next", "")[:500]
    form = {"email": "", "error": None}
    if request.method == "POST":
        email = request.POST.get("email", "").replace("\x00", "").strip()[:254]
        password = request.POST.get("password", "")[:200]
        form["email"] = email
        user, refusal = _sign_in(request, email, password)
        if user is not None:
            headers = remember(request, user.id)
            default = request.route_url("admin.home") if user.is_admin else request.route_url("home")
            return HTTPFound(safe_next(request, next_url, default), headers=headers)
        request.response.status, form["error"] = refusal
    return {"form": form, "next": next_url}


@view_config(route_name="logout", request_method="POST")
def logout(request):
    return HTTPFound(request.route_url("home"), headers=forget(request))


@view_config(route_name="healthz", renderer="json")
@view_config(route_name="api.health", renderer="json")
def health(request):
    request.db.execute(text("SELECT 1"))
    return {"status": "ok"}
