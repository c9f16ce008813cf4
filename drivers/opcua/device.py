"""One OPC UA server as a device: monitored items, polled reads, writes, method calls.

A thin adapter over asyncua's ``Client`` that owns the failure policy:

* One session at a time, shared by ``read``, ``stream``, ``write`` and
  ``call``. Points are resolved (browse paths translated, NodeIds checked for
  syntax) once per session; a variable's DataType is read once per session,
  on its first write.
* asyncua's own reconnect (``auto_reconnect``) is off: a lost session is torn
  down and a new one opened after a capped, jittered ``ldt.backoff.Backoff``
  delay, with a new subscription and new monitored items. Timing and
  reconnects have one owner, and a session that comes back is always fresh.
* A dead session is noticed without a socket error: asyncua's watchdog reads
  the server state every ``watchdog_interval_s`` (deadline: the same) and its
  stale-subscription check watches the keepalives; either ends the session.
* Every request runs under ``asyncio.timeout`` (``timeout_s``; connecting
  gets two). Faults become bad readings with a reason (the OPC UA status name,
  e.g. ``BadSensorFailure``), never exceptions; ``write`` and ``call`` raise
  ``DriverError``.
* A point whose monitored item the server refuses (or a server without
  subscriptions) is polled by ``stream`` at its sampling interval instead.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors._base import UaStatusCodeError, UaStringParsingError

from ldt.backoff import Backoff
from ldt.drivers.base import Emit
from ldt.drivers.errors import DeviceUnreachableError, DriverError
from ldt.drivers.opcua.codec import from_variant, status_name, timestamp_ms, to_variant
from ldt.drivers.opcua.config import (
    BrowseSegment,
    OpcUaConnection,
    OpcUaPoint,
    OpcUaProfileSettings,
    PointMode,
    parse_node_ref,
)
from ldt.drivers.opcua.connect import connect, describe_error, quiet_asyncua_logging
from ldt.drivers.tcp_probe import TcpProbe
from ldt.reading import Quality, Reading, Structured, Value

__all__ = ["OpcUaDevice", "OpcUaDeviceHealth"]

_SESSION_TIMEOUT_MS = 120_000  # the server forgets a vanished gateway's session after 2 min
_QUEUE_MAX = 10_000  # notifications buffered between asyncua and emit; oldest dropped when full
_SESSION_FAULTS = frozenset(
    {
        StatusCodes.BadSessionIdInvalid,
        StatusCodes.BadSessionClosed,
        StatusCodes.BadSessionNotActivated,
        StatusCodes.BadSecureChannelClosed,
        StatusCodes.BadSecureChannelIdInvalid,
        StatusCodes.BadConnectionClosed,
        StatusCodes.BadServerHalted,
        StatusCodes.BadShutdown,
        StatusCodes.BadCommunicationError,
        StatusCodes.BadTimeout,
    }
)


@dataclass(slots=True)
class OpcUaDeviceHealth:
    """The session's state, for the agent's health report.

    ``consecutive_failures`` counts failed connects and lost sessions since
    the last session opened; ``sessions`` counts sessions opened (so
    ``sessions - 1`` reconnects).
    """

    connected: bool = False
    last_error: str | None = None
    consecutive_failures: int = 0
    sessions: int = 0


class _DownError(Exception):
    """Internal: no session now; the message is the reason for the readings."""


class _SessionEndedError(Exception):
    """Internal: raised in the stream's task group when its session is lost."""


@dataclass(eq=False)
class _Session:
    client: Client
    nodes: dict[str, ua.NodeId] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)
    vtypes: dict[str, ua.VariantType] = field(default_factory=dict)
    methods: dict[str, tuple[ua.NodeId, ua.NodeId, list[ua.VariantType]]] = field(
        default_factory=dict
    )
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    def mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()


def _nothing_listens(exc: BaseException | None) -> bool:
    """Whether a failed connect means nothing listens there (refused, unreachable): only
    then can a bare TCP connect tell that the server is back. A server that accepts and
    then closes, or a local file that cannot be read, is left to the backoff."""
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE


_UNREACHABLE = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})


