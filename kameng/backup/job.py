"""The scheduled backup: every ``kameng.backup.every_hours``, keep the newest
``kameng.backup.keep``.

The worker enqueues :data:`KIND` once an hour; the job looks at the newest
of its own backups (``kameng-backup-auto-<UTC time>.tar.gz[.enc]`` in the
backup folder) and makes a new one when that is old enough. The backup runs
in a thread of its own, so deliveries and other jobs do not wait for it; a
lock file in the backup folder keeps two processes from running it at once.
Only the job's own files are ever deleted: backups made with ``kameng
backup`` and any other file in the folder are left alone.

A failure is logged and raised as the ``backup.failed`` notification (the
channels of the notification plugins), at most once a day.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import shutil
import threading
import time

from pyramid.settings import asbool

from kameng.backup import BackupError, data_paths

log = logging.getLogger(__name__)

KIND = "kameng.backup.scheduled"
PREFIX = "kameng-backup-auto"
NAME = re.compile(r"^kameng-backup-auto-(\d{8}T\d{6}Z)\.tar\.gz(\.enc)?\Z")
LOCK = ".kameng-backup.lock"
EVENT = "backup.failed"
DEFAULT_EVERY_HOURS = 24
DEFAULT_KEEP = 7
#: the job is looked at hourly: a backup this much younger than the period is due anyway
SLACK_SECONDS = 1800
STALE_WORK_SECONDS = 6 * 3600

_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def _int_setting(settings, key: str, default: int) -> int:
    raw = settings.get(key)
    if raw in (None, ""):
        return default
    try:
        return max(0, int(str(raw).strip()))
    except ValueError:
        raise BackupError(f"{key} must be a whole number, not {raw!r}") from None


def own_backups(folder: str) -> list[tuple[dt.datetime, str]]:
    """The job's backups in ``folder``, oldest first."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            m = NAME.match(name)
            if m:
                when = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
                out.append((when, name))
    return sorted(out)


def is_due(folder: str, every_hours: int, now: dt.datetime | None = None) -> bool:
    backups = own_backups(folder)
    if not backups:
        return True
    now = now or dt.datetime.now(dt.timezone.utc)
    return (now - backups[-1][0]).total_seconds() >= every_hours * 3600 - SLACK_SECONDS


def prune(folder: str, keep: int) -> list[str]:
    """Delete the job's own backups but the newest ``keep``."""
    backups = own_backups(folder)
    doomed = [name for _when, name in backups[:max(len(backups) - keep, 0)]] if keep > 0 else []
    for name in doomed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))
    return doomed


def _remove_stale_work(folder: str) -> None:
    """Work folders of a backup whose process died (the lock is ours now)."""
    from kameng.backup.create import WORK_PREFIX

    cutoff = time.time() - STALE_WORK_SECONDS
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if name.startswith(WORK_PREFIX) and os.path.isdir(full) and os.path.getmtime(full) < cutoff:
            shutil.rmtree(full, ignore_errors=True)


@contextlib.contextmanager
def _folder_lock(folder: str):
    """Yields True when this process got the lock, False when another holds it."""
    fd = os.open(os.path.join(folder, LOCK), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def run_scheduled(settings: dict, now: dt.datetime | None = None) -> str | None:
    """Make a scheduled backup if one is due; the new file's path, or None.
    Raises :class:`BackupError` when it cannot."""
    every = _int_setting(settings, "kameng.backup.every_hours", DEFAULT_EVERY_HOURS)
    keep = _int_setting(settings, "kameng.backup.keep", DEFAULT_KEEP)
    if every == 0:
        return None
    paths = data_paths(settings)
    folder = paths["backup_dir"]
    if not folder:
        raise BackupError("no backup folder: set kameng.data_dir or kameng.backup.dir")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {folder}: {exc.strerror}") from None
    passphrase = None
    pass_file = settings.get("kameng.backup.passphrase_file")
    if pass_file:
        passphrase = read_passphrase_file(pass_file)
    from kameng.backup.create import create_backup

    with _folder_lock(folder) as mine:
        if not mine or not is_due(folder, every, now):
            return None
        _remove_stale_work(folder)
        config = os.path.join(paths["data_dir"], "kameng.ini") if paths["data_dir"] else None
        result = create_backup(settings, folder, config_path=config, passphrase=passphrase,
                               include_key_file=asbool(settings.get("kameng.backup.include_key_file", True)),
                               prefix=PREFIX)
        removed = prune(folder, keep)
    log.info("backup_done", extra={"path": result.path, "bytes": result.size, "pruned": len(removed)})
    return result.path


def read_passphrase_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise BackupError(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BackupError(f"the passphrase file {path} is not UTF-8 text") from None
    text = text.rstrip("\r\n")
    if not text:
        raise BackupError(f"the passphrase file {path} is empty")
    return text


def _alert(registry, message: str) -> None:
    """The ``backup.failed`` notification, once a day at most."""
    from pyramid.request import Request
    from pyramid.scripting import prepare

    from kameng.notifications import emit

    base = registry.settings.get("kameng.base_url") or "http://127.0.0.1:6543"
    env = prepare(request=Request.blank("/", base_url=base.rstrip("/"), environ={"kameng.write": True}),
                  registry=registry)
    try:
        request = env["request"]
        with request.tm:
            day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
            emit(request.db, EVENT, {"error": message, "folder": data_paths(registry.settings)["backup_dir"]},
                 dedupe_key=f"{EVENT}:{day}")
    finally:
        env["closer"]()


def run_and_report(registry, now: dt.datetime | None = None) -> str | None:
    """:func:`run_scheduled`, with a failure logged and notified instead of raised."""
    try:
        return run_scheduled(registry.settings, now)
    except Exception as exc:
        message = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__} (see the log)"
        log.error("backup_failed", extra={"reason": message[:500]}, exc_info=not isinstance(exc, BackupError))
        try:
            _alert(registry, message)
        except Exception:  # the database itself is down: the log has it
            log.exception("backup_alert_failed")
        return None


def backup_job(request, payload) -> None:
    """The job handler: start the backup in its own thread and return."""
    global _thread
    settings = request.registry.settings
    try:
        if _int_setting(settings, "kameng.backup.every_hours", DEFAULT_EVERY_HOURS) == 0:
            return
    except BackupError:
        pass  # run_and_report reports it
    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return
        # not a daemon: `kameng worker --once` and a stopping server let it finish
        _thread = threading.Thread(target=run_and_report, args=(request.registry,), name="kameng-backup")
        _thread.start()


def wait(timeout: float | None = None) -> None:
    """Wait for a backup this process started to finish (for tests and shutdown)."""
    with _thread_lock:
        thread = _thread
    if thread is not None:
        thread.join(timeout)
