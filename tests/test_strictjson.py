"""kameng.strictjson: what a gateway's JSON body may be before anyone reads it."""
from decimal import Decimal

import pytest

from kameng import strictjson
from kameng.strictjson import StrictJSONError


def test_it_reads_json_and_keeps_amounts_exact():
    assert strictjson.loads(b'{"a": "x", "n": 28.80}', parse_float=Decimal) == {"a": "x", "n": Decimal("28.80")}


@pytest.mark.parametrize("body,reason", [
    (b'{"total": 100, "total": 1}', "twice"),
    (b'{"a": {"b": 1, "b": 2}}', "twice"),
    (b'{"n": NaN}', "NaN"),
    (b'{"n": -Infinity}', "NaN"),
    ('{"a": "支付"}'.encode("gbk"), "UTF-8"),
    (b'{"a": 1', "not JSON"),
    (b"[" * 100000 + b"]" * 100000, "too large|not JSON"),
])
def test_it_refuses_what_a_verifier_and_a_reader_could_see_differently(body, reason):
    with pytest.raises(StrictJSONError, match=reason):
        strictjson.loads(body, max_bytes=1024 * 1024)


def test_a_body_over_the_cap_is_refused_before_parsing():
    with pytest.raises(StrictJSONError, match="too large"):
        strictjson.loads(b'{"a": "' + b"x" * 70000 + b'"}')
