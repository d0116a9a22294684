"""Card keys: encrypted import with dedupe, atomic reservation, rotation."""
import datetime as dt
import os
import multiprocessing
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kameng.catalog.models import Category, Product, Sku
from kameng.crypto import KeyRing
from kameng.db import utcnow
from kameng.inventory import rotate, service
from kameng.inventory.models import CardKey
from kameng.testing import app_request

LATER = dt.timedelta(minutes=15)


@pytest.fixture
def sku(registry):
    with app_request(registry) as req:
        cat = Category(name="游戏点卡")
        req.db.add(cat)
        req.db.flush()
        product = Product(category_id=cat.id, name="Steam 充值码", type="card_key")
        req.db.add(product)
        req.db.flush()
        row = Sku(product_id=product.id, code="STEAM-50", name="50 元", price=5000, stock=0)
        req.db.add(row)
        req.db.flush()
        return row.id


def do_import(registry, sku_id, lines, **kw):
    engine = registry["kameng.write_engine"]
    return service.import_keys(lambda: Session(engine), registry["kameng.keyring"], sku_id, lines, **kw)


def stock(registry, sku_id):
    with app_request(registry) as req:
        return req.db.get(Sku, sku_id).stock, service.counts(req.db, sku_id)


def test_import_dedupes_and_is_idempotent(registry, sku):
    lines = ["AAAA-1111", "BBBB-2222", "", "AAAA-1111", "CCCC-3333", "bad\x00line", "x" * 501]
    report = do_import(registry, sku, lines, chunk=2)
    assert (report.lines, report.imported, report.duplicates, report.invalid) == (6, 3, 1, 2)
    assert report.invalid_lines == [6, 7]
    again = do_import(registry, sku, lines)
    assert (again.imported, again.duplicates) == (0, 4)
    assert stock(registry, sku) == (3, {"available": 3, "reserved": 0, "sold": 0, "void": 0})


def test_import_pairs_with_separator_and_csv_header(registry, sku):
    report = do_import(registry, sku, ["卡号,卡密", "N001,S001", "N002 , S002", "N003", ",S004"], separator=",")
    assert (report.imported, report.invalid) == (2, 2)
    with app_request(registry) as req:
        keys = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        plain = [service.reveal(req.registry["kameng.keyring"], k) for k in keys]
    assert plain == [("N001", "S001"), ("N002", "S002")]
    # the same secret under another card number is another key
    assert do_import(registry, sku, ["N009,S001"], separator=",").imported == 1
    assert do_import(registry, sku, ["N001\tS001"], separator="\t").imported == 0


def test_no_plaintext_secret_in_the_database(registry, sku):
    secrets_ = [f"SECRET-{i:05d}-PLAINTEXT" for i in range(50)]
    do_import(registry, sku, [f"CARDNO{i:05d},{s}" for i, s in enumerate(secrets_)], separator=",")
    engine = registry["kameng.engine"]
    with engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(select(CardKey.__table__)) for v in row)
    assert "PLAINTEXT" not in dump and "CARDNO" not in dump
    if engine.dialect.name == "sqlite":
        import subprocess
        import sys

        # Read the file from another process: closing any descriptor of a
        # SQLite file drops this process's locks on it (POSIX fcntl locks).
        for path in [p for p in (engine.url.database, engine.url.database + "-wal") if os.path.exists(p)]:
            found = subprocess.run([sys.executable, "-c", "import sys; d = open(sys.argv[1], 'rb').read(); "
                                    "print(b'PLAINTEXT' in d or b'CARDNO' in d)", path],
                                   capture_output=True, text=True, check=True).stdout.strip()
            assert found == "False", path


def test_ciphertext_moved_to_another_row_does_not_decrypt(registry, sku):
    do_import(registry, sku, ["ONE-SECRET", "TWO-SECRET"])
    ring = registry["kameng.keyring"]
    from kameng.crypto import DecryptionError

    with app_request(registry) as req:
        a, b = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        assert service.reveal(ring, b) == (None, "TWO-SECRET")
        moved = CardKey(sku_id=a.sku_id, fingerprint=a.fingerprint, secret=b.secret, key_id=b.key_id)
        with pytest.raises(DecryptionError):
            service.reveal(ring, moved)


def test_preview_writes_nothing(registry, sku):
    do_import(registry, sku, ["OLD-1"])
    with app_request(registry) as req:
        p = service.preview(req.registry["kameng.keyring"], req.db, sku, ["OLD-1", "NEW-12345678", "NEW-12345678", "\x01"])
    assert (p["lines"], p["new"], p["duplicates"], p["invalid"]) == (4, 1, 2, 1)
    assert p["sample"][1]["secret"] == "NE********78" and "OLD-1" not in str(p)
    assert stock(registry, sku)[0] == 1


