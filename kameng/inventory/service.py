"""Card-key stock: import, atomic reservation, release, sale, void, reveal.

Every change of a key's state and the SKU's ``stock`` counter happen in the
caller's transaction, together. Reservation takes distinct available keys in
one statement that cannot hand a key to two buyers on any of the three
databases: SQLite serialises writers (the request took the write lock at
BEGIN), PostgreSQL locks the chosen rows with ``FOR UPDATE SKIP LOCKED``
inside the UPDATE, MariaDB selects with ``FOR UPDATE SKIP LOCKED`` and then
updates exactly those rows.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import zope.sqlalchemy
from sqlalchemy import Integer, and_, bindparam, func, select, update

from kameng.catalog.models import Product, Sku
from kameng.db import utcnow
from kameng.i18n import _
from kameng.inventory.models import AVAILABLE, RESERVED, SOLD, STATES, VOID, CardKey, KeyImport

MAX_SECRET = 500
CHUNK = 2000


class OutOfStock(Exception):
    def __init__(self, sku_id: int, wanted: int, got: int):
        super().__init__(f"SKU {sku_id}: {wanted} wanted, {got} available")
        self.sku_id, self.wanted, self.got = sku_id, wanted, got


def aad(sku_id: int, fingerprint: str) -> str:
    """What a key's ciphertexts are bound to: its SKU and its fingerprint."""
    return f"card:{sku_id}:{fingerprint}"


# -- import ---------------------------------------------------------------------------


@dataclass
class ParsedLine:
    secret: str
    number: str | None = None


@dataclass
class ImportReport:
    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0
    invalid_lines: list = field(default_factory=list)  # line numbers, the first 100
    batch_id: int | None = None

    @property
    def skipped(self) -> int:
        return self.duplicates + self.invalid


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]").search
HEADER = ParsedLine(secret="")  # a CSV header line: read, not a key, not an error

def _is_header(line: str, separator: str) -> bool:
    parts = line.split(separator) if separator.strip() else line.split()
    return len(parts) == 2 and [p.strip().lower() for p in parts] in (["卡号", "卡密"], ["number", "secret"])


