"""Withdrawals: at least the minimum, at most the balance, the fee rounded
up to the fen; the amount held at once so it cannot be asked for twice,
also by concurrent requests; each admin decision once."""
import threading

import pytest
import webtest
from distribution_helpers import (
    ADMIN,
    PASSWORD,
    balance,
    buy,
    chain,
    check_ledgers,
    enable,
    wallet_balance,
)
from sqlalchemy import func, select

from kameng import wallet
from kameng.accounts import User
from kameng.audit import AuditEntry
from kameng.errors import APIError
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login

from kameng_distribution import service
from kameng_distribution.config import Config
from kameng_distribution.models import Withdrawal


@pytest.fixture
def earner(dreg, web, shop):
    """An account with 30.00 of commissions (three orders of 100.00 by its referral)."""
    _top, _l2, l1, buyer = chain(dreg, 4, balance=300_00)
    for _ in range(3):
        buy(web, dreg, buyer)
    assert balance(dreg, l1) == 3000
    return l1


def ask(registry, user_id, amount, payee=""):
    with app_request(registry) as req:
        w = service.request_withdrawal(req, req.db.get(User, user_id), amount, payee)
        return w.withdrawal_no, w.amount, w.fee, w.net


def decide(registry, no, action, note=""):
    with app_request(registry, actor=ADMIN) as req:
        w = service.decide(req, no, action, note, ADMIN)
        return w.status


def test_the_fee_is_a_percentage_rounded_up_to_the_fen():
    cfg = Config(levels=1, rates=(0, 0, 0), min_withdrawal=0, fee=150)  # 1.5 %
    assert [cfg.fee_of(a) for a in (1000, 1001, 1, 0, 6667)] == [15, 16, 1, 0, 101]
    assert Config(levels=1, rates=(0, 0, 0), min_withdrawal=0, fee=0).fee_of(12345) == 0


def test_minimum_balance_and_fee(dreg, earner):
    with pytest.raises(APIError) as exc:
        ask(dreg, earner, 999)  # the minimum is 10.00
    assert exc.value.code == "below_minimum"
    with pytest.raises(APIError) as exc:
        ask(dreg, earner, 3001)
    assert exc.value.code == "insufficient_balance"
    no, amount, fee, net = ask(dreg, earner, 1234, payee="alipay: alice@example.com")
    assert (amount, fee, net) == (1234, 13, 1221)  # 1 % of 12.34 = 0.1234, rounded up to 0.13
    assert balance(dreg, earner) == 3000 - 1234
    with pytest.raises(APIError) as exc:  # the held amount cannot be asked for again
        ask(dreg, earner, 1800)
    assert exc.value.code == "insufficient_balance"
    check_ledgers(dreg)


def test_approve_to_the_shop_balance_pays_the_net_amount_once(dreg, earner):
    no, _amount, _fee, net = ask(dreg, earner, 2000)
    before = wallet_balance(dreg, earner)
    assert decide(dreg, no, "approve_balance") == "paid_balance"
    assert wallet_balance(dreg, earner) == before + net == before + 1980
    with app_request(dreg) as req:
        entry = wallet.existing(req.db, f"distribution:{no}")
        assert (entry.amount, entry.reason, entry.actor) == (1980, "commission", ADMIN)
    for action in ("approve_balance", "paid_manual", "reject"):
        with pytest.raises(APIError) as exc:
            decide(dreg, no, action, "again")
        assert exc.value.code == "already_decided"
    assert wallet_balance(dreg, earner) == before + 1980 and balance(dreg, earner) == 1000
    with app_request(dreg) as req:
        assert req.db.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "distribution.withdrawal.approve_balance")) == 1
    check_ledgers(dreg)


def test_paid_by_hand_needs_a_note_and_moves_no_balance(dreg, earner):
    no, *_ = ask(dreg, earner, 1500)
    before = wallet_balance(dreg, earner)
    with pytest.raises(APIError) as exc:
        decide(dreg, no, "paid_manual", "  ")
    assert exc.value.code == "note_required"
    assert decide(dreg, no, "paid_manual", "Alipay 2026120112345") == "paid_manual"
    with app_request(dreg) as req:
        w = req.db.scalar(select(Withdrawal).where(Withdrawal.withdrawal_no == no))
        assert (w.note, w.decided_by) == ("Alipay 2026120112345", ADMIN)
    assert wallet_balance(dreg, earner) == before and balance(dreg, earner) == 1500
    check_ledgers(dreg)


def test_reject_needs_a_reason_and_returns_the_whole_amount(dreg, earner):
    no, *_ = ask(dreg, earner, 3000)
    assert balance(dreg, earner) == 0
    with pytest.raises(APIError) as exc:
        decide(dreg, no, "reject", "")
    assert exc.value.code == "reason_required"
    assert decide(dreg, no, "reject", "the account name does not match") == "rejected"
    assert balance(dreg, earner) == 3000
    with pytest.raises(APIError):
        decide(dreg, no, "reject", "twice")
    assert balance(dreg, earner) == 3000
    check_ledgers(dreg)


def _session(app, email, password):
    client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(client, email, password).status_int == 302
    return client


