"""Supplier connections: the connector registry and each connection's
settings (the non-secret ones as JSON, the secret ones encrypted and bound
to the connection)."""
from __future__ import annotations

import json

from kameng import audit
from kameng.db import utcnow
from kameng.i18n import _
from kameng.suppliers.base import SupplierConnector, SupplierError
from kameng.suppliers.models import SupplierConnection
from kameng.types import SettingError

SECRET_MASK = "********"


def build_registry(config, host) -> None:
    connectors: dict[str, tuple[str, type]] = {}
    for pid, cls in host.collect_by_plugin("kameng_supplier_connectors"):
        if not (isinstance(cls, type) and issubclass(cls, SupplierConnector)):
            raise RuntimeError(f"plugin {pid} returned {cls!r}, not a SupplierConnector subclass")
        if cls.identifier != pid:
            raise RuntimeError(f"plugin {pid} offers a connector named {cls.identifier!r}: it must be {pid!r}")
        connectors[pid] = (pid, cls)
    config.registry["kameng.connectors"] = connectors


def connector_class(request, identifier: str) -> type[SupplierConnector] | None:
    """The connector class of an enabled plugin, or None."""
    entry = request.registry["kameng.connectors"].get(identifier)
    if entry is None or entry[0] not in request.enabled_plugins:
        return None
    return entry[1]


def available_connectors(request) -> list[type[SupplierConnector]]:
    return [c for c in (connector_class(request, i) for i in sorted(request.registry["kameng.connectors"])) if c]


def _aad(connection: SupplierConnection) -> str:
    return f"supplier:{connection.id}"


def settings_of(keyring, connection: SupplierConnection) -> dict:
    """Every setting of the connection, secrets decrypted."""
    values = json.loads(connection.settings or "{}")
    if connection.secrets:
        values.update(json.loads(keyring.decrypt(connection.secrets, _aad(connection))))
    return values


def read_settings(request, connection: SupplierConnection) -> dict:
    return settings_of(request.registry["kameng.keyring"], connection)


def connector_for(request, connection: SupplierConnection | None) -> SupplierConnector | None:
    """A configured connector for ``connection``; None when it or its plugin is off."""
    if connection is None:
        return None
    cls = connector_class(request, connection.connector)
    if cls is None:
        return None
    return cls(read_settings(request, connection))


def save_connection(request, connection: SupplierConnection | None, connector: str, name: str, raw: dict,
                    sync_interval=None, deadline_minutes=None, enabled: bool = True,
                    keep_blank_secrets: bool = True) -> SupplierConnection:
    """Create or update a connection. Every field is checked (and the
    connector's ``validate``) before anything is written; a blank or masked
    secret keeps the stored one."""
    cls = connector_class(request, connector)
    if cls is None:
        raise SettingError("connector", _("is not an enabled supplier plugin"))
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise SettingError("name", _("must be 1 to 100 characters"))
    fields = {f.name: f for f in cls.settings}
    values = read_settings(request, connection) if connection is not None else {}
    for fname, f in fields.items():
        if fname not in raw:  # not given (the API, a script): keep what is stored, else the default
            values.setdefault(fname, f.default)
            continue
        value = raw[fname]
        if f.secret and keep_blank_secrets and value in ("", None, SECRET_MASK) and values.get(fname):
            continue
        parsed = f.parse(value)
        values[fname] = f.default if parsed is None else parsed
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SettingError(unknown[0], _("is not a setting of this connector"))
    cls.validate(values)
    interval = _int_field("sync_interval", sync_interval, 60, 86400, connection.sync_interval if connection else 600)
    deadline = _int_field("deadline_minutes", deadline_minutes, 1, 10080,
                          connection.deadline_minutes if connection else 60)
    if connection is None:
        connection = SupplierConnection(connector=connector, created_at=utcnow())
        request.db.add(connection)
    connection.name, connection.enabled = name, bool(enabled)
    connection.sync_interval, connection.deadline_minutes = interval, deadline
    connection.settings = json.dumps({k: v for k, v in values.items() if k in fields and not fields[k].secret},
                                     ensure_ascii=False)
    request.db.flush()  # the id binds the secrets
    secret = {k: v for k, v in values.items() if k in fields and fields[k].secret and v is not None}
    connection.secrets = (request.registry["kameng.keyring"].encrypt(json.dumps(secret), _aad(connection))
                          if secret else "")
    audit.record(request.db, audit.actor_of(request), "supplier.save", str(connection.id),
                 connector=connector, fields=sorted(raw))  # names only
    return connection


def _int_field(name: str, raw, low: int, high: int, default: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingError(name, _("must be a whole number")) from None
    if not low <= value <= high:
        raise SettingError(name, _("must be between ${low} and ${high}", mapping={"low": low, "high": high}))
    return value


def check_health(request, connection: SupplierConnection) -> tuple[bool, str]:
    """Test the connection and remember the answer."""
    connector = connector_for(request, connection)
    if connector is None:
        ok, message = False, _("The connector plugin is not enabled.")
    else:
        try:
            ok, message = True, connector.test_connection()
        except SupplierError as exc:
            ok, message = False, str(exc)
    connection.health = "ok" if ok else "error"
    # a connector's message may be a TranslationString (a str too): stored in the admin's language
    connection.health_message = str(request.localizer.translate(message))[:255]
    connection.checked_at = utcnow()
    return ok, connection.health_message
