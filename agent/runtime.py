"""The agent's supervisor: drivers, buffer writer, uplink and housekeeping in one TaskGroup.

Start-up order matters for durability: the buffer opens first (a corrupt
database stops the agent with a clear message instead of starting a fresh one
and hiding the loss), then the writer, then the pollers and the uplink. On
stop (SIGTERM), pollers are cancelled first, the writer commits everything it
was handed, then the uplink stops; unsent readings stay in the buffer for the
next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.agent.config import GatewayConfig
from ldt.agent.poller import DevicePoller
from ldt.agent.transport import HttpTransport, Transport
from ldt.agent.uplink import Uplink
from ldt.contract import SeriesInfo
from ldt.drivers.modbus.config import ModbusPoint
from ldt.drivers.modbus.device import ModbusTcpDevice

__all__ = ["AgentError", "AgentRuntime", "drain", "read_token"]

_log = logging.getLogger("ldt.agent")

HOUSEKEEPING_INTERVAL_S = 30.0


class AgentError(Exception):
    """The agent cannot start or run; the message says what to fix."""


def read_token(config: GatewayConfig) -> str:
    """The gateway's cloud token, from the config or its token file."""
    cloud = config.cloud
    if cloud.token is not None:
        return cloud.token
    if cloud.token_file is not None:
        try:
            token = cloud.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AgentError(f"cannot read cloud token file {cloud.token_file}: {exc}") from exc
        if not token:
            raise AgentError(f"cloud token file {cloud.token_file} is empty")
        return token
    raise AgentError("no cloud token: set [cloud] token or token_file in the gateway config")


def _open_buffer(config: GatewayConfig) -> AsyncBuffer:
    bcfg = config.buffer
    return AsyncBuffer(
        Buffer(
            path=config.buffer_path,
            max_bytes=bcfg.max_bytes,
            max_age_s=bcfg.max_age_s,
            drop_policy=bcfg.drop_policy,
            synchronous=bcfg.synchronous,
        )
    )


async def drain(
    config: GatewayConfig, *, transport: Transport | None = None, timeout_s: float = 300.0
) -> int:
    """Send every pending reading to the cloud without polling; returns how many were sent.

    For a technician replacing a gateway (push everything before unplugging it)
    and for tests. Raises ``AgentError`` if the buffer is not empty by the deadline.
    """
    cfg = config
    transport = transport or HttpTransport(
        base_url=cfg.cloud.url, token=read_token(cfg), timeout_s=cfg.cloud.timeout_s
    )
    abuf = _open_buffer(cfg)
    uplink = Uplink(
        gateway_id=cfg.gateway.id,
        buffer=abuf,
        transport=transport,
        batch_max=cfg.cloud.batch_max_readings,
        live_max=cfg.cloud.live_max_readings,
        interval_s=0.01,
    )
    try:
        await abuf.open()
        task = asyncio.create_task(uplink.run(), name="uplink-drain")
        try:
            async with asyncio.timeout(timeout_s):
                await uplink.idle.wait()  # set by a cycle that found nothing left to send
        except TimeoutError:
            pending = (await abuf.stats()).pending
            raise AgentError(
                f"{pending} readings still pending after {timeout_s:g} s "
                f"(last sync error: {uplink.stats.last_error or 'none'})"
            ) from None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await transport.aclose()
        await abuf.close()
    return uplink.stats.readings_sent


