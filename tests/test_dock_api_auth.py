"""The docking API's request signature (API.md "Docking API"): the
known-answer vectors, and every way a request is refused."""
import time

import pytest
from dockapi_helpers import make_account, signed
from sqlalchemy import func, select

from kameng.db import utcnow
from kameng.dock import auth
from kameng.dock.models import DockKey, DockNonce
from kameng.testing import app_request, run_jobs

SECRET = "dks_test-secret-0123456789"
BODY = b'{"sku":"CARD10","quantity":1,"out_order_no":"A-1"}'


# -- pure functions -----------------------------------------------------------------------------


def test_known_answer_vectors():
    # BODY='{"sku":"CARD10","quantity":1,"out_order_no":"A-1"}'
    # H=$(printf '%s' "$BODY" | openssl dgst -sha256 -r | cut -d' ' -f1)
    # printf 'POST\n/api/v1/dock/orders\na=1&b=2\n%s\n1767225600\nn0nce-0001-abcdef' "$H" \
    #   | openssl dgst -sha256 -hmac 'dks_test-secret-0123456789'
    assert auth.body_sha256(BODY) == "a4fa5f043d2e8eb3b1cb88d95b430633ba8d3e6a2794f2a29b6e9802fa82272b"
    assert auth.signature(SECRET, "POST", "/api/v1/dock/orders", "b=2&a=1", BODY, 1767225600,
                          "n0nce-0001-abcdef") == "1c0332a6341d82a891578e689950a35bd5558d071d33dd3909feb075deb3522f"
    # printf 'GET\n/api/v1/dock/goods\n\n%s\n1767225600\nn0nce-0002-abcdef' \
    #   "$(printf '' | openssl dgst -sha256 -r | cut -d' ' -f1)" \
    #   | openssl dgst -sha256 -hmac 'dks_test-secret-0123456789'
    assert auth.signature(SECRET, "get", "/api/v1/dock/goods", "", b"", "1767225600",
                          "n0nce-0002-abcdef") == "4e8f2313ef42d60b0fd82acbea6bdde09ec2ff4ab887d3431b7358b33e234bb4"


def test_sign_request_gives_the_four_headers():
    h = auth.sign_request("dk_x", SECRET, "POST", "https://up.example/api/v1/dock/orders?b=2&a=1", BODY,
                          timestamp=1767225600, nonce="n0nce-0001-abcdef")
    assert h == {"X-Kameng-Key": "dk_x", "X-Kameng-Timestamp": "1767225600", "X-Kameng-Nonce": "n0nce-0001-abcdef",
                 "X-Kameng-Signature": "1c0332a6341d82a891578e689950a35bd5558d071d33dd3909feb075deb3522f"}
    fresh = auth.sign_request("dk_x", SECRET, "GET", "/api/v1/dock/goods")
    assert abs(int(fresh["X-Kameng-Timestamp"]) - time.time()) < 5 and len(fresh["X-Kameng-Nonce"]) == 32


def test_sorted_query_keeps_pairs_raw():
    assert auth.sorted_query("") == ""
    assert auth.sorted_query("b=2&a=1&a=0") == "a=0&a=1&b=2"
    assert auth.sorted_query("q=a%20b&&x=") == "q=a%20b&x="  # not decoded; empty parts dropped


def test_check_signature():
    now = 1767225600
    args = ("POST", "/api/v1/dock/orders?a=1&b=2", BODY, str(now), "n0nce-0001-abcdef")
    good = "1c0332a6341d82a891578e689950a35bd5558d071d33dd3909feb075deb3522f"
    auth.check_signature(SECRET, *args, good, now=now)
    auth.check_signature(SECRET, *args, good.upper(), now=now + 300)
    cases = [(SECRET, good, now + 301, "stale_timestamp"), (SECRET, good, now - 301, "stale_timestamp"),
             ("another-secret", good, now, "invalid_signature"), (SECRET, "0" * 64, now, "invalid_signature"),
             (SECRET, good[:-1], now, "invalid_signature"), (SECRET, ["x"], now, "invalid_signature")]
    for secret, sig, at, code in cases:
        with pytest.raises(auth.SignatureError) as err:
            auth.check_signature(secret, *args, sig, now=at)
        assert err.value.code == code
    with pytest.raises(auth.SignatureError) as err:
        auth.check_signature(SECRET, "POST", "/api/v1/dock/orders", BODY, "1e9", "n0nce-0001-abcdef", good)
    assert err.value.code == "invalid_timestamp"
    with pytest.raises(auth.SignatureError) as err:
        auth.check_signature(SECRET, "POST", "/x", BODY, str(now), "short", good, now=now)
    assert err.value.code == "invalid_nonce"


