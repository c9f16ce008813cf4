"""The SQL layer's promises (``ldt.cloud.store.database``), on both engines where they apply.

- A write whose deadline passes while a statement runs is rolled back: its caller is told
  "did not answer" and nothing of it is committed afterwards (a write must never land after
  its caller was answered with an error).
- A SQLite unit of work runs whole on the connection's thread: one that awaits anything but
  its transaction is refused and rolled back, not half-run.
- Readers see the last commit and never a write in progress.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ldt.cloud.errors import StoreError
from ldt.cloud.store import DB_FILENAME, SqliteStore, Store
from ldt.cloud.store.database import Tx

# a statement that runs for seconds: a recursive count
_SLOW = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000000)"
    " SELECT count(*) FROM n"
)


async def _rows(store: Store) -> int:
    async def count(tx: Tx) -> int:
        return int(await tx.scalar("SELECT count(*) FROM subscription_slots"))

    return await store.db.read(count)


async def test_a_write_past_its_deadline_is_rolled_back(tmp_path: Path) -> None:
    async with SqliteStore(path=tmp_path / DB_FILENAME, timeout_s=0.5) as store:

        async def slow(tx: Tx) -> None:
            await tx.execute("INSERT INTO subscription_slots (id, due_ms) VALUES ('x', 1)")
            await tx.fetchall(_SLOW)

        with pytest.raises(StoreError, match="did not answer"):
            await store.db.write(slow)
        await asyncio.sleep(0.2)
        assert await _rows(store) == 0

        async def quick(tx: Tx) -> None:  # the connection is usable afterwards
            await tx.execute("INSERT INTO subscription_slots (id, due_ms) VALUES ('y', 1)")

        await store.db.write(quick)
        assert await _rows(store) == 1


async def test_a_sqlite_unit_that_awaits_something_else_is_refused(tmp_path: Path) -> None:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:

        async def wanders(tx: Tx) -> None:
            await tx.execute("INSERT INTO subscription_slots (id, due_ms) VALUES ('x', 1)")
            await asyncio.sleep(0)

        with pytest.raises(RuntimeError, match="may only await its transaction"):
            await store.db.write(wanders)
        assert await _rows(store) == 0


async def test_readers_see_the_last_commit_only(store: Store) -> None:
    seen: list[int] = []

    async def write_and_look(tx: Tx) -> None:
        await tx.execute("INSERT INTO subscription_slots (id, due_ms) VALUES ('x', 1)")
        if not tx.dialect.postgres:
            return  # SQLite's unit runs whole on its thread: nothing can look in between
        seen.append(await _rows(store))

    await store.db.write(write_and_look)
    assert seen in ([], [0])
    assert await _rows(store) == 1
