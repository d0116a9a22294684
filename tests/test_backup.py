"""`kameng backup` / `kameng restore` and the scheduled backup.

A shop with sold keys is backed up while it runs and restored into a fresh
data directory (and, under KAMENG_TEST_DATABASE_URL, a fresh PostgreSQL or
MariaDB database made with pg_dump / mariadb-dump); the restored shop holds
every order, and every card key decrypts, with the restored key file, to the
same plaintext. Bad archives (wrong passphrase, a changed byte, cut short,
paths outside the target) restore nothing; a full disk leaves no partial
file and the shop and earlier backups untouched.
"""
from __future__ import annotations

import errno
import io
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import tarfile
import threading

import pytest
from sqlalchemy import text

from backup_helpers import (PASSPHRASE, create_database, drop_database, missing_tools, sell, server_url, shop_app,
                            shop_state, tables)
from kameng.backup import crypt
from kameng.backup import job as backup_job
from kameng.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """``(data dir, ini, state)``: a demo shop with three orders, two of them delivered."""
    if missing_tools():
        pytest.skip(f"{', '.join(missing_tools())} not installed: cannot back up or restore the test database")
    data = tmp_path_factory.mktemp("backup") / "shop"
    db = create_database("bksrc")
    argv = ["init", "--data", str(data), "--demo", "--admin-password", "admin-password-1"]
    if db:
        argv += ["--db", db]
    # in a process of its own: init leaves its database connections to the end of the process
    subprocess.run([sys.executable, "-m", "kameng.cli", *argv], check=True, capture_output=True)
    ini = str(data / "kameng.ini")
    sell(ini)
    # uploaded media and a theme of the merchant's own are part of a shop
    (data / "media" / "products").mkdir(parents=True)
    (data / "media" / "products" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200_000))
    (data / "themes" / "mine" / "templates").mkdir(parents=True)
    (data / "themes" / "mine" / "templates" / "base.pt").write_text("<html>mine</html>")
    state = shop_state(ini)
    assert len(state["orders"]) == 3 and sum(1 for k in state["keys"].values() if k[1] == "sold") == 3
    yield data, ini, state
    drop_database(db)


@pytest.fixture
def target_db():
    """The database a restore goes into: a new, empty one on the test server; None on SQLite."""
    url = create_database("restore")
    yield url
    drop_database(url)


def restore_argv(archive, data, target_db, *extra):
    argv = ["restore", str(archive), "--data", str(data), *extra]
    return argv + (["--db", target_db] if target_db else [])


def passphrase_file(tmp_path, value=PASSPHRASE):
    path = tmp_path / "pass.txt"
    path.write_text(value + "\n")
    return str(path)


def assert_nothing_restored(data, target_db):
    assert not data.exists() or list(data.iterdir()) == []
    if target_db:
        assert tables(target_db) == []


# -- round trips ------------------------------------------------------------------------------


def test_restore_finds_every_order_and_key(shop, target_db, tmp_path, capsys):
    data, ini, state = shop
    code, out, err = run(capsys, "-c", ini, "backup", str(tmp_path))
    assert code == 0, err
    [archive] = tmp_path.glob("kameng-backup-*.tar.gz")
    assert f"backup written: {archive}" in out
    # an unencrypted backup holding the key file: private, and the command says so
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert "holds the key file unencrypted" in err and "0600" in err
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert {"kameng.ini", "secret.key", "media/products/logo.png", "themes/mine/templates/base.pt"} <= set(names)
    assert manifest["format"] == 1 and manifest["database"]["dialect"] in ("sqlite", "postgresql", "mysql")
    assert manifest["database"]["revisions"]["alembic_version"]
    assert manifest["database"]["counts"]["orders"] == 3

    restored = tmp_path / "restored"
    code, out, err = run(capsys, *restore_argv(archive, restored, target_db))
    assert code == 0, err
    assert "orders: 3, card keys: 250" in out
    assert shop_state(str(restored / "kameng.ini")) == state
    for name in ("kameng.ini", "secret.key"):
        assert stat.S_IMODE((restored / name).stat().st_mode) == 0o600
    assert (restored / "secret.key").read_bytes() == (data / "secret.key").read_bytes()
    assert (restored / "media" / "products" / "logo.png").read_bytes() == \
        (data / "media" / "products" / "logo.png").read_bytes()
    assert (restored / "themes" / "mine" / "templates" / "base.pt").read_text() == "<html>mine</html>"
    config = (restored / "kameng.ini").read_text()
    assert f"kameng.data_dir = {restored}\n" in config and str(data) not in config
    assert "kameng.key_file = %(here)s/secret.key" in config
    assert not (restored / ".kameng-restore").exists()
    # the restored shop serves
    with shop_app(str(restored / "kameng.ini")) as app:
        import webtest

        assert "Steam" in webtest.TestApp(app).get("/").text


