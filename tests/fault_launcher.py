"""Runs the ``kameng`` command line with one fault armed: the fault tests
(tests/test_faults_*.py) start ``kameng serve``, ``kameng worker`` and
``kameng keys import`` through it. The shop itself never runs this file.

``KAMENG_FAULT=module:function:when`` wraps that function so this process
kills itself (SIGKILL: no cleanup, no rollback by Python) at that point,
once:

- ``before``: before the real call;
- ``after``: after it returned, inside the caller's transaction (nothing of
  it committed);
- ``after_commit``: right after the transaction that made the call
  committed (the answer to the client, or the job's next step, never comes).

``KAMENG_FAULT_MARKER`` names a file created (and synced) just before the
kill; while it exists the fault stays disarmed, so a restarted process with
the same environment runs normally. The wrapper replaces the function in
its module and in every module that imported it by name.

``KAMENG_FAULT_SQLITE_PAGES=N`` caps the database of every SQLite
connection this process opens at N pages more than the file had when the
process first connected: past that, SQLite answers SQLITE_FULL ("database
or disk is full"), as on a full disk.
"""
from __future__ import annotations

import functools
import importlib
import os
import signal
import sys


def _fire(marker: str | None) -> None:
    if marker:
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # fired before: disarmed
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _session_of(args):
    from sqlalchemy.orm import Session

    for arg in args:
        if isinstance(arg, Session):
            return arg
        db = getattr(arg, "db", None)  # a request
        if isinstance(db, Session):
            return db
    raise RuntimeError("after_commit needs a session or a request among the arguments")


def arm(spec: str, marker: str | None) -> None:
    module_name, func_name, when = spec.split(":")
    if when not in ("before", "after", "after_commit"):
        raise SystemExit(f"fault_launcher: unknown point {when!r}")
    module = importlib.import_module(module_name)
    original = getattr(module, func_name)

    def armed():
        return not (marker and os.path.exists(marker))

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if when == "before" and armed():
            _fire(marker)
        result = original(*args, **kwargs)
        if when == "after" and armed():
            _fire(marker)
        elif when == "after_commit" and armed():
            from sqlalchemy import event

            def committed(session):
                if not session.in_nested_transaction():  # a savepoint's release is no commit
                    _fire(marker)

            event.listen(_session_of(args), "after_commit", committed)
        return result

    setattr(module, func_name, wrapper)
    for other in list(sys.modules.values()):
        if other is not None and getattr(other, func_name, None) is original:
            setattr(other, func_name, wrapper)


def cap_sqlite(extra_pages: int) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    base = {}

    @event.listens_for(Engine, "connect")
    def _cap(dbapi_conn, _record):
        if type(dbapi_conn).__module__.split(".")[0] != "sqlite3":
            return
        cur = dbapi_conn.cursor()
        if "pages" not in base:
            base["pages"] = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count = {int(base['pages']) + extra_pages}")
        cur.close()


def main(argv=None) -> int:
    spec = os.environ.get("KAMENG_FAULT")
    if spec:
        arm(spec, os.environ.get("KAMENG_FAULT_MARKER"))
    if os.environ.get("KAMENG_FAULT_SQLITE_PAGES"):
        cap_sqlite(int(os.environ["KAMENG_FAULT_SQLITE_PAGES"]))
    from kameng.cli import main as kameng_main

    return kameng_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
