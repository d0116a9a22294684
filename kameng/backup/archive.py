"""The backup archive: a gzip-compressed tar stream, ``manifest.json`` last.

Members, all regular files::

    kameng.ini                   the configuration (when the backup knew it)
    secret.key                   the key file (unless left out)
    database/kameng.sqlite       SQLite: the database file
    database/kameng.pgdump       PostgreSQL: ``pg_dump -Fc`` output
    database/kameng.sql          MariaDB/MySQL: ``mariadb-dump`` output
    media/…, themes/…            uploaded media, the merchant's themes
    manifest.json                format, versions, database, counts and
                                 ``members``: {name: {"size", "sha256"}}

Reading checks every name (no absolute path, no ``..``, only the folders
above), takes regular files only, and compares each member with the
manifest; a member the manifest does not list, or one it lists that is
missing, makes the archive invalid.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import time
import zlib

from kameng.backup import BackupError

MANIFEST = "manifest.json"
FORMAT = 1
TOP_FILES = {"kameng.ini", "secret.key", MANIFEST}
DATABASE_FILES = {"database/kameng.sqlite", "database/kameng.pgdump", "database/kameng.sql"}
TREES = ("media/", "themes/")
MAX_MANIFEST = 64 * 1024 * 1024
_BAD_PART = re.compile(r"[\x00-\x1f\\]")


def check_name(name: str) -> str:
    """The member name if it is one a kameng backup may hold, else BackupError."""
    if (not name or name.startswith("/") or len(name) > 4096 or _BAD_PART.search(name)
            or posixpath.normpath(name) != name or any(p in ("", ".", "..") for p in name.split("/"))):
        raise BackupError(f"the backup holds an unexpected entry {name[:200]!r}")
    if name in TOP_FILES or name in DATABASE_FILES or name.startswith(TREES):
        return name
    raise BackupError(f"the backup holds an unexpected entry {name[:200]!r}")


class _Hashing:
    """Reads from ``fh`` and hashes what it gives."""

    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def read(self, n=-1):
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


class ArchiveWriter:
    """Adds members to a tar stream written (gzip-compressed) to ``fileobj``."""

    def __init__(self, fileobj, compresslevel: int = 6):
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=compresslevel, mtime=0)
        self._tar = tarfile.open(fileobj=self._gz, mode="w|", format=tarfile.PAX_FORMAT)
        self.members: dict[str, dict] = {}

    def _info(self, name: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(check_name(name))
        ti.size, ti.mode, ti.mtime = size, mode, int(mtime)
        ti.uname = ti.gname = ""
        return ti

    def add_file(self, name: str, path: str, mode: int = 0o600) -> None:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            reader = _Hashing(fh)
            self._tar.addfile(self._info(name, st.st_size, mode, st.st_mtime), reader)
        self.members[name] = {"size": reader.size, "sha256": reader.sha.hexdigest()}

    def add_bytes(self, name: str, data: bytes, mode: int = 0o600) -> None:
        reader = _Hashing(io.BytesIO(data))
        self._tar.addfile(self._info(name, len(data), mode, time.time()), reader)
        self.members[name] = {"size": reader.size, "sha256": reader.sha.hexdigest()}

    def finish(self, manifest: dict) -> None:
        """Write the manifest (with the members' hashes) and end the stream."""
        data = json.dumps({**manifest, "members": self.members}, indent=1, sort_keys=True).encode()
        ti = self._info(MANIFEST, len(data), 0o600, time.time())
        self._tar.addfile(ti, io.BytesIO(data))
        self._tar.close()
        self._gz.close()


    def abandon(self) -> None:
        """Give up after an error (the file is being deleted): nothing more is
        written, not even by the garbage collector."""
        self._tar.fileobj.closed = True  # tarfile's stream would flush in __del__
        self._tar.closed = True
        self._gz.fileobj = None  # GzipFile.close() then writes no trailer


def _open_private(path: str, mode: int):
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    return os.fdopen(fd, "wb")


def extract(fileobj, dest: str | None) -> dict:
    """Read the archive from ``fileobj`` into the folder ``dest`` (None: only
    check it) and give its manifest, once every member matched it."""
    found: dict[str, dict] = {}
    manifest = None
    try:
        gz = gzip.GzipFile(filename="", mode="rb", fileobj=fileobj)
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for ti in tar:
                name = check_name(ti.name)
                if manifest is not None:
                    raise BackupError("the backup holds data after its manifest")
                if not ti.isreg():
                    raise BackupError(f"the backup holds an entry that is not a plain file: {name!r}")
                if name in found:
                    raise BackupError(f"the backup holds {name!r} twice")
                src = tar.extractfile(ti)
                if name == MANIFEST:
                    if ti.size > MAX_MANIFEST:
                        raise BackupError("the backup's manifest is too large")
                    manifest = _parse_manifest(src.read())
                    continue
                reader = _Hashing(src)
                if dest is None:
                    while reader.read(1024 * 1024):
                        pass
                else:
                    mode = 0o600 if "/" not in name or name.startswith("database/") else (ti.mode & 0o755) | 0o600
                    with _open_private(os.path.join(dest, *name.split("/")), mode) as out:
                        while True:
                            chunk = reader.read(1024 * 1024)
                            if not chunk:
                                break
                            out.write(chunk)
                found[name] = {"size": reader.size, "sha256": reader.sha.hexdigest()}
        while gz.read(1024 * 1024):  # to the end: the gzip trailer's checksum and length are checked
            pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupError(f"the backup is damaged or cut short ({type(exc).__name__}: {exc})") from None
    if manifest is None:
        raise BackupError("the backup has no manifest: it is damaged or cut short")
    listed = manifest["members"]
    if set(listed) != set(found):
        missing, extra = sorted(set(listed) - set(found)), sorted(set(found) - set(listed))
        raise BackupError(f"the backup does not match its manifest (missing: {missing[:5]}, unlisted: {extra[:5]})")
    for name, info in found.items():
        if listed[name].get("sha256") != info["sha256"] or listed[name].get("size") != info["size"]:
            raise BackupError(f"the backup is damaged: {name} does not match its checksum")
    return manifest


def _parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupError("the backup's manifest is not valid JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), dict):
        raise BackupError("the backup's manifest is malformed")
    fmt = manifest.get("format")
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise BackupError(f"the backup has format {fmt!r}; this kameng reads format {FORMAT} and older: "
                          "restore it with a newer kameng")
    return manifest
