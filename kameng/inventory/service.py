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

from sqlalchemy import and_, func, insert, select, update

from kameng.catalog.models import Product, Sku
from kameng.db import utcnow
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
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line):
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

    def flush_chunk():
        if not pending:
            return
        with session_factory() as s, s.begin():
            fps = [fp for fp, _ in pending]
            existing = set(s.scalars(select(CardKey.fingerprint).where(CardKey.sku_id == sku_id,
                                                                       CardKey.fingerprint.in_(fps))))
            rows = []
            for fp, p in pending:
                if fp in existing:
                    report.duplicates += 1
                    continue
                rows.append({"sku_id": sku_id, "fingerprint": fp, "state": AVAILABLE, "batch_id": report.batch_id,
                             "key_id": keyring.current_id, "created_at": utcnow(),
                             "secret": keyring.encrypt(p.secret, aad(sku_id, fp)),
                             "number": keyring.encrypt(p.number, aad(sku_id, fp) + ":number")
                             if p.number is not None else None})
            if rows:
                s.execute(insert(CardKey), rows)
                s.execute(update(Sku).where(Sku.id == sku_id).values(stock=func.coalesce(Sku.stock, 0) + len(rows)))
            report.imported += len(rows)
            s.execute(update(KeyImport).where(KeyImport.id == report.batch_id).values(
                lines=report.lines, imported=report.imported, duplicates=report.duplicates, invalid=report.invalid))
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
    existing = 0
    for i in range(0, len(fps), 2000):
        existing += db.scalar(select(func.count()).where(CardKey.sku_id == sku_id,
                                                         CardKey.fingerprint.in_(fps[i:i + 2000])))
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


def reserve(db, sku_id: int, quantity: int, order_ref: str, until: dt.datetime) -> list[int]:
    """Reserve ``quantity`` distinct available keys of a SKU for an order, or
    raise :class:`OutOfStock` having reserved none (a savepoint undoes a
    partial claim)."""
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    dialect = db.get_bind().dialect.name
    pick = (select(CardKey.id).where(CardKey.sku_id == sku_id, CardKey.state == AVAILABLE)
            .order_by(CardKey.id).limit(quantity))
    values = {"state": RESERVED, "order_ref": order_ref, "reserved_until": until}
    with db.begin_nested():  # all or nothing, even if the caller goes on after OutOfStock
        if dialect in ("mysql", "mariadb"):
            ids = list(db.scalars(pick.with_for_update(skip_locked=True)))
            if len(ids) < quantity:
                raise OutOfStock(sku_id, quantity, len(ids))
            db.execute(update(CardKey).where(CardKey.id.in_(ids)).values(**values)
                       .execution_options(synchronize_session=False))
        else:
            if dialect == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            ids = list(db.scalars(update(CardKey).where(CardKey.id.in_(pick.scalar_subquery())).values(**values)
                                  .returning(CardKey.id).execution_options(synchronize_session=False)))
            if len(ids) < quantity:
                raise OutOfStock(sku_id, quantity, len(ids))
        db.execute(update(Sku).where(Sku.id == sku_id).values(stock=Sku.stock - quantity)
                   .execution_options(synchronize_session=False))
    _check_low_stock(db, sku_id, quantity)
    return sorted(ids)


def _check_low_stock(db, sku_id: int, taken: int) -> None:
    """Tell the notification plugins once, when stock falls to or below
    the SKU's threshold (``stock.low``); again only after it rose above."""
    from kameng.notifications import emit

    stock, threshold, code, name = db.execute(
        select(Sku.stock, Sku.low_stock_threshold, Sku.code, Sku.name).where(Sku.id == sku_id)).one()
    if threshold > 0 and stock is not None and stock <= threshold < stock + taken:
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