def test_encrypted_round_trip(shop, target_db, tmp_path, capsys):
    data, ini, state = shop
    pw = passphrase_file(tmp_path)
    archive = tmp_path / "shop.tar.gz.enc"
    code, out, err = run(capsys, "-c", ini, "backup", str(archive), "--passphrase-file", pw)
    assert code == 0, err
    assert "encrypted" in out and "unencrypted" not in err
    raw = archive.read_bytes()
    assert raw.startswith(crypt.MAGIC)
    key_line = (data / "secret.key").read_text().splitlines()[0]
    assert key_line.encode() not in raw and b"sqlalchemy.url" not in raw
    code, out, _ = run(capsys, "restore", str(archive), "--check", "--passphrase-file", pw)
    assert code == 0 and out.startswith("backup OK")
    restored = tmp_path / "restored"
    code, out, err = run(capsys, *restore_argv(archive, restored, target_db, "--passphrase-file", pw))
    assert code == 0, err
    assert shop_state(str(restored / "kameng.ini")) == state


def test_passphrase_from_the_environment(shop, tmp_path, capsys, monkeypatch):
    _data, ini, _state = shop
    monkeypatch.setenv("KAMENG_BACKUP_PASSPHRASE", PASSPHRASE)
    code, _out, err = run(capsys, "-c", ini, "backup", str(tmp_path / "b.enc"))
    assert code == 0, err
    assert crypt.is_encrypted(str(tmp_path / "b.enc"))
    code, out, _ = run(capsys, "restore", str(tmp_path / "b.enc"), "--check")
    assert code == 0 and out.startswith("backup OK")
    monkeypatch.setenv("KAMENG_BACKUP_PASSPHRASE", "short")
    code, _out, err = run(capsys, "-c", ini, "backup", str(tmp_path / "c.enc"))
    assert code == 1 and "at least 10 characters" in err and not (tmp_path / "c.enc").exists()


def test_without_key_file_restore_needs_the_key_file(shop, target_db, tmp_path, capsys):
    data, ini, state = shop
    archive = tmp_path / "nokey.tar.gz"
    code, out, err = run(capsys, "-c", ini, "backup", str(archive), "--without-key-file")
    assert code == 0 and "unencrypted" not in err
    with tarfile.open(archive) as tar:
        assert "secret.key" not in tar.getnames()
    restored = tmp_path / "restored"
    code, _out, err = run(capsys, *restore_argv(archive, restored, target_db))
    assert code == 1 and "--key-file" in err
    assert_nothing_restored(restored, target_db)
    other = tmp_path / "other.key"
    from kameng.crypto import write_key_file

    write_key_file(str(other))
    code, _out, err = run(capsys, *restore_argv(archive, restored, target_db, "--key-file", str(other)))
    assert code == 1 and "not this shop's key file" in err
    assert_nothing_restored(restored, target_db)
    code, _out, err = run(capsys, *restore_argv(archive, restored, target_db, "--key-file",
                                                str(data / "secret.key")))
    assert code == 0, err
    assert shop_state(str(restored / "kameng.ini")) == state


# -- bad archives restore nothing ----------------------------------------------------------------


@pytest.fixture(scope="module")
def encrypted_backup(shop, tmp_path_factory):
    _data, ini, _state = shop
    folder = tmp_path_factory.mktemp("enc")
    pw = passphrase_file(folder)
    assert main(["-c", ini, "backup", str(folder / "b.tar.gz.enc"), "--passphrase-file", pw]) == 0
    return folder / "b.tar.gz.enc", pw


