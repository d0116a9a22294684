"""Private addresses (SSRF) outside test mode, and the secret kept out of
logs, jobs and the audit log."""
from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from kameng import httpclient, jobs
from kameng.audit import AuditEntry
from kameng.errors import APIError
from kameng.testing import app_request

from kameng_webhooks import service
from kameng_webhooks.models import Endpoint

from webhooks_helpers import attempts, create_via_admin, deliveries, emit, make_endpoint, run_all


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8080/hook", "https://"),
    ("http://example.com/hook", "https://"),
    ("https://127.0.0.1/hook", "private"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "private"),
    ("https://[::1]/hook", "private"),
    ("https://0.0.0.0/hook", "private"),
    ("https://[::ffff:127.0.0.1]/hook", "private"),
])
def test_private_and_plain_http_targets_are_refused_at_creation(monkeypatch, url, reason):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    with pytest.raises(APIError) as err:
        service.clean_url(url)
    assert err.value.status == 422 and err.value.extra["field"] == "url"
    assert reason in str(err.value.message)


def test_the_admin_form_refuses_a_private_target(wh, wh_admin, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    page = create_via_admin(wh_admin, "https://127.0.0.1/hook", status=422)
    assert "private or loopback" in page.text
    with app_request(wh) as req:
        assert req.db.scalar(select(Endpoint.id)) is None


def test_a_private_target_is_refused_again_at_send_time(wh, receiver, monkeypatch):
    """Saved while allowed (or its name now resolves to a private address):
    the request is never made."""
    r = receiver()
    make_endpoint(wh, r.url)
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    emit(wh, "order.paid", {"order_no": "K1"})
    run_all(wh, rounds=3)
    assert r.received == []
    (d,) = deliveries(wh)
    tried = attempts(wh, d.delivery_id)
    assert tried and all(a.status_code is None and not a.ok for a in tried)
    assert "https://" in tried[0].error or "private" in tried[0].error


def test_the_secret_is_in_no_log_job_or_audit_entry(wh, wh_admin, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    r = receiver(plan=[500, 500])
    page = create_via_admin(wh_admin, r.url, events=("*",))
    (secret,) = set(re.findall(r"whsec_[0-9a-f]{64}", page.text))
    emit(wh, "order.paid", {"order_no": "K2"})
    run_all(wh)  # 500, 500, 200: retries logged as warnings
    with app_request(wh) as req:
        endpoint = req.db.scalar(select(Endpoint))
    page = wh_admin.get(f"/-/webhooks/endpoints/{endpoint.id}")
    page.forms["reveal-form"].submit()
    page = wh_admin.get(f"/-/webhooks/endpoints/{endpoint.id}")
    page.forms["rotate-form"].submit()
    assert len(r.received) == 3
    assert any(rec.getMessage() == "webhook_attempt" for rec in caplog.records)
    signatures = [g.headers["x-kameng-webhook-signature"] for g in r.received]
    for rec in caplog.records:
        text = rec.getMessage() + " " + " ".join(f"{k}={v!r}" for k, v in vars(rec).items())
        assert "whsec_" not in text, rec
        assert secret not in text
        assert not any(sig[3:] in text for sig in signatures), rec  # no signatures either
    with app_request(wh) as req:
        blobs = [j.payload + j.last_error for j in req.db.scalars(select(jobs.Job))]
        blobs += [a.detail for a in req.db.scalars(select(AuditEntry))]
    assert blobs and not any("whsec_" in b for b in blobs)


def test_a_ciphertext_moved_to_another_endpoint_does_not_decrypt(wh):
    a, _sa = make_endpoint(wh, "https://127.0.0.1/a")
    b, _sb = make_endpoint(wh, "https://127.0.0.1/b")
    from kameng.crypto import DecryptionError

    with app_request(wh) as req:
        ea, eb = req.db.get(Endpoint, a), req.db.get(Endpoint, b)
        eb.secret = ea.secret
        with pytest.raises(DecryptionError):
            service.secret_of(req.registry["kameng.keyring"], eb)
        req.tm.abort()


def test_cleanup_reencrypts_secrets_under_an_old_key(wh):
    eid, secret = make_endpoint(wh, "https://127.0.0.1/a")
    ring = wh["kameng.keyring"]
    with app_request(wh) as req:
        assert ring.key_id_of(req.db.get(Endpoint, eid).secret) == ring.current_id
    # a ring whose first key is new: the endpoint's secret is under the old one
    from kameng.crypto import KeyRing, _b64d, new_key_line

    kid, raw = new_key_line().split(":")
    old = [(k, ring._raw[k]) for k in ring.key_ids]
    fresh = KeyRing([(kid, _b64d(raw)), *old], ring._fp_key)
    with app_request(wh) as req:
        assert service.reencrypt(req.db, fresh) == 1
        assert fresh.key_id_of(req.db.get(Endpoint, eid).secret) == kid
    with app_request(wh) as req:
        assert service.secret_of(fresh, req.db.get(Endpoint, eid)) == secret
        assert service.reencrypt(req.db, fresh) == 0
