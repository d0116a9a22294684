"""Restoring a backup into an empty data directory (and an empty database).

1. The target folder must be empty or new; a server database must have no
   tables.
2. The archive is read whole into a hidden folder inside the target, each
   member checked against the manifest, an encrypted one authenticated to
   its last chunk. Nothing else is written before that succeeded.
3. The database is loaded, the key file, media and themes put in place,
   and ``kameng.ini`` written with the paths of the new place.
4. The result is checked: row counts against the manifest, migrations,
   and a sample of the encrypted data decrypted with the key file.

Any failure removes what the restore wrote (the folder and the database
were empty before).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import make_url

from kameng.backup import DISK_FULL_ERRNOS, BackupError
from kameng.backup.archive import extract
from kameng.backup.crypt import DecryptReader, is_encrypted
from kameng.backup.dumpers import MEMBERS, describe, dialect_of, drop_tables_except, engine_for, load, table_names
from kameng.crypto import DecryptionError, KeyRing, KeyRingError

STAGING = ".kameng-restore"


@dataclass
class RestoreResult:
    data_dir: str
    config: str
    db_url: str
    dialect: str
    counts: dict
    key_file_from: str
    media_files: int = 0
    theme_files: int = 0
    notes: list = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def check_archive(path: str, passphrase: str | None) -> dict:
    """Read the whole backup and check it, writing nothing; its manifest."""
    return _read(path, passphrase, None)


def _read(path: str, passphrase: str | None, dest: str | None) -> dict:
    try:
        encrypted = is_encrypted(path)
        with open(path, "rb") as fh:
            if encrypted:
                if passphrase is None:
                    raise BackupError("the backup is encrypted: a passphrase is needed")
                reader = DecryptReader(fh, passphrase)
                manifest = extract(reader, dest)
                reader.drain()  # authenticate to the final chunk: a file cut short fails here
            else:
                manifest = extract(fh, dest)
    except FileNotFoundError:
        raise BackupError(f"there is no file {path}") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a folder, not a backup file") from None
    return manifest


def needs_passphrase(path: str) -> bool:
    try:
        return is_encrypted(path)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None


def _check_empty_dir(data_dir: str) -> bool:
    """True when the restore creates the folder."""
    if not os.path.lexists(data_dir):
        return True
    if not os.path.isdir(data_dir) or os.path.islink(data_dir):
        raise BackupError(f"{data_dir} is not a folder")
    if os.listdir(data_dir):
        raise BackupError(f"{data_dir} is not empty: restore only into a new or empty data directory")
    return False


def restore_backup(path: str, data_dir: str, *, db_url: str | None = None, key_file: str | None = None,
                   passphrase: str | None = None) -> RestoreResult:
    path, data_dir = os.path.abspath(path), os.path.abspath(data_dir)
    if not os.path.isfile(path):
        raise BackupError(f"there is no backup file {path}")
    created = _check_empty_dir(data_dir)
    target_dialect = dialect_of(db_url) if db_url else "sqlite"
    if db_url and target_dialect != "sqlite":
        try:
            tables = table_names(db_url)
        except Exception as exc:  # a driver error: unreachable server, wrong password
            raise BackupError(f"cannot connect to the target database: {type(exc).__name__}: "
                              f"{_one_line(exc, db_url)}") from None
        if tables:
            raise BackupError(f"the target database is not empty ({len(tables)} tables): "
                              "restore only into a new, empty database")
    sqlite_path = os.path.abspath(make_url(db_url).database or "") if db_url and target_dialect == "sqlite" \
        else os.path.join(data_dir, "kameng.sqlite")
    if target_dialect == "sqlite" and os.path.lexists(sqlite_path):
        raise BackupError(f"{sqlite_path} already exists: restore only into a new database")
    if key_file is not None:
        key_file = os.path.abspath(key_file)
        _ring(key_file)  # a readable, well-formed key file, before the long part
    if created:
        os.makedirs(data_dir, mode=0o700)
    staging = os.path.join(data_dir, STAGING)
    loaded_server_db = wrote_sqlite = False
    before: set = set()
    try:
        os.mkdir(staging, 0o700)
        manifest = _read(path, passphrase, staging)
        dialect = manifest["database"]["dialect"]
        if dialect != target_dialect:
            hint = "" if db_url else ": give --db URL of an empty database"
            raise BackupError(f"the backup holds a {dialect} database, the target is {target_dialect}{hint}")
        ring_path = key_file or os.path.join(staging, "secret.key")
        if not os.path.isfile(ring_path):
            raise BackupError("the backup holds no key file (it was made with --without-key-file): "
                              "give the shop's key file with --key-file PATH")
        ring = _ring(ring_path)
        missing = sorted(set(manifest.get("key_ids") or []) - set(ring.key_ids))
        if missing:
            raise BackupError(f"the key file lacks key(s) {', '.join(missing)} the backup was made with: "
                              "it is not this shop's key file")
        staged_db = os.path.join(staging, *MEMBERS[dialect].split("/"))
        if dialect == "sqlite":
            url = f"sqlite:///{sqlite_path}"
            wrote_sqlite = True
            shutil.move(staged_db, sqlite_path)
            os.chmod(sqlite_path, 0o600)
        else:
            url = db_url
            before = set(table_names(url))
            if before:  # someone created tables meanwhile
                raise BackupError("the target database is not empty any more")
            loaded_server_db = True
            load(dialect, staged_db, url)
        result = _place_files(staging, data_dir, ring_path, manifest, url)
        _verify(result, ring)
        shutil.rmtree(staging)
        return result
    except BaseException as exc:
        _undo(data_dir, created, sqlite_path if wrote_sqlite else None,
              db_url if loaded_server_db else None, before)
        if isinstance(exc, OSError):
            if exc.errno in DISK_FULL_ERRNOS:
                raise BackupError(f"cannot restore into {data_dir}: the disk is full ({exc.strerror}); "
                                  "what was restored so far is removed again") from None
            raise BackupError(f"cannot restore into {data_dir}: {exc.strerror or exc}") from None
        if isinstance(exc, Exception) and not isinstance(exc, BackupError):
            raise BackupError(f"the restore failed: {type(exc).__name__}: {_one_line(exc, db_url or '')}") from exc
        raise


def _one_line(exc: Exception, url: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    password = make_url(url).password if url else None
    return (text.replace(password, "***") if password else text)[:300]


def _ring(path: str) -> KeyRing:
    try:
        return KeyRing.from_file(path)
    except KeyRingError as exc:
        raise BackupError(str(exc)) from None


def _undo(data_dir: str, created: bool, sqlite_path: str | None, server_url: str | None,
          keep_tables: set) -> None:
    if server_url:
        try:
            drop_tables_except(server_url, keep_tables)
        except Exception:  # the first error is the one to report
            pass
    if sqlite_path:
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.lexists(sqlite_path + suffix):
                os.unlink(sqlite_path + suffix)
    if created:
        shutil.rmtree(data_dir, ignore_errors=True)
    elif os.path.isdir(data_dir):  # it was empty before
        for name in os.listdir(data_dir):
            full = os.path.join(data_dir, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.unlink(full)


# -- the files and the configuration ---------------------------------------------------------


def _count_files(root: str) -> int:
    return sum(len(files) for _here, _dirs, files in os.walk(root))


def _place_files(staging, data_dir, ring_path, manifest, url) -> RestoreResult:
    key_target = os.path.join(data_dir, "secret.key")
    with open(ring_path, "rb") as fh:
        key_bytes = fh.read()
    fd = os.open(key_target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    counts = {}
    for tree in ("media", "themes"):
        src = os.path.join(staging, tree)
        counts[tree] = _count_files(src) if os.path.isdir(src) else 0
        if os.path.isdir(src):
            os.replace(src, os.path.join(data_dir, tree))
    ini_path = os.path.join(data_dir, "kameng.ini")
    staged_ini = os.path.join(staging, "kameng.ini")
    notes = []
    old_data_dir = (manifest.get("paths") or {}).get("data_dir")
    if os.path.isfile(staged_ini):
        with open(staged_ini, encoding="utf-8") as fh:
            text, wrote_url = rewrite_ini(fh.read(), old_data_dir, data_dir, url)
        if not wrote_url:
            notes.append("the backed-up kameng.ini names no database (it came from KAMENG_DATABASE_URL): "
                         "set KAMENG_DATABASE_URL (or sqlalchemy.url) to the restored database")
    else:
        from kameng.cli.commands import INI

        text = INI.format(db=url.replace("%", "%%"), data=data_dir, session_secret=secrets.token_urlsafe(48),
                          base_url="http://127.0.0.1:6543", listen="127.0.0.1:6543", secure="false")
        notes.append("the backup held no kameng.ini: a new one was written (check kameng.base_url; "
                     "everybody has to sign in again)")
    fd = os.open(ini_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return RestoreResult(data_dir, ini_path, url, manifest["database"]["dialect"], {},
                         "backup" if ring_path.startswith(staging + os.sep) else ring_path,
                         counts["media"], counts["themes"], notes, manifest)


_KEY_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)(\s*[=:]\s*)(.*)$")


def rewrite_ini(text: str, old_data_dir: str | None, new_data_dir: str, db_url: str) -> tuple[str, bool]:
    """``kameng.ini`` for the new place: the database URL, the data
    directory, the key file, media and themes point at the restore, and any
    other path under the old data directory moves with it. Comments and
    every other line stay as they were. Also says whether it names the database."""
    forced = {"kameng.data_dir": new_data_dir, "kameng.key_file": "%(here)s/secret.key",
              "kameng.media_dir": os.path.join(new_data_dir, "media"),
              "kameng.themes_dir": os.path.join(new_data_dir, "themes")}
    lines, out, section, seen, skipping = text.splitlines(), [], None, set(), False
    main_end = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if section == "app:main":
                main_end = len(out)
            section, skipping = stripped[1:-1].strip(), False
            out.append(line)
            continue
        if skipping and line[:1] in (" ", "\t") and stripped:
            continue  # a continuation of a value that was replaced
        skipping = False
        m = _KEY_LINE.match(line) if section == "app:main" else None
        if m:
            key, sep, value = m.group(1), m.group(2), m.group(3)
            new = None
            if key == "sqlalchemy.url":
                new = db_url.replace("%", "%%")
            elif key in forced:
                new = forced[key]
            elif old_data_dir and (value == old_data_dir or value.startswith(old_data_dir.rstrip("/") + "/")):
                new = new_data_dir + value[len(old_data_dir.rstrip("/")):]
            if new is not None:
                seen.add(key)
                out.append(f"{key}{sep}{new}")
                skipping = True
                continue
        out.append(line)
    if section == "app:main":
        main_end = len(out)
    add = [f"{k} = {v}" for k, v in (("kameng.data_dir", new_data_dir), ("kameng.key_file", "%(here)s/secret.key"))
           if k not in seen]
    named_url = "sqlalchemy.url" in seen
    if not named_url and make_url(db_url).get_backend_name() == "sqlite":
        add.insert(0, f"sqlalchemy.url = {db_url}")
        named_url = True
    if main_end is None:
        out = ["[app:main]", "use = egg:kameng", *add, ""] + out
    else:
        while main_end > 0 and not out[main_end - 1].strip():
            main_end -= 1
        out[main_end:main_end] = add
    return "\n".join(out) + "\n", named_url


# -- the check ------------------------------------------------------------------------------


def _verify(result: RestoreResult, ring: KeyRing) -> None:
    manifest = result.manifest
    db = manifest["database"]
    if result.dialect == "sqlite":
        con = sqlite3.connect(make_url(result.db_url).database)
        try:
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
        if check != "ok":
            raise BackupError(f"the restored SQLite database fails its integrity check: {check}")
    engine = engine_for(result.db_url)
    try:
        with engine.connect() as conn:
            counts, revisions, used = describe(conn)
            if db.get("counts_exact") and counts != db.get("counts"):
                differ = sorted(k for k in set(counts) | set(db.get("counts") or {})
                                if counts.get(k) != (db.get("counts") or {}).get(k))
                raise BackupError(f"the restored database does not hold what the backup did (tables: {differ[:5]})")
            if revisions != db.get("revisions"):
                raise BackupError("the restored database's migration revisions differ from the backup's")
            if used is not None and not used <= set(ring.key_ids):
                raise BackupError(f"the key file lacks key(s) {', '.join(sorted(used - set(ring.key_ids)))} "
                                  "the restored data is encrypted with")
            _decrypt_samples(conn, ring, counts)
        result.counts = counts
    finally:
        engine.dispose()
    result.notes.extend(_migration_notes(result))


def _decrypt_samples(conn, ring: KeyRing, counts: dict) -> None:
    """One card key per encryption key, and every plugin's secrets, must decrypt."""
    if not counts.get("card_keys"):
        return
    from sqlalchemy import func

    from kameng.inventory.models import CardKey
    from kameng.inventory.service import aad
    from kameng.pluginhost import PluginState

    firsts = select(func.min(CardKey.id)).group_by(CardKey.key_id)
    try:
        for sku_id, fingerprint, secret in conn.execute(
                select(CardKey.sku_id, CardKey.fingerprint, CardKey.secret).where(CardKey.id.in_(firsts))):
            ring.decrypt(secret, aad(sku_id, fingerprint))
        if "plugin_states" in counts:
            for pid, secrets_ in conn.execute(select(PluginState.id, PluginState.secrets)
                                              .where(PluginState.secrets != "")):
                ring.decrypt(secrets_, f"plugin:{pid}")
    except DecryptionError as exc:
        raise BackupError(f"the restored data does not decrypt with the key file: {exc}") from None


def _migration_notes(result: RestoreResult) -> list[str]:
    """Tell when this kameng's migrations are ahead of the restored database."""
    try:
        from kameng.migrate import pending_branches
        from kameng.pluginhost import PluginHost

        host = PluginHost.build({"sqlalchemy.url": result.db_url})
        engine = engine_for(result.db_url)
        try:
            pending = pending_branches(engine, host)
        finally:
            engine.dispose()
    except Exception:  # a plugin that does not load here: the merchant's migrate will say
        return []
    if pending:
        return [f"the installed kameng has newer migrations ({', '.join(sorted(pending))}): "
                f"run `kameng -c {result.config} migrate` before you start the shop"]
    return []
