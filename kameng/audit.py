"""An append-only audit log of admin actions (who changed which plugin or
setting, never the secret values themselves)."""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")


def record(db, actor: str, action: str, target: str = "", **detail) -> None:
    db.add(AuditEntry(actor=actor, action=action, target=target,
                      detail=json.dumps(detail, ensure_ascii=False, default=str)))


def actor_of(request) -> str:
    if request.environ.get("kameng.actor"):
        return request.environ["kameng.actor"]
    user = getattr(request, "user", None)
    return user.email if user is not None else "anonymous"
