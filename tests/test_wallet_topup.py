"""Balance top-ups through a gateway: credited once, by the notify path."""
import pytest

from kameng import accounts, wallet
from kameng.errors import APIError
from kameng.payments.models import PaymentAttempt
from kameng.testing import app_request
from kameng_sandbox.gateway import signed_fields
from orders_helpers import SECRET, enable_sandbox


@pytest.fixture
def member(registry):
    enable_sandbox(registry)
    with app_request(registry) as req:
        return accounts.create_user(req.db, "topup@example.com", "password-123456").id


def start(registry, user_id, amount=5000, gateway="sandbox"):
    with app_request(registry) as req:
        attempt, action = wallet.start_topup(req, req.db.get(accounts.User, user_id), amount, gateway)
        return attempt.attempt_no, action


def balance(registry, user_id):
    with app_request(registry) as req:
        return wallet.balance(req.db, user_id), len(wallet.entries(req.db, user_id))


def test_a_paid_topup_credits_once_however_often_it_is_notified(testapp, registry, member):
    no, action = start(registry, member)
    assert action.kind == "redirect"
    for _ in range(3):
        assert testapp.post("/pay/sandbox/notify", signed_fields(no, "50.00", "paid", SECRET)).text == "success"
    assert balance(registry, member) == (5000, 1)
    with app_request(registry) as req:
        entry = wallet.entries(req.db, member)[0]
        assert (entry.reason, entry.ref, entry.balance_after) == ("topup", f"topup:{no}", 5000)


def test_a_topup_notify_with_another_amount_credits_nothing(testapp, registry, member):
    no, _action = start(registry, member)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "500.00", "paid", SECRET), status=400)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "50.00", "failed", SECRET))
    assert balance(registry, member) == (0, 0)
    with app_request(registry) as req:
        assert req.db.query(PaymentAttempt).filter_by(attempt_no=no).one().status == "failed"


@pytest.mark.parametrize("amount,gateway,code", [(50, "sandbox", "invalid_amount"),
                                                 (10 ** 9, "sandbox", "invalid_amount"),
                                                 (5000, "nope", "payment_method_unavailable")])
def test_topups_outside_the_limits_are_refused(registry, member, amount, gateway, code):
    with pytest.raises(APIError) as exc:
        start(registry, member, amount, gateway)
    assert exc.value.code == code