def parse_lines(text_lines: Iterable[str], separator: str | None = None) -> Iterator[tuple[int, ParsedLine | None]]:
    """``(line_no, ParsedLine)`` for each non-empty line; ``None`` for a line
    that is not a key (too long, control characters, an empty half of a pair).

    Without a separator each line is one secret. With one, ``number<sep>secret``
    (the separator may be a space, a tab, ``,``, ``|``, ``----`` …); a line
    without it is invalid. A first line ``卡号<sep>卡密`` or ``number<sep>secret``
    is reported as :data:`HEADER`.
    """
    for no, raw in enumerate(text_lines, 1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        if no == 1 and separator and _is_header(line, separator):
            yield no, HEADER
            continue
        if _CONTROL(line):
            yield no, None
            continue
        if separator:
            number, sep, secret = line.partition(separator) if separator.strip() else _split_ws(line)
            number, secret = number.strip(), secret.strip()
            if not sep or not number or not secret or len(number) > MAX_SECRET or len(secret) > MAX_SECRET:
                yield no, None
                continue
            yield no, ParsedLine(secret=secret, number=number)
        else:
            if len(line) > MAX_SECRET:
                yield no, None
                continue
            yield no, ParsedLine(secret=line)


def _split_ws(line: str) -> tuple[str, str, str]:
    parts = line.split(None, 1)
    return (parts[0], " ", parts[1]) if len(parts) == 2 else (line, "", "")


def _fingerprint(keyring, p: ParsedLine) -> str:
    return keyring.fingerprint(f"{p.number}\x1f{p.secret}" if p.number is not None else p.secret)


class _ChunkSQL:
    """The two statements an import chunk runs with every key in it, as the
    driver's own SQL: SQLAlchemy's per-row parameter handling and its
    rendering of an expanding ``IN`` cost more than the database's work
    (bench/keys_import.py --profile)."""

    _MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}

    def __init__(self, dialect):
        mark = self._MARKS.get(dialect.paramstyle)
        if mark is None:
            raise NotImplementedError(f"key import: no support for the {dialect.paramstyle!r} parameter style")
        table = CardKey.__table__
        self.mark, self.table = mark, dialect.identifier_preparer.format_table(table)
        names = ("sku_id", "fingerprint", "state", "batch_id", "key_id", "created_at", "secret", "number")
        quote = dialect.identifier_preparer.quote
        self.insert = (f"INSERT INTO {self.table} ({', '.join(quote(n) for n in names)}) "
                       f"VALUES ({', '.join([mark] * len(names))})")
        self._created = table.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._existing: dict[int, str] = {}
        self.postgresql = dialect.name == "postgresql"

    def created_at(self, when: dt.datetime):
        """``when`` as the driver takes it for the column (what the ORM would send)."""
        return self._created(when) if self._created else when

    def existing(self, sku_id: int, fps: list[str]) -> tuple[str, tuple]:
        """Which of ``fps`` the SKU already has: ``(sql, parameters)``."""
        if self.postgresql:
            # One probe of the unique index per fingerprint, whatever the
            # planner believes: a new table has no statistics until
            # autovacuum's ANALYZE, and a generic plan (psycopg prepares a
            # statement run 5 times) of `IN (2,000 parameters)` filters every
            # row of the SKU against the list unhashed: seconds per chunk.
            return (f"SELECT k.fingerprint FROM unnest({self.mark}::varchar[]) AS f(fp) CROSS JOIN LATERAL "
                    f"(SELECT fingerprint FROM {self.table} WHERE sku_id = {self.mark} AND fingerprint = f.fp "
                    f"LIMIT 1) AS k", (fps, sku_id))
        sql = self._existing.get(len(fps))
        if sql is None:
            sql = (f"SELECT fingerprint FROM {self.table} WHERE sku_id = {self.mark} "
                   f"AND fingerprint IN ({', '.join([self.mark] * len(fps))})")
            if len(self._existing) < 4:  # the full chunk's and the last one's
                self._existing[len(fps)] = sql
        return sql, (sku_id, *fps)


_CHUNK_SQL: dict[tuple[str, str], _ChunkSQL] = {}


def _chunk_sql(dialect) -> _ChunkSQL:
    sql = _CHUNK_SQL.get((dialect.name, dialect.paramstyle))
    if sql is None:
        sql = _CHUNK_SQL[dialect.name, dialect.paramstyle] = _ChunkSQL(dialect)
    return sql


