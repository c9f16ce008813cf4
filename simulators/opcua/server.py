"""An OPC UA pumping station on loopback, built on asyncua's server side.

Address space (namespace ``urn:ldt:simulator:pumping-station``, index 2)::

    Objects/PumpingStation                     ns=2;s=PumpingStation
        InletLevel              Double  m      ns=2;s=PumpingStation.InletLevel
        OutletPressureSetpoint  Double  bar    writable
        DutyPump                Byte           writable (1 or 2)
        HighLevelAlarm          Boolean
        AlarmCount              UInt32
        Mode                    String
        ResetAlarm()            -> UInt32 alarms acknowledged
        StartPump(Byte pump)    -> Boolean started
        StopPump(Byte pump)     -> Boolean stopped
        Pump1, Pump2                           ns=2;s=Pump1 ...
            Speed               Double  rpm
            Flow                Double  m3/h
            DischargePressure   Double  bar
            Running             Boolean
            RunHours            Double  h
            SpeedSetpoint       Double  %      writable

Variables are named by their NodeId string identifier (``Pump1.Speed``).
Knobs for tests: ``freeze``, ``set_bad`` (a node answers a Bad status),
``stall`` (existing connections stop being answered but stay open: a dead
session a client can only notice by its keepalive), ``restart`` (all
connections and sessions dropped, listening again on the same port).

``restart`` is fast because only the listener and the sessions go: building
the standard address space (``Server.init``) takes about a second and is done
once per simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.binary_server_asyncio import BinaryServer
from asyncua.server.internal_server import InternalServer
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes

from ldt.simulators.opcua.certs import make_certificate
from ldt.simulators.opcua.errors import SimulatorError
from ldt.simulators.opcua.model import PUMPS, StationModel

__all__ = ["APPLICATION_URI", "NAMESPACE_URI", "OpcUaSimulator", "Value"]

Value = bool | int | float | str
NAMESPACE_URI = "urn:ldt:simulator:pumping-station"
APPLICATION_URI = "urn:ldt:simulator:opcua"
_VT = ua.VariantType


@dataclass(frozen=True, slots=True)
class _Var:
    name: str  # NodeId string identifier, e.g. "Pump1.Speed"
    parent: str  # parent object's identifier
    browse_name: str
    vtype: ua.VariantType
    read: Callable[[StationModel], Value]
    writable: bool = False


def _station_vars() -> list[_Var]:
    st = "PumpingStation"
    out = [
        _Var(f"{st}.InletLevel", st, "InletLevel", _VT.Double, lambda m: m.level_m),
        _Var(
            f"{st}.OutletPressureSetpoint",
            st,
            "OutletPressureSetpoint",
            _VT.Double,
            lambda m: m.outlet_pressure_setpoint_bar,
            writable=True,
        ),
        _Var(f"{st}.DutyPump", st, "DutyPump", _VT.Byte, lambda m: 1, writable=True),
        _Var(f"{st}.HighLevelAlarm", st, "HighLevelAlarm", _VT.Boolean, lambda m: m.alarm_active),
        _Var(f"{st}.AlarmCount", st, "AlarmCount", _VT.UInt32, lambda m: m.alarms_raised),
        _Var(f"{st}.Mode", st, "Mode", _VT.String, lambda m: m.mode),
    ]
    for p in PUMPS:

        def pump(attr: str, p: str = p) -> Callable[[StationModel], Value]:
            return lambda m: getattr(m.pumps[p], attr)  # type: ignore[no-any-return,unused-ignore]

        out += [
            _Var(f"{p}.Speed", p, "Speed", _VT.Double, pump("speed_rpm")),
            _Var(f"{p}.Flow", p, "Flow", _VT.Double, pump("flow_m3h")),
            _Var(
                f"{p}.DischargePressure", p, "DischargePressure", _VT.Double, pump("pressure_bar")
            ),
            _Var(f"{p}.Running", p, "Running", _VT.Boolean, pump("running")),
            _Var(f"{p}.RunHours", p, "RunHours", _VT.Double, pump("run_hours")),
            _Var(
                f"{p}.SpeedSetpoint",
                p,
                "SpeedSetpoint",
                _VT.Double,
                pump("setpoint_pct"),
                writable=True,
            ),
        ]
    return out


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Users(UserManager):
    """Username/password check; anonymous and unknown users are refused."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class OpcUaSimulator:
    """One simulated pumping station; use as an async context manager.

    ``security``: only Basic256Sha256 (Sign, SignAndEncrypt) endpoints, with a
    server certificate generated at start (written to ``server_cert_dir`` as
    ``server_cert.der``/``server_key.pem`` when given). ``trusted_client_certs``:
    the only client certificates accepted (None: any). ``users``: username ->
    password; when given, anonymous sessions are refused.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        update_interval_s: float = 0.5,
        security: bool = False,
        server_cert_dir: Path | None = None,
        users: dict[str, str] | None = None,
        trusted_client_certs: list[Path] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise SimulatorError(f"port {port} is outside 0..65535")
        if not update_interval_s > 0:
            raise SimulatorError("update interval must be positive")
        self.host = host
        self.port = port
        """The bound port after ``start()`` (the requested one before)."""
        self.seed = seed
        self.update_interval_s = update_interval_s
        self.security = security
        self.server_cert_dir = server_cert_dir
        self.users = dict(users) if users is not None else None
        self.trusted_client_certs = list(trusted_client_certs or [])
        self._trust_any = trusted_client_certs is None
        self.written: list[tuple[str, Value]] = []
        """(variable name, value) of every accepted client write, in order."""
        self.calls: list[tuple[str, tuple[Value, ...]]] = []
        """(method name, arguments) of every client method call, in order."""
        self.restarts = 0
        self.server_certificate_der: bytes | None = None
        self._model = StationModel(seed=seed)
        self._vars = {v.name: v for v in _station_vars()}
        self._bad: dict[str, ua.StatusCode] = {}
        self._frozen = False
        self._server: Server | None = None
        self._updater: asyncio.Task[None] | None = None
        self._trusted_der: set[bytes] = set()
        self._ns = 2
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- values ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``opc.tcp://host:port`` (the bound port after ``start()``)."""
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def variable_names(self) -> list[str]:
        """Every variable's name (its NodeId string identifier)."""
        return list(self._vars)

    def _var(self, name: str) -> _Var:
        var = self._vars.get(name)
        if var is None:
            raise SimulatorError(f"the pumping station has no variable {name!r}")
        return var

    def expected(self, name: str) -> Value:
        """The value variable ``name`` serves now (as a client decodes it)."""
        return self._var(name).read(self._model)

    def freeze(self) -> None:
        """Stop time-variation: values stay as served until ``unfreeze()``."""
        self._frozen = True

    def unfreeze(self) -> None:
        """Resume time-variation."""
        self._frozen = False

    async def advance(self, steps: int = 1) -> None:
        """Advance simulated time by ``steps`` update intervals and publish the values."""
        for _ in range(steps):
            self._model.step(self.update_interval_s)
        await self._publish()

    async def set_bad(self, name: str, status: str | None) -> None:
        """Make variable ``name`` answer the Bad status ``status`` (e.g. ``BadSensorFailure``).

        ``None`` makes it good again. Raises ``SimulatorError`` for an unknown
        variable or a status name that is not a Bad OPC UA status code.
        """
        self._var(name)
        if status is None:
            self._bad.pop(name, None)
        else:
            code = getattr(StatusCodes, status, None)
            if not isinstance(code, int) or not ua.StatusCode(ua.UInt32(code)).is_bad():
                raise SimulatorError(f"{status!r} is not a Bad OPC UA status code name")
            self._bad[name] = ua.StatusCode(ua.UInt32(code))
        await self._publish()

    def _nodeid(self, name: str) -> ua.NodeId:
        return ua.NodeId(ua.String(name), ua.Int16(self._ns))

    async def _publish(self) -> None:
        """Write the model's values (or the injected Bad statuses) into the address space."""
        server = self._server
        if server is None:
            return
        now = cast(ua.DateTime, datetime.now(UTC))
        for name, var in self._vars.items():
            bad = self._bad.get(name)
            if bad is not None:
                dv = ua.DataValue(StatusCode=bad, SourceTimestamp=now, ServerTimestamp=now)
            else:
                variant = ua.Variant(var.read(self._model), var.vtype)
                dv = ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now)
            await server.write_attribute_value(self._nodeid(name), dv)

    # -- client actions -------------------------------------------------------

    async def _on_write(self, event: Any, _dispatcher: Any) -> None:
        """PostWrite hook: record accepted client writes and apply them to the model."""
        if not isinstance(event, ServerItemCallback) or not event.is_external:
            return
        for item, status in zip(
            event.request_params.NodesToWrite, event.response_params, strict=True
        ):
            ident = item.NodeId.Identifier
            if not status.is_good() or ident not in self._vars:
                continue
            value = item.Value.Value.Value
            self.written.append((ident, value))
            pump, _, attr = ident.partition(".")
            if attr == "SpeedSetpoint":
                self._model.pumps[pump].setpoint_pct = float(value)
            elif attr == "OutletPressureSetpoint":
                self._model.outlet_pressure_setpoint_bar = float(value)

    async def _reset_alarm(self, _parent: ua.NodeId) -> list[ua.Variant]:
        self.calls.append(("ResetAlarm", ()))
        cleared = self._model.reset_alarm()
        await self._publish()
        return [ua.Variant(cleared, _VT.UInt32)]

    def _pump_method(self, start: bool) -> Callable[..., Any]:
        label = "StartPump" if start else "StopPump"

        async def call(_parent: ua.NodeId, pump: ua.Variant) -> ua.StatusCode | list[ua.Variant]:
            number = pump.Value
            self.calls.append((label, (number,)))
            if pump.VariantType is not _VT.Byte or number not in (1, 2):
                return ua.StatusCode(ua.UInt32(StatusCodes.BadInvalidArgument))
            name = f"Pump{number}"
            changed = self._model.start_pump(name) if start else self._model.stop_pump(name)
            await self._publish()
            return [ua.Variant(changed, _VT.Boolean)]

        return call

    # -- address space --------------------------------------------------------

    async def _build(self, server: Server) -> None:
        self._ns = await server.register_namespace(NAMESPACE_URI)
        ns = self._ns
        station = await server.nodes.objects.add_object(
            self._nodeid("PumpingStation"), ua.QualifiedName("PumpingStation", ns)
        )
        parents = {"PumpingStation": station}
        for p in PUMPS:
            parents[p] = await station.add_object(self._nodeid(p), ua.QualifiedName(p, ns))
        for name, var in self._vars.items():
            node = await parents[var.parent].add_variable(
                self._nodeid(name),
                ua.QualifiedName(var.browse_name, ns),
                ua.Variant(var.read(self._model), var.vtype),
            )
            if var.writable:
                await node.set_writable()
        await station.add_method(
            self._nodeid("PumpingStation.ResetAlarm"),
            ua.QualifiedName("ResetAlarm", ns),
            self._reset_alarm,
            [],
            [_VT.UInt32],
        )
        for start in (True, False):
            label = "StartPump" if start else "StopPump"
            await station.add_method(
                self._nodeid(f"PumpingStation.{label}"),
                ua.QualifiedName(label, ns),
                self._pump_method(start),
                [_VT.Byte],
                [_VT.Boolean],
            )
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)

    async def _setup_security(self, server: Server) -> None:
        pair = make_certificate(
            common_name="ldt OPC UA simulator", application_uri=APPLICATION_URI, server=True
        )
        self.server_certificate_der = pair.certificate_der
        folder = self.server_cert_dir
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ldt-sim-opcua-")
            folder = Path(self._tmp.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "server_cert.der").write_bytes(pair.certificate_der)
        key_path = folder / "server_key.pem"
        key_path.write_bytes(pair.private_key_pem)
        key_path.chmod(0o600)
        await server.load_certificate(pair.certificate_der)
        await server.load_private_key(pair.private_key_pem, format="pem")
        server.set_security_policy(
            [
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
            ]
        )
        self._trusted_der = set()
        for path in self.trusted_client_certs:
            raw = path.read_bytes()
            if raw.lstrip().startswith(b"-----BEGIN"):
                from cryptography import x509
                from cryptography.hazmat.primitives.serialization import Encoding

                raw = x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
            self._trusted_der.add(raw)
        server.set_certificate_validator(self._validate_client)

    async def _validate_client(self, certificate: Any, _app: ua.ApplicationDescription) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding

        if self._trust_any or certificate.public_bytes(Encoding.DER) in self._trusted_der:
            return
        raise ServiceError(StatusCodes.BadCertificateUntrusted)

    # -- serving --------------------------------------------------------------

    async def start(self) -> None:
        """Build the address space and listen; ``port`` then holds the bound port.

        Raises ``SimulatorError`` for an address that cannot be bound.
        """
        if self._server is not None:
            raise SimulatorError("simulator already started")
        if self.port == 0:
            self.port = _free_port(self.host)
        server = Server(user_manager=_Users(self.users) if self.users is not None else None)
        await server.init()
        server.disable_clock()  # its 1 s clock task makes every stop() wait up to a second
        server.set_endpoint(self.endpoint)
        server.set_server_name("ldt pumping station simulator")
        await server.set_application_uri(APPLICATION_URI)
        if self.users is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if self.security:
            await self._setup_security(server)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        await self._build(server)
        try:
            await server.start()
        except OSError as exc:
            await self._close_sessions(server)
            await server.iserver.stop()
            raise SimulatorError(
                f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc})"
            ) from None
        self._server = server
        await self._publish()
        self._updater = asyncio.create_task(
            self._update_forever(), name=f"ldt-sim-opcua-update:{self.port}"
        )

    async def _update_forever(self) -> None:
        while True:
            await asyncio.sleep(self.update_interval_s)
            if not self._frozen:
                await self.advance()

    @staticmethod
    async def _close_sessions(server: Server) -> None:
        """Close every client session and its subscriptions (a restarted server remembers none).

        asyncua keeps a session with subscriptions alive after its connection
        drops (spec Part 4, 6.7), so stopping the listener alone would leave
        their publish loops running.
        """
        sessions = list(server.iserver._external_sessions.values())
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close_session(True)

    async def _stop_listener(self, server: Server) -> None:
        if server.bserver is not None:
            await server.bserver.stop()
            server.bserver = None
        await self._close_sessions(server)

    async def restart(self) -> None:
        """Drop every connection and session, then listen again on the same port.

        What a client sees of a server restart; values and knobs are kept.
        """
        server = self._server
        if server is None:
            raise SimulatorError("simulator is not running")
        await self._stop_listener(server)
        bserver = BinaryServer(server.iserver, self.host, self.port, server.limits)
        bserver.set_policies(server._policies)
        await bserver.start()
        server.bserver = bserver
        self.restarts += 1

    def stall(self) -> None:
        """Stop answering on every open connection without closing it (a dead session).

        New connections are served normally, so a client that notices (by its
        keepalive or watchdog) and reconnects recovers.
        """
        server = self._server
        if server is None or server.bserver is None:
            return
        for protocol in list(server.bserver.clients):
            if protocol.transport is not None:
                protocol.transport.pause_reading()

    async def stop(self) -> None:
        """Stop serving and release everything."""
        updater, self._updater = self._updater, None
        server, self._server = self._server, None
        if updater is not None:
            updater.cancel()
            await asyncio.wait([updater])
        if server is not None:
            await self._stop_listener(server)
            await server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if updater is not None and not updater.cancelled() and updater.exception() is not None:
            raise SimulatorError("the value updater failed") from updater.exception()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def quiet_asyncua_logs() -> None:
    """asyncua logs a warning per missing endpoint and tracebacks per dropped client.

    The simulator's CLI prints its own one-line account; call this there.
    """
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
