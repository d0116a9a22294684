"""Telegram's errors: 429 is retried when retry_after says, 403/400 are
recorded and not retried, an unreachable API is retried with back-off and
then given up; the bot token never reaches a log line or a table."""
from __future__ import annotations

import datetime as dt
import logging

import notify_telegram_fake as tg
from kameng_notify_telegram.sender import MAX_ATTEMPTS
from notify_telegram_helpers import (
    ORDER_DATA,
    all_jobs,
    configure,
    emit,
    log_rows,
    make_due,
    run_all,
    send_jobs,
)

from kameng import jobs
from kameng.db import utcnow
from kameng.testing import free_port


def test_429_is_retried_after_retry_after(tg_registry, fake):
    configure(tg_registry, fake)
    fake.answer(tg.too_many(retry_after=120))
    emit(tg_registry, "order.failed", ORDER_DATA)
    before = utcnow()
    run_all(tg_registry)

    (row,) = log_rows(tg_registry)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert "retry after 120" in row.error
    (job,) = send_jobs(tg_registry)
    assert job.status == jobs.QUEUED
    # Telegram's retry_after is honoured, not the core's back-off
    assert before + dt.timedelta(seconds=115) <= job.run_at <= utcnow() + dt.timedelta(seconds=125)
    assert run_all(tg_registry) == 0  # not due yet
    assert len(fake.requests) == 1

    make_due(tg_registry)
    run_all(tg_registry)
    (row,) = log_rows(tg_registry)
    assert (row.status, row.attempts, row.error) == ("sent", 2, "")
    assert len(fake.messages) == 2 and fake.messages[0] == fake.messages[1]
    assert [j.status for j in send_jobs(tg_registry)] == [jobs.DONE]


def test_429_twice_then_sent(tg_registry, fake):
    configure(tg_registry, fake)
    fake.answer(tg.too_many(3), tg.too_many(5))
    emit(tg_registry, "stock.low", {"sku": "TG1", "name": "Card", "available": 0, "threshold": 3})
    run_all(tg_registry)
    for _ in range(2):
        make_due(tg_registry)
        run_all(tg_registry)
    (row,) = log_rows(tg_registry)
    assert (row.status, row.attempts) == ("sent", 3)
    assert len(fake.requests) == 3


def test_403_is_recorded_and_not_retried(tg_registry, fake):
    configure(tg_registry, fake)
    fake.answer(tg.forbidden())
    emit(tg_registry, "order.failed", ORDER_DATA)
    run_all(tg_registry)
    make_due(tg_registry)
    run_all(tg_registry)

    (row,) = log_rows(tg_registry)
    assert (row.status, row.attempts, row.order_no) == ("failed", 1, ORDER_DATA["order_no"])
    assert row.error == "Forbidden: bot was blocked by the user"
    assert len(fake.requests) == 1
    assert send_jobs(tg_registry) == []
    # the core's delivery job finished: it is not retried nor dead-lettered
    assert {j.status for j in all_jobs(tg_registry)} == {jobs.DONE}


def test_chat_not_found_is_not_retried(tg_registry, fake):
    configure(tg_registry, fake)
    fake.answer(tg.chat_not_found())
    emit(tg_registry, "order.failed", ORDER_DATA)
    run_all(tg_registry)
    (row,) = log_rows(tg_registry)
    assert (row.status, row.error) == ("failed", "Bad Request: chat not found")
    assert send_jobs(tg_registry) == []


def test_server_error_is_retried(tg_registry, fake):
    configure(tg_registry, fake)
    fake.answer(tg.server_error())
    emit(tg_registry, "order.failed", ORDER_DATA)
    run_all(tg_registry)
    (row,) = log_rows(tg_registry)
    assert (row.status, row.error) == ("retrying", "Bad Gateway")
    (job,) = send_jobs(tg_registry)
    assert job.run_at > utcnow() + dt.timedelta(seconds=20)  # back-off, 30 s for the first
    make_due(tg_registry)
    run_all(tg_registry)
    assert log_rows(tg_registry)[0].status == "sent"


def test_unreachable_api_gives_up_after_max_attempts(tg_registry, fake):
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configure(tg_registry, fake, api_base=dead_url)
    emit(tg_registry, "order.failed", ORDER_DATA)
    run_all(tg_registry)
    for _ in range(MAX_ATTEMPTS + 2):
        make_due(tg_registry)
        run_all(tg_registry)
    (row,) = log_rows(tg_registry)
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert row.error.startswith("cannot connect to")
    assert len(send_jobs(tg_registry)) == MAX_ATTEMPTS - 1
    assert {j.status for j in all_jobs(tg_registry)} == {jobs.DONE}


def test_bot_token_is_never_logged_nor_stored(tg_registry, fake, caplog):
    caplog.set_level(logging.DEBUG)
    configure(tg_registry, fake)
    fake.answer(tg.too_many(1), tg.forbidden())
    emit(tg_registry, "order.failed", ORDER_DATA)
    emit(tg_registry, "order.held", ORDER_DATA)
    emit(tg_registry, "stock.low", {"sku": "TG1", "name": "Card", "available": 0, "threshold": 3})
    run_all(tg_registry)
    make_due(tg_registry)
    run_all(tg_registry)
    # and a transport error, whose message names the URL
    configure(tg_registry, fake, api_base=f"http://127.0.0.1:{free_port()}")
    emit(tg_registry, "order.reported", {**ORDER_DATA, "message": "help"})
    run_all(tg_registry)

    secret_part = tg.TOKEN.split(":", 1)[1]
    http_calls = [r for r in caplog.records if r.getMessage() == "http_call"]
    assert len(http_calls) >= 4
    assert all("/bot***/sendMessage" in r.url for r in http_calls)
    for record in caplog.records:
        text = record.getMessage() + " " + repr(vars(record))
        assert secret_part not in text, record
    assert secret_part not in caplog.text
    rows = log_rows(tg_registry)
    assert {r.status for r in rows} == {"sent", "failed", "retrying"}
    for row in rows:
        assert secret_part not in f"{row.event} {row.order_no} {row.error}"
    for job in all_jobs(tg_registry):
        assert secret_part not in f"{job.payload} {job.last_error}"
    assert any("/bot***/sendMessage" in r.error for r in rows)  # the transport error, scrubbed