def test_reserve_release_sell_void(registry, sku):
    do_import(registry, sku, [f"K{i}" for i in range(5)])
    with app_request(registry) as req:
        ids = service.reserve(req.db, sku, 2, "order-1", utcnow() + LATER)
        assert len(ids) == 2
    assert stock(registry, sku) == (3, {"available": 3, "reserved": 2, "sold": 0, "void": 0})
    with app_request(registry) as req:
        with pytest.raises(service.OutOfStock):
            service.reserve(req.db, sku, 4, "order-2", utcnow() + LATER)
    assert stock(registry, sku)[0] == 3  # nothing partly reserved
    with app_request(registry) as req:
        sold = service.sell(req.db, "order-1")
        assert [k.id for k in sold] == ids
        assert [k.id for k in service.sell(req.db, "order-1")] == ids  # idempotent
        assert service.release(req.db, "order-1") == 0  # sold keys never come back
        service.reserve(req.db, sku, 1, "order-3", utcnow() + LATER)
        assert service.release(req.db, "order-3") == 1
        free = req.db.scalar(select(CardKey.id).where(CardKey.state == "available"))
        assert service.void(req.db, free) is True
        assert service.void(req.db, ids[0]) is False  # a sold key cannot be voided
    assert stock(registry, sku) == (2, {"available": 2, "reserved": 0, "sold": 2, "void": 1})


def test_expired_reservations_are_released_by_the_job(registry, sku):
    from kameng import jobs

    do_import(registry, sku, ["E1", "E2", "E3"])
    with app_request(registry) as req:
        service.reserve(req.db, sku, 2, "late", utcnow() - dt.timedelta(seconds=1))
        service.reserve(req.db, sku, 1, "fresh", utcnow() + LATER)
        jobs.enqueue(req.db, "kameng.inventory.release_expired", {})
    assert jobs.Worker(registry).run_one()
    assert stock(registry, sku) == (2, {"available": 2, "reserved": 1, "sold": 0, "void": 0})


def _race(registry, sku, n_workers):
    engine = registry["kameng.write_engine"]
    got, errors = [], []
    barrier = threading.Barrier(n_workers)

    def buyer(i):
        barrier.wait()
        try:
            with Session(engine) as s, s.begin():
                got.append(service.reserve(s, sku, 1, f"race-{i}", utcnow() + LATER))
        except service.OutOfStock:
            errors.append(i)

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return got, errors


@pytest.mark.slow
def test_fifty_threads_race_for_ten_keys(registry, sku):
    do_import(registry, sku, [f"RACE-{i}" for i in range(10)])
    got, errors = _race(registry, sku, 50)
    flat = [k for ids in got for k in ids]
    assert len(flat) == 10 and len(set(flat)) == 10 and len(errors) == 40
    with app_request(registry) as req:
        refs = req.db.execute(select(CardKey.order_ref, func.count()).group_by(CardKey.order_ref)).all()
    assert all(n == 1 for _ref, n in refs) and len(refs) == 10
    assert stock(registry, sku) == (0, {"available": 0, "reserved": 10, "sold": 0, "void": 0})


def _process_buyer(settings, sku_id, worker, tries, out):
    from kameng.config import configure

    registry = configure(settings).registry
    engine = registry["kameng.write_engine"]
    won = []
    for t in range(tries):
        try:
            with Session(engine) as s, s.begin():
                won.extend(service.reserve(s, sku_id, 1, f"p{worker}-{t}", utcnow() + LATER))
        except service.OutOfStock:
            pass
    engine.dispose()
    out.put(won)


@pytest.mark.slow
def test_processes_race_for_ten_keys(registry, sku, base_settings):
    do_import(registry, sku, [f"PROC-{i}" for i in range(10)])
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_buyer, args=(dict(base_settings), sku, i, 10, out)) for i in range(5)]
    for p in procs:
        p.start()
    won = [k for _ in procs for k in out.get(timeout=180)]
    for p in procs:
        p.join(60)
    assert len(won) == 10 and len(set(won)) == 10
    assert stock(registry, sku)[0] == 0