def _host_port(endpoint: str) -> tuple[str, int]:
    """``opc.tcp://host:4840/path`` -> ("host", 4840); 4840 when the port is not given."""
    parts = urlsplit(endpoint)
    return parts.hostname or "", parts.port or 4840


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OpcUaDevice:
    """An OPC UA server instance; use as ``async with`` (entering does no I/O).

    ``points`` with ``mode = "subscribe"`` are delivered by ``stream`` (the
    agent runs it when ``streams`` is true); ``mode = "poll"`` points are
    ``polled_points()`` for the agent's schedule. ``read()`` reads any points.
    """

    def __init__(
        self,
        *,
        device_id: str,
        connection: OpcUaConnection,
        settings: OpcUaProfileSettings,
        points: Sequence[OpcUaPoint],
        backoff: Backoff | None = None,
    ) -> None:
        self.device_id = device_id
        self.health = OpcUaDeviceHealth()
        self._conn = connection
        self._settings = settings
        self._points = tuple(points)
        self._by_name = {p.name: p for p in self._points}
        if len(self._by_name) != len(self._points):
            raise DriverError(f"device {device_id!r}: two points share a name")
        self._refs = {p.name: parse_node_ref(p.node) for p in self._points}
        self._subscribed = tuple(p for p in self._points if p.mode is PointMode.SUBSCRIBE)
        self._polled = tuple(p for p in self._points if p.mode is PointMode.POLL)
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._session: _Session | None = None
        self._retry_at = 0.0
        host, port = _host_port(connection.endpoint)
        self._probe = TcpProbe(host, port)
        self._refused = False  # the last connect failed at TCP: a probe can tell it is back
        self._unreachable = True  # the last failure was the link, not the server's refusal
        self._down_reason = "not connected yet"
        self._lock = asyncio.Lock()  # one connect at a time
        self.notifications = 0
        """Data changes received from monitored items (for benchmarks and tests)."""

    @property
    def points(self) -> tuple[OpcUaPoint, ...]:
        """The device's points, in profile order."""
        return self._points

    @property
    def streams(self) -> bool:
        """True when some point is subscribed (the agent runs ``stream``)."""
        return bool(self._subscribed)

    def polled_points(self) -> Sequence[OpcUaPoint]:
        """The ``mode = "poll"`` points, for the agent's poll schedule."""
        return self._polled

    async def __aenter__(self) -> OpcUaDevice:
        quiet_asyncua_logging()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        self.health.connected = False
        if session is not None:
            session.mark_lost("device closed")
            await self._close_client(session.client)

    # ------------------------------------------------------------- session

    async def _current(self) -> _Session:
        """The live session, opening one if the backoff allows (else _DownError: why)."""
        async with self._lock:
            session = self._session
            if session is not None and not session.lost.is_set():
                return session
            if session is not None:
                await self._drop(session, session.reason or "session lost")
            wait = self._retry_at - time.monotonic()
            if wait > 0 and not (self._refused and await self._probe.back(self._conn.timeout_s)):
                raise _DownError(f"not connected: {self._down_reason}")
            try:
                session = await self._open()
            except _DownError as exc:
                raise self._failed(str(exc)) from None
            self._refused = False
            self._unreachable = True  # from now on, a failure is the link's
            self._session = session
            self._backoff.reset()
            self.health.connected = True
            self.health.consecutive_failures = 0
            self.health.sessions += 1
            return session

    async def _open(self) -> _Session:
        conn = self._conn
        client = Client(
            conn.endpoint, timeout=conn.timeout_s, watchdog_intervall=conn.watchdog_interval_s
        )
        client.session_timeout = _SESSION_TIMEOUT_MS
        session = _Session(client=client)

        async def on_lost(exc: Exception) -> None:
            if isinstance(exc, TimeoutError):
                why = f"the server stopped answering the {conn.watchdog_interval_s} s watchdog"
            else:
                why = describe_error(exc)
            session.mark_lost(f"session lost: {why}")

        client.connection_lost_callback = on_lost
        deadline = 2 * conn.timeout_s
        try:
            async with asyncio.timeout(deadline):
                await connect(client, conn)
                await self._resolve(session)
        except asyncio.CancelledError:
            await self._close_client(client)
            raise
        except TimeoutError:
            await self._close_client(client)
            self._refused, self._unreachable = False, True
            raise _DownError(f"timeout after {deadline} s connecting to {conn.endpoint}") from None
        except DriverError as exc:  # unusable local files, the server's refusal, no server
            await self._close_client(client)
            # probe while backing off only when nothing listened: a server that refuses
            # the session would pass every probe, and the backoff would become a loop
            self._refused = _nothing_listens(exc.__cause__)
            cause = exc.__cause__
            self._unreachable = self._refused or isinstance(cause, ConnectionError | TimeoutError)
            raise _DownError(f"cannot open a session: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - asyncua raises many types; all become reasons
            await self._close_client(client)
            self._refused = _nothing_listens(exc)  # e.g. fetching the endpoints, refused
            self._unreachable = isinstance(exc, ConnectionError | TimeoutError) or self._refused
            raise _DownError(f"cannot open a session: {describe_error(exc)}") from None
        return session

    async def _resolve(self, session: _Session) -> None:
        """NodeIds parsed, browse paths translated in one request."""
        paths: list[tuple[str, list[BrowseSegment]]] = []
        for name, ref in self._refs.items():
            if isinstance(ref, str):
                try:
                    session.nodes[name] = ua.NodeId.from_string(ref)
                except (ValueError, UaStringParsingError) as exc:
                    session.unresolved[name] = f"invalid NodeId {ref!r}: {exc}"
            else:
                paths.append((name, ref))
        if not paths:
            return
        requests = []
        for _, segments in paths:
            rel = ua.RelativePath()
            for ns, browse_name in segments:
                el = ua.RelativePathElement()
                el.ReferenceTypeId = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
                el.IncludeSubtypes = cast(ua.Boolean, True)
                el.IsInverse = cast(
                    ua.Boolean, False
                )  # asyncua's default is True (child-to-parent)
                el.TargetName = ua.QualifiedName(browse_name, ns)
                rel.Elements.append(el)
            bp = ua.BrowsePath()
            bp.StartingNode = ua.NodeId(ua.Int32(ObjectIds.RootFolder))
            bp.RelativePath = rel
            requests.append(bp)
        results = await session.client.uaclient.translate_browsepaths_to_nodeids(requests)
        for (name, _), result in zip(paths, results, strict=True):
            if result.StatusCode.is_good() and result.Targets:
                target = result.Targets[0].TargetId
                session.nodes[name] = ua.NodeId(
                    target.Identifier, target.NamespaceIndex, target.NodeIdType
                )
            else:
                node = self._by_name[name].node
                why = status_name(result.StatusCode)
                session.unresolved[name] = f"browse path {node} not found ({why})"

    def _failed(self, reason: str) -> _DownError:
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self._down_reason = reason
        self.health.connected = False
        self.health.consecutive_failures += 1
        self.health.last_error = reason
        return _DownError(reason)

    async def _drop(self, session: _Session, reason: str) -> None:
        """End ``session`` (once) and schedule the next connect after a backoff delay."""
        session.mark_lost(reason)
        if self._session is not session:
            return
        self._session = None
        self._failed(session.reason or reason)
        await self._close_client(session.client)

    @staticmethod
    async def _close_client(client: Client) -> None:
        """Close politely if the server answers within a second, else just drop the socket."""
        client.connection_lost_callback = None
        try:
            async with asyncio.timeout(1.0):
                await client.disconnect()
        except asyncio.CancelledError:
            client.disconnect_socket()
            raise
        except Exception:  # noqa: BLE001, S110 - teardown of a session that is already gone
            pass
        client.disconnect_socket()

    async def _request_failed(self, session: _Session, exc: BaseException, what: str) -> str:
        """Classify a failed request; drops the session when it is the link that failed."""
        if isinstance(exc, TimeoutError):
            reason = f"timeout after {self._conn.timeout_s} s {what}"
        elif isinstance(exc, UaStatusCodeError) and exc.code not in _SESSION_FAULTS:
            return f"{status_name(exc.code)} {what}"
        else:
            reason = f"session lost {what}: {describe_error(exc)}"
        await self._drop(session, reason)
        return reason

    # ---------------------------------------------------------------- read

    def _bad(self, point: OpcUaPoint, reason: str, at_ms: int | None = None) -> Reading:
        return Reading(
            device_id=self.device_id,
            point=point.name,
            value=None,
            observed_at_ms=_now_ms() if at_ms is None else at_ms,
            quality=Quality.BAD,
            reason=reason,
        )

    def _reading(self, point: OpcUaPoint, dv: ua.DataValue) -> Reading:
        status = dv.StatusCode or ua.StatusCode()
        if status.is_bad():
            self.health.last_error = f"{point.name}: {status_name(status)}"
            return self._bad(point, status_name(status))
        try:
            variant = dv.Value
            value = from_variant(
                variant.Value if variant is not None else None,
                variant.VariantType if variant is not None else None,
            )
        except ValueError as exc:
            return self._bad(point, str(exc))
        return Reading(
            device_id=self.device_id,
            point=point.name,
            value=value,
            observed_at_ms=timestamp_ms(dv) or _now_ms(),
            quality=Quality.STALE if status.is_uncertain() else Quality.GOOD,
            reason=status_name(status) if status.is_uncertain() else None,
        )

    async def read(self, points: Sequence[OpcUaPoint] | None = None) -> list[Reading]:
        """One reading per point (default: all), in the order asked; never raises for faults.

        A good reading's ``observed_at_ms`` is the server's SourceTimestamp
        (else ServerTimestamp, else now). Only ``CancelledError`` propagates.
        """
        wanted = self._points if points is None else tuple(points)
        foreign = [p for p in wanted if self._by_name.get(p.name) != p]
        if foreign:
            return [
                self._bad(p, f"not a point of {self.device_id!r}")
                if p in foreign
                else self._bad(p, "")
                for p in wanted
            ]
        try:
            session = await self._current()
        except _DownError as exc:
            now = _now_ms()
            return [self._bad(p, str(exc), now) for p in wanted]
        return await self._read_on(session, wanted)

    async def _read_on(self, session: _Session, wanted: Sequence[OpcUaPoint]) -> list[Reading]:
        readable = [p for p in wanted if p.name in session.nodes]
        out: dict[str, Reading] = {
            p.name: self._bad(p, session.unresolved[p.name])
            for p in wanted
            if p.name not in session.nodes
        }
        if readable:
            try:
                async with asyncio.timeout(self._conn.timeout_s):
                    values = await session.client.uaclient.read_attributes(
                        [session.nodes[p.name] for p in readable], AttributeIds.Value
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - translated into the readings' reason
                reason = await self._request_failed(session, exc, "reading")
                now = _now_ms()
                out.update({p.name: self._bad(p, reason, now) for p in readable})
            else:
                out.update(
                    {p.name: self._reading(p, dv) for p, dv in zip(readable, values, strict=True)}
                )
        return [out[p.name] for p in wanted]

    # -------------------------------------------------------------- stream

    async def stream(self, emit: Emit) -> None:
        """Push subscribed points' changes to ``emit`` until cancelled.

        Reconnects with backoff and re-creates the subscription and its
        monitored items in each new session. While there is no session it
        emits one bad reading per subscribed point at each failed attempt,
        and once per point when a session is lost.
        """
        if not self._subscribed:
            await asyncio.Event().wait()  # nothing to push; run until cancelled like the others
        while True:
            try:
                session = await self._current()
            except _DownError as exc:
                now = _now_ms()
                for p in self._subscribed:
                    await emit(self._bad(p, str(exc), now))
                await asyncio.sleep(max(self._retry_at - time.monotonic(), 0.05))
                continue
            reason = await self._pump(session, emit)
            await self._drop(session, reason)
            now = _now_ms()
            for p in self._subscribed:
                await emit(self._bad(p, reason, now))

    async def _pump(self, session: _Session, emit: Emit) -> str:
        """Run one session's subscription until the session is lost; returns why."""
        points = self._subscribed
        polled: list[OpcUaPoint] = [p for p in points if p.name not in session.nodes]
        handles: dict[int, OpcUaPoint] = {}
        sub = None
        try:
            async with asyncio.timeout(self._conn.timeout_s):
                sub = await self._subscribe(session, points, handles, polled)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated; see _request_failed
            reason = await self._request_failed(session, exc, "creating the subscription")
            if session.lost.is_set():
                return reason
            polled = list(points)  # the server has no subscriptions for us: poll them all

        async def consume() -> None:
            if sub is None:
                return
            async for event in sub:
                if isinstance(event, DataChangeEvent):
                    point = handles.get(event.data.monitored_item.ClientHandle)
                    if point is not None:
                        self.notifications += 1
                        await emit(self._reading(point, event.data.monitored_item.Value))
                elif (
                    isinstance(event, StatusChangeEvent) and not event.notification.Status.is_good()
                ):
                    why = status_name(event.notification.Status)
                    session.mark_lost(f"subscription ended: {why}")
                    return
            session.mark_lost("subscription ended")

        async def poll() -> None:
            if not polled:
                return
            periods = [self._sampling_ms(p) for p in polled]
            period = max(0.1, min(periods) / 1000.0)
            unresolved_told: set[str] = set()
            while True:
                live = [p for p in polled if p.name in session.nodes]
                for reading in await self._read_on(session, live) if live else []:
                    await emit(reading)
                for p in polled:
                    if p.name not in session.nodes and p.name not in unresolved_told:
                        unresolved_told.add(p.name)
                        await emit(self._bad(p, session.unresolved[p.name]))
                await asyncio.sleep(period)

        async def watch() -> None:
            await session.lost.wait()
            raise _SessionEndedError

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(consume(), name=f"ldt-opcua-consume:{self.device_id}")
                tg.create_task(poll(), name=f"ldt-opcua-poll:{self.device_id}")
                tg.create_task(watch(), name=f"ldt-opcua-watch:{self.device_id}")
        except* _SessionEndedError:
            pass
        return session.reason or "session lost"

    def _sampling_ms(self, p: OpcUaPoint) -> float:
        if p.sampling_interval_ms is not None:
            return p.sampling_interval_ms
        return self._settings.sampling_interval_ms

    async def _subscribe(
        self,
        session: _Session,
        points: Sequence[OpcUaPoint],
        handles: dict[int, OpcUaPoint],
        polled: list[OpcUaPoint],
    ) -> Any:
        """Create the subscription and one monitored item per resolved point.

        Points whose item the server refuses are appended to ``polled``.
        """
        s = self._settings
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = s.publishing_interval_ms
        params.RequestedMaxKeepAliveCount = s.keepalive_count
        params.RequestedLifetimeCount = s.keepalive_count * 3
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        params.Priority = 0
        sub = await session.client.create_subscription(
            params, None, queue_maxsize=_QUEUE_MAX, overflow=OverflowPolicy.DROP_OLDEST
        )
        wanted = [p for p in points if p.name in session.nodes]
        requests = []
        for handle, p in enumerate(wanted, start=1):
            handles[handle] = p
            rv = ua.ReadValueId()
            rv.NodeId = session.nodes[p.name]
            rv.AttributeId = AttributeIds.Value
            mp = ua.MonitoringParameters()
            mp.ClientHandle = handle
            mp.SamplingInterval = self._sampling_ms(p)
            mp.QueueSize = s.queue_size
            mp.DiscardOldest = True
            if p.deadband is not None:
                dcf = ua.DataChangeFilter()
                dcf.Trigger = ua.DataChangeTrigger.StatusValue
                dcf.DeadbandType = ua.DeadbandType.Absolute
                dcf.DeadbandValue = p.deadband
                mp.Filter = dcf
            req = ua.MonitoredItemCreateRequest()
            req.ItemToMonitor = rv
            req.MonitoringMode = ua.MonitoringMode.Reporting
            req.RequestedParameters = mp
            requests.append(req)
        if requests:
            results = await sub.create_monitored_items(requests)
            for handle, result in enumerate(results, start=1):
                if isinstance(result, ua.StatusCode):
                    polled.append(handles.pop(handle))
        return sub

    # ---------------------------------------------------------- write, call

    def _resolve_point(self, point: OpcUaPoint | str) -> OpcUaPoint:
        if isinstance(point, str):
            try:
                return self._by_name[point]
            except KeyError:
                raise DriverError(f"device {self.device_id!r} has no point {point!r}") from None
        if self._by_name.get(point.name) != point:
            raise DriverError(f"point {point.name!r} is not one of {self.device_id!r}'s points")
        return point

    async def _session_for_command(self, what: str) -> _Session:
        """A session for a write or call: one connect attempt even during read backoff."""
        if self._session is None or self._session.lost.is_set():
            self._retry_at = 0.0
        try:
            return await self._current()
        except _DownError as exc:
            if self._unreachable:
                raise DeviceUnreachableError(f"{what} failed: {exc}") from None
            raise DriverError(f"{what} failed: {exc}") from None  # the server refused us

    async def write(self, point: OpcUaPoint | str, value: Value) -> str:
        """Write one point with its variable's own DataType; returns what was written
        (``UInt16 300``).

        Raises ``DriverError`` when the point is unknown or not writable, the
        value does not fit the variable's type (the type is read once per
        session), or the server refuses (the status name says why) or does not
        answer.
        """
        p = self._resolve_point(point)
        what = f"write to {self.device_id!r} {p.name!r}"
        if not p.writable:
            raise DriverError(f"point {p.name!r} of {self.device_id!r} is not writable")
        session = await self._session_for_command(what)
        nodeid = session.nodes.get(p.name)
        if nodeid is None:
            raise DriverError(f"{what} failed: {session.unresolved[p.name]}")
        try:
            async with asyncio.timeout(self._conn.timeout_s):
                vtype = session.vtypes.get(p.name)
                if vtype is None:
                    vtype = await session.client.get_node(nodeid).read_data_type_as_variant_type()
                    session.vtypes[p.name] = vtype
                try:
                    variant = to_variant(value, vtype, p.name)
                except ValueError as exc:
                    raise DriverError(f"{what}: {exc}") from None
                results = await session.client.uaclient.write_attributes(
                    [nodeid], [ua.DataValue(variant)], AttributeIds.Value
                )
        except (asyncio.CancelledError, DriverError):
            raise
        except Exception as exc:
            reason = await self._request_failed(session, exc, "writing")
            if session.lost.is_set():  # the link failed, not the write: it may be retried
                raise DeviceUnreachableError(f"{what} failed: {reason}") from exc
            raise DriverError(f"{what} failed: {reason}") from exc
        if not results[0].is_good():
            raise DriverError(f"{what} refused: {status_name(results[0])}")
        return f"{variant.VariantType.name} {variant.Value!r}"

    async def call(self, method: str, *args: Value) -> list[Value | Structured]:
        """Call a method by browse path (``/Objects/2:PumpingStation/2:ResetAlarm``) or NodeId.

        Arguments are converted to the method's declared input types; returns
        the output arguments. Raises ``DriverError`` for a method that is not
        found, arguments that do not fit, a Bad status or no answer.
        """
        what = f"call {method} on {self.device_id!r}"
        try:
            ref = parse_node_ref(method)
        except ValueError as exc:
            raise DriverError(f"{what}: {exc}") from None
        session = await self._session_for_command(what)
        try:
            async with asyncio.timeout(self._conn.timeout_s):
                target = session.methods.get(method)
                if target is None:
                    target = await self._find_method(session, ref, what)
                    session.methods[method] = target
                object_id, method_id, in_types = target
                if len(args) != len(in_types):
                    raise DriverError(  # noqa: TRY301 - a caller error, not a link fault
                        f"{what}: takes {len(in_types)} argument(s), got {len(args)}"
                    )
                try:
                    variants = [to_variant(a, t) for a, t in zip(args, in_types, strict=True)]
                except ValueError as exc:
                    raise DriverError(f"{what}: argument {exc}") from None
                request = ua.CallMethodRequest()
                request.ObjectId = object_id
                request.MethodId = method_id
                request.InputArguments = variants
                (result,) = await session.client.uaclient.call([request])
        except (asyncio.CancelledError, DriverError):
            raise
        except Exception as exc:
            reason = await self._request_failed(session, exc, "calling a method")
            raise DriverError(f"{what} failed: {reason}") from exc
        if not result.StatusCode.is_good():
            raise DriverError(f"{what} refused: {status_name(result.StatusCode)}")
        try:
            return [from_variant(v.Value) for v in result.OutputArguments or []]
        except ValueError as exc:
            raise DriverError(f"{what}: output {exc}") from None

    async def _find_method(
        self, session: _Session, ref: str | list[BrowseSegment], what: str
    ) -> tuple[ua.NodeId, ua.NodeId, list[ua.VariantType]]:
        client = session.client
        if isinstance(ref, str):
            method_node = client.get_node(ua.NodeId.from_string(ref))
            parent = await method_node.get_parent()
            if parent is None:
                raise DriverError(f"{what}: the method has no parent object")
            object_id = parent.nodeid
        else:
            if len(ref) < 2:
                raise DriverError(f"{what}: a method's browse path names its object and itself")
            root = client.get_root_node()
            names = [f"{ns}:{name}" for ns, name in ref]
            try:
                parent = await root.get_child(names[:-1])
                method_node = await parent.get_child(names[-1])
            except UaStatusCodeError as exc:
                raise DriverError(f"{what}: not found ({status_name(exc.code)})") from None
            object_id = parent.nodeid
        in_types: list[ua.VariantType] = []
        try:
            prop = await method_node.get_child("0:InputArguments")
            arguments = await prop.read_value()
        except UaStatusCodeError:
            arguments = []  # no InputArguments property: the method takes none
        for argument in arguments or []:
            dtype: ua.NodeId = argument.DataType
            if (
                dtype.NamespaceIndex == 0
                and isinstance(dtype.Identifier, int)
                and dtype.Identifier <= 25
            ):
                in_types.append(ua.VariantType(dtype.Identifier))
            else:
                raise DriverError(f"{what}: argument {argument.Name!r} has a non-built-in DataType")
        return object_id, method_node.nodeid, in_types