def test_concurrent_requests_for_the_same_money_give_one_withdrawal(dreg, dist_app, earner):
    """Five requests of 20.00 against 30.00, at once from five threads (one
    signed-in session): exactly one is taken."""
    with app_request(dreg) as req:
        email = req.db.get(User, earner).email
    first = _session(dist_app, email, PASSWORD)
    token = first.get("/-/distribution/").forms["withdraw-form"]["csrf_token"].value
    clients = []
    for _ in range(5):
        client = webtest.TestApp(dist_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        client.set_cookie("kameng_session", first.cookies["kameng_session"])
        clients.append(client)
    barrier, results = threading.Barrier(5), []

    def run(client):
        barrier.wait()
        resp = client.post("/-/distribution/withdraw", {"csrf_token": token, "amount": "20.00"}, expect_errors=True)
        results.append(resp.status_int)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [303, 409, 409, 409, 409]
    with app_request(dreg) as req:
        assert req.db.scalar(select(func.count()).select_from(Withdrawal)) == 1
    assert balance(dreg, earner) == 1000
    check_ledgers(dreg)


def test_the_withdraw_form_and_the_admin_queue(dreg, dist_app, earner):
    with app_request(dreg) as req:
        from kameng import accounts

        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
        email = req.db.get(User, earner).email
    buyer = _session(dist_app, email, PASSWORD)
    page = buyer.get("/-/distribution/")
    form = page.forms["withdraw-form"]
    form["amount"] = "5.00"
    resp = form.submit(expect_errors=True)
    assert resp.status_int == 422 and "The smallest withdrawal is 10.00" in resp.text
    form = resp.forms["withdraw-form"]
    form["amount"], form["payee"] = "abc", ""
    assert form.submit(expect_errors=True).status_int == 422
    form["amount"], form["payee"] = "25.00", "Alipay <b>alice</b>"
    resp = form.submit()
    assert resp.status_int == 303
    page = resp.follow()
    assert "will be paid once the shop approves it" in page.text
    no = page.html.select("#withdrawals tbody tr td")[0].text
    assert "24.75" in page.text  # 25.00 less the 1 % fee
    # without the CSRF token nothing happens
    buyer.post("/-/distribution/withdraw", {"amount": "10.00"}, status=400)

    admin = _session(dist_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    queue = admin.get("/-/distribution/admin/withdrawals")
    assert no in queue.text and "Alipay &lt;b&gt;alice&lt;/b&gt;" in queue.text
    forms = [f for f in queue.forms.values() if f.action.endswith(f"/{no}/reject")]
    forms[0]["note"] = "please give your real name"
    done = forms[0].submit().follow()
    assert "rejected" in done.text
    assert balance(dreg, earner) == 3000
    # a decided withdrawal is not decided again; an unknown one or action is a 404
    token = forms[0]["csrf_token"].value
    again = admin.post(f"/-/distribution/admin/withdrawals/{no}/approve_balance", {"csrf_token": token}).follow()
    assert "already been decided" in again.text
    admin.post("/-/distribution/admin/withdrawals/W0000/approve_balance", {"csrf_token": token}, status=404)
    admin.post(f"/-/distribution/admin/withdrawals/{no}/delete", {"csrf_token": token}, status=404)
    # the buyer may not decide
    buyer.post(f"/-/distribution/admin/withdrawals/{no}/approve_balance",
               {"csrf_token": page.forms["withdraw-form"]["csrf_token"].value}, status=403)
    assert balance(dreg, earner) == 3000
    check_ledgers(dreg)


def test_a_negative_balance_blocks_withdrawals_until_it_is_positive(dreg, web, shop):
    enable(dreg, min_withdrawal="1.00")
    _top, _l2, l1, buyer = chain(dreg, 4, balance=300_00)
    made = buy(web, dreg, buyer)
    ask(dreg, l1, 1000)
    from distribution_helpers import refund

    refund(dreg, made["order_no"])
    assert balance(dreg, l1) == -1000
    with pytest.raises(APIError):
        ask(dreg, l1, 100)
    buy(web, dreg, buyer)
    buy(web, dreg, buyer)
    assert balance(dreg, l1) == 1000
    assert ask(dreg, l1, 1000)[1] == 1000
    check_ledgers(dreg)


def test_concurrent_decisions_on_one_withdrawal_take_effect_once(dreg, earner):
    """Four admins decide one withdrawal at the same moment, each its own way:
    one decision wins; the shop balance or the commission balance moves once."""
    no, *_ = ask(dreg, earner, 2000)
    before = wallet_balance(dreg, earner)
    actions = ["approve_balance", "reject", "approve_balance", "paid_manual"]
    barrier, outcomes = threading.Barrier(len(actions)), []

    def run(action):
        barrier.wait()
        try:
            outcomes.append(decide(dreg, no, action, "note"))
        except APIError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes).count("already_decided") == 3, outcomes
    (status,) = [o for o in outcomes if o != "already_decided"]
    paid = wallet_balance(dreg, earner) - before
    assert paid == (1980 if status == "paid_balance" else 0)
    assert balance(dreg, earner) == (3000 if status == "rejected" else 1000)
    check_ledgers(dreg)
