"""Which driver serves which protocol: the agent's only map from config names to driver code.

Profiles name a protocol family (``modbus``, ``opcua``, ``mqtt``, ``ble``) and
carry that family's settings table and points; device instances name a
connection kind (``modbus-tcp``, ``modbus-rtu``, ...). Driver packages are
imported only when a config uses them, so a Modbus-only gateway never loads
the OPC UA stack (asyncua alone costs more memory than the whole agent budget
leaves for it).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = [
    "PROTOCOLS",
    "ConnectionKind",
    "ProtocolFamily",
    "connection_kind",
    "connection_model",
    "family",
    "make_device",
]


@dataclass(frozen=True, slots=True)
class ConnectionKind:
    """One way to reach a device: its connection model and the driver class for it."""

    name: str
    connection_cls: str
    device_cls: str
    module: str = "device"


@dataclass(frozen=True, slots=True)
class ProtocolFamily:
    """A profile protocol: its package, the ``[table]`` of settings and the point model."""

    name: str
    package: str
    settings_cls: str
    point_cls: str
    connections: tuple[ConnectionKind, ...]

    @property
    def settings_key(self) -> str:
        """The profile's settings table: ``[modbus]``, ``[opcua]`` ..."""
        return self.name

    def _config(self) -> Any:
        return importlib.import_module(f"{self.package}.config")

    def settings_model(self) -> type[BaseModel]:
        """The pydantic model of the profile's settings table."""
        model: type[BaseModel] = getattr(self._config(), self.settings_cls)
        return model

    def point_model(self) -> type[BaseModel]:
        """The pydantic model of one ``[[points]]`` entry."""
        model: type[BaseModel] = getattr(self._config(), self.point_cls)
        return model

    def default_connection(self) -> str:
        """The connection kind assumed when a device does not say ``protocol``."""
        return self.connections[0].name


PROTOCOLS: dict[str, ProtocolFamily] = {
    f.name: f
    for f in (
        ProtocolFamily(
            name="modbus",
            package="ldt.drivers.modbus",
            settings_cls="ModbusProfileSettings",
            point_cls="ModbusPoint",
            connections=(
                ConnectionKind("modbus-tcp", "ModbusTcpConnection", "ModbusTcpDevice"),
                ConnectionKind("modbus-rtu", "ModbusRtuConnection", "ModbusRtuDevice", "rtu"),
            ),
        ),
        ProtocolFamily(
            name="opcua",
            package="ldt.drivers.opcua",
            settings_cls="OpcUaProfileSettings",
            point_cls="OpcUaPoint",
            connections=(ConnectionKind("opcua", "OpcUaConnection", "OpcUaDevice"),),
        ),
        ProtocolFamily(
            name="mqtt",
            package="ldt.drivers.mqtt",
            settings_cls="MqttProfileSettings",
            point_cls="MqttPoint",
            connections=(ConnectionKind("mqtt", "MqttConnection", "MqttDevice"),),
        ),
        ProtocolFamily(
            name="ble",
            package="ldt.drivers.ble",
            settings_cls="BleProfileSettings",
            point_cls="BlePoint",
            connections=(ConnectionKind("ble", "BleConnection", "BleDevice"),),
        ),
    )
}


def family(name: str) -> ProtocolFamily:
    """The protocol family of a profile; ``KeyError`` for an unknown name."""
    return PROTOCOLS[name]


def connection_kind(fam: ProtocolFamily, name: str) -> ConnectionKind | None:
    """The connection kind ``name`` of a family, or None if the family has no such kind."""
    for kind in fam.connections:
        if kind.name == name:
            return kind
    return None


def connection_model(fam: ProtocolFamily, kind: ConnectionKind) -> type[BaseModel]:
    """The pydantic model of a device's ``connection`` table."""
    model: type[BaseModel] = getattr(
        importlib.import_module(f"{fam.package}.config"), kind.connection_cls
    )
    return model


def make_device(
    fam: ProtocolFamily,
    kind: ConnectionKind,
    *,
    device_id: str,
    connection: BaseModel,
    settings: BaseModel,
    points: Sequence[Any],
    **extra: Any,
) -> Any:
    """A driver instance for one device (constructors do no I/O)."""
    module = importlib.import_module(f"{fam.package}.{kind.module}")
    cls = getattr(module, kind.device_cls)
    return cls(
        device_id=device_id, connection=connection, settings=settings, points=points, **extra
    )