def test_ip_allowlist_matching():
    assert auth.ip_allowed("", "203.0.113.9")
    assert auth.ip_allowed("203.0.113.0/24\n# office\n2001:db8::/32", "203.0.113.9")
    assert auth.ip_allowed("203.0.113.0/24", "::ffff:203.0.113.9")
    assert auth.ip_allowed("2001:db8::/32", "2001:db8::1")
    assert not auth.ip_allowed("203.0.113.0/24", "198.51.100.1")
    assert not auth.ip_allowed("203.0.113.7", "")
    with pytest.raises(ValueError):
        auth.parse_allowlist("203.0.113.0/24\nnot-an-ip")


# -- the server refuses ------------------------------------------------------------------------


@pytest.fixture
def creds(registry):
    return make_account(registry, balance=10000)


def _error(resp):
    assert set(resp.json) == {"error"} and set(resp.json["error"]) >= {"code", "message"}
    assert resp.content_type == "application/json"
    return resp.json["error"]["code"]


def test_a_signed_request_passes(testapp, creds):
    assert signed(testapp, creds, "GET", "/api/v1/dock/balance").json == {"balance": "100.00", "currency": "CNY"}


@pytest.mark.parametrize("header", ["X-Kameng-Key", "X-Kameng-Timestamp", "X-Kameng-Nonce", "X-Kameng-Signature"])
def test_a_missing_header_is_refused(testapp, creds, header):
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", headers={header: None}, status=401)
    assert _error(resp) == "missing_credentials"


def test_no_credentials_at_all(testapp, creds):
    assert _error(testapp.get("/api/v1/dock/goods", status=401)) == "missing_credentials"
    assert _error(testapp.post_json("/api/v1/dock/orders", {}, status=401)) == "missing_credentials"


def test_a_bad_signature_is_refused(testapp, creds):
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", headers={"X-Kameng-Signature": "ab" * 32},
                  status=401)
    assert _error(resp) == "invalid_signature"
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", headers={"X-Kameng-Signature": "not hex"},
                  status=401)
    assert _error(resp) == "invalid_signature"
    other = (creds[0], creds[1], "dks_not-the-secret")
    assert _error(signed(testapp, other, "GET", "/api/v1/dock/balance", status=401)) == "invalid_signature"


@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400])
def test_stale_and_future_timestamps_are_refused(testapp, creds, offset):
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", timestamp=int(time.time()) + offset, status=401)
    assert _error(resp) == "stale_timestamp"


def test_a_timestamp_within_the_window_passes(testapp, creds):
    signed(testapp, creds, "GET", "/api/v1/dock/balance", timestamp=int(time.time()) - 200)
    signed(testapp, creds, "GET", "/api/v1/dock/balance", timestamp=int(time.time()) + 200)


def test_a_malformed_timestamp_or_nonce_is_refused(testapp, creds):
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", headers={"X-Kameng-Timestamp": "12.5"}, status=401)
    assert _error(resp) == "invalid_timestamp"
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="bad nonce!", status=401)
    assert _error(resp) == "invalid_nonce"


def test_a_reused_nonce_is_refused(testapp, creds):
    signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="nonce-0000-0001")
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="nonce-0000-0001", status=401)
    assert _error(resp) == "nonce_reused"
    # also on another path and method: a nonce is the key's, once
    resp = signed(testapp, creds, "GET", "/api/v1/dock/goods", nonce="nonce-0000-0001", status=401)
    assert _error(resp) == "nonce_reused"


def test_nonces_belong_to_their_key(testapp, registry, creds):
    other = make_account(registry, email="other@example.com")
    signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="nonce-0000-0002")
    signed(testapp, other, "GET", "/api/v1/dock/balance", nonce="nonce-0000-0002")


def test_a_refused_request_does_not_use_up_its_nonce(testapp, creds):
    signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="nonce-0000-0003",
           headers={"X-Kameng-Signature": "00" * 32}, status=401)
    signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="nonce-0000-0003")


