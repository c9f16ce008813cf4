"""One async way to run SQL, on SQLite (worker threads) or PostgreSQL (psycopg's pool).

Every repository is written once against ``Database`` and ``Tx``: a unit of work is
an async function of a ``Tx`` that ``Database.write`` runs in one transaction (committed
when it returns, rolled back when it raises) and ``Database.read`` in one consistent
snapshot. Statements use ``?`` placeholders (``ldt.cloud.store.dialect``).

What differs lives in the two engines' classes and nowhere else:

- ``SqliteDatabase``: SQLite allows one writer at a time, so one connection on one
  thread writes, behind an asyncio lock (a transaction's statements are awaited one
  after the other; nothing else runs on that connection in between). Reads get
  connections of their own on their own threads: in WAL mode they see the last commit
  and never wait for the writer.
- ``PostgresDatabase``: a fixed-size pool; each unit of work borrows a connection.
  Deadlocks and serialization failures are retried (the unit of work runs again, so it
  must not have effects outside the transaction).

Both bound every unit of work with a deadline and turn engine errors into
``StoreError``. The deadline never interrupts a COMMIT: a write that was being
committed when time ran out finishes, and its caller is told only after it has,
so no caller is answered "failed" for a write that then lands.
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from ldt.backoff import Backoff
from ldt.cloud.errors import ConcurrentChangeError, StoreError
from ldt.cloud.store.dialect import POSTGRESQL, SQLITE, Dialect

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["Database", "PostgresDatabase", "Row", "SqliteDatabase", "Tx", "Work"]

_T = TypeVar("_T")
Row = tuple[Any, ...]
_CHUNK = 500
"""Rows per hop of ``Tx.stream``."""


class Tx(abc.ABC):
    """A connection inside one transaction (or one read snapshot)."""

    dialect: Dialect

    @abc.abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the rows it changed (-1 where unknown)."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per parameter row; returns the rows changed in all."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return every row it produced."""

    async def stream(self, sql: str, params: Sequence[Any] = ()) -> AsyncGenerator[Row, None]:
        """The rows of one statement, read a chunk at a time (a server-side cursor on
        PostgreSQL): for scans the caller filters and may stop early. This default reads
        them all at once."""
        for row in await self.fetchall(sql, params):
            yield row

    async def bulk(self, sql: str, params: Sequence[Sequence[Any]]) -> int:
        """Run a ``Dialect.bulk_rows``/``bulk_update`` statement with its ``bulk_params``: one
        statement for the one JSON-array row (PostgreSQL), one per row (SQLite); rows changed."""
        if len(params) == 1:
            return await self.execute(sql, params[0])
        return await self.executemany(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row a statement produced, or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


Work = Callable[[Tx], Coroutine[Any, Any, _T]]
"""A unit of work: an async function of a transaction."""


class Database(abc.ABC):
    """Opens, runs units of work, closes. Use as ``async with db:``."""

    dialect: Dialect

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; idempotent. Raises ``StoreError``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads (waits for work in progress)."""

    @abc.abstractmethod
    async def write(self, work: Work[_T]) -> _T:
        """Run ``work`` in one write transaction; committed before this returns."""

    @abc.abstractmethod
    async def read(self, work: Work[_T], *, snapshot: bool = True) -> _T:
        """Run ``work`` on one consistent snapshot of the last commit.

        ``snapshot=False`` is for a unit of one statement, which sees one state anyway:
        PostgreSQL then skips the read-only transaction's two extra round trips.
        """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _late(self) -> StoreError:
        return StoreError(f"the store did not answer within {self.timeout_s:g} s")


# SQLite ---------------------------------------------------------------------------


class _SqliteTx(Tx):
    """Statements of one transaction, run directly on the connection.

    Only ever used on the connection's own thread, inside ``_drive``: its methods are
    coroutines that never suspend, so a whole unit of work runs in one hop to the thread
    instead of one per statement (the hops, not the SQL, were what a PATCH cost).
    """

    dialect = SQLITE

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """See ``Tx.execute``."""
        return self._con.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """See ``Tx.executemany``."""
        if not rows:
            return 0
        return self._con.executemany(sql, rows).rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """See ``Tx.fetchall``."""
        return self._con.execute(sql, params).fetchall()

    async def stream(self, sql: str, params: Sequence[Any] = ()) -> AsyncGenerator[Row, None]:
        """See ``Tx.stream``: the cursor is read as the caller goes."""
        cur = self._con.execute(sql, params)
        try:
            while rows := cur.fetchmany(_CHUNK):
                for row in rows:
                    yield row
        finally:
            cur.close()


class _SuspendedError(RuntimeError):
    """A SQLite unit of work awaited something other than its transaction."""


def _drive(
    con: sqlite3.Connection, tx: _SqliteTx, work: Work[_T], begin: str, deadline: float
) -> _T:
    """Run ``work`` to completion on this thread, in one transaction (the caller's thread).

    The deadline interrupts a statement still running when it passes (SQLite's progress
    handler), which rolls back: a write never commits after its caller gave up on it.
    The COMMIT itself runs with the handler off.
    """

    def late() -> int:
        return 1 if time.monotonic() > deadline else 0

    con.execute(begin)
    con.set_progress_handler(late, 10_000)
    try:
        coro = work(tx)
        try:
            coro.send(None)
        except StopIteration as done:
            result: _T = done.value
        else:
            coro.close()
            raise _SuspendedError("a SQLite unit of work may only await its transaction")
    except BaseException:
        con.set_progress_handler(None, 0)
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    con.set_progress_handler(None, 0)
    con.execute("COMMIT")
    return result


class _Lane:
    """One SQLite connection and the one thread that uses it."""

    def __init__(self, con: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.con = con
        self.executor = executor
        self.tx = _SqliteTx(con)

    async def run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


Connect = Callable[[], sqlite3.Connection]


class SqliteDatabase(Database):
    """One SQLite file in WAL mode: one writer connection, ``readers`` reader connections.

    ``connect`` opens the writer's connection with the pragmas and schema the store
    wants (on the writer's thread, before any reader opens). Reads queue for a free
    reader; with ``readers`` 0 they run on the writer's connection, behind writes.
    """

    dialect = SQLITE

    def __init__(
        self,
        *,
        path: Path,
        connect: Connect,
        readers: int = 2,
        timeout_s: float = 30.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        super().__init__(timeout_s=timeout_s)
        self.path = path
        self.synchronous: Literal["FULL", "NORMAL"] = synchronous
        self._connect = connect
        self._reader_count = readers
        self._writer: _Lane | None = None
        self._readers: asyncio.Queue[_Lane] | None = None
        self._all_readers: list[_Lane] = []
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the writer (which creates or migrates the file), then the readers."""
        if self._writer is not None:
            return
        lanes: list[_Lane] = []
        try:
            for n in range(1 + self._reader_count):
                executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"ldt-store-{'w' if n == 0 else 'r'}"
                )
                connect = self._connect if n == 0 else self._connect_reader
                try:
                    con = await asyncio.get_running_loop().run_in_executor(executor, connect)
                except BaseException:
                    executor.shutdown(wait=True)
                    raise
                lanes.append(_Lane(con, executor))
        except BaseException:
            for lane in lanes:
                await lane.run(lane.con.close)
                lane.executor.shutdown(wait=True)
            raise
        self._writer = lanes[0]
        self._all_readers = lanes[1:]
        self._readers = asyncio.Queue()
        for lane in self._all_readers:
            self._readers.put_nowait(lane)

    async def close(self) -> None:
        """Close every connection on its own thread and stop the threads."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        async with self._lock:
            lanes = [writer, *self._all_readers]
            self._all_readers = []
            self._readers = None
            for lane in lanes:
                try:
                    await lane.run(lane.con.close)
                finally:
                    lane.executor.shutdown(wait=True)

    def _connect_reader(self) -> sqlite3.Connection:
        """A read-only connection (the writer created the file and its schema)."""
        try:
            con = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            con.execute("PRAGMA query_only=1")
            con.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the cloud database {self.path}: {exc}") from exc
        return con

    def _writer_lane(self) -> _Lane:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer

    async def write(self, work: Work[_T]) -> _T:
        """See ``Database.write``: ``BEGIN IMMEDIATE`` .. ``COMMIT`` on the writer."""
        lane = self._writer_lane()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._lock.acquire()
        except TimeoutError as exc:
            raise self._late() from exc
        try:
            return await self._transaction(lane, work, "BEGIN IMMEDIATE")
        finally:
            self._lock.release()

    async def read(self, work: Work[_T], *, snapshot: bool = True) -> _T:
        """See ``Database.read``: a deferred transaction on a reader connection."""
        queue = self._readers
        if queue is None:
            self._writer_lane()  # raises: not open
            raise StoreError("the store is not open")
        if not self._all_readers:
            return await self.write(work)
        try:
            async with asyncio.timeout(self.timeout_s):
                lane = await queue.get()
        except TimeoutError as exc:
            raise self._late() from exc
        try:
            return await self._transaction(lane, work, "BEGIN")
        finally:
            queue.put_nowait(lane)

    async def _transaction(self, lane: _Lane, work: Work[_T], begin: str) -> _T:
        deadline = time.monotonic() + self.timeout_s
        # shielded: the thread finishes (commits or rolls back) whatever happens to us,
        # and the lane is handed back only when it has
        try:
            return await asyncio.shield(
                lane.run(lambda: _drive(lane.con, lane.tx, work, begin, deadline))
            )
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise self._late() from exc
            raise StoreError(f"database error: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc


# PostgreSQL -------------------------------------------------------------------------

_RETRIES = 5


class _PgTx(Tx):
    """Statements on one borrowed connection, inside its transaction."""

    dialect = POSTGRESQL

    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """See ``Tx.execute``."""
        cur = await self._conn.execute(POSTGRESQL.sql(sql).encode(), tuple(params))
        return cur.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """See ``Tx.executemany`` (psycopg pipelines the statements)."""
        if not rows:
            return 0
        async with self._conn.cursor() as cur:
            await cur.executemany(POSTGRESQL.sql(sql).encode(), [tuple(r) for r in rows])
            return cur.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """See ``Tx.fetchall``."""
        cur = await self._conn.execute(POSTGRESQL.sql(sql).encode(), tuple(params))
        if cur.description is None:
            return []
        return await cur.fetchall()

    async def stream(self, sql: str, params: Sequence[Any] = ()) -> AsyncGenerator[Row, None]:
        """See ``Tx.stream``: a server-side cursor, ``_CHUNK`` rows a round trip."""
        async with self._conn.cursor(name="ldt_stream") as cur:
            cur.itersize = _CHUNK
            await cur.execute(POSTGRESQL.sql(sql).encode(), tuple(params))
            async for row in cur:
                yield row


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Session settings of every pooled connection.

    JIT off: the broker's statements are short, and PostgreSQL's estimate for a
    value index's per-row test (``value_index.Driver.row_sql``) before statistics
    exist crossed ``jit_above_cost``: compiling took 30-250 ms of a 5 ms query.
    """
    await conn.execute("SET jit = off")


class PostgresDatabase(Database):
    """A PostgreSQL database that other broker processes may share.

    ``dsn``: a libpq URL or ``key=value`` string. ``pool_size`` connections are
    kept open; ``timeout_s`` bounds every unit of work, waiting for a connection
    included; ``connect_timeout_s`` bounds ``open()``. ``setup`` runs once on a
    plain connection before the pool opens (schema migration).
    """

    dialect = POSTGRESQL

    def __init__(
        self,
        *,
        dsn: str,
        setup: Callable[[psycopg.AsyncConnection[Row]], Awaitable[None]] | None = None,
        pool_size: int = 4,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        super().__init__(timeout_s=timeout_s)
        self.dsn = dsn
        self._setup = setup
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None

    async def open(self) -> None:
        """Run ``setup`` on one connection, then open the pool. Raises ``StoreError``."""
        if self._pool is not None:
            return
        import psycopg
        import psycopg_pool

        # one plain connection first: it fails fast with libpq's own reason
        # (refused, bad password...) where the pool would retry until its timeout
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s))
                )
                async with conn:
                    if self._setup is not None:
                        await self._setup(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the PostgreSQL store: {describe(exc)}") from exc
        except TimeoutError as exc:
            raise StoreError(
                f"PostgreSQL did not answer within {self.timeout_s:g} s while opening"
            ) from exc
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Row]] = (
            psycopg_pool.AsyncConnectionPool(
                self.dsn,
                min_size=self._pool_size,
                max_size=self._pool_size,
                open=False,
                timeout=self.timeout_s,
                kwargs={"autocommit": True},
                configure=_configure,
                name="ldt-cloud-store",
            )
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"cannot open the PostgreSQL store: {describe(exc)}") from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close every connection (waits for work in progress to return them)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=self.timeout_s)

    async def call(
        self,
        fn: Callable[[psycopg.AsyncConnection[Row]], Awaitable[_T]],
        *,
        transaction: bool,
        read_only: bool = False,
    ) -> _T:
        """Run ``fn`` on a pooled connection (in one transaction if asked), with a deadline.

        The deadline covers waiting for a connection and ``fn``, not the COMMIT.
        Deadlocks and serialization failures are retried; every other database error
        becomes ``StoreError``; ``StoreError``s raised by ``fn`` pass through.
        """
        import psycopg
        import psycopg_pool
        from psycopg import errors as pg_errors

        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        backoff = Backoff(base_s=0.01, cap_s=0.2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            while True:
                try:
                    conn = await pool.getconn(timeout=max(0.0, deadline - loop.time()))
                    try:
                        if not transaction:
                            async with asyncio.timeout_at(deadline):
                                return await fn(conn)
                        await conn.execute(
                            b"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                            if read_only
                            else b"BEGIN"
                        )
                        try:
                            async with asyncio.timeout_at(deadline):
                                result = await fn(conn)
                        except BaseException:
                            await conn.execute(b"ROLLBACK")
                            raise
                        await conn.execute(b"COMMIT")
                        return result
                    finally:
                        await pool.putconn(conn)
                except (
                    pg_errors.SerializationFailure,
                    pg_errors.DeadlockDetected,
                    ConcurrentChangeError,
                ):
                    if backoff.attempt + 1 >= _RETRIES:
                        raise
                    await asyncio.sleep(backoff.next_delay())
        except (TimeoutError, psycopg_pool.PoolTimeout) as exc:
            raise self._late() from exc
        except psycopg.Error as exc:
            raise StoreError(f"database error: {describe(exc)}") from exc

    async def write(self, work: Work[_T]) -> _T:
        """See ``Database.write`` (READ COMMITTED; row locks do the rest)."""
        return await self.call(lambda conn: work(_PgTx(conn)), transaction=True)

    async def read(self, work: Work[_T], *, snapshot: bool = True) -> _T:
        """See ``Database.read`` (REPEATABLE READ, READ ONLY: one snapshot)."""
        return await self.call(
            lambda conn: work(_PgTx(conn)), transaction=snapshot, read_only=snapshot
        )


def describe(exc: BaseException) -> str:
    """One line: libpq's messages span lines and may end with a hint."""
    return " ".join(str(exc).split()) or type(exc).__name__
