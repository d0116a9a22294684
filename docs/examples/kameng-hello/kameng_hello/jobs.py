"""The plugin's background job."""
from __future__ import annotations

from sqlalchemy import select

from kameng_hello.models import HelloVisit


def record_visit(request, payload):
    """Job ``hello.record_visit``: write one visit row.

    Runs in a transaction the worker commits. It must be idempotent: a job
    whose worker died is run again, so the row is keyed by ``visit_id``
    (chosen when the job was enqueued) and a second run changes nothing.
    """
    visit_id = str(payload["visit_id"])[:64]
    if request.db.scalar(select(HelloVisit.id).where(HelloVisit.visit_id == visit_id)) is not None:
        return
    request.db.add(HelloVisit(visit_id=visit_id, note=str(payload.get("note", ""))[:200]))
