"""Money, encryption at rest, and log redaction."""
import io
import json
import logging
from decimal import Decimal

import pytest

from kameng import money
from kameng.crypto import DecryptionError, KeyRing, KeyRingError, new_key_line
from kameng.logs import JsonFormatter


@pytest.mark.parametrize("text,minor", [("1", 100), ("1.0", 100), ("1.00", 100), ("0.01", 1), ("12.5", 1250),
                                        ("999999.99", 99999999)])
def test_parse_minor(text, minor):
    assert money.parse_minor(text, "CNY") == minor


@pytest.mark.parametrize("text", ["", "1.001", "1e2", "-1", "+1", "NaN", " 1.00", "0x10", "01", "1.", ".5",
                                  "1,00", "１", "1.0０", "1０", "1.00\n", "1\n", "٣", None, 1.5])
def test_parse_refuses(text):
    with pytest.raises(money.MoneyError):
        money.parse_minor(text, "CNY")


def test_format_and_currency_digits():
    assert money.format_minor(1250, "CNY") == "12.50"
    assert money.format_minor(-5, "CNY") == "-0.05"
    assert money.format_minor(1250, "JPY") == "1250"
    assert money.to_minor(Decimal("0.1") + Decimal("0.2"), "CNY") == 30
    with pytest.raises(money.MoneyError):
        money.to_minor(Decimal("0.001"), "CNY")


def _ring(tmp_path, *lines):
    path = tmp_path / "k"
    path.write_text("\n".join(lines) + "\n")
    return KeyRing.from_file(str(path))


def test_encryption_binds_to_associated_data_and_rotates(tmp_path):
    old, new = new_key_line(), new_key_line()
    ring = _ring(tmp_path, old)
    token = ring.encrypt("卡密-SECRET", "card:1")
    assert "SECRET" not in token and token.startswith(old.split(":")[0] + "$")
    assert ring.decrypt(token, "card:1") == "卡密-SECRET"
    with pytest.raises(DecryptionError):
        ring.decrypt(token, "card:2")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptionError):
        ring.decrypt(tampered, "card:1")
    rotated = _ring(tmp_path, new, old)  # new key first: new data under it, old data still readable
    assert rotated.decrypt(token, "card:1") == "卡密-SECRET"
    assert rotated.key_id_of(rotated.encrypt("x", "a")) == new.split(":")[0]
    with pytest.raises(DecryptionError):
        _ring(tmp_path, new).decrypt(token, "card:1")


def test_key_file_errors(tmp_path):
    with pytest.raises(KeyRingError):
        _ring(tmp_path, "garbage")
    with pytest.raises(KeyRingError, match="cannot read"):
        KeyRing.from_file(str(tmp_path / "missing"))


def test_json_logs_redact_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("kameng.test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("token kmg_abcdefghijklmnop used", extra={"password": "hunter2", "api_key": "k",
                                                               "attempt_no": "P1", "card_secret": "XXXX",
                                                               "url": "https://api.telegram.org/bot123456:"
                                                                      "AAE_secretsecretsecret-x/sendMessage"})
        try:
            raise ValueError("secret value ABC")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["password"] == first["api_key"] == first["card_secret"] == "[redacted]"
    assert first["attempt_no"] == "P1" and "kmg_abcdefghijklmnop" not in first["msg"]
    assert first["url"] == "https://api.telegram.org/bot[redacted]/sendMessage"
    assert second["exc_type"] == "ValueError" and "ABC" not in json.dumps(second)


def test_500_shows_no_traceback(make_app, monkeypatch, caplog):
    import sys
    import types

    import webtest

    plugin = types.ModuleType("kameng_crash")
    monkeypatch.setitem(sys.modules, "kameng_crash", plugin)

    def crash(request):
        raise RuntimeError("database password is hunter2")

    crash.__module__ = "kameng_crash"

    def includeme(config):
        config.add_route("crash", "/-/crash")
        config.add_view(crash, route_name="crash")
        config.add_route("crash.api", "/api/v1/crash")
        config.add_view(crash, route_name="crash.api")
        config.add_route("crash.token", "/-/crash/{token}")
        config.add_view(crash, route_name="crash.token")

    plugin.includeme = includeme
    plugin.PLUGIN = __import__("kameng.types", fromlist=["PluginMeta"]).PluginMeta(name="crash")
    app = make_app(extra_plugins=[("crash", plugin)])
    from kameng.testing import set_plugin

    set_plugin(app.registry, "crash", enabled=True)
    t = webtest.TestApp(app)
    resp = t.get("/-/crash", status=500)
    assert "hunter2" not in resp.text and "Traceback" not in resp.text
    assert "Something went wrong on our side." in resp.text
    resp = t.get("/api/v1/crash", status=500)
    assert resp.json == {"error": {"code": "server_error", "message": "Something went wrong on our side."}}
    # a path that carries a capability (a reset link's token) is logged as its route's pattern
    with caplog.at_level(logging.ERROR, logger="kameng"):
        t.get("/-/crash/reset-token-0123456789abcdef", status=500)
    logged = [r for r in caplog.records if r.getMessage() == "unhandled_error"]
    assert logged and logged[-1].path == "/-/crash/{token}"
    assert not any("reset-token-0123456789abcdef" in str(vars(r)) for r in caplog.records)
