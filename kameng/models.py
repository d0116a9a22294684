"""Imports every core model so that ``Base.metadata`` is complete (Alembic)."""
from kameng.accounts import ApiToken, PasswordReset, User  # noqa: F401
from kameng.audit import AuditEntry  # noqa: F401
from kameng.catalog.models import Category, Product, Sku, SkuPrice  # noqa: F401
from kameng.db import Base, metadata  # noqa: F401
from kameng.dock.models import DockKey, DockNonce, DockOrder  # noqa: F401
from kameng.inventory.models import CardKey, KeyImport  # noqa: F401
from kameng.jobs import Job  # noqa: F401
from kameng.levels import MemberLevel  # noqa: F401
from kameng.orders.models import Order, OrderEvent, Refund  # noqa: F401
from kameng.payments.models import PaymentAttempt, PaymentNotice  # noqa: F401
from kameng.pluginhost import PluginState  # noqa: F401
from kameng.ratelimit import RateCounter  # noqa: F401
from kameng.shop import ShopSetting  # noqa: F401
from kameng.suppliers.models import SkuUpstream, SupplierConnection, SyncLog, UpstreamOrder  # noqa: F401
from kameng.wallet import LedgerEntry  # noqa: F401
