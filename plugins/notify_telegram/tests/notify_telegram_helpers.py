"""Helpers for the Telegram plugin's tests."""
from __future__ import annotations

import datetime as dt

from kameng_notify_telegram.models import SendLog
from kameng_notify_telegram.sender import SEND_KIND
from notify_telegram_fake import CHAT_ID, TOKEN
from sqlalchemy import select, update

from kameng import jobs
from kameng.db import utcnow
from kameng.testing import app_request, run_jobs, set_plugin


def configure(registry, fake, enabled=True, **settings):
    set_plugin(registry, "notify_telegram", enabled=enabled,
               **{"bot_token": TOKEN, "chat_id": CHAT_ID, "api_base": fake.url, **settings})


def emit(registry, event, data):
    from kameng.notifications import emit as core_emit

    with app_request(registry) as req:
        core_emit(req.db, event, data)


def log_rows(registry) -> list[SendLog]:
    with app_request(registry) as req:
        rows = req.db.scalars(select(SendLog).order_by(SendLog.id)).all()
        req.db.expunge_all()
        return rows


def send_jobs(registry) -> list[jobs.Job]:
    with app_request(registry) as req:
        rows = req.db.scalars(select(jobs.Job).where(jobs.Job.kind == SEND_KIND).order_by(jobs.Job.id)).all()
        req.db.expunge_all()
        return rows


def all_jobs(registry) -> list[jobs.Job]:
    with app_request(registry) as req:
        rows = req.db.scalars(select(jobs.Job).order_by(jobs.Job.id)).all()
        req.db.expunge_all()
        return rows


def make_due(registry) -> None:
    """Move every queued retry to now (instead of waiting retry_after seconds)."""
    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.kind == SEND_KIND, jobs.Job.status == jobs.QUEUED)
                       .values(run_at=utcnow() - dt.timedelta(seconds=1)))


def run_all(registry) -> int:
    return run_jobs(registry)


ORDER_DATA = {"order_no": "20261201000000000001", "status": "failed", "product": "Steam <Gift> & Co",
              "sku": "STEAM10", "sku_name": "10 \"USD\"", "quantity": 2, "amount": "20.00", "currency": "CNY",
              "contact": "buyer@example.com", "user_id": None,
              "url": "http://localhost/orders/20261201000000000001?token=SECRET-ACCESS-TOKEN",
              "reason": "<script>alert(1)</script>"}