def import_keys(session_factory, keyring, sku_id: int, lines: Iterable[str], separator: str | None = None,
                source: str = "", actor: str = "", progress: Callable[[int, int], None] | None = None,
                chunk: int = CHUNK, total: int = 0) -> ImportReport:
    """Import keys in chunks, each chunk its own committed transaction (so a
    million keys never sit in memory or in one transaction, and the admin
    sees progress: ``total`` is the upload's line count, when known). Keys already in the SKU (available, reserved, sold or
    void) and repeats within the file are skipped: importing a file twice
    adds nothing, and an interrupted import is finished by running it again.

    ``session_factory()`` must give a session whose ``begin()`` takes the
    write lock (:func:`kameng.db.write_bind`).
    """
    report = ImportReport()
    with session_factory() as s, s.begin():
        product_type = s.scalar(select(Product.type).join(Sku, Sku.product_id == Product.id).where(Sku.id == sku_id))
        if product_type is None:
            raise ValueError(f"no SKU with id {sku_id}")
        if product_type != "card_key":
            raise ValueError(f"SKU {sku_id} is not a card-key SKU: it takes no keys")
        batch = KeyImport(sku_id=sku_id, source=source[:255], created_by=actor[:254], total=total)
        s.add(batch)
        s.flush()
        report.batch_id = batch.id
    seen: set[str] = set()
    pending: list[tuple[str, ParsedLine]] = []
    bound = aad(sku_id, "")
    stock_stmt = update(Sku.__table__).where(Sku.id == sku_id).values(stock=func.coalesce(Sku.stock, 0)
                                                                       + bindparam("added", type_=Integer))
    progress_stmt = update(KeyImport.__table__).where(KeyImport.id == report.batch_id)
    encrypt = keyring.encrypt

    def flush_chunk():
        if not pending:
            return
        with session_factory() as s, s.begin():
            conn = s.connection()
            sql = _chunk_sql(conn.dialect)
            existing = {fp for (fp,) in conn.exec_driver_sql(*sql.existing(sku_id, [fp for fp, _ in pending]))}
            created, rows = sql.created_at(utcnow()), []
            for fp, p in pending:
                if fp in existing:
                    report.duplicates += 1
                    continue
                secret = encrypt(p.secret, bound + fp)
                # key_id: the key that encrypted it, even if `kameng keys rotate` ran meanwhile
                rows.append((sku_id, fp, AVAILABLE, report.batch_id, secret[:secret.index("$")], created, secret,
                             encrypt(p.number, bound + fp + ":number") if p.number is not None else None))
            if rows:
                # one executemany of plain tuples: no ORM unit of work, no per-row parameter processing
                conn.exec_driver_sql(sql.insert, rows)
                conn.execute(stock_stmt, {"added": len(rows)})
            report.imported += len(rows)
            conn.execute(progress_stmt.values(lines=report.lines, imported=report.imported,
                                              duplicates=report.duplicates, invalid=report.invalid))
        pending.clear()
        # earlier chunks are committed: the database check finds their repeats,
        # so memory stays bounded by the chunk, not the file
        seen.clear()
        if progress:
            progress(report.lines, report.imported)

    for no, parsed in parse_lines(lines, separator):
        report.lines += 1
        if parsed is HEADER:
            continue
        if parsed is None:
            report.invalid += 1
            if len(report.invalid_lines) < 100:
                report.invalid_lines.append(no)
            continue
        fp = _fingerprint(keyring, parsed)
        if fp in seen:
            report.duplicates += 1
            continue
        seen.add(fp)
        pending.append((fp, parsed))
        if len(pending) >= chunk:
            flush_chunk()
    flush_chunk()
    with session_factory() as s, s.begin():
        s.execute(update(KeyImport).where(KeyImport.id == report.batch_id).values(
            lines=report.lines, imported=report.imported, duplicates=report.duplicates, invalid=report.invalid))
    if progress:
        progress(report.lines, report.imported)
    return report


def preview(keyring, db, sku_id: int, lines: Iterable[str], separator: str | None = None,
            limit: int = 20) -> dict:
    """What an import would do, without writing: counts and the first lines
    (masked). Reads every line to count duplicates."""
    seen, fps, sample, invalid, total = set(), [], [], 0, 0
    for no, parsed in parse_lines(lines, separator):
        if parsed is HEADER:
            continue
        total += 1
        if parsed is None:
            invalid += 1
            continue
        fp = _fingerprint(keyring, parsed)
        if fp in seen:
            continue
        seen.add(fp)
        fps.append(fp)
        if len(sample) < limit:
            sample.append({"line": no, "number": mask(parsed.number) if parsed.number else None,
                           "secret": mask(parsed.secret)})
    existing, conn = 0, db.connection()
    sql = _chunk_sql(conn.dialect)
    for i in range(0, len(fps), CHUNK):
        existing += len(conn.exec_driver_sql(*sql.existing(sku_id, fps[i:i + CHUNK])).all())
    new = len(fps) - existing
    return {"lines": total, "new": new, "duplicates": total - invalid - new, "invalid": invalid, "sample": sample}


def mask(text: str | None) -> str:
    """Enough to recognise a key's format, never enough to use it."""
    if not text:
        return ""
    if len(text) < 8:
        return "*" * len(text)
    if len(text) < 12:
        return "*" * (len(text) - 2) + text[-2:]
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


# -- reservation ----------------------------------------------------------------------