@dataclass
class AgentRuntime:
    """One running agent. ``run()`` returns when ``stop`` is set, after draining."""

    config: GatewayConfig
    transport: Transport | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    pollers: list[DevicePoller[ModbusPoint]] = field(default_factory=list)
    uplink: Uplink | None = None
    buffer: AsyncBuffer | None = None

    async def run(self) -> None:
        """Run until ``stop`` is set; raises ``AgentError`` for unusable configs or buffers."""
        cfg = self.config
        try:
            cfg.gateway.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentError(f"cannot create data_dir {cfg.gateway.data_dir}: {exc}") from exc
        transport = self.transport or HttpTransport(
            base_url=cfg.cloud.url, token=read_token(cfg), timeout_s=cfg.cloud.timeout_s
        )
        abuf = _open_buffer(cfg)
        self.buffer = abuf
        try:
            await abuf.open()
            await self._run_open(abuf, transport)
        finally:
            await transport.aclose()
            await abuf.close()

    async def _run_open(self, abuf: AsyncBuffer, transport: Transport) -> None:
        cfg = self.config
        writer = BufferWriter(
            buffer=abuf,
            flush_interval_ms=cfg.buffer.flush_interval_ms,
            flush_max_readings=cfg.buffer.flush_max_readings,
        )
        self.pollers = await self._make_pollers(abuf, writer)
        self.uplink = Uplink(
            gateway_id=cfg.gateway.id,
            buffer=abuf,
            transport=transport,
            batch_max=cfg.cloud.batch_max_readings,
            live_max=cfg.cloud.live_max_readings,
            interval_s=cfg.cloud.interval_s,
        )
        _log.info(
            "agent started",
            extra={"gateway": cfg.gateway.id, "devices": len(self.pollers), "cloud": cfg.cloud.url},
        )
        async with writer, asyncio.TaskGroup() as producers:
            poll_tasks = [
                producers.create_task(p.run(), name=f"poll:{p.health.device_id}")
                for p in self.pollers
            ]
            uplink_task = producers.create_task(self.uplink.run(), name="uplink")
            house_task = producers.create_task(self._housekeeping(abuf), name="housekeeping")
            await self.stop.wait()
            _log.info("agent stopping: draining readings to the buffer")
            for t in poll_tasks:
                t.cancel()
            await asyncio.gather(*poll_tasks, return_exceptions=True)
            await writer.flush()
            uplink_task.cancel()
            house_task.cancel()
        stats = await abuf.stats()
        read = sum(p.health.good + p.health.bad + p.health.stale for p in self.pollers)
        _log.info(
            "agent stopped",
            extra={
                "pending": stats.pending,
                "last_seq": stats.last_seq,
                "readings_read": read,
                "readings_committed": writer.stats.committed,
            },
        )

    async def _make_pollers(
        self, abuf: AsyncBuffer, writer: BufferWriter
    ) -> list[DevicePoller[ModbusPoint]]:
        cfg = self.config
        pollers: list[DevicePoller[ModbusPoint]] = []
        for dev in cfg.devices:
            if not dev.enabled:
                continue
            profile = cfg.profiles[dev.profile]
            entity_id = cfg.entity_id(dev)
            interval = dev.poll_interval_s or profile.profile.poll_interval_s
            schedule: list[tuple[float, ModbusPoint, int]] = []
            for point in profile.points:
                sid = await abuf.series_id(
                    SeriesInfo(
                        entity_id=entity_id,
                        entity_type=profile.profile.entity_type,
                        attr=point.attribute_name,
                        unit=point.unit,
                    )
                )
                schedule.append((point.poll_interval_s or interval, point, sid))
            device = ModbusTcpDevice(
                device_id=dev.id,
                connection=dev.connection,
                settings=profile.modbus,
                points=profile.points,
            )
            pollers.append(
                DevicePoller(device_id=dev.id, device=device, schedule=schedule, sink=writer)
            )
        return pollers

    async def _housekeeping(self, abuf: AsyncBuffer) -> None:
        """Enforce buffer limits and log a status line, periodically."""
        while True:
            dropped = await abuf.enforce_limits(now_ms=int(time.time() * 1000))
            stats = await abuf.stats()
            up = self.uplink.stats if self.uplink else None
            _log.info(
                "status",
                extra={
                    "pending": stats.pending,
                    "last_seq": stats.last_seq,
                    "db_bytes": stats.db_bytes,
                    "dropped_now": dropped,
                    "dropped_full": stats.dropped_full,
                    "dropped_age": stats.dropped_age,
                    "sent": up.readings_sent if up else 0,
                    "sync_error": up.last_error if up else None,
                },
            )
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
