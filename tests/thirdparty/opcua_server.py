"""npm ``node-opcua``'s server (``tests/thirdparty/opcua/server.js``) on loopback: an OPC UA
device nobody here wrote, with one variable per type under ``/Objects/1:Plant``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from tests.mosquitto import free_port
from tests.npm import installed, node

__all__ = ["NodeOpcUa", "node_opcua_server"]

HERE = Path(__file__).parent / "opcua"


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


class NodeOpcUa:
    """The server process: its endpoint, its PKI folder, ``trust`` and ``stop``/``start``."""

    def __init__(self, pki: Path, port: int, modules: Path, trust: str) -> None:
        self.port = port
        self.pki = pki
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/ldt"
        self._modules = modules
        self._trust = trust
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving (again); returns once it listens."""
        proc = self._proc = await asyncio.create_subprocess_exec(
            node(), str(HERE / "server.js"), str(self.port), str(self.pki), self._trust,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={"NODE_PATH": str(self._modules), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert proc.stdout is not None
        seen: list[bytes] = []
        async with asyncio.timeout(60):
            while not (line := await proc.stdout.readline()).startswith(b"listening"):
                assert line, b"".join(seen)  # the server ended before it listened
                seen.append(line)
        # node-opcua logs to stdout: keep reading it, or a full pipe would stall the server
        self._drain = asyncio.create_task(_discard(proc.stdout))

    def rejected(self) -> list[Path]:
        """Client certificates the server refused so far (named by their thumbprints)."""
        return sorted((self.pki / "server" / "rejected").glob("*"))

    def trust_rejected(self) -> None:
        """What a server's operator does: move the refused certificates to the trusted ones."""
        trusted = self.pki / "server" / "trusted" / "certs"
        for cert in self.rejected():
            shutil.move(cert, trusted / cert.name)

    async def stop(self) -> None:
        """Kill it (no goodbye to the clients)."""
        proc, self._proc = self._proc, None
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if proc is not None:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def node_opcua_server(tmp_path: Path, *, trust: str = "all") -> AsyncIterator[NodeOpcUa]:
    """Serve until the block ends. ``trust="none"``: unknown client certificates are
    refused (and kept in the server's rejected folder), as a careful site's server does."""
    modules = installed(HERE / "package.json", "node-opcua")
    server = NodeOpcUa(tmp_path / "node-opcua-pki", free_port(), modules, trust)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
