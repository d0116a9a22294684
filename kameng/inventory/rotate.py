"""``kameng keys rotate``: a new encryption key, and every secret re-encrypted
under it, online and resumable.

1. The key file gets a new first key (the old ones stay, so everything still
   decrypts; a copy of the old file is kept as ``<key file>.bak-<time>``).
   Running servers notice the new file within a second and encrypt new
   secrets with the new key.
2. Card keys, plugin, docking-key and supplier secrets, delivery notes and
   the columns plugins declare (``kameng_encrypted_columns``)
   not under the new key are re-encrypted in
   small transactions, each row only if it is still under an old key, so
   the shop keeps selling meanwhile and an interrupted run is finished by
   ``kameng keys rotate --resume``.
3. ``--drop-old`` removes keys that no row uses any more.
"""
from __future__ import annotations

import datetime as dt
import shutil

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kameng.crypto import KeyRing, new_key_line, replace_key_file
from kameng.dock.models import reencrypt_secrets as reencrypt_dock_secrets
from kameng.dock.models import ring_keys_in_use as dock_keys_in_use
from kameng.inventory.models import CardKey
from kameng.inventory.service import aad
from kameng.orders.models import Order
from kameng.pluginhost import PluginState
from kameng.suppliers.models import SupplierConnection


def add_key(path: str) -> KeyRing:
    ring = KeyRing.from_file(path)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    shutil.copy2(path, f"{path}.bak-{stamp}")
    replace_key_file(path, [new_key_line(), *ring.lines()])
    return KeyRing.from_file(path)


def plugin_columns(registry) -> list:
    """The :class:`~kameng.types.EncryptedColumn` of every installed plugin."""
    host = registry["kameng.plugins"]
    return [item for _pid, item in host.collect_by_plugin("kameng_encrypted_columns")]


def _plugin_reencrypt(s, ring: KeyRing, columns) -> int:
    done = 0
    for col in columns:
        attr = getattr(col.model, col.column)
        for row in s.scalars(select(col.model).where(attr.is_not(None), attr != "").with_for_update()):
            value = getattr(row, col.column)
            if ring.key_id_of(value) != ring.current_id:
                bound = col.aad(row)
                setattr(row, col.column, ring.encrypt(ring.decrypt(value, bound), bound))
                done += 1
    return done


def reencrypt(engine, ring: KeyRing, batch: int = 500, progress=None, columns=()) -> dict:
    done = {"card_keys": 0, "plugin_secrets": 0}
    current = ring.current_id
    last_id = 0
    while True:
        with Session(engine) as s, s.begin():
            rows = s.execute(select(CardKey.id, CardKey.sku_id, CardKey.fingerprint, CardKey.number,
                                    CardKey.secret, CardKey.key_id)
                             .where(CardKey.key_id != current, CardKey.id > last_id)
                             .order_by(CardKey.id).limit(batch)).all()
            if not rows:
                break
            for kid, sku_id, fp, number, secret, old_kid in rows:
                bound = aad(sku_id, fp)
                values = {"key_id": current, "secret": ring.encrypt(ring.decrypt(secret, bound), bound)}
                if number:
                    values["number"] = ring.encrypt(ring.decrypt(number, bound + ":number"), bound + ":number")
                # only if nobody rotated this row meanwhile
                s.execute(update(CardKey).where(CardKey.id == kid, CardKey.key_id == old_kid).values(**values))
            last_id = rows[-1][0]
            done["card_keys"] += len(rows)
        if progress:
            progress(done["card_keys"])
    with Session(engine) as s, s.begin():
        for state in s.scalars(select(PluginState).where(PluginState.secrets != "").with_for_update()):
            if ring.key_id_of(state.secrets) != current:
                label = f"plugin:{state.id}"
                state.secrets = ring.encrypt(ring.decrypt(state.secrets, label), label)
                done["plugin_secrets"] += 1
        done["dock_secrets"] = reencrypt_dock_secrets(s, ring)
        done["supplier_secrets"] = 0
        for c in s.scalars(select(SupplierConnection).where(SupplierConnection.secrets != "").with_for_update()):
            if ring.key_id_of(c.secrets) != current:
                label = f"supplier:{c.id}"
                c.secrets = ring.encrypt(ring.decrypt(c.secrets, label), label)
                done["supplier_secrets"] += 1
        done["delivery_notes"] = 0
        for order in s.scalars(select(Order).where(Order.delivery_note.is_not(None)).with_for_update()):
            if ring.key_id_of(order.delivery_note) != current:
                label = f"order:{order.order_no}"
                order.delivery_note = ring.encrypt(ring.decrypt(order.delivery_note, label), label)
                done["delivery_notes"] += 1
        done["plugin_columns"] = _plugin_reencrypt(s, ring, columns)
    return done


def keys_in_use(engine, ring: KeyRing, columns=()) -> set[str]:
    with Session(engine) as s:
        used = set(s.scalars(select(CardKey.key_id).distinct()))
        used |= {ring.key_id_of(t) for t in s.scalars(select(PluginState.secrets).where(PluginState.secrets != ""))}
        used |= dock_keys_in_use(s, ring)
        used |= {ring.key_id_of(t) for t in s.scalars(select(SupplierConnection.secrets)
                                                          .where(SupplierConnection.secrets != ""))}
        used |= {ring.key_id_of(t) for t in s.scalars(select(Order.delivery_note)
                                                          .where(Order.delivery_note.is_not(None)))}
        for col in columns:
            attr = getattr(col.model, col.column)
            used |= {ring.key_id_of(t) for t in s.scalars(select(attr).where(attr.is_not(None), attr != ""))}
    return used


def drop_unused(path: str, engine, columns=()) -> list[str]:
    ring = KeyRing.from_file(path)
    used = keys_in_use(engine, ring, columns) | {ring.current_id}
    dropped = [kid for kid in ring.key_ids if kid not in used]
    if dropped:
        keep = [ln for ln in ring.lines() if ln.split(":", 1)[0] not in dropped]
        replace_key_file(path, keep)
    return dropped


def remaining(engine, ring: KeyRing) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(CardKey).where(CardKey.key_id != ring.current_id))