def _claim_statements(dialect: str) -> dict:
    """The statements of :func:`reserve` for one dialect, built once (Core,
    bind parameters: SQLAlchemy compiles each once and caches it)."""
    stmts = _CLAIMS.get(dialect)
    if stmts is not None:
        return stmts
    keys, skus = CardKey.__table__, Sku.__table__
    pick = (select(keys.c.id).where(keys.c.sku_id == bindparam("c_sku"), keys.c.state == AVAILABLE)
            .order_by(keys.c.id).limit(bindparam("c_quantity", type_=Integer)))
    claimed = {"state": RESERVED, "order_ref": bindparam("c_ref"), "reserved_until": bindparam("c_until")}
    stock = update(skus).where(skus.c.id == bindparam("c_sku")).values(stock=skus.c.stock - bindparam("c_quantity"))
    stmts = {
        # undoes a partial claim: the rows were available, with no order and no expiry
        "unclaim": update(keys).where(keys.c.id.in_(bindparam("c_ids", expanding=True)),
                                      keys.c.order_ref == bindparam("c_ref"))
        .values(state=AVAILABLE, order_ref=None, reserved_until=None),
        "threshold": select(skus.c.stock, skus.c.low_stock_threshold).where(skus.c.id == bindparam("c_sku")),
    }
    if dialect in ("mysql", "mariadb"):
        # no UPDATE … RETURNING: lock the rows first, then update exactly those
        stmts["pick"] = pick.with_for_update(skip_locked=True)
        stmts["claim"] = update(keys).where(keys.c.id.in_(bindparam("c_ids", expanding=True))).values(**claimed)
        stmts["stock"] = stock
    else:
        if dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmts["claim"] = (update(keys).where(keys.c.id.in_(pick.scalar_subquery())).values(**claimed)
                          .returning(keys.c.id))
        stmts["stock"] = stock.returning(skus.c.stock, skus.c.low_stock_threshold)
    _CLAIMS[dialect] = stmts
    return stmts


_CLAIMS: dict[str, dict] = {}


def _mark_changed(db) -> None:
    """A request's session commits at the end of the request only if it
    knows it wrote: Core statements run on its connection do not tell it
    (ORM ones do), so say so."""
    request = db.info.get("request")
    if request is not None:
        zope.sqlalchemy.mark_changed(db, transaction_manager=request.tm)


def reserve(db, sku_id: int, quantity: int, order_ref: str, until: dt.datetime) -> list[int]:
    """Reserve ``quantity`` distinct available keys of a SKU for an order, or
    raise :class:`OutOfStock` having reserved none.

    Two statements in the caller's transaction on SQLite and PostgreSQL (the
    claim, and the stock counter that also reads back the threshold), four on
    MariaDB. No savepoint: a claim that got fewer keys than wanted hands them
    back before raising (on SQLite the write lock, on the others the row locks
    the claim took, keep anyone else from touching them meanwhile).
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    if db.autoflush:
        db.flush()  # what the caller changed goes first, as an ORM statement would autoflush it
    conn = db.connection()
    _mark_changed(db)
    stmts = _claim_statements(conn.dialect.name)
    params = {"c_sku": sku_id, "c_quantity": quantity, "c_ref": order_ref, "c_until": until}
    if "pick" in stmts:  # MariaDB
        ids = list(conn.execute(stmts["pick"], params).scalars())
        if len(ids) < quantity:
            raise OutOfStock(sku_id, quantity, len(ids))  # nothing written; the row locks end with the transaction
        conn.execute(stmts["claim"], {**params, "c_ids": ids})
        conn.execute(stmts["stock"], params)
        stock, threshold = conn.execute(stmts["threshold"], params).one()
    else:
        ids = list(conn.execute(stmts["claim"], params).scalars())
        if len(ids) < quantity:
            if ids:
                conn.execute(stmts["unclaim"], {"c_ids": ids, "c_ref": order_ref})
            raise OutOfStock(sku_id, quantity, len(ids))
        stock, threshold = conn.execute(stmts["stock"], params).one()
    if threshold > 0 and stock is not None and stock <= threshold < stock + quantity:
        _emit_low_stock(db, sku_id)
    return sorted(ids)


def _check_low_stock(db, sku_id: int, taken: int) -> None:
    """Tell the notification plugins once, when stock falls to or below
    the SKU's threshold (``stock.low``); again only after it rose above."""
    stock, threshold = db.execute(select(Sku.stock, Sku.low_stock_threshold).where(Sku.id == sku_id)).one()
    if threshold > 0 and stock is not None and stock <= threshold < stock + taken:
        _emit_low_stock(db, sku_id)