def test_unknown_and_revoked_keys_are_refused(testapp, registry, creds):
    unknown = ("0", "dk_" + "a" * 24, creds[2])
    assert _error(signed(testapp, unknown, "GET", "/api/v1/dock/balance", status=401)) == "invalid_key"
    assert _error(signed(testapp, ("0", "nope", creds[2]), "GET", "/api/v1/dock/balance", status=401)) == "invalid_key"
    with app_request(registry) as req:
        req.db.scalar(select(DockKey).where(DockKey.key_id == creds[1])).revoked_at = utcnow()
    assert _error(signed(testapp, creds, "GET", "/api/v1/dock/balance", status=401)) == "invalid_key"


def test_a_disabled_account_cannot_use_its_keys(testapp, registry, creds):
    from kameng.accounts import User

    with app_request(registry) as req:
        req.db.get(User, creds[0]).is_active = False
    assert _error(signed(testapp, creds, "GET", "/api/v1/dock/balance", status=401)) == "invalid_key"


def test_ip_allow_list(testapp, registry):
    creds = make_account(registry, ip_allowlist="203.0.113.0/24\n198.51.100.7")
    signed(testapp, creds, "GET", "/api/v1/dock/balance", remote="203.0.113.50")
    signed(testapp, creds, "GET", "/api/v1/dock/balance", remote="198.51.100.7")
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", remote="198.51.100.8", status=403)
    assert _error(resp) == "ip_not_allowed"
    # X-Forwarded-For is the client's to write: it does not open the list
    resp = signed(testapp, creds, "GET", "/api/v1/dock/balance", remote="192.0.2.1", status=403,
                  headers={"X-Forwarded-For": "203.0.113.50"})
    assert _error(resp) == "ip_not_allowed"


def test_a_changed_body_query_path_or_method_breaks_the_signature(testapp, creds):
    body = {"sku": "CARD10", "quantity": 1, "out_order_no": "A-1"}
    resp = signed(testapp, creds, "POST", "/api/v1/dock/orders", body, sign_body=b'{"sku":"CARD10"}', status=401)
    assert _error(resp) == "invalid_signature"
    signed(testapp, creds, "GET", "/api/v1/dock/goods?a=2")  # signed as sent: fine
    h = auth.sign_request(creds[1], creds[2], "GET", "/api/v1/dock/goods?a=1")
    assert _error(testapp.get("/api/v1/dock/goods?a=2", headers=h, status=401)) == "invalid_signature"
    h = auth.sign_request(creds[1], creds[2], "GET", "/api/v1/dock/goods")
    assert _error(testapp.get("/api/v1/dock/balance", headers=h, status=401)) == "invalid_signature"
    h = auth.sign_request(creds[1], creds[2], "GET", "/api/v1/dock/orders/A-1")
    assert _error(testapp.post("/api/v1/dock/orders", b"", headers=h, status=401)) == "invalid_signature"


def test_query_pairs_may_be_sent_in_any_order(testapp, creds):
    h = auth.sign_request(creds[1], creds[2], "GET", "/api/v1/dock/goods?b=2&a=1")
    testapp.get("/api/v1/dock/goods?a=1&b=2", headers=h)


def test_last_used_is_recorded(testapp, registry, creds):
    signed(testapp, creds, "GET", "/api/v1/dock/balance")
    with app_request(registry) as req:
        assert req.db.scalar(select(DockKey.last_used_at).where(DockKey.key_id == creds[1])) is not None


def test_old_nonces_are_pruned(testapp, registry, creds):
    import datetime as dt

    signed(testapp, creds, "GET", "/api/v1/dock/balance", nonce="nonce-recent-01")
    with app_request(registry) as req:
        req.db.add(DockNonce(key_id=creds[1], nonce="nonce-old-0001", seen_at=utcnow() - dt.timedelta(minutes=11)))
        from kameng import jobs

        jobs.enqueue(req.db, "kameng.dock.prune_nonces", {})
    run_jobs(registry)
    with app_request(registry) as req:
        left = set(req.db.scalars(select(DockNonce.nonce)))
        assert left == {"nonce-recent-01"}
        assert req.db.scalar(select(func.count()).select_from(DockNonce)) == 1


def test_the_prune_job_is_scheduled(registry):
    assert any(sj.kind == "kameng.dock.prune_nonces" and sj.every_seconds <= 600
               for _owner, sj in registry["kameng.scheduled_jobs"])
    owner, _handler = registry["kameng.job_handlers"]["kameng.dock.prune_nonces"]
    assert owner is None