def test_rotation_keeps_every_key_decryptable(registry, sku, tmp_path, monkeypatch):
    from kameng.pluginhost import configure

    path = tmp_path / "secret.key"
    path.write_text(open_text(registry["kameng.keyring"].path))
    ring = KeyRing.from_file(str(path))
    monkeypatch.setitem(registry, "kameng.keyring", ring)
    with app_request(registry) as req:
        configure(req, "sandbox", {"secret": "s" * 32})
    do_import(registry, sku, [f"ROT-{i},SECRET-{i}" for i in range(30)], separator=",")
    from kameng.suppliers.models import SupplierConnection

    with app_request(registry) as req:  # a supplier connection's secrets, bound to it
        conn = SupplierConnection(connector="any", name="upstream", settings="{}", secrets="")
        req.db.add(conn)
        req.db.flush()
        conn.secrets = ring.encrypt('{"secret": "upstream-secret"}', f"supplier:{conn.id}")
        conn_id = conn.id
    old_id = ring.current_id
    new_ring = rotate.add_key(str(path))
    assert new_ring.current_id != old_id and new_ring.fingerprint("x") == ring.fingerprint("x")
    engine = registry["kameng.write_engine"]
    assert rotate.remaining(engine, new_ring) == 30
    columns = rotate.plugin_columns(registry)
    done = rotate.reencrypt(engine, new_ring, batch=7, columns=columns)
    assert done == {"card_keys": 30, "plugin_secrets": 1, "dock_secrets": 0, "supplier_secrets": 1,
                    "delivery_notes": 0, "plugin_columns": 0}
    assert rotate.remaining(engine, new_ring) == 0
    assert rotate.drop_unused(str(path), engine, columns) == [old_id]
    final = KeyRing.from_file(str(path))
    assert final.key_ids == [new_ring.current_id]
    with app_request(registry) as req:
        keys = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        assert [service.reveal(final, k) for k in keys] == [(f"ROT-{i}", f"SECRET-{i}") for i in range(30)]
        assert {k.key_id for k in keys} == {final.current_id}
    monkeypatch.setitem(registry, "kameng.keyring", final)
    with app_request(registry) as req:
        assert req.plugin_settings("sandbox")["secret"] == "s" * 32
        conn = req.db.get(SupplierConnection, conn_id)
        assert final.decrypt(conn.secrets, f"supplier:{conn_id}") == '{"secret": "upstream-secret"}'
    # the fingerprint key never changed: the same file still imports nothing new
    assert do_import(registry, sku, ["ROT-1,SECRET-1"], separator=",").imported == 0


def test_a_running_process_picks_up_a_rotated_key(tmp_path):
    from kameng.crypto import write_key_file

    path = str(tmp_path / "k")
    write_key_file(path)
    server_ring = KeyRing.from_file(path)  # what a running server holds
    new = rotate.add_key(path)
    token = new.encrypt("x", "a")
    assert server_ring.decrypt(token, "a") == "x"  # unknown key id: reloads
    server_ring._checked -= 5
    assert server_ring.key_id_of(server_ring.encrypt("y", "b")) == new.current_id


def open_text(path):
    with open(path) as fh:
        return fh.read()


def test_headers_masks_and_wrong_product_types(registry, sku):
    lines = list(service.parse_lines(["卡号\t卡密", "N1\tS1"], "\t"))
    assert lines[0] == (1, service.HEADER) and lines[1][1] == service.ParsedLine("S1", "N1")
    assert list(service.parse_lines(["number secret", "a b"], " "))[0][1] is service.HEADER
    report = do_import(registry, sku, ["number,secret", "A,B"], separator=",")
    assert (report.lines, report.imported, report.invalid) == (2, 1, 0)  # the header counts as read
    assert service.mask("abcdefgh") == "******gh" and service.mask("abcdefghijkl") == "ab********kl"
    with app_request(registry) as req:
        manual = Product(name="m", type="manual")
        req.db.add(manual)
        req.db.flush()
        other = Sku(product_id=manual.id, code="MAN", name="m", price=100, stock=None)
        req.db.add(other)
        req.db.flush()
        other_id = other.id
    with pytest.raises(ValueError, match="not a card-key SKU"):
        do_import(registry, other_id, ["X"])


# -- fast paths: what the bulk import and the savepoint-free claim must keep ----------


def test_a_claim_short_of_stock_hands_back_what_it_took(registry, sku):
    """reserve() runs no savepoint: a claim that found fewer keys than wanted
    must give them back itself, for a caller that goes on and commits (an
    order re-check, a key replacement)."""
    do_import(registry, sku, ["S1", "S2", "S3"])
    with app_request(registry) as req:
        with pytest.raises(service.OutOfStock) as err:
            service.reserve(req.db, sku, 5, "greedy", utcnow() + LATER)
        assert (err.value.wanted, err.value.got) == (5, 3)
        # the same transaction goes on and commits: the keys are still there to take
        assert len(service.reserve(req.db, sku, 2, "modest", utcnow() + LATER)) == 2
    assert stock(registry, sku) == (1, {"available": 1, "reserved": 2, "sold": 0, "void": 0})
    with app_request(registry) as req:
        refs = dict(req.db.execute(select(CardKey.order_ref, func.count()).group_by(CardKey.order_ref)).all())
        left = req.db.scalars(select(CardKey).where(CardKey.state == "available")).one()
    assert refs == {"modest": 2, None: 1} and left.reserved_until is None