def _emit_low_stock(db, sku_id: int) -> None:
    from kameng.notifications import emit

    stock, threshold, code, name = db.execute(
        select(Sku.stock, Sku.low_stock_threshold, Sku.code, Sku.name).where(Sku.id == sku_id)).one()
    emit(db, "stock.low", {"sku": code, "name": name, "available": stock, "threshold": threshold})


def _release_where(db, condition) -> int:
    rows = db.execute(select(CardKey.sku_id, func.count()).where(condition).group_by(CardKey.sku_id)).all()
    if not rows:
        return 0
    res = db.execute(update(CardKey).where(condition).values(state=AVAILABLE, order_ref=None, reserved_until=None)
                     .execution_options(synchronize_session=False))
    for sku_id, n in rows:
        db.execute(update(Sku).where(Sku.id == sku_id).values(stock=Sku.stock + n)
                   .execution_options(synchronize_session=False))
    return res.rowcount


def release(db, order_ref: str) -> int:
    """Give an order's reserved keys back to stock; returns how many."""
    return _release_where(db, and_(CardKey.order_ref == order_ref, CardKey.state == RESERVED))


def release_expired(db, now: dt.datetime | None = None) -> int:
    """Give back every reservation past its expiry."""
    cond = and_(CardKey.state == RESERVED, CardKey.reserved_until < (now or utcnow()))
    if db.get_bind().dialect.name != "sqlite":
        ids = list(db.scalars(select(CardKey.id).where(cond).with_for_update(skip_locked=True).limit(5000)))
        if not ids:
            return 0
        cond = and_(CardKey.id.in_(ids), CardKey.state == RESERVED)
    return _release_where(db, cond)


def sell(db, order_ref: str) -> list[CardKey]:
    """Bind an order's reserved keys to it for good (delivery). Idempotent:
    keys already sold to the order are returned again, never others."""
    db.execute(update(CardKey).where(CardKey.order_ref == order_ref, CardKey.state == RESERVED)
               .values(state=SOLD, sold_at=utcnow(), reserved_until=None)
               .execution_options(synchronize_session=False))
    return list(db.scalars(select(CardKey).where(CardKey.order_ref == order_ref, CardKey.state == SOLD)
                           .order_by(CardKey.id)))


def void(db, key_id: int) -> bool:
    """Take an available key out of sale (a bad or leaked key)."""
    key = db.scalar(select(CardKey).where(CardKey.id == key_id).with_for_update())
    if key is None or key.state != AVAILABLE:
        return False
    key.state = VOID
    db.execute(update(Sku).where(Sku.id == key.sku_id).values(stock=Sku.stock - 1)
               .execution_options(synchronize_session=False))
    _check_low_stock(db, key.sku_id, 1)
    return True


def reveal(keyring, key: CardKey) -> tuple[str | None, str]:
    """The plaintext ``(number, secret)`` of a key."""
    bound = aad(key.sku_id, key.fingerprint)
    number = keyring.decrypt(key.number, bound + ":number") if key.number else None
    return number, keyring.decrypt(key.secret, bound)


def counts(db, sku_id: int) -> dict:
    out = dict.fromkeys(STATES, 0)
    out.update(dict(db.execute(select(CardKey.state, func.count()).where(CardKey.sku_id == sku_id)
                               .group_by(CardKey.state)).all()))
    return out


def release_expired_job(request, payload) -> None:
    release_expired(request.db)


#: an import that the database stopped part-way (a full disk, a lost connection)
IMPORT_STOPPED = _("The import stopped: the database could not store more keys (is the disk full?). The keys "
                   "saved before it stopped are kept. Import the same file again to add the rest: keys already "
                   "in stock are skipped.")