def test_wrong_passphrase_restores_nothing(encrypted_backup, target_db, tmp_path, capsys):
    archive, _pw = encrypted_backup
    wrong = passphrase_file(tmp_path, "not the passphrase")
    restored = tmp_path / "restored"
    code, out, err = run(capsys, *restore_argv(archive, restored, target_db, "--passphrase-file", wrong))
    assert code == 1 and err.count("\n") == 1
    assert "wrong passphrase" in err and "nothing was restored" in err
    assert_nothing_restored(restored, target_db)


@pytest.mark.parametrize("where", ["header", "middle", "last byte"])
def test_a_changed_byte_is_refused(encrypted_backup, target_db, tmp_path, capsys, where):
    archive, pw = encrypted_backup
    raw = bytearray(archive.read_bytes())
    chunk = crypt.CHUNK_SIZE + crypt.TAG
    assert len(raw) > crypt.HEADER_SIZE + 2 * chunk  # several chunks: the change is not in the first one
    pos = {"header": 20, "middle": crypt.HEADER_SIZE + chunk + 100, "last byte": len(raw) - 1}[where]
    raw[pos] ^= 0x01
    bad = tmp_path / "bad.enc"
    bad.write_bytes(raw)
    restored = tmp_path / "restored"
    code, _out, err = run(capsys, *restore_argv(bad, restored, target_db, "--passphrase-file", pw))
    assert code == 1 and "nothing was restored" in err
    assert_nothing_restored(restored, target_db)


@pytest.mark.parametrize("cut", ["at a chunk boundary", "inside a chunk", "last chunk dropped"])
def test_a_backup_cut_short_is_refused(encrypted_backup, target_db, tmp_path, capsys, cut):
    archive, pw = encrypted_backup
    raw = archive.read_bytes()
    chunk = crypt.CHUNK_SIZE + crypt.TAG
    full_chunks = (len(raw) - crypt.HEADER_SIZE) // chunk
    length = {"at a chunk boundary": crypt.HEADER_SIZE + chunk, "inside a chunk": crypt.HEADER_SIZE + chunk + 5000,
              "last chunk dropped": crypt.HEADER_SIZE + full_chunks * chunk}[cut]
    assert length < len(raw)
    short = tmp_path / "short.enc"
    short.write_bytes(raw[:length])
    restored = tmp_path / "restored"
    code, _out, err = run(capsys, *restore_argv(short, restored, target_db, "--passphrase-file", pw))
    assert code == 1 and ("cut short" in err or "damaged" in err), err
    assert_nothing_restored(restored, target_db)


def _decrypt(data: bytes, passphrase: str = PASSPHRASE) -> bytes:
    return crypt.DecryptReader(io.BytesIO(data), passphrase).read()


def test_the_stream_encryption_refuses_cut_swapped_and_changed_chunks():
    """The encryption layer on its own (the archive under it would also
    notice most of these): chunks of 1 KB, the final one flagged."""
    plain = os.urandom(3 * 1024 + 100)
    out = io.BytesIO()
    w = crypt.EncryptWriter(out, PASSPHRASE, chunk_size=1024, log2_n=10)
    w.write(plain)
    w.close()
    data = out.getvalue()
    header, size = crypt.HEADER_SIZE, 1024 + crypt.TAG
    chunks = [data[header + i * size:header + (i + 1) * size] for i in range(4)]
    assert _decrypt(data) == plain
    bad = {
        "cut at a chunk boundary": data[:header + 3 * size],
        "cut inside a chunk": data[:-10],
        "chunks swapped": data[:header] + chunks[1] + chunks[0] + chunks[2] + chunks[3],
        "a chunk repeated": data[:header] + chunks[0] + chunks[0] + chunks[1] + chunks[2] + chunks[3],
        "data after the end": data + b"x",
        "a changed byte": data[:header + 5] + bytes([data[header + 5] ^ 1]) + data[header + 6:],
    }
    for what, damaged in bad.items():
        with pytest.raises(crypt.BackupCryptoError):
            _decrypt(damaged)
            pytest.fail(what)
    with pytest.raises(crypt.BackupCryptoError, match="wrong passphrase"):
        _decrypt(data, "another passphrase")
    # a whole number of chunks ends with an empty final chunk
    out = io.BytesIO()
    w = crypt.EncryptWriter(out, PASSPHRASE, chunk_size=1024, log2_n=10)
    w.write(plain[:2048])
    w.close()
    assert len(out.getvalue()) == header + 2 * size + crypt.TAG and _decrypt(out.getvalue()) == plain[:2048]
    with pytest.raises(crypt.BackupCryptoError):
        _decrypt(out.getvalue()[:header + 2 * size])


