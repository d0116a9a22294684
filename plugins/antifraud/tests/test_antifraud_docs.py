"""Every setting is documented for merchants, in both languages."""
from __future__ import annotations

import os

import pytest

from kameng_antifraud import PLUGIN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.parametrize("doc", ["docs/antifraud.md", "docs/antifraud.zh_CN.md"])
def test_every_setting_is_documented(doc):
    path = os.path.join(ROOT, doc)
    if not os.path.exists(path):
        pytest.skip("the merchant docs are not in this tree (an installed plugin tested on its own)")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    for field in PLUGIN.settings:
        assert f"| `{field.name}` |" in text, field.name
        default = "" if field.default is None else str(field.default)
        if default:
            assert f"| `{field.name}` | `{default}` |" in text, (field.name, default)
