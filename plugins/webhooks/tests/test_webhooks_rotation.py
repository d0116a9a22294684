"""``kameng keys rotate`` knows the endpoints' secrets (``kameng_encrypted_columns``):
it re-encrypts them under the new key, and ``--drop-old`` then drops the old key
without making a secret unreadable."""
from __future__ import annotations

import shutil

from webhooks_helpers import make_endpoint

from kameng.crypto import KeyRing
from kameng.inventory import rotate
from kameng.testing import app_request


def test_rotation_reencrypts_endpoint_secrets_before_dropping_the_old_key(wh, tmp_path):
    from kameng_webhooks import service
    from kameng_webhooks.models import Endpoint

    endpoint_id, secret = make_endpoint(wh, "https://hooks.example.com/kameng")
    path = str(tmp_path / "keys")  # a copy: the test session's own key file stays as it is
    shutil.copy(wh["kameng.keyring"].path, path)
    old = KeyRing.from_file(path).current_id
    ring = rotate.add_key(path)
    columns = rotate.plugin_columns(wh)
    assert any(c.model is Endpoint for c in columns)
    engine = wh["kameng.write_engine"]
    assert old in rotate.keys_in_use(engine, ring, columns)
    done = rotate.reencrypt(engine, ring, columns=columns)
    assert done["plugin_columns"] >= 1
    assert old not in rotate.keys_in_use(engine, ring, columns)
    assert old in rotate.drop_unused(path, engine, columns)
    fresh = KeyRing.from_file(path)
    with app_request(wh) as req:
        endpoint = req.db.get(Endpoint, endpoint_id)
        assert fresh.key_id_of(endpoint.secret) == fresh.current_id
        assert service.secret_of(fresh, endpoint) == secret
