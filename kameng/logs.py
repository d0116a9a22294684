"""Structured (JSON lines) logging with redaction of secrets.

Any ``extra`` field whose name looks like a secret is replaced, and values
that look like bearer tokens are masked, so a careless ``log.info(..., extra=
{"password": ...})`` still never writes the secret.
"""
from __future__ import annotations

import json
import logging
import re

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRET_NAME = re.compile(r"pass|secret|token|sign|key|card|cert|authorization|cookie", re.I)
_SAFE_NAMES = {"job_id", "kind", "attempt", "attempts", "attempt_no", "gateway", "plugin", "worker", "path",
               "method", "reason", "error", "status", "order_no", "sku"}
_TOKEN = re.compile(r"kmg_[A-Za-z0-9_-]{8,}")
#: a Telegram bot token inside an API URL (https://api.telegram.org/bot<id>:<secret>/…)
_BOT_TOKEN = re.compile(r"/bot[0-9]{3,}:[A-Za-z0-9_-]{20,}")


def scrub(text: str) -> str:
    return _BOT_TOKEN.sub("/bot[redacted]", _TOKEN.sub("kmg_[redacted]", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
               "logger": record.name, "msg": scrub(record.getMessage())}
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key not in _SAFE_NAMES and _SECRET_NAME.search(key):
                value = "[redacted]"
            out[key] = value if isinstance(value, (int, float, bool, type(None))) else scrub(str(value))[:500]
        if record.exc_info:
            # type and place, never the exception's text (it may quote a secret)
            etype, _exc, tb = record.exc_info
            frames = []
            while tb is not None:
                frames.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
                tb = tb.tb_next
            out["exc_type"] = getattr(etype, "__name__", str(etype))
            out["exc_where"] = frames[-5:]
        return json.dumps(out, ensure_ascii=False)
