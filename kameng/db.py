"""Database: metadata with a naming convention, engines, request sessions.

SQLite gets WAL, foreign keys and a real ``BEGIN`` (so savepoints work and a
writing request takes the write lock up front with ``BEGIN IMMEDIATE``);
PostgreSQL and MariaDB are used as they come.
"""
from __future__ import annotations

import datetime as dt
import threading

import zope.sqlalchemy
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite and MariaDB
    drop the zone, so it is stored naive in UTC and given back aware)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


#: seconds a writing thread waits for the process's SQLite write lock (the busy timeout)
WRITE_LOCK_WAIT = 10


def _is_busy(exc) -> bool:
    """SQLite's "database is locked" (or busy), raw or wrapped by SQLAlchemy."""
    import sqlite3

    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and ("locked" in str(orig) or "busy" in str(orig))


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    # SQLite has one writer. Threads of this process that want to write queue
    # on a lock before BEGIN IMMEDIATE and are woken as soon as the writer
    # before them commits, instead of polling the file lock in SQLite's busy
    # handler (sleeps of 1, 2, 5, 10… ms that pile up into long tails).
    # Other processes still meet at the file lock and its busy timeout.
    write_lock = threading.Lock()
    holders: set[int] = set()  # id() of the DBAPI connections holding write_lock

    def _release(dbapi_conn) -> None:
        # the pool hands the dialect its proxy; the lock is the raw connection's
        dbapi_conn = getattr(dbapi_conn, "dbapi_connection", None) or dbapi_conn
        if id(dbapi_conn) in holders:
            holders.discard(id(dbapi_conn))
            write_lock.release()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if not conn.get_execution_options().get("kameng_write"):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        # after the busy timeout, go on without the lock: SQLite's own busy
        # handling then decides, and answers "database is locked" as before
        if id(dbapi_conn) not in holders and write_lock.acquire(timeout=WRITE_LOCK_WAIT):
            holders.add(id(dbapi_conn))
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException as exc:
            _release(dbapi_conn)
            if _is_busy(exc):
                # the session has not joined the request's transaction yet, so
                # zope.sqlalchemy cannot tell pyramid_retry: mark the error itself
                from pyramid_retry import mark_error_retryable

                mark_error_retryable(exc)
            raise

    dialect = engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_conn):
        try:
            plain_commit(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def do_rollback(dbapi_conn):
        try:
            plain_rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback

    @event.listens_for(engine, "close")
    def _on_close(dbapi_conn, _record):
        _release(dbapi_conn)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_conn, _record, _exc):
        _release(dbapi_conn)


def make_engine(url: str, **kw) -> Engine:
    """An engine for ``url`` with kameng's per-dialect settings."""
    if url.startswith("sqlite"):
        kw.setdefault("connect_args", {"check_same_thread": False, "timeout": 10})
        engine = create_engine(url, **kw)
        _sqlite_setup(engine)
        return engine
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_recycle", 1800)
    if url.startswith(("mysql", "mariadb")):
        kw.setdefault("isolation_level", "READ COMMITTED")
        if "charset=" not in url:
            url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    return create_engine(url, **kw)


def engine_from_settings(settings: dict) -> Engine:
    url = settings.get("sqlalchemy.url")
    if not url:
        raise ValueError("sqlalchemy.url is not set in the configuration")
    return make_engine(url)


def drop_all_tables(engine: Engine) -> None:
    """Drop every table of the database (a clean slate for tests and benches
    on a server database of their own; never point it at a shop)."""
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for table in meta.sorted_tables:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{table.name}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        else:
            meta.drop_all(conn)


def write_bind(engine: Engine) -> Engine:
    """The same engine whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(kameng_write=True)


def is_sqlite(engine_or_session) -> bool:
    bind = getattr(engine_or_session, "bind", engine_or_session)
    return bind.dialect.name == "sqlite"


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _request_session(request) -> Session:
    """The request's session, joined to ``request.tm`` (committed by pyramid_tm)."""
    factory = request.registry["kameng.session_factory"]
    # A request that will write takes SQLite's write lock at BEGIN; payment
    # notifies write even when a gateway sends them as GET.
    if request.method in UNSAFE_METHODS or request.environ.get("kameng.write") or request.path.startswith("/pay/"):
        session = factory(bind=request.registry["kameng.write_engine"])
    else:
        session = factory()
    zope.sqlalchemy.register(session, transaction_manager=request.tm)
    session.info["request"] = request  # lets db-only helpers (notifications.emit) see the enabled plugins
    return session


def _mark_sqlite_busy_retryable() -> None:
    """A SQLite "database is locked" error (and a MariaDB deadlock inside a
    savepoint) aborts the transaction whole; pyramid_retry may then run the
    request again (zope.sqlalchemy already does this for PostgreSQL
    serialization failures and MySQL deadlocks)."""
    import sqlite3

    from zope.sqlalchemy import datamanager

    entry = (sqlite3.OperationalError, lambda e: "locked" in str(e) or "busy" in str(e))
    if not any(err is sqlite3.OperationalError for err, _test in datamanager._retryable_errors):
        datamanager._retryable_errors.append(entry)
    try:
        import pymysql
    except ImportError:
        return
    # InnoDB rolls the whole transaction back on a deadlock; one that hits
    # inside a savepoint (a stock reservation) surfaces as 1305 "SAVEPOINT
    # does not exist" when the savepoint is released: the same deadlock
    if not any(getattr(test, "kameng_1305", False) for _err, test in datamanager._retryable_errors):
        def lost_savepoint(e):
            return bool(e.args) and e.args[0] == 1305
        lost_savepoint.kameng_1305 = True
        datamanager._retryable_errors.append((pymysql.err.OperationalError, lost_savepoint))


def includeme(config):
    _mark_sqlite_busy_retryable()
    settings = config.get_settings()
    engine = settings.get("kameng.engine") or engine_from_settings(settings)
    config.registry["kameng.engine"] = engine
    config.registry["kameng.write_engine"] = write_bind(engine)
    config.registry["kameng.session_factory"] = sessionmaker(bind=engine, expire_on_commit=False)
    config.add_request_method(_request_session, "db", reify=True)
