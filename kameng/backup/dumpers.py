"""The database's part of a backup: a consistent snapshot, and loading it back.

- SQLite: the online backup API copies the database in one step, inside one
  read transaction: a consistent copy, while the shop goes on writing (WAL).
- PostgreSQL: ``pg_dump -Fc`` of a snapshot exported from the transaction
  that also counts the rows, so the counts in the manifest are exactly the
  dump's; loaded with ``pg_restore --single-transaction``.
- MariaDB/MySQL: ``mariadb-dump --single-transaction`` (``mysqldump`` when
  that is what is installed); loaded with the ``mariadb``/``mysql`` client.

The database URL becomes libpq environment variables or client options; a
password goes in ``PGPASSWORD`` / ``MYSQL_PWD``, never on a command line
(which every user of the machine can read).
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field

from sqlalchemy import MetaData, create_engine, func, inspect, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from kameng.backup import BackupError

MEMBERS = {"sqlite": "database/kameng.sqlite", "postgresql": "database/kameng.pgdump", "mysql": "database/kameng.sql"}
_DISK_FULL_WORDS = ("no space left", "file too large", "disk full", "disk quota", "database or disk is full")
_PG_QUERY_ENV = {"host": "PGHOST", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
                 "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
                 "options": "PGOPTIONS", "passfile": "PGPASSFILE", "service": "PGSERVICE",
                 "target_session_attrs": "PGTARGETSESSIONATTRS"}


def disk_full_message(where: str, detail: str) -> str:
    return (f"cannot write the backup in {where}: the disk is full ({detail}); "
            "no backup was written, the shop's data and earlier backups are untouched")


def dialect_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return name
    raise BackupError(f"kameng cannot back up a {name} database")


@dataclass
class Snapshot:
    dialect: str
    member: str
    path: str
    tool: str = ""
    counts: dict = field(default_factory=dict)
    counts_exact: bool = True
    revisions: dict = field(default_factory=dict)
    keys_in_use: set | None = None


# -- what a database holds ---------------------------------------------------------------


class _IdOnly:
    """Enough of a KeyRing for :func:`kameng.inventory.rotate.keys_in_use`."""

    @staticmethod
    def key_id_of(token: str) -> str:
        return token.split("$", 1)[0]


def describe(conn) -> tuple[dict, dict, set | None]:
    """Row counts of every table, the Alembic revisions, and the encryption
    key ids the data uses (None when the schema is not a kameng one)."""
    names = sorted(inspect(conn).get_table_names())
    counts = {n: conn.scalar(select(func.count()).select_from(table(n))) for n in names}
    revisions = {}
    for n in names:
        if n.startswith("alembic_version"):
            revisions[n] = sorted(conn.scalars(select(text("version_num")).select_from(table(n))))
    used = None
    if {"card_keys", "plugin_states", "dock_keys", "supplier_connections", "orders"} <= set(names):
        from kameng.inventory.rotate import keys_in_use

        used = keys_in_use(conn, _IdOnly())
    return counts, revisions, used


def table_names(url: str) -> list[str]:
    engine = engine_for(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def drop_tables_except(url: str, keep: set) -> None:
    """Empty a server database again after a failed restore: drop every
    table but those in ``keep`` (the ones that were there before: none)."""
    engine = engine_for(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        doomed = [t for t in meta.sorted_tables if t.name not in keep]
        with engine.begin() as conn:
            if engine.dialect.name in ("mysql", "mariadb"):
                conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
                for t in doomed:
                    conn.execute(text(f"DROP TABLE IF EXISTS `{t.name}`"))
            else:
                meta.drop_all(conn, tables=doomed)
    finally:
        engine.dispose()


def engine_for(url: str):
    """An engine without a pool: a backup or restore uses each connection once."""
    from kameng.db import make_engine

    return make_engine(url, poolclass=NullPool)


# -- snapshot --------------------------------------------------------------------------------


def snapshot(url: str, work_dir: str) -> Snapshot:
    """Dump the database at ``url`` into ``work_dir``."""
    dialect = dialect_of(url)
    snap = Snapshot(dialect, MEMBERS[dialect], os.path.join(work_dir, os.path.basename(MEMBERS[dialect])))
    {"sqlite": _sqlite_snapshot, "postgresql": _pg_snapshot, "mysql": _mysql_snapshot}[dialect](url, snap)
    return snap


def _sqlite_snapshot(url: str, snap: Snapshot) -> None:
    path = make_url(url).database
    if not path or path == ":memory:" or not os.path.isfile(path):
        raise BackupError(f"there is no SQLite database at {path}")
    snap.tool = f"sqlite {sqlite3.sqlite_version}"
    try:
        src = sqlite3.connect(path, timeout=30)
        try:
            dst = sqlite3.connect(snap.path)
            try:
                # one step: a single read transaction over the whole copy, so
                # the copy is one consistent state; in WAL mode writers go on
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=DELETE")
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        # SQLITE_FULL, or a write that failed (EFBIG, EDQUOT): only the copy is written to
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_FULL", "SQLITE_IOERR_WRITE") \
                or any(w in str(exc).lower() for w in _DISK_FULL_WORDS):
            raise BackupError(disk_full_message(os.path.dirname(os.path.dirname(snap.path)), str(exc))) from None
        raise BackupError(f"cannot copy the SQLite database: {exc}") from None
    if check != "ok":
        raise BackupError(f"the SQLite database fails its integrity check: {check}")
    engine = create_engine(f"sqlite:///{snap.path}", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            snap.counts, snap.revisions, snap.keys_in_use = describe(conn)
    finally:
        engine.dispose()


def _pg_snapshot(url: str, snap: Snapshot) -> None:
    tool = find_tool("pg_dump")
    env = pg_env(url)
    snap.tool = _version(tool, env)
    engine = engine_for(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            # the dump sees exactly what this transaction sees
            name = conn.scalar(text("SELECT pg_export_snapshot()"))
            snap.counts, snap.revisions, snap.keys_in_use = describe(conn)
            run_tool([tool, "--format=custom", f"--snapshot={name}", f"--file={snap.path}"], env, url, snap.path)
    finally:
        engine.dispose()


def _mysql_snapshot(url: str, snap: Snapshot) -> None:
    tool = find_tool("mariadb-dump", "mysqldump")
    args, env = mysql_args(url)
    snap.tool = _version(tool, env)
    engine = engine_for(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            snap.counts, snap.revisions, snap.keys_in_use = describe(conn)
    finally:
        engine.dispose()
    snap.counts_exact = False  # the dump takes its own snapshot a moment later
    run_tool([tool, *args, "--single-transaction", "--quick", "--hex-blob", "--no-tablespaces", "--triggers",
              f"--result-file={snap.path}", make_url(url).database], env, url, snap.path)


# -- load ------------------------------------------------------------------------------------


def load(dialect: str, path: str, url: str) -> None:
    """Load a dump into the (empty) server database at ``url``."""
    if dialect == "postgresql":
        tool = find_tool("pg_restore")
        # one transaction: a restore that fails leaves the database empty
        run_tool([tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                  f"--dbname={make_url(url).database}", path], pg_env(url), url, None)
    elif dialect == "mysql":
        tool = find_tool("mariadb", "mysql")
        args, env = mysql_args(url)
        with open(path, "rb") as fh:
            run_tool([tool, *args, "--batch", make_url(url).database], env, url, None, stdin=fh)
    else:
        raise BackupError(f"cannot load a {dialect} dump")


# -- tools -----------------------------------------------------------------------------------

_INSTALL_HINT = {"pg_dump": "postgresql-client", "pg_restore": "postgresql-client",
                 "mariadb-dump": "mariadb-client", "mariadb": "mariadb-client"}


def find_tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise BackupError(f"{names[0]} is not installed (or not on PATH): install it "
                      f"(Debian/Ubuntu: apt-get install {_INSTALL_HINT.get(names[0], names[0])}), "
                      "in a version at least the database server's")


def pg_env(url: str) -> dict:
    u = make_url(url)
    env = dict(os.environ)
    for key, value in (("PGHOST", u.host), ("PGPORT", u.port), ("PGUSER", u.username),
                       ("PGPASSWORD", u.password), ("PGDATABASE", u.database)):
        if value is not None:
            env[key] = str(value)
    for key, value in u.query.items():
        if key in _PG_QUERY_ENV:
            env[_PG_QUERY_ENV[key]] = value if isinstance(value, str) else value[-1]
    return env


def mysql_args(url: str) -> tuple[list[str], dict]:
    u = make_url(url)
    query = {k: (v if isinstance(v, str) else v[-1]) for k, v in u.query.items()}
    args = ["--no-defaults"]  # only what the URL says, as the shop's driver does
    if query.get("unix_socket"):
        args += ["--protocol=SOCKET", f"--socket={query['unix_socket']}"]
    else:
        args += ["--protocol=TCP", f"--host={u.host or 'localhost'}", f"--port={u.port or 3306}"]
    if u.username:
        args.append(f"--user={u.username}")
    for key in ("ssl_ca", "ssl_cert", "ssl_key"):
        if query.get(key):
            args.append(f"--{key.replace('_', '-')}={query[key]}")
    args.append("--default-character-set=utf8mb4")
    env = dict(os.environ)
    env.pop("MYSQL_PWD", None)
    if u.password:
        env["MYSQL_PWD"] = u.password
    return args, env


def _version(tool: str, env: dict) -> str:
    try:
        out = subprocess.run([tool, "--version"], env=env, capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0][:200] if out.stdout.strip() else os.path.basename(tool)
    except (OSError, subprocess.SubprocessError):
        return os.path.basename(tool)


def run_tool(cmd: list[str], env: dict, url: str, output: str | None, stdin=None) -> None:
    name = os.path.basename(cmd[0])
    try:
        proc = subprocess.run(cmd, env=env, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        raise BackupError(f"cannot run {name}: {exc.strerror}") from None
    if proc.returncode == 0:
        return
    if proc.returncode < 0:  # killed by a signal
        try:
            sig = signal.Signals(-proc.returncode)
        except ValueError:
            sig = None
        if sig is signal.SIGXFSZ and output is not None:  # a write past the file size limit (ulimit -f)
            raise BackupError(disk_full_message(os.path.dirname(os.path.dirname(output)),
                                                f"{name}: file size limit exceeded"))
        raise BackupError(f"{name} was stopped by {sig.name if sig else f'signal {-proc.returncode}'}")
    password = make_url(url).password
    lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    line = (lines[-1] if lines else f"exit status {proc.returncode}")
    if password:
        line = line.replace(password, "***")
    line = line[:300]
    if output is not None and any(w in line.lower() for w in _DISK_FULL_WORDS):
        raise BackupError(disk_full_message(os.path.dirname(os.path.dirname(output)), f"{name}: {line}"))
    raise BackupError(f"{name} failed: {line}")
