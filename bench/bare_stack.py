"""The bare stack: the least a Pyramid + waitress + SQLAlchemy app can do.

kameng's figures are judged against this app measured in the same run on
the same machine (machines are noisy; ratios are not). It serves:

  POST /insert   a JSON body → one ORM insert into SQLite (WAL,
                 synchronous=NORMAL) in its own transaction → a JSON answer
  GET  /page     one Chameleon template rendered with a few values

under waitress with the same thread count and switch interval that
`kameng serve` uses. Nothing else: no sessions, no security policy, no
transaction manager, no plugins.

Usage: python bench/bare_stack.py --port 6600 --db /tmp/bare.sqlite [--threads 8]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile

from pyramid.config import Configurator
from pyramid.response import Response
from sqlalchemy import DateTime, Integer, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>
<ul><li tal:repeat="item items"><b>${item.name}</b> ${item.price}</li></ul>
<p>${note}</p></body></html>
"""


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    contact: Mapped[str] = mapped_column(String(254))
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


def make_app(db_path: str):
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"check_same_thread": False, "timeout": 10})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    Base.metadata.create_all(engine)

    from chameleon import PageTemplate

    template = PageTemplate(PAGE)
    items = [{"name": f"Steam wallet card {n}", "price": f"{n * 10}.00"} for n in range(1, 9)]

    def insert(request):
        body = json.loads(request.body)
        with Session(engine) as s, s.begin():
            row = Row(sku=str(body.get("sku", ""))[:64], contact=str(body.get("contact", ""))[:254],
                      quantity=int(body.get("quantity", 1)), created_at=dt.datetime.now(dt.timezone.utc))
            s.add(row)
            s.flush()
            row_id = row.id
        return Response(json=({"id": row_id}), status=201)

    def page(request):
        return Response(template(title="Bare page", items=items, note="one template, no database"))

    with Configurator() as config:
        config.add_route("insert", "/insert", request_method="POST")
        config.add_view(insert, route_name="insert")
        config.add_route("page", "/page")
        config.add_view(page, route_name="page")
        return config.make_wsgi_app()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", default=None, help="SQLite file (default: a new temporary one)")
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="bare-stack-"), "bare.sqlite")
    import waitress

    sys.setswitchinterval(1e-4)  # as `kameng serve` does
    waitress.serve(make_app(db), host="127.0.0.1", port=args.port, threads=args.threads, _quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
