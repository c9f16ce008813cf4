"""A real PostgreSQL server for tests: one per session, one fresh database per test.

Other test packages import this module::

    from tests.pg import postgres_dsn, postgres_server

    async def test_x(postgres_dsn: str) -> None:
        async with PostgresStore(dsn=postgres_dsn) as store:
            ...

``PostgresServer`` runs ``initdb`` into a fresh temporary folder (trust
authentication, UTF-8, C locale) and ``pg_ctl start`` with a unix socket in
that folder plus 127.0.0.1 on a free port; nothing listens beyond loopback.
PostgreSQL refuses to run as root, so when the tests run as root (CI
containers do) the server runs as ``nobody`` (``subprocess``'s ``user=``, no
sudo/runuser needed) and the folder is handed to that user.

``pg_ctl`` daemonizes the postmaster (its parent becomes init), so the
session's server is not a child of pytest and the suite's leak guard does not
count it. Each test gets a schema of its own in one test database (the URL
sets ``search_path`` to it), dropped afterwards: tests never see each other's
rows, at ~10 ms each where a database per test costs ~250 ms.

The binaries are looked up on PATH, then in Debian's
/usr/lib/postgresql/<major>/bin (highest major first). When they are absent
the fixtures skip with the reason; with ``CI`` set they fail instead, since
CI installs the ``postgresql`` package through scripts/bootstrap.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import pytest
from psycopg import sql

from tests.mosquitto import free_port

__all__ = ["PostgresServer", "find_pg_bin", "postgres_dsn", "postgres_server"]

_START_TIMEOUT_S = 30
_RUN_AS_WHEN_ROOT = "nobody"
_SUPERUSER = "postgres"
_TEST_DB = "ldt_test_1"


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


class PostgresServer:
    """One throwaway PostgreSQL cluster; a (sync) context manager.

    Construction does nothing; ``start()`` runs initdb and starts the server
    and returns once it accepts connections. ``dsn(dbname)`` connects over
    TCP to 127.0.0.1 (the way a broker on another host would).
    """

    def __init__(self, *, bin_dir: Path, fsync: bool = True) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync
        """``fsync=off`` is faster but not what production runs; benchmarks keep it on."""
        self.port = 0
        self.dir = Path()
        self._started = False
        self._run_as: str | None = _RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None
        self._names = itertools.count(1)

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder."""
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server's unix socket lives (also usable as ``host=`` in a DSN)."""
        return self.dir

    @property
    def log_file(self) -> Path:
        """The server's log (shown when it fails to start)."""
        return self.dir / "server.log"

    def dsn(self, dbname: str = _SUPERUSER) -> str:
        """A libpq URL for ``dbname`` as the superuser over loopback TCP."""
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool (as the unprivileged user when we are root)."""
        uid = gid = None
        extra_groups: list[int] | None = None
        if self._run_as is not None:
            account = pwd.getpwnam(self._run_as)
            uid, gid, extra_groups = account.pw_uid, account.pw_gid, []
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S,
            check=False,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            user=uid,
            group=gid,
            extra_groups=extra_groups,
        )

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        """initdb + pg_ctl start; raises ``RuntimeError`` with the tool's output on failure."""
        if self._started:
            raise RuntimeError("PostgreSQL is already running")
        self.dir = Path(tempfile.mkdtemp(prefix="ldt-pg-"))
        if self._run_as is not None:
            account = pwd.getpwnam(self._run_as)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        init = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if init.returncode != 0:
            self.close()
            raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        self.port = free_port()
        options = [
            f"-k {self.dir}",
            "-h 127.0.0.1",
            f"-p {self.port}",
            "-c max_connections=200",
            "-c shared_buffers=64MB",
        ]
        if not self.fsync:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        started = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "-o",
            " ".join(options),
            "start",
        )
        self._started = True
        if started.returncode != 0:
            detail = started.stderr.strip() or started.stdout.strip()
            self.close()
            raise RuntimeError(f"pg_ctl start failed: {detail} {self._log_tail()}")

    def create_database(self) -> str:
        """A new empty database (``ldt_test_<n>``); returns its name."""
        name = f"ldt_test_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as con:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def create_schema(self, dbname: str) -> str:
        """A new empty schema (``test_<n>``) in ``dbname``; returns its name.

        ~5 ms where a database takes ~250 ms (CREATE DATABASE copies and
        WAL-logs the template); ``schema_dsn`` points connections at it.
        """
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=10) as con:
            con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return name

    def drop_schema(self, dbname: str, name: str) -> None:
        """Drop a schema and everything in it (waits at most 10 s for locks)."""
        with psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=10) as con:
            con.execute("SET lock_timeout = '10s'")
            con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    def schema_dsn(self, dbname: str, schema: str) -> str:
        """A URL whose sessions see only ``schema`` (search_path): a private, empty store."""
        return f"{self.dsn(dbname)}?options=-csearch_path%3D{schema}"

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast`` (immediate if that does not finish); a no-op when stopped.

        ``immediate`` skips the shutdown checkpoint: for a server whose folder is deleted
        next (``close``), where the checkpoint cost the test session ~10 s of fsyncs.
        """
        if not self._started:
            return
        self._started = False
        done = self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        if done.returncode != 0:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        """Stop the server (no checkpoint: nothing of it is kept) and delete its folder."""
        self.stop(mode="immediate")
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL (skips, or fails on CI, when it is not installed)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = (
            "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in"
            " /usr/lib/postgresql/*/bin): run scripts/bootstrap or apt-get install postgresql"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with PostgresServer(bin_dir=bin_dir) as server:
        server.create_database()  # ldt_test_1: the tests' schemas live in it
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL to a fresh, empty schema of its own (as good as a database), dropped after the test."""
    schema = postgres_server.create_schema(_TEST_DB)
    try:
        yield postgres_server.schema_dsn(_TEST_DB, schema)
    finally:
        postgres_server.drop_schema(_TEST_DB, schema)
