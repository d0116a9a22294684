"""Making a backup: the database snapshot, the files, one archive.

The archive is written to a hidden work folder inside the target folder and
renamed into place only when complete (and flushed to disk). On any error,
a full disk included, the work folder is removed: no partial backup is left,
earlier backups and the shop's own files are never written to.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

import kameng
from kameng.backup import DISK_FULL_ERRNOS, BackupError, data_paths
from kameng.backup.archive import FORMAT, ArchiveWriter
from kameng.backup.crypt import EncryptWriter, check_passphrase
from kameng.backup.dumpers import disk_full_message, snapshot
from kameng.crypto import KeyRing, KeyRingError

WORK_PREFIX = ".kameng-backup-"
SUFFIX, ENC_SUFFIX = ".tar.gz", ".tar.gz.enc"


@dataclass
class BackupResult:
    path: str
    size: int
    encrypted: bool
    key_file: bool
    dialect: str
    counts: dict
    media_files: int = 0
    theme_files: int = 0
    members: list = field(default_factory=list)


def backup_name(prefix: str, encrypted: bool, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}{ENC_SUFFIX if encrypted else SUFFIX}"


def resolve_target(settings: dict, target: str | None, encrypted: bool, prefix: str = "kameng-backup") -> str:
    """The file to write: ``target`` itself, a new name in the folder
    ``target``, or (None) a new name in the backup folder."""
    if target is None:
        folder = data_paths(settings)["backup_dir"]
        if not folder:
            raise BackupError("no backup folder: give a PATH, or set kameng.data_dir or kameng.backup.dir")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        target = folder
    target = os.path.abspath(target)
    if os.path.isdir(target):
        return os.path.join(target, backup_name(prefix, encrypted))
    if os.path.lexists(target):
        raise BackupError(f"{target} already exists: give a new file name or a folder")
    if not os.path.isdir(os.path.dirname(target)):
        raise BackupError(f"there is no folder {os.path.dirname(target)}")
    return target


def _tree_files(root: str | None, skip: set[str]) -> list[tuple[str, str]]:
    """(path relative to root with '/', absolute path) of the regular files
    under ``root``; symbolic links and the folders in ``skip`` left out."""
    out = []
    if not root or not os.path.isdir(root):
        return out
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if os.path.join(here, d) not in skip
                         and not os.path.islink(os.path.join(here, d)))
        for name in sorted(files):
            full = os.path.join(here, name)
            if full in skip or os.path.islink(full) or not os.path.isfile(full):
                continue
            out.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return out


def create_backup(settings: dict, target: str | None, *, config_path: str | None = None,
                  passphrase: str | None = None, include_key_file: bool = True,
                  prefix: str = "kameng-backup") -> BackupResult:
    """Back up the shop configured by ``settings`` (as the app reads them)."""
    if passphrase is not None:
        check_passphrase(passphrase)
    url = settings.get("sqlalchemy.url")
    if not url:
        raise BackupError("sqlalchemy.url is not set: which database should be backed up?")
    paths = data_paths(settings)
    out_path = resolve_target(settings, target, passphrase is not None, prefix)
    folder = os.path.dirname(out_path)
    work = None
    try:
        work = tempfile.mkdtemp(prefix=WORK_PREFIX, dir=folder)
        result = _write(settings, url, paths, out_path, work, config_path, passphrase, include_key_file)
    except BackupError:
        raise
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise BackupError(disk_full_message(folder, exc.strerror or str(exc))) from None
        raise BackupError(f"cannot write the backup in {folder}: {exc.strerror or exc}") from None
    except Exception as exc:  # the database driver: server down, access refused
        line = (str(exc).splitlines() or [""])[0]
        password = make_url(url).password
        if password:
            line = line.replace(password, "***")
        raise BackupError(f"the backup failed: {type(exc).__name__}: {line[:300]}") from exc
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _write(settings, url, paths, out_path, work, config_path, passphrase, include_key_file) -> BackupResult:
    snap = snapshot(url, work)
    # the key file is read after the snapshot: `kameng keys rotate` adds a key
    # to the file before it encrypts anything with it
    key_path = paths["key_file"]
    if not key_path:
        raise BackupError("kameng.key_file is not set")
    try:
        with open(key_path, "rb") as fh:
            key_bytes = fh.read()
        ring = KeyRing.from_file(key_path)
    except OSError as exc:
        raise BackupError(f"cannot read the key file {key_path}: {exc.strerror}") from None
    except KeyRingError as exc:
        raise BackupError(str(exc)) from None
    if snap.keys_in_use is not None and not snap.keys_in_use <= set(ring.key_ids):
        missing = ", ".join(sorted(snap.keys_in_use - set(ring.key_ids)))
        raise BackupError(f"the key file {key_path} lacks key(s) the database uses ({missing}); "
                          "it changed during the backup (`keys rotate --drop-old`?): run the backup again")
    skip = {folder for folder in (paths["backup_dir"], os.path.dirname(out_path)) if folder}
    media = _tree_files(paths["media_dir"], skip)
    themes = _tree_files(paths["themes_dir"], skip)
    manifest = {
        "format": FORMAT, "kameng_version": kameng.__version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "database": {"dialect": snap.dialect, "member": snap.member, "tool": snap.tool,
                     "counts": snap.counts, "counts_exact": snap.counts_exact, "revisions": snap.revisions},
        "key_file": include_key_file, "key_ids": ring.key_ids,
        "paths": {"data_dir": paths["data_dir"], "media_dir": paths["media_dir"], "themes_dir": paths["themes_dir"]},
        "encrypted": passphrase is not None,
    }
    tmp = os.path.join(work, "archive")
    with open_archive(tmp) as raw:
        sink = EncryptWriter(raw, passphrase) if passphrase is not None else raw
        writer = ArchiveWriter(sink)
        try:
            if config_path and os.path.isfile(config_path):
                writer.add_file("kameng.ini", config_path)
            if include_key_file:
                writer.add_bytes("secret.key", key_bytes)
            writer.add_file(snap.member, snap.path)
            for rel, full in media:
                writer.add_file(f"media/{rel}", full, mode=0o644)
            for rel, full in themes:
                writer.add_file(f"themes/{rel}", full, mode=0o644)
            writer.finish(manifest)
        except BaseException:
            writer.abandon()
            raise
        if sink is not raw:
            sink.close()
        raw.flush()
        os.fsync(raw.fileno())
    if os.path.lexists(out_path):
        raise BackupError(f"{out_path} appeared while the backup was written; nothing was replaced")
    os.replace(tmp, out_path)
    _fsync_dir(os.path.dirname(out_path))
    return BackupResult(out_path, os.path.getsize(out_path), passphrase is not None, include_key_file, snap.dialect,
                        snap.counts, len(media), len(themes), sorted(writer.members))


def open_archive(path: str):
    """The new archive file, readable by its owner only: it may hold the key file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
