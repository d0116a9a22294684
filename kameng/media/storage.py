"""The folder of uploaded images.

A file is named by the SHA-256 of its (re-encoded) bytes and the extension
of its format, so the same image uploaded twice is one file and a name
can never be chosen by whoever uploads. Only names matching :data:`NAME`
are ever joined to the folder, files are written to a temporary name and
renamed into place, and they are opened without following symbolic links.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass

from kameng.media.images import FORMATS, CleanImage, clean, read_capped

NAME = re.compile(r"[0-9a-f]{64}\.(png|jpg|gif|webp)")
CONTENT_TYPES = {ext: ctype for ext, ctype in FORMATS.values()}


@dataclass(frozen=True)
class StoredImage:
    name: str
    image: CleanImage
    created: bool  # False when the same bytes were already stored


@dataclass(frozen=True)
class MediaFile:
    name: str
    size: int
    mtime: float


class MediaStore:
    def __init__(self, directory: str | None, max_bytes: int, max_pixels: int):
        self.directory = os.path.abspath(directory) if directory else None
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def path(self, name: str) -> str | None:
        """The file's path for a well-formed ``name``, else ``None``."""
        if self.directory is None or not isinstance(name, str) or not NAME.fullmatch(name):
            return None
        return os.path.join(self.directory, name)

    def save(self, fileobj) -> StoredImage:
        """Read at most ``max_bytes`` from ``fileobj``, clean the image and
        store it. Raises :class:`kameng.media.images.ImageRejected`."""
        image = clean(read_capped(fileobj, self.max_bytes), self.max_pixels)
        name = f"{hashlib.sha256(image.data).hexdigest()}.{image.extension}"
        path = self.path(name)
        if os.path.exists(path):
            return StoredImage(name, image, created=False)
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        tmp = os.path.join(self.directory, f".upload-{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o640)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(image.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return StoredImage(name, image, created=True)

    def read(self, name: str) -> bytes | None:
        """The bytes of a stored image, or ``None`` (a bad name, no such
        file, a link or anything else than a regular file)."""
        path = self.path(name)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            if not _is_regular(fh.fileno()):
                return None
            return fh.read()

    def recent(self, limit: int = 200) -> list[MediaFile]:
        """The newest stored images first."""
        if self.directory is None or not os.path.isdir(self.directory):
            return []
        out = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out.append(MediaFile(entry.name, st.st_size, st.st_mtime))
        out.sort(key=lambda f: (-f.mtime, f.name))
        return out[:limit]


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def content_type(name: str) -> str:
    return CONTENT_TYPES[name.rsplit(".", 1)[1]]
