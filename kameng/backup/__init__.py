"""Backups of a whole shop, and restoring one into an empty data directory.

A backup is one file: a gzip-compressed tar archive holding the database
(a consistent snapshot taken while the shop runs), ``kameng.ini``, the key
file, the uploaded media and the merchant's themes, and last a
``manifest.json`` with the SHA-256 of every other member. With a
passphrase the whole file is encrypted (:mod:`kameng.backup.crypt`).

- :mod:`kameng.backup.crypt`: the streamed passphrase encryption;
- :mod:`kameng.backup.archive`: writing and reading the archive;
- :mod:`kameng.backup.dumpers`: the database snapshot and its loading, per database;
- :mod:`kameng.backup.create` and :mod:`kameng.backup.restore`: the two commands' work;
- :mod:`kameng.backup.job`: the scheduled backup with retention.
"""
from __future__ import annotations

import errno
import os

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is one line for the merchant."""


def data_paths(settings: dict) -> dict:
    """Where a shop's files are: data, media, themes and backup directories, key file."""
    data_dir = settings.get("kameng.data_dir") or None
    if data_dir:
        data_dir = os.path.abspath(data_dir)

    def under(key: str, name: str) -> str | None:
        value = settings.get(key)
        if value:
            return os.path.abspath(value)
        return os.path.join(data_dir, name) if data_dir else None

    return {"data_dir": data_dir, "media_dir": under("kameng.media_dir", "media"),
            "themes_dir": under("kameng.themes_dir", "themes"), "backup_dir": under("kameng.backup.dir", "backups"),
            "key_file": settings.get("kameng.key_file") or None}
