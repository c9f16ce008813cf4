"""The agent's supervisor: drivers, buffer writer, uplink and housekeeping in one TaskGroup.

Start-up order matters for durability: the buffer opens first (a corrupt
database stops the agent with a clear message instead of starting a fresh one
and hiding the loss), then the writer, then the devices (pollers and streams) and the uplink. On
stop (SIGTERM), device tasks are cancelled first, the writer commits everything it
was handed, then the uplink stops; unsent readings stay in the buffer for the
next start.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.agent.config import GatewayConfig
from ldt.agent.control.actuator import WritablePoint
from ldt.agent.control.edge import EdgeControl
from ldt.agent.identity import Identity, IdentityError, renew
from ldt.agent.inference import Derived
from ldt.agent.local_api import LocalApi
from ldt.agent.poller import DeviceHealth, DevicePoller, ReadingSink, store_reading
from ldt.agent.protocols import connection_kind, make_device
from ldt.agent.transport import HttpTransport, MutualTlsTransport, Transport
from ldt.agent.uplink import Uplink
from ldt.agent.value_cipher import CipherError, ValueCipher
from ldt.backoff import Backoff
from ldt.cancellation import cancel_and_wait
from ldt.contract import SeriesInfo
from ldt.private_files import kept_secret
from ldt.reading import Reading

__all__ = [
    "AgentError",
    "AgentRuntime",
    "DeviceTask",
    "drain",
    "make_transport",
    "read_token",
]

_log = logging.getLogger("ldt.agent")

HOUSEKEEPING_INTERVAL_S = 30.0
RENEWAL_CHECK_S = 600.0
"""How often the agent looks at its certificate's expiry (renewal at a third of its life)."""


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


def make_transport(config: GatewayConfig) -> HttpTransport | MutualTlsTransport:
    """The uplink's transport: mutual TLS to an https cloud, a bearer token to http.

    For an https cloud, the gateway's private key is created here on first start (0600,
    ``identity``), so it exists before anyone provisions the gateway.
    """
    cloud = config.cloud
    gzip = cloud.compression == "gzip"
    if cloud.url.startswith("https://"):
        identity = Identity.of(config.gateway.data_dir, config.gateway.id)
        if not identity.key_path.exists():  # first start: the key is born on the device
            try:
                identity.ensure_key()
            except (IdentityError, OSError) as exc:
                raise AgentError(f"cannot create the gateway key: {exc}") from exc
            _log.info("gateway key created", extra={"path": str(identity.key_path)})
        if not identity.provisioned:
            _log.warning(
                "not provisioned yet: readings are buffered until 'ldt gw provision' runs",
                extra={"gateway": config.gateway.id, "cloud": cloud.url},
            )
        return MutualTlsTransport(
            base_url=cloud.url, identity=identity, timeout_s=cloud.timeout_s, compress=gzip
        )
    return HttpTransport(
        base_url=cloud.url, token=read_token(config), timeout_s=cloud.timeout_s, compress=gzip
    )


LOCAL_API_TOKEN = "local-api.token"  # noqa: S105 - a file name
"""Made at start when ``[local_api]`` has no ``credential_file``: POSTs need it (0600)."""


def _local_token(path: Path) -> str:
    """The local API's generated POST credential, made once (0600) and kept."""
    return kept_secret(path, _new_token, _non_blank).decode("utf-8").strip()


def _new_token() -> bytes:
    return (secrets.token_urlsafe(24) + "\n").encode()


def _non_blank(secret: bytes) -> bool:
    return bool(secret.strip())


PRIVACY_KEY = "privacy.key"
"""The key of BLE identifiers' pseudonyms (``ldt.drivers.ble.privacy``); never leaves the box."""


def _privacy_key(data_dir: Path) -> bytes:
    """The gateway's pseudonym key, made once (0600): the same tag keeps its pseudonym
    across restarts, and nobody without this file can tell which tag it was."""
    return kept_secret(data_dir / PRIVACY_KEY, lambda: secrets.token_bytes(32), _long_enough)


def _long_enough(key: bytes) -> bool:
    return len(key) >= 32


def _read_credential(path: Path | None) -> str | None:
    """The local API's secret from its file (None: no file); ``OSError`` if empty."""
    if path is None:
        return None
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise OSError(f"{path} is empty")
    return secret


def _cipher(config: GatewayConfig) -> ValueCipher | None:
    """The buffer's value cipher, if a key is configured; ``AgentError`` if it is unusable."""
    path = config.buffer.encryption_key_file
    if path is None:
        return None
    try:
        return ValueCipher.from_file(path)
    except CipherError as exc:
        raise AgentError(str(exc)) from exc


