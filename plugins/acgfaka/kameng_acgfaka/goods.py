"""Reading acg-faka's goods (pure functions).

``/shared/commodity/items`` answers a category tree, ``[{name, children:
[commodity, …]}, …]``. A commodity carries its ``code`` (the docking code
every other call names it by), ``delivery_way`` (0: card keys from stock,
1: the upstream delivers by hand), its input ``widget``s, and an INI
``config`` whose sections matter here:

- ``[category]`` the races (种类): one SKU each, name → list price;
- ``[category_factory]`` this account's price per race (older upstreams
  send it in the list, newer ones only from ``/shared/commodity/item``);
- ``[sku]`` option groups (规格): ``颜色.红色=2`` adds 2 to the price.

A goods without races costs ``factory_price`` (this account's price, again
only in older lists or from ``item``). When neither says, the list price is
taken: dearer than what the account pays, never cheaper.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from kameng.catalog import recharge

from kameng_acgfaka.protocol import MAX_SKU_CODE, ProtocolError, SkuRef, decimal_of, field_name, int_of

#: at most this many races × options per goods; a bigger one is left out
MAX_VARIANTS = 50
MAX_DESCRIPTION = 50_000


def parse_ini(text: str) -> dict:
    """``App\\Util\\Ini::toArray``: ``[section]`` lines, then ``a.b=value``
    lines nested by the dots. Keys and values are kept as they are (the
    upstream compares race names byte for byte)."""
    out: dict = {}
    section = ""
    for line in re.split(r"[\r\n]+", (text or "").strip()):
        if line in ("", "0"):
            continue
        header = re.search(r"\[(.*?)\]$", line)
        if header:
            section = header.group(1)
            out.setdefault(section, {})
            continue
        if not section:
            raise ProtocolError("a config line outside any section")
        parts = line.split("=")
        if len(parts) != 2:
            raise ProtocolError("a config line is not name=value")
        node = out[section]
        path = parts[0].split(".")
        for step in path[:-1]:
            if not isinstance(node.get(step), dict):
                node[step] = {}
            node = node[step]
        node[path[-1]] = parts[1]
    return out


def config_of(row: dict) -> dict:
    """A commodity's config, INI text or already an object; ``{}`` when it
    does not parse (the goods then simply has no races or options)."""
    raw = row.get("config")
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            return parse_ini(raw)
        except ProtocolError:
            return {}
    return {}


def section(config: dict, name: str) -> dict:
    """One config section as ``{str: value}`` (PHP sends a list when the keys
    happen to be 0, 1, 2…)."""
    value = config.get(name)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def goods_rows(data) -> list[tuple[str, dict]]:
    """``(category name, commodity)`` for every commodity of the items tree."""
    cats = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(cats, list):
        raise ProtocolError("the goods list is not a list of categories")
    out = []
    for cat in cats:
        if not isinstance(cat, dict):
            raise ProtocolError("a category is not an object")
        children = cat.get("children") or []
        if isinstance(children, dict):
            children = list(children.values())
        if not isinstance(children, list):
            raise ProtocolError("a category's goods are not a list")
        name = str(cat.get("name") or "")[:100]
        out += [(name, row) for row in children if isinstance(row, dict)]
    return out


def find_row(data, code: str) -> dict | None:
    """``/shared/commodity/item``'s commodity: newer upstreams answer the
    object, older ones the items tree cut down to it."""
    if isinstance(data, dict) and "code" in data:
        return data if str(data.get("code")) == code else None
    try:
        rows = goods_rows(data)
    except ProtocolError:
        return None
    return next((row for _, row in rows if str(row.get("code")) == code), None)


@dataclass
class Listing:
    """One upstream commodity, read; ``problem`` says why it cannot be sold
    through this connector (its SKUs are then listed as unavailable)."""

    code: str
    name: str
    category: str
    kind: str  # k: card keys, m: by hand
    type: str  # the kameng product type
    description: str
    row: dict
    config: dict
    races: list[str]
    options: dict[str, dict[str, object]]
    recharge_fields: tuple = ()
    problem: str = ""
    #: an older upstream: the list holds this account's prices, but its stock column is not the key count
    legacy: bool = False

    def needs_detail(self) -> bool:
        """Whether this account's price must be asked for (``item``)."""
        if self.races:
            return "category_factory" not in self.config
        return "factory_price" not in self.row


