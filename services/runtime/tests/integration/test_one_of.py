"""`one_of` on both databases: the rows of the named keys, whatever their number (none, one, hundreds), for the
column types the services look up by (ids, instants); on PostgreSQL one statement text for every length,
so asyncpg prepares it once instead of once per batch size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from amiflow_runtime.db import UtcDateTime, make_engine, one_of
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

pytestmark = pytest.mark.integration

metadata = MetaData()
things = Table("things", metadata, Column("thing_id", String(36), primary_key=True),
               Column("at", UtcDateTime(), nullable=False), Column("n", Integer, nullable=False))
T0 = datetime(2026, 11, 22, tzinfo=UTC)


async def test_one_of_finds_exactly_the_named_rows_on_both_databases(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(things), [{"thing_id": f"T-{n:04d}", "at": T0 + n * timedelta(hours=1), "n": n}
                                                for n in range(1000)])
        async with engine.connect() as conn:
            for wanted in ([], [7], [3, 999, 5], list(range(0, 1000, 2)), [1, 1, 2]):
                ids = [f"T-{n:04d}" for n in wanted] + ["T-none"]
                rows = await conn.execute(select(things.c.n).where(one_of(conn, things.c.thing_id, ids)))
                assert sorted(r.n for r in rows) == sorted(set(wanted))
                instants = [T0 + n * timedelta(hours=1) for n in wanted]
                rows = await conn.execute(select(things.c.n).where(one_of(conn, things.c.at, instants)))
                assert sorted(r.n for r in rows) == sorted(set(wanted))
            # The statement's text does not depend on how many keys there are (it does for an IN list).
            texts = {str(select(things.c.n).where(one_of(conn, things.c.thing_id, [f"T-{n}" for n in range(k)]))
                         .compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True}))
                     for k in (1, 2, 500)}
            assert len(texts) == (1 if conn.dialect.name == "postgresql" else 3)
    finally:
        await engine.dispose()
