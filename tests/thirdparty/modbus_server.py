"""npm ``modbus-serial``'s Modbus TCP server (``tests/thirdparty/modbus/server.js``) on
loopback, with a register map of the test's choosing: a device nobody here wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.mosquitto import free_port
from tests.npm import installed, node

__all__ = ["ThirdPartyModbus", "modbus_serial_server"]

HERE = Path(__file__).parent / "modbus"


@dataclass
class ThirdPartyModbus:
    """The running server: its port and the addresses it refused so far."""

    port: int
    refused: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def modbus_serial_server(
    tmp_path: Path, registers: dict[str, Any]
) -> AsyncIterator[ThirdPartyModbus]:
    """Serve ``registers`` (``{"unit": 1, "holding": {"32": 100}, ...}``; any other
    address answers exception 2) until the block ends."""
    modules = installed(HERE / "package.json", "modbus-serial")
    spec = tmp_path / "modbus-map.json"
    spec.write_text(json.dumps(registers))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        node(), str(HERE / "server.js"), str(spec), str(port),
        stdout=asyncio.subprocess.PIPE,
        env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.stdout is not None
    server = ThirdPartyModbus(port=port)
    try:
        async with asyncio.timeout(15):
            line = await proc.stdout.readline()
        assert line.decode().startswith("listening"), line

        async def follow() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                text = raw.decode().strip()
                if text.startswith("refused "):
                    server.refused.append(text.removeprefix("refused "))

        reader = asyncio.create_task(follow())
        try:
            yield server
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
