"""Shared pieces of the end-to-end tests: real cloud, real simulators, real agent.

The cloud and the simulators run in the test's event loop (they are the same
servers ``ldt cloud serve`` and ``ldt sim modbus`` run); the agent runs either
in-process (``AgentRuntime``) or as its own process (``ldt agent run``) when a
test must kill it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from ldt.cloud.server import add_gateway
from ldt.simulators.modbus import ModbusSimulator, resolve_profile

GATEWAY = "gw-test"


def gateway_toml(
    *,
    cloud_url: str,
    token: str,
    devices: list[tuple[str, str, int]],
    poll_interval_s: float = 0.2,
    uplink_interval_s: float = 0.2,
    flush_interval_ms: int = 50,
    batch_max: int = 5000,
    live_max: int = 1000,
) -> str:
    """A gateway config for ``devices`` = [(device id, profile, port)]."""
    lines = [
        "[gateway]",
        f'id = "{GATEWAY}"',
        'data_dir = "agent-data"',
        "[cloud]",
        f'url = "{cloud_url}"',
        f'token = "{token}"',
        f"interval_s = {uplink_interval_s}",
        "timeout_s = 5.0",
        f"batch_max_readings = {batch_max}",
        f"live_max_readings = {live_max}",
        "[buffer]",
        f"flush_interval_ms = {flush_interval_ms}",
    ]
    for device_id, profile, port in devices:
        lines += [
            "[[devices]]",
            f'id = "{device_id}"',
            f'profile = "{profile}"',
            f"poll_interval_s = {poll_interval_s}",
            f'connection = {{ host = "127.0.0.1", port = {port}, timeout_s = 0.5 }}',
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def token_for(tmp_path: Path) -> Callable[[], str]:
    """Registers the test gateway in the cloud's data folder and returns its token."""

    def make() -> str:
        return add_gateway(tmp_path / "cloud", GATEWAY)

    return make


@pytest.fixture
async def sims() -> AsyncIterator[Callable[..., asyncio.Future[ModbusSimulator]]]:
    """Starts simulators on free ports; all are stopped at the end of the test."""
    async with AsyncExitStack() as stack:

        async def start(profile: str, **kw: object) -> ModbusSimulator:
            sim = ModbusSimulator(profile=resolve_profile(profile), **kw)  # type: ignore[arg-type]
            await stack.enter_async_context(sim)
            return sim

        yield start  # type: ignore[misc]


class AgentProcess:
    """``ldt agent run`` as a child process, killed or stopped by the test."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ldt", "agent", "run", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    made: list[AgentProcess] = []

    def make(config: Path) -> AgentProcess:
        a = AgentProcess(config, tmp_path / "agent.log")
        made.append(a)
        return a

    yield make
    for a in made:
        a.ensure_dead()


async def wait_for(
    predicate: Callable[[], Awaitable[bool] | bool], *, within: float, what: str
) -> None:
    """Poll ``predicate`` (sync or async) until true; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)