def listing(row: dict, category: str) -> Listing | None:
    code = str(row.get("code") or "").strip()
    if not code or len(code) > 64:
        return None
    config = config_of(row)
    way = int_of(row.get("delivery_way"))
    kind = "k" if way == 0 else "m"
    try:
        widgets = widgets_of(row.get("widget"))
        fields, problem = recharge_spec(widgets)
    except ProtocolError as exc:
        widgets, fields, problem = [], (), str(exc)
    if way not in (0, 1):
        problem = "the upstream delivers it in a way this connector does not know"
    elif kind == "k" and widgets:
        # acg-faka reads every input of a commodity when it is ordered; a kameng card product asks for none
        problem = "a card-key goods that asks the buyer for input: kameng card products cannot collect it"
    ptype = "card_key" if kind == "k" else ("direct_recharge" if fields else "manual")
    options = {}
    for name, choices in section(config, "sku").items():
        if isinstance(choices, dict) and choices:
            if not name or re.search(r"[\[\]]", name):
                problem = problem or "an option group whose name cannot be sent back"
            options[name] = {str(k): v for k, v in choices.items()}
    return Listing(code=code, name=str(row.get("name") or code)[:200], category=category, kind=kind, type=ptype,
                   description=str(row.get("description") or "")[:MAX_DESCRIPTION], row=row, config=config,
                   races=list(section(config, "category")), options=options,
                   recharge_fields=fields if kind == "m" else (), problem=problem, legacy="factory_price" in row)


def widgets_of(raw) -> list[dict]:
    """The commodity's inputs (``widget``: JSON text or a list), without the
    ``custom`` ones (a display container, not an input)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except ValueError:
            raise ProtocolError("its inputs (widget) are not JSON") from None
    if isinstance(raw, dict):
        raw = list(raw.values())
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(w, dict) for w in raw):
        raise ProtocolError("its inputs (widget) are not a list")
    return [w for w in raw if str(w.get("type") or "") != "custom"]


def recharge_spec(widgets: list[dict]) -> tuple[tuple, str]:
    """kameng recharge fields for the upstream's inputs, each checked by
    kameng's own rules; ``(fields, problem)``."""
    if len(widgets) > 10:
        return (), "more than 10 inputs"
    out = []
    for w in widgets:
        upstream = str(w.get("name") or "")
        name = field_name(upstream)
        if name is None:
            return (), "an input whose name cannot be sent back"
        regex = str(w.get("regex") or "").strip()
        # every input is required: acg-faka reads each one when the order is placed
        f = {"name": name, "label": str(w.get("cn") or upstream)[:50], "kind": "text", "required": True}
        choices = [c.strip() for c in re.split(r"[,\n]", str(w.get("dict") or "")) if c.strip()]
        if str(w.get("type") or "") in ("select", "radio") and choices and all(len(c) <= 50 for c in choices):
            f.update(kind="choice", choices=list(dict.fromkeys(choices))[:100])
        elif regex:
            f["pattern"] = _pattern(regex)
        try:
            out.append(recharge.parse_spec([f])[0])
        except recharge.RechargeError:
            f.pop("pattern", None)
            try:
                out.append(recharge.parse_spec([f])[0])
            except recharge.RechargeError:
                return (), "an input kameng cannot ask for"
    return tuple(out), ""


def _pattern(regex: str) -> str:
    """The upstream checks ``preg_match("/regex/")`` (a search); kameng a full
    match: an anchored ``^…$`` loses its anchors, anything else may match
    anywhere. PCRE-only syntax fails kameng's check and is left to the upstream."""
    if regex.startswith("^") and regex.endswith("$") and not regex.endswith("\\$"):
        return f"(?:{regex[1:-1]})"
    return f".*(?:{regex}).*"


def variants(item: Listing) -> list[tuple[str, dict]]:
    """``(race, options)`` for every SKU; ``[]`` when there are too many."""
    races = item.races or [""]
    groups = [[(name, choice) for choice in choices] for name, choices in item.options.items()]
    count = len(races)
    for g in groups:
        count *= len(g)
    if count > MAX_VARIANTS:
        return []
    return [(race, dict(combo)) for race in races for combo in itertools.product(*groups)]


def surcharge(config: dict, options: dict) -> Decimal:
    total = Decimal(0)
    groups = section(config, "sku")
    for name, choice in options.items():
        extra = decimal_of((groups.get(name) or {}).get(choice)) if isinstance(groups.get(name), dict) else None
        if extra is not None and extra > 0:
            total += extra
    return total


def unit_cost(item: Listing, race: str, options: dict, detail: dict | None = None) -> Decimal | None:
    """What one unit costs this account: its own price (from the list, or
    from ``detail``, the ``item`` answer), else the list price; plus the
    options' surcharges. ``None`` when the upstream names no price at all."""
    row = detail or item.row
    config = config_of(detail) if detail else item.config
    if race:
        base = decimal_of(section(config, "category_factory").get(race))
        if base is None:
            base = decimal_of(section(item.config, "category").get(race))
    else:
        base = decimal_of(row.get("factory_price")) if "factory_price" in row else None
        if base is None:
            base = decimal_of(item.row.get("price"))
    if base is None:
        return None
    return base + surcharge(config or item.config, options)


def sku_name(item: Listing, race: str, options: dict) -> str:
    parts = ([race] if race else []) + [str(v) for v in options.values()]
    return " / ".join(parts)[:200] or item.name


def sku_ref(item: Listing, race: str, options: dict) -> str | None:
    text = SkuRef(item.kind, item.code, race, options).text()
    return text if len(text) <= MAX_SKU_CODE else None
