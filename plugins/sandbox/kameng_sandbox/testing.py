"""The sandbox protocol's provider side, for the conformance kit
(:mod:`kameng.testing.gateways`)."""
from __future__ import annotations

import time

from kameng.money import format_minor
from kameng.testing.gateways import MISSING, GatewayDriver, NotifyRequest

from kameng_sandbox.gateway import sign

SECRET = "sandbox-conformance-secret-0123456789"
PATH = "/pay/sandbox/notify"


class SandboxDriver(GatewayDriver):
    gateway_id = "sandbox"
    key_setting = "secret"
    has_timestamp = True
    has_trade_no = False
    signs_extra_fields = False  # the protocol has exactly five fields

    def settings(self) -> dict:
        return {"secret": SECRET}

    def fields(self, attempt_no, amount, status="paid", timestamp=None, extra=None, secret=SECRET) -> dict:
        fields = {"attempt_no": attempt_no, "amount": amount, "status": status,
                  "timestamp": str(int(timestamp if timestamp is not None else time.time())), **(extra or {})}
        fields["sign"] = sign(fields, secret)
        return fields

    def notify(self, attempt_no, amount, *, trade_no, status="paid", merchant_id=None, currency=None,
               timestamp=None, extra=None, wrong_key=False) -> NotifyRequest:
        secret = "another-sandbox-secret-000000000" if wrong_key else SECRET
        return NotifyRequest("POST", PATH, form=tuple(self.fields(attempt_no, amount, status, timestamp, extra,
                                                                  secret).items()))

    def amount_forms(self, minor: int) -> list:
        text = format_minor(minor, "CNY")
        return [text, text.rstrip("0").rstrip("."), text[:-1]] if text.endswith("00") else [text]

    def malformed_amounts(self) -> list:
        return ["1e2", "-1.00", "NaN", " 1.00", "0x10", "1.001", "1,00", "", "１.00", "1.0０", "1.00\n"]

    def with_signature(self, n, value) -> NotifyRequest:
        form = [(k, v) for k, v in n.form if k != "sign"]
        if value is MISSING:
            return n.with_(form=tuple(form))
        if isinstance(value, list):
            return n.with_(form=tuple(form + [("sign", v) for v in value]))
        return n.with_(form=tuple(form + [("sign", str(value).lower())]))

    def with_unsigned_field(self, n, name, value) -> NotifyRequest:
        return n.with_(form=n.form + ((name, value),))

    def with_duplicate(self, n) -> NotifyRequest:
        return n.with_(form=n.form + (("amount", "0.01"),))

    def empty_fields(self, attempt_no, amount, trade_no) -> list:
        out = []
        for name in ("attempt_no", "amount", "status", "timestamp"):
            fields = self.fields(attempt_no, amount)
            fields[name] = ""
            fields["sign"] = sign(fields, SECRET)
            out.append((name, NotifyRequest("POST", PATH, form=tuple(fields.items()))))
        return out

    def accepted(self, status, body) -> bool:
        return status == 200 and body == b"success"
