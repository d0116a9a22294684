"""The scheduled job ``antifraud.prune``: drops risk-log rows older than
``log_retention_days`` and expired captcha challenges. Safe to run any
number of times."""
from __future__ import annotations

import logging

from kameng_antifraud import backends, config, risklog

log = logging.getLogger(__name__)


def prune(request, payload):
    cfg = config.read(request)
    rows = risklog.prune(request.db, cfg.log_retention_days)
    challenges = backends.prune_captchas(request.db)
    log.info("antifraud_pruned", extra={"log_rows": rows, "captchas": challenges})