def test_an_unencrypted_backup_cut_short_is_refused(shop, tmp_path, capsys):
    _data, ini, _state = shop
    archive = tmp_path / "b.tar.gz"
    assert main(["-c", ini, "backup", str(archive)]) == 0
    raw = archive.read_bytes()
    (tmp_path / "short.tar.gz").write_bytes(raw[:len(raw) - 20])
    restored = tmp_path / "restored"
    code, _out, err = run(capsys, "restore", str(tmp_path / "short.tar.gz"), "--data", str(restored))
    assert code == 1 and ("cut short" in err or "damaged" in err), err
    assert_nothing_restored(restored, None)


def _archive(members: dict) -> bytes:
    """A tar.gz whose manifest lists ``members`` correctly."""
    import hashlib

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        listed = {}
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
            listed[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        manifest = json.dumps({"format": 1, "members": listed, "database": {"dialect": "sqlite"}}).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(manifest)
        tar.addfile(ti, io.BytesIO(manifest))
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil", "media/../../evil", "/tmp/evil", "database/../../evil", "other.txt"])
def test_entries_outside_the_data_directory_are_refused(tmp_path, capsys, name):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_archive({name: b"owned"}))
    restored = tmp_path / "a" / "restored"
    code, _out, err = run(capsys, "restore", str(archive), "--data", str(restored))
    assert code == 1 and "unexpected entry" in err
    assert not (tmp_path / "evil").exists() and not (tmp_path / "a" / "evil").exists()
    assert_nothing_restored(restored, None)


def test_a_link_in_the_archive_is_refused(tmp_path, capsys):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ti = tarfile.TarInfo("media/link")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(ti)
    (tmp_path / "link.tar.gz").write_bytes(buf.getvalue())
    code, _out, err = run(capsys, "restore", str(tmp_path / "link.tar.gz"), "--data", str(tmp_path / "r"))
    assert code == 1 and "not a plain file" in err
    assert_nothing_restored(tmp_path / "r", None)


# -- the target must be empty ---------------------------------------------------------------------


