"""The shelf: categories (a tree), products and their SKUs, prices in minor units."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from kameng.db import Base, UTCDateTime, utcnow

PRODUCT_TYPES = ("card_key", "direct_recharge", "manual")


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    icon: Mapped[str] = mapped_column(String(255), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)
    visible: Mapped[bool] = mapped_column(Boolean, default=True)

    products: Mapped[list["Product"]] = relationship(back_populates="category", order_by="Product.sort")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"),
                                                    nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20), default="card_key")
    description: Mapped[str] = mapped_column(Text, default="")  # sanitised HTML
    instructions: Mapped[str] = mapped_column(Text, default="")  # shown with the delivered keys
    images: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of URLs
    tags: Mapped[str] = mapped_column(String(255), default="")  # comma separated
    recharge_fields: Mapped[str] = mapped_column(Text, default="[]")  # JSON, see kameng.catalog.recharge
    hot: Mapped[bool] = mapped_column(Boolean, default=False)
    recommended: Mapped[bool] = mapped_column(Boolean, default=False)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    visible: Mapped[bool] = mapped_column(Boolean, default=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    category: Mapped[Category | None] = relationship(back_populates="products")
    skus: Mapped[list["Sku"]] = relationship(back_populates="product", order_by="Sku.sort")


class Sku(Base):
    __tablename__ = "skus"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    attributes: Mapped[str] = mapped_column(Text, default="{}")  # JSON: region, server, denomination, ...
    price: Mapped[int] = mapped_column(Integer)  # minor units
    cost_price: Mapped[int] = mapped_column(Integer, default=0)
    min_quantity: Mapped[int] = mapped_column(Integer, default=1)
    max_quantity: Mapped[int] = mapped_column(Integer, default=100)
    # card_key SKUs: available keys, kept in the same transaction as the keys;
    # other SKUs: what the merchant sets, NULL for unlimited
    stock: Mapped[int | None] = mapped_column(Integer, nullable=True)  # no default: NULL means unlimited
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=0)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    visible: Mapped[bool] = mapped_column(Boolean, default=True)

    product: Mapped[Product] = relationship(back_populates="skus")


class SkuPrice(Base):
    """A price for one member level or agent tier (``kind`` ``level`` or
    ``tier``, ``ref`` the level's or tier's code)."""

    __tablename__ = "sku_prices"
    __table_args__ = (UniqueConstraint("sku_id", "kind", "ref", name="uq_sku_prices_sku_kind_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    ref: Mapped[str] = mapped_column(String(64))
    price: Mapped[int] = mapped_column(Integer)


def visible_catalog(db) -> list[Category]:
    """Visible categories with their visible products and SKUs, in two queries."""
    cats = db.scalars(
        select(Category).where(Category.visible.is_(True)).order_by(Category.sort, Category.id)
        .options(selectinload(Category.products).selectinload(Product.skus))).all()
    return [c for c in cats if any(p.visible for p in c.products)]


DEMO = [
    ("游戏点卡", [
        ("Steam 钱包充值码", "card_key", "Steam 官方钱包充值码，购买后自动发货。", [
            ("STEAM-CNY-50", "50 元", 5000), ("STEAM-CNY-100", "100 元", 10000)]),
        ("腾讯 Q 币卡", "card_key", "Q 币充值卡，卡号卡密自动发放。", [
            ("QB-10", "10 Q币", 1000), ("QB-30", "30 Q币", 2950)]),
    ]),
    ("话费充值", [
        ("中国移动话费直充", "direct_recharge", "输入手机号，几分钟内到账。", [
            ("CMCC-50", "50 元", 4980), ("CMCC-100", "100 元", 9950)]),
    ]),
    ("视频会员", [
        ("爱奇艺黄金会员月卡", "card_key", "激活码，购买后在官网兑换。", [("IQIYI-M1", "1 个月", 1990)]),
    ]),
]


def load_demo(db) -> int:
    """A small demo catalog (idempotent: SKUs that exist are left alone)."""
    added = 0
    for ci, (cat_name, products) in enumerate(DEMO):
        cat = db.scalar(select(Category).where(Category.name == cat_name, Category.parent_id.is_(None)))
        if cat is None:
            cat = Category(name=cat_name, sort=ci)
            db.add(cat)
            db.flush()
        for pi, (pname, ptype, desc, skus) in enumerate(products):
            product = db.scalar(select(Product).where(Product.name == pname))
            if product is None:
                product = Product(category_id=cat.id, name=pname, type=ptype, description=desc, sort=pi)
                db.add(product)
                db.flush()
            for si, (code, sname, price) in enumerate(skus):
                if db.scalar(select(Sku.id).where(Sku.code == code)) is None:
                    db.add(Sku(product_id=product.id, code=code, name=sname, price=price, sort=si,
                               stock=0 if ptype == "card_key" else None))
                    added += 1
    db.flush()
    return added
