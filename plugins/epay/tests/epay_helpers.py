"""Helpers shared by the epay tests (the fixtures are in conftest.py)."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import update

from kameng import accounts, jobs
from kameng.db import utcnow
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, set_plugin
from kameng_epay.testing import EpayDriver

#: (version, sign_mode) of every flavour the plugin speaks
FLAVOURS = [("1", "plain"), ("1", "amp_key"), ("2", "plain")]
FLAVOUR_IDS = ["v1", "v1-amp_key", "v2"]


@dataclass
class Shop:
    url: str
    registry: object
    app: object

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=20, **kw)


def enable_epay(registry, fake, channels="alipay,wxpay,qqpay", **overrides):
    settings = EpayDriver(fake.version, fake.sign_mode, api_url=fake.url).settings()
    settings.update(channels=channels, **overrides)
    set_plugin(registry, "epay", enabled=True, **settings)


def admin_token(registry) -> dict:
    with app_request(registry) as req:
        user = accounts.find_user(req.db, ADMIN_EMAIL) or accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD,
                                                                                role="admin")
        token = accounts.create_token(req.db, user, "epay-tests")
    return {"Authorization": f"Bearer {token}"}


def make_due(registry) -> None:
    """Every queued job due now (skip the back-off between retries)."""
    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.status == jobs.QUEUED).values(run_at=utcnow()))