def test_a_non_empty_target_is_refused(shop, target_db, tmp_path, capsys):
    _data, ini, _state = shop
    archive = tmp_path / "b.tar.gz"
    assert main(["-c", ini, "backup", str(archive)]) == 0
    capsys.readouterr()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "kameng.ini").write_text("mine")
    code, _out, err = run(capsys, *restore_argv(archive, busy, target_db))
    assert code == 1 and "is not empty" in err
    assert [p.name for p in busy.iterdir()] == ["kameng.ini"] and (busy / "kameng.ini").read_text() == "mine"
    if target_db:  # a server database with tables
        from sqlalchemy import create_engine

        engine = create_engine(target_db)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE precious (id INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO precious (id) VALUES (7)"))
        engine.dispose()
        code, _out, err = run(capsys, *restore_argv(archive, tmp_path / "fresh", target_db))
        assert code == 1 and "target database is not empty" in err
        assert tables(target_db) == ["precious"] and not (tmp_path / "fresh").exists()
    else:  # an existing SQLite file named by --db
        existing = tmp_path / "existing.sqlite"
        existing.write_bytes(b"keep me")
        code, _out, err = run(capsys, "restore", str(archive), "--data", str(tmp_path / "fresh"),
                              "--db", f"sqlite:///{existing}")
        assert code == 1 and "already exists" in err and existing.read_bytes() == b"keep me"


def test_a_backup_never_overwrites_a_file(shop, tmp_path, capsys):
    _data, ini, _state = shop
    existing = tmp_path / "b.tar.gz"
    existing.write_bytes(b"an older backup")
    code, _out, err = run(capsys, "-c", ini, "backup", str(existing))
    assert code == 1 and "already exists" in err and existing.read_bytes() == b"an older backup"


# -- a full disk ----------------------------------------------------------------------------------


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_disk_full_in_a_real_process(shop, tmp_path):
    """The backup process may write files of 100 KB at most (RLIMIT_FSIZE):
    the kernel refuses the write that would pass it (EFBIG), as a full disk
    refuses with ENOSPC."""
    data, ini, state = shop
    folder = tmp_path / "backups"
    folder.mkdir()
    assert main(["-c", ini, "backup", str(folder / "old.tar.gz")]) == 0
    old = (folder / "old.tar.gz").read_bytes()
    assert len(old) > 100_000  # the new archive cannot fit under the limit either

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    proc = subprocess.run([sys.executable, "-m", "kameng.cli", "-c", ini, "backup", str(folder)],
                          preexec_fn=limit, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("kameng: error: cannot write the backup in") and proc.stderr.count("\n") == 1
    assert "the disk is full" in proc.stderr and "untouched" in proc.stderr
    assert _leftovers(folder) == ["old.tar.gz"] and (folder / "old.tar.gz").read_bytes() == old
    assert shop_state(ini) == state


def test_disk_full_while_writing_the_archive(shop, tmp_path, capsys, monkeypatch):
    data, ini, state = shop
    folder = tmp_path / "backups"
    folder.mkdir()
    assert main(["-c", ini, "backup", str(folder / "old.tar.gz")]) == 0
    capsys.readouterr()
    old = (folder / "old.tar.gz").read_bytes()
    from kameng.backup import create

    real_open = create.open_archive

    class Full:
        """The archive file, on a disk that fills after 20 KB."""

        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            if self.written + len(data) > 20_000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(create, "open_archive", lambda path: Full(real_open(path)))
    code, _out, err = run(capsys, "-c", ini, "backup", str(folder))
    assert code == 1 and err.count("\n") == 1
    assert "the disk is full (No space left on device)" in err
    assert _leftovers(folder) == ["old.tar.gz"] and (folder / "old.tar.gz").read_bytes() == old
    assert shop_state(ini) == state


def test_a_missing_dump_tool_is_a_clear_error(shop, tmp_path, capsys, monkeypatch):
    if not server_url():
        pytest.skip("SQLite is backed up without an outside tool")
    _data, ini, _state = shop
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _out, err = run(capsys, "-c", ini, "backup", str(tmp_path))
    assert code == 1 and "is not installed" in err and err.count("\n") == 1
    assert _leftovers(tmp_path) == []


# -- consistency while the shop writes ------------------------------------------------------------


def test_the_backup_is_consistent_while_the_shop_writes(shop, target_db, tmp_path):
    """A writer commits a row to two tables in each transaction during the
    backup: the restored database has every pair whole, and at least all
    the pairs committed before the backup began."""
    from kameng.backup.create import create_backup
    from kameng.backup.restore import restore_backup
    from kameng.db import make_engine, write_bind

    data, ini, _state = shop
    with shop_app(ini) as app:
        settings = dict(app.registry.settings)
    engine = write_bind(make_engine(settings["sqlalchemy.url"]))
    with engine.begin() as conn:
        for name in ("bk_left", "bk_right"):
            conn.execute(text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, note VARCHAR(40))"))
    committed, errors, started, stop = [0], [], threading.Event(), threading.Event()

    def writer():
        i = 0
        try:
            while not stop.is_set():
                i += 1
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO bk_left (id, note) VALUES (:i, 'l')"), {"i": i})
                    conn.execute(text("INSERT INTO bk_right (id, note) VALUES (:i, 'r')"), {"i": i})
                committed[0] = i
                if i == 20:
                    started.set()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        started.wait()
        before = committed[0]
        result = create_backup(settings, str(tmp_path), config_path=ini)
        after = committed[0]
    finally:
        stop.set()
        thread.join()
    try:
        assert not errors, errors  # the shop was never blocked or failed meanwhile
        restored = restore_backup(result.path, str(tmp_path / "restored"), db_url=target_db)
        check = make_engine(restored.db_url)
        with check.connect() as conn:
            left = set(conn.scalars(text("SELECT id FROM bk_left")))
            right = set(conn.scalars(text("SELECT id FROM bk_right")))
        check.dispose()
        assert left == right
        assert left == set(range(1, len(left) + 1)) and before <= len(left) <= after
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE bk_left"))
            conn.execute(text("DROP TABLE bk_right"))
        engine.dispose()


# -- the scheduled backup -------------------------------------------------------------------------


def test_the_scheduled_backup_writes_one_and_keeps_n(shop, tmp_path, monkeypatch):
    from kameng import jobs
    from kameng.backup.restore import check_archive
    from kameng.cli.commands import request_for
    from kameng.testing import run_jobs

    _data, ini, _state = shop
    folder = tmp_path / "auto"
    folder.mkdir()
    old = ["kameng-backup-auto-20200101T000000Z.tar.gz", "kameng-backup-auto-20200102T000000Z.tar.gz.enc",
           "kameng-backup-auto-20200103T000000Z.tar.gz"]
    others = ["kameng-backup-20190101T000000Z.tar.gz", "notes.txt", "kameng-backup-auto-old.tar.gz"]
    for name in old + others:
        (folder / name).write_bytes(b"x")
    with shop_app(ini) as app:
        registry = app.registry
        assert any(sj.kind == backup_job.KIND and sj.every_seconds == 3600
                   for _owner, sj in registry["kameng.scheduled_jobs"])
        for key, value in (("kameng.backup.dir", str(folder)), ("kameng.backup.keep", "2"),
                           ("kameng.backup.every_hours", "24")):
            monkeypatch.setitem(registry.settings, key, value)

        def tick():
            with request_for(registry) as req:
                jobs.enqueue(req.db, backup_job.KIND)
            assert run_jobs(registry) >= 1
            backup_job.wait()

        tick()
        new = [p.name for p in folder.iterdir() if p.name.startswith("kameng-backup-auto-2") and p.name not in old]
        assert len(new) == 1
        assert stat.S_IMODE((folder / new[0]).stat().st_mode) == 0o600
        assert check_archive(str(folder / new[0]), None)["database"]["counts"]["orders"] == 3
        # the newest two of the job's own files stay; other files are never touched
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == \
            sorted([old[2], new[0]] + others)
        tick()  # a day has not passed: nothing new
        assert len([p for p in folder.iterdir() if p.name.startswith("kameng-backup-auto-2")]) == 2

        monkeypatch.setitem(registry.settings, "kameng.backup.every_hours", "0")  # off
        for p in folder.glob("kameng-backup-auto-2*"):
            p.unlink()
        tick()
        assert not list(folder.glob("kameng-backup-auto-2*"))


def test_the_scheduled_backup_encrypts_with_the_passphrase_file(shop, tmp_path, monkeypatch):
    from kameng.backup.restore import check_archive

    _data, ini, _state = shop
    with shop_app(ini) as app:
        settings = dict(app.registry.settings)
    settings.update({"kameng.backup.dir": str(tmp_path / "auto"), "kameng.backup.passphrase_file":
                     passphrase_file(tmp_path)})
    path = backup_job.run_scheduled(settings)
    assert path.endswith(".tar.gz.enc") and crypt.is_encrypted(path)
    assert check_archive(path, PASSPHRASE)["encrypted"] is True


def test_a_failed_scheduled_backup_alerts_the_shop(plug_app, tmp_path, monkeypatch, caplog):
    """The failure goes to the notification channels (here the test plugin's), once a day."""
    import kameng_testplug

    from kameng.testing import run_jobs, set_plugin

    registry = plug_app.registry
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setitem(registry.settings, "kameng.backup.dir", str(not_a_folder))
    monkeypatch.setitem(registry.settings, "kameng.backup.every_hours", "24")
    kameng_testplug.CALLS.clear()
    assert backup_job.run_and_report(registry) is None
    assert backup_job.run_and_report(registry) is None
    run_jobs(registry)
    alerts = [c for c in kameng_testplug.CALLS if c[0] == "notify"]
    assert len(alerts) == 1
    _notify, event, payload = alerts[0]
    assert event == "backup.failed" and "cannot create the backup folder" in payload["error"]
    assert any(r.getMessage() == "backup_failed" for r in caplog.records)


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_the_commands_have_help(command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
