"""Reading an acg-faka upstream's catalogue into kameng goods: the calls
one goods needs besides the list (this account's prices from ``item`` on
newer upstreams, the stock of each race or option), and the SKUs that come
out of it."""
from __future__ import annotations

import logging
from decimal import Decimal

from kameng.types import UpstreamGoods, UpstreamSku

from kameng_acgfaka import goods, protocol
from kameng_acgfaka.protocol import UpstreamHTTPError

log = logging.getLogger(__name__)


class Catalogue:
    """One reading of the catalogue. ``post(path, params)`` is the
    connector's signed call; which stock call the upstream has is learnt on
    the way (``stock`` on newer versions, else ``inventory``)."""

    def __init__(self, post):
        self.post = post
        self.stock_path: str | None = protocol.PATH_STOCK

    def read(self, item: goods.Listing) -> UpstreamGoods | None:
        combos = goods.variants(item)
        if not combos:
            log.warning("acgfaka_goods_skipped", extra={"goods": item.code, "reason": "too many options"})
            return None
        detail = self.detail(item.code) if not item.problem and item.needs_detail() else None
        skus = []
        for race, options in combos:
            code = goods.sku_ref(item, race, options)
            if code is None:
                log.warning("acgfaka_sku_skipped", extra={"goods": item.code, "reason": "code too long"})
                continue
            cost = goods.unit_cost(item, race, options, detail)
            available = not item.problem and cost is not None
            stock = self.stock(item, race, options) if available else None
            skus.append(UpstreamSku(code=code, name=goods.sku_name(item, race, options), cost=cost or Decimal(0),
                                    stock=stock, available=available))
        if not skus:
            return None
        return UpstreamGoods(id=item.code, name=item.name, type=item.type, skus=tuple(skus), category=item.category,
                             description=item.description, recharge_fields=item.recharge_fields)

    def detail(self, code: str) -> dict | None:
        """``/shared/commodity/item``: this account's prices where the list
        leaves them out (newer upstreams). Older upstreams read ``sharedCode``,
        newer ones ``code``: both are sent."""
        try:
            data = self.post(protocol.PATH_ITEM, {"code": code, "sharedCode": code})
        except protocol.Refusal:
            return None
        except UpstreamHTTPError:
            return None
        return goods.find_row(data, code)

    def stock(self, item: goods.Listing, race: str, options: dict) -> int | None:
        """How many the upstream can deliver now; ``None`` when it cannot tell."""
        if item.kind == "m":  # delivered by hand: the commodity's own stock column
            count = protocol.int_of(item.row.get("stock"))
            return max(count, 0) if count is not None else None
        if not item.legacy:  # a newer list counts the unsold keys of the commodity
            total = protocol.int_of(item.row.get("stock"))
            if total is not None and (total <= 0 or (not item.races and not item.options)):
                return max(total, 0)
        return self.count(item.code, race, options)

    def count(self, code: str, race: str, options: dict) -> int | None:
        """``/shared/commodity/stock`` (newer), else ``inventory`` (older,
        without options). A refusal means none for us."""
        while self.stock_path is not None:
            path = self.stock_path
            params = ({"code": code, "race": race, "sku": options or None} if path == protocol.PATH_STOCK
                      else {"sharedCode": code, "race": race})
            try:
                data = self.post(path, params)
            except protocol.Refusal:
                return 0
            except UpstreamHTTPError:
                self.stock_path = protocol.PATH_INVENTORY if path == protocol.PATH_STOCK else None
                continue
            key = "stock" if path == protocol.PATH_STOCK else "count"
            count = protocol.int_of(data.get(key)) if isinstance(data, dict) else None
            return max(count, 0) if count is not None else None
        return None