def _open_buffer(config: GatewayConfig) -> AsyncBuffer:
    bcfg = config.buffer
    return AsyncBuffer(
        Buffer(
            path=config.buffer_path,
            max_bytes=bcfg.max_bytes,
            max_age_s=bcfg.max_age_s,
            drop_policy=bcfg.drop_policy,
            synchronous=bcfg.synchronous,
            cipher=_cipher(config),
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
    transport = transport or make_transport(cfg)
    abuf = _open_buffer(cfg)
    uplink = Uplink(
        gateway_id=cfg.gateway.id,
        buffer=abuf,
        transport=transport,
        batch_max=cfg.cloud.batch_max_readings,
        live_max=cfg.cloud.live_max_readings,
        interval_s=0.01,
        cipher=_cipher(cfg),
        cloud_url=cfg.cloud.url,
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


class _Tap:
    """The devices' sink: the buffer writer first, then edge control sees the reading."""

    def __init__(self, writer: BufferWriter) -> None:
        self.writer = writer
        self.observer: Callable[[Reading], None] | None = None

    async def put(self, series_id: int, reading: Reading) -> None:
        await self.writer.put(series_id, reading)
        if self.observer is not None:
            self.observer(reading)


@dataclass
class DeviceTask:
    """One configured device: its driver, health, poller (if polled) and point -> series map."""

    device_id: str
    driver: Any
    health: DeviceHealth
    poller: DevicePoller[Any] | None
    series: dict[str, int]


async def _restarting(
    what: str,
    run: Callable[[], Awaitable[None]],
    *,
    cap_s: float = 30.0,
    failed: Callable[[Exception], None] | None = None,
    log_extra: dict[str, Any] | None = None,
) -> None:
    """``run()`` until it returns or is cancelled; an exception (a full disk, a bug) is
    logged with its stack, told to ``failed``, and ``run`` starts again after a backoff,
    instead of ending the agent's task group."""
    backoff = Backoff(base_s=1.0, cap_s=cap_s)
    while True:
        started = time.monotonic()
        try:
            await run()
        except Exception as exc:  # noqa: BLE001 - readings go on; the failure is logged
            if time.monotonic() - started > 300:
                backoff.reset()  # it ran a good while: not a failure loop
            delay = backoff.next_delay()
            if failed is not None:
                failed(exc)
            _log.exception(
                f"{what} failed; restarting it",
                extra={**(log_extra or {}), "retry_in_s": round(delay, 1)},
            )
            await asyncio.sleep(delay)
        else:
            return


@dataclass
class AgentRuntime:
    """One running agent. ``run()`` returns when ``stop`` is set, after draining."""

    config: GatewayConfig
    transport: Transport | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    devices: list[DeviceTask] = field(default_factory=list)
    driver_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra constructor arguments per device id, at the drivers' own seams (e.g. a BLE
    advertisement source where there is no radio: the tests and the demo use it)."""
    uplink: Uplink | None = None
    buffer: AsyncBuffer | None = None
    renewal_check_s: float = RENEWAL_CHECK_S
    local_api: LocalApi | None = None
    edge: EdgeControl | None = None

    async def run(self) -> None:
        """Run until ``stop`` is set; raises ``AgentError`` for unusable configs or buffers."""
        cfg = self.config
        try:
            cfg.gateway.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentError(f"cannot create data_dir {cfg.gateway.data_dir}: {exc}") from exc
        transport = self.transport or make_transport(cfg)
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
        cipher = _cipher(cfg)
        writer = BufferWriter(
            buffer=abuf,
            flush_interval_ms=cfg.buffer.flush_interval_ms,
            flush_max_readings=cfg.buffer.flush_max_readings,
        )
        tap = _Tap(writer)
        self.devices = await self._make_devices(abuf, tap)
        self.edge = self._make_edge(abuf, writer)
        tap.observer = self.edge.observe
        self.uplink = Uplink(
            gateway_id=cfg.gateway.id,
            buffer=abuf,
            transport=transport,
            batch_max=cfg.cloud.batch_max_readings,
            live_max=cfg.cloud.live_max_readings,
            interval_s=cfg.cloud.interval_s,
            cipher=cipher,
            cloud_url=cfg.cloud.url,
        )
        _log.info(
            "agent started",
            extra={"gateway": cfg.gateway.id, "devices": len(self.devices), "cloud": cfg.cloud.url},
        )
        async with writer, asyncio.TaskGroup() as producers:
            poll_tasks = [
                producers.create_task(self._run_device(d, tap), name=f"device:{d.device_id}")
                for d in self.devices
            ]
            uplink_task = producers.create_task(
                _restarting("uplink", self.uplink.run), name="uplink"
            )
            edge_task = producers.create_task(self._edge_guarded(), name="edge-control")
            house_task = producers.create_task(
                _restarting("housekeeping", lambda: self._housekeeping(abuf)), name="housekeeping"
            )
            api_port = await self._start_local_api()
            lan_task = None
            if self._advertised():  # registering takes seconds (mDNS probing): not inline
                lan_task = producers.create_task(self._advertise(api_port), name="discovery")
            identity = Identity.of(cfg.gateway.data_dir, cfg.gateway.id)
            renewal_task = None
            if cfg.cloud.url.startswith("https://"):
                renewal_task = producers.create_task(
                    self._renewal(identity), name="certificate-renewal"
                )
            await self.stop.wait()
            _log.info("agent stopping: draining readings to the buffer")
            await cancel_and_wait(poll_tasks)
            await cancel_and_wait([edge_task])
            await writer.flush()
            uplink_task.cancel()
            house_task.cancel()
            for extra in (renewal_task, lan_task):
                if extra is not None:
                    extra.cancel()
            if self.local_api is not None:
                await self.local_api.close()
        stats = await abuf.stats()
        read = sum(d.health.good + d.health.bad + d.health.stale for d in self.devices)
        _log.info(
            "agent stopped",
            extra={
                "pending": stats.pending,
                "last_seq": stats.last_seq,
                "readings_read": read,
                "readings_committed": writer.stats.committed,
            },
        )

    async def _edge_guarded(self) -> None:
        """Edge control until cancelled; its failure is logged, never the agent's end."""
        assert self.edge is not None
        try:
            await self.edge.run()
        except Exception:  # noqa: BLE001 - readings matter more than rules and models
            _log.exception("edge control stopped; readings go on")

    def _make_edge(self, abuf: AsyncBuffer, writer: BufferWriter) -> EdgeControl:
        """Edge control over this agent's devices (rules, models, commands)."""
        cfg = self.config
        points: dict[tuple[str, str], WritablePoint] = {}
        entities: dict[str, str] = {}
        types: dict[str, str] = {}
        for task in self.devices:
            dev = next(d for d in cfg.devices if d.id == task.device_id)
            profile = cfg.profiles[dev.profile]
            entities[dev.id] = cfg.entity_id(dev)
            types[dev.id] = profile.profile.entity_type
            for point in profile.points:
                points[(dev.id, point.name)] = WritablePoint(task.driver, point)

        async def series_of(derived: Derived) -> int:
            device = derived.reading.device_id
            return await abuf.series_id(
                SeriesInfo(
                    entity_id=entities[device],
                    entity_type=types[device],
                    attr=derived.reading.point,
                    unit=derived.unit,
                    provenance=derived.provenance,
                )
            )

        https = cfg.cloud.url.startswith("https://")
        return EdgeControl(
            folder=cfg.gateway.data_dir / "control",
            points=points,
            entities=entities,
            store=writer.put,
            series_of=series_of,
            identity=Identity.of(cfg.gateway.data_dir, cfg.gateway.id) if https else None,
            cloud_url=cfg.cloud.url if https else None,
            local_limits=cfg.safety,
        )

    async def _make_devices(self, abuf: AsyncBuffer, writer: ReadingSink) -> list[DeviceTask]:
        cfg = self.config
        tasks: list[DeviceTask] = []
        for dev in cfg.devices:
            if not dev.enabled:
                continue
            profile = cfg.profiles[dev.profile]
            fam = profile.family
            kind = connection_kind(fam, dev.connection.protocol)
            if kind is None:  # load_gateway_config already refused this
                raise AgentError(f"device {dev.id}: no driver for {dev.connection.protocol}")
            entity_id = cfg.entity_id(dev)
            series: dict[str, int] = {}
            for point in profile.points:
                series[point.name] = await abuf.series_id(
                    SeriesInfo(
                        entity_id=entity_id,
                        entity_type=profile.profile.entity_type,
                        attr=point.attribute_name,
                        unit=point.unit,
                    )
                )
            extra: dict[str, Any] = dict(self.driver_kwargs.get(dev.id, {}))
            if dev.connection.protocol == "ble":  # identifiers leave as pseudonyms
                extra.setdefault("pseudonym_key", _privacy_key(cfg.gateway.data_dir))
            driver = make_device(
                fam,
                kind,
                device_id=dev.id,
                connection=dev.connection,
                settings=profile.settings,
                points=profile.points,
                **extra,
            )
            health = DeviceHealth(device_id=dev.id)
            interval = dev.poll_interval_s or profile.profile.poll_interval_s
            schedule = [
                (p.poll_interval_s or interval, p, series[p.name]) for p in driver.polled_points()
            ]
            poller = (
                DevicePoller(
                    device_id=dev.id, device=driver, schedule=schedule, sink=writer, health=health
                )
                if schedule
                else None
            )
            tasks.append(
                DeviceTask(
                    device_id=dev.id, driver=driver, health=health, poller=poller, series=series
                )
            )
        return tasks

    async def _run_device(self, task: DeviceTask, sink: ReadingSink) -> None:
        """One device, never able to stop the others: a failure its driver did not turn into
        a reading (a library's exception nobody mapped, a bug) is logged with its stack,
        shown in the device's health, and the device is opened again after a backoff
        (issue 17: one such exception ended every device's task)."""

        def failed(exc: Exception) -> None:
            task.health.connected = False
            task.health.last_error = f"device task failed: {exc!r}; restarting"
            task.health.task_restarts += 1

        await _restarting(
            "device task",
            lambda: self._device_once(task, sink),
            cap_s=60.0,
            failed=failed,
            log_extra={"device": task.device_id},
        )

    async def _device_once(self, task: DeviceTask, sink: ReadingSink) -> None:
        """One device: opened once, polled and/or streamed, until cancelled or it fails."""

        async def emit(reading: Reading) -> None:
            series_id = task.series.get(reading.point)
            if series_id is None:
                _log.error(
                    "driver emitted an unknown point; dropped",
                    extra={"device": task.device_id, "point": reading.point},
                )
                return
            await store_reading(sink, task.health, series_id, reading)

        async with task.driver:
            inner = []
            if task.poller is not None:
                inner.append(asyncio.create_task(task.poller.run(), name=f"poll:{task.device_id}"))
            if task.driver.streams:
                inner.append(
                    asyncio.create_task(task.driver.stream(emit), name=f"stream:{task.device_id}")
                )
            try:
                await asyncio.gather(*inner)
            finally:
                # not a TaskGroup: it cancels its tasks once, and a driver library may
                # swallow that (ldt.cancellation); this asks again until they are gone
                await cancel_and_wait(inner)

    async def _start_local_api(self) -> int:
        """Start the technician's API if enabled; its port (0: not running).

        A port in use or an unreadable credential is logged, not fatal: readings matter more
        than the API.
        """
        settings = self.config.local_api
        if not settings.enabled:
            return 0
        try:
            credential = _read_credential(settings.credential_file)
            post_credential = None
            if credential is None:  # reads stay open on loopback; changes need this
                post_credential = _local_token(self.config.gateway.data_dir / LOCAL_API_TOKEN)
            api = LocalApi(
                self,
                host=settings.host,
                port=settings.port,
                credential=credential,
                post_credential=post_credential,
            )
            port = await api.start()
        except OSError as exc:
            _log.error("local API not started", extra={"reason": str(exc)})
            return 0
        self.local_api = api
        return port

    def _advertised(self) -> bool:
        """Whether to announce the gateway on the LAN (``[discovery] enabled``)."""
        cfg = self.config
        mode = cfg.discovery.enabled
        if mode == "auto":
            return (
                cfg.cloud.url.startswith("https://")
                and not Identity.of(cfg.gateway.data_dir, cfg.gateway.id).provisioned
            )
        return bool(mode)

    async def _advertise(self, port: int) -> None:
        """Announce the gateway on the LAN until cancelled; a failure never stops the agent."""
        from ldt import __version__
        from ldt.agent.discovery import Advertiser

        cfg = self.config
        identity = Identity.of(cfg.gateway.data_dir, cfg.gateway.id)
        state = "provisioned" if identity.provisioned else "unprovisioned"
        try:
            async with Advertiser(cfg.gateway.id, __version__, state, port=port):
                await asyncio.Event().wait()  # until the agent stops (cancelled)
        except (OSError, RuntimeError, ValueError) as exc:
            _log.warning("not advertised on the LAN", extra={"reason": str(exc)})
        except Exception as exc:  # noqa: BLE001 - zeroconf's own errors: same outcome
            _log.warning("not advertised on the LAN", extra={"reason": repr(exc)})

    async def _renewal(self, identity: Identity) -> None:
        """Renew the client certificate when a third of its life is left; retry on failure.

        The transport notices the new certificate file by itself (``MutualTlsTransport``).
        """
        while True:
            try:
                if identity.provisioned and identity.renewal_due():
                    expires = await renew(self.config.cloud.url, identity)
                    _log.info("certificate renewed", extra={"valid_until": expires})
            except IdentityError as exc:
                _log.warning("certificate renewal failed; will retry", extra={"reason": str(exc)})
            await asyncio.sleep(self.renewal_check_s)

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