def test_a_reservation_alone_is_committed_by_the_request(registry, sku):
    """The claim runs Core statements on the request session's connection;
    the request must still commit them (zope.sqlalchemy commits only a
    session it knows wrote)."""
    do_import(registry, sku, ["ONLY-1", "ONLY-2"])
    with app_request(registry) as req:
        ids = service.reserve(req.db, sku, 1, "order-x", utcnow() + LATER)
    with app_request(registry) as req:
        key = req.db.get(CardKey, ids[0])
        assert (key.state, key.order_ref) == ("reserved", "order-x")
        assert key.reserved_until > utcnow()
    assert stock(registry, sku)[0] == 1


def test_import_streams_its_input(registry, sku):
    """Only a chunk of the file is held at a time: the first chunk is
    committed before the rest of the file has been read."""
    pulled, seen_at_first_commit = [], []

    def lines():
        for i in range(50):
            pulled.append(i)
            yield f"STREAM-{i:03d}"

    def progress(read, imported):
        if not seen_at_first_commit:
            seen_at_first_commit.append((len(pulled), imported))

    report = do_import(registry, sku, lines(), chunk=10, progress=progress)
    assert report.imported == 50
    assert seen_at_first_commit == [(10, 10)]


def test_an_interrupted_chunk_leaves_nothing_and_a_rerun_finishes(registry, sku):
    """Each chunk is one transaction: keys, stock counter and the batch's
    progress. A failure after a chunk's insert went to the database rolls
    the whole chunk back; earlier chunks stay; running the file again adds
    exactly the rest."""
    from sqlalchemy import event

    engine = registry["kameng.engine"]
    keys = [f"CHUNK-{i:02d}" for i in range(7)]
    inserts = []

    def fail_second_stock_update(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CARD_KEYS"):
            inserts.append(statement)
        if statement.lstrip().upper().startswith("UPDATE SKUS") and len(inserts) == 2:
            raise OSError("disk full (simulated)")

    event.listen(engine, "before_cursor_execute", fail_second_stock_update)
    try:
        with pytest.raises(OSError, match="simulated"):
            do_import(registry, sku, keys, chunk=3)
    finally:
        event.remove(engine, "before_cursor_execute", fail_second_stock_update)
    assert len(inserts) == 2  # the second chunk's rows had been sent when it failed
    assert stock(registry, sku) == (3, {"available": 3, "reserved": 0, "sold": 0, "void": 0})
    from kameng.inventory.models import KeyImport

    with app_request(registry) as req:
        batch = req.db.scalars(select(KeyImport)).one()
        assert (batch.imported, batch.duplicates) == (3, 0)
        plain = sorted(service.reveal(req.registry["kameng.keyring"], k)[1] for k in req.db.scalars(select(CardKey)))
    assert plain == keys[:3]
    again = do_import(registry, sku, keys, chunk=3)
    assert (again.imported, again.duplicates) == (4, 3)
    assert stock(registry, sku)[0] == 7


def test_import_records_the_key_that_encrypted_each_row(registry, sku, tmp_path, monkeypatch):
    """key_id must name the key of the row's ciphertext even when `kameng
    keys rotate` lands in the middle of a chunk: rotation re-encrypts (and
    later drops) keys by that column."""
    path = tmp_path / "secret.key"
    path.write_text(open_text(registry["kameng.keyring"].path))
    ring = KeyRing.from_file(str(path))
    monkeypatch.setitem(registry, "kameng.keyring", ring)
    plain_encrypt, calls = ring.encrypt, []

    def encrypt(text, aad):
        calls.append(text)
        if len(calls) == 4:  # mid-chunk: another process rotates, this one notices
            rotate.add_key(str(path))
            ring.reload()
        return plain_encrypt(text, aad)

    monkeypatch.setattr(ring, "encrypt", encrypt)
    assert do_import(registry, sku, [f"ROTATING-{i}" for i in range(6)], chunk=6).imported == 6
    with app_request(registry) as req:
        rows = req.db.scalars(select(CardKey).order_by(CardKey.id)).all()
        assert len({ring.key_id_of(k.secret) for k in rows}) == 2
        assert all(k.key_id == ring.key_id_of(k.secret) for k in rows)
        assert [service.reveal(ring, k)[1] for k in rows] == [f"ROTATING-{i}" for i in range(6)]
