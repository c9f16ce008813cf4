"""npm ``modbus-serial``'s Modbus TCP server (``tests/thirdparty/modbus/server.js``) on
loopback, with a register map of the test's choosing: a device nobody here wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.mosquitto import free_port
from tests.npm import installed, node

__all__ = ["ThirdPartyModbus", "modbus_serial_server"]

HERE = Path(__file__).parent / "modbus"


class ThirdPartyModbus:
    """The server process: its port, the addresses it refused so far, and ``stop``/``start``
    on the same port (a device rebooting)."""

    def __init__(self, spec: Path, port: int, modules: Path) -> None:
        self.port = port
        self.refused: list[str] = []
        self._spec = spec
        self._modules = modules
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving (again); returns once it listens."""
        proc = self._proc = await asyncio.create_subprocess_exec(
            node(), str(HERE / "server.js"), str(self._spec), str(self.port),
            stdout=asyncio.subprocess.PIPE,
            env={"NODE_PATH": str(self._modules), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            line = await proc.stdout.readline()
        assert line.decode().startswith("listening"), line
        self._reader = asyncio.create_task(self._follow(proc.stdout))

    async def _follow(self, stdout: asyncio.StreamReader) -> None:
        async for raw in stdout:
            text = raw.decode().strip()
            if text.startswith("refused "):
                self.refused.append(text.removeprefix("refused "))

    async def stop(self) -> None:
        """Kill it (a power cut: no goodbye to the clients)."""
        proc, self._proc = self._proc, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if proc is not None:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def modbus_serial_server(
    tmp_path: Path, registers: dict[str, Any]
) -> AsyncIterator[ThirdPartyModbus]:
    """Serve ``registers`` (``{"unit": 1, "holding": {"32": 100}, ...}``; any other
    address answers exception 2) until the block ends."""
    modules = installed(HERE / "package.json", "modbus-serial")
    spec = tmp_path / "modbus-map.json"
    spec.write_text(json.dumps(registers))
    server = ThirdPartyModbus(spec, free_port(), modules)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
