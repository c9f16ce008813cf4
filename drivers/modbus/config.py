"""The Modbus part of a device profile and of a device instance's connection.

A profile describes a device model once (its register map, from the vendor's
datasheet); a gateway config then lists instances of it with a connection.
Addresses are the protocol's 0-based addresses (what goes on the wire), not the
1-based "40001" register numbers of datasheets: the profile says which in a
comment next to each point.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "REGISTER_WIDTH",
    "ByteOrder",
    "DataType",
    "ModbusPoint",
    "ModbusProfileSettings",
    "ModbusRtuConnection",
    "ModbusTcpConnection",
    "RegisterTable",
    "WordOrder",
]


class RegisterTable(StrEnum):
    """The four Modbus data tables."""

    HOLDING = "holding"  # 16-bit, read/write, FC 3 / 6 / 16
    INPUT = "input"  # 16-bit, read-only, FC 4
    COIL = "coil"  # 1-bit, read/write, FC 1 / 5 / 15
    DISCRETE = "discrete"  # 1-bit, read-only, FC 2

    @property
    def is_bit(self) -> bool:
        """True for the 1-bit tables."""
        return self in (RegisterTable.COIL, RegisterTable.DISCRETE)


class DataType(StrEnum):
    """How a point's registers decode to a value."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"
    STRING = "string"


REGISTER_WIDTH: dict[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.BOOL: 1,
}
"""Registers each fixed-width type spans (strings say their own ``length``)."""


class ByteOrder(StrEnum):
    """Byte order inside each 16-bit register; Modbus itself is big-endian."""

    BIG = "big"
    LITTLE = "little"


class WordOrder(StrEnum):
    """Register order of multi-register values: ``big`` = most significant word first."""

    BIG = "big"
    LITTLE = "little"


_Unit = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,3}$")]
_Attr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class ModbusPoint(BaseModel):
    """One value of the device: where it lives and how it decodes.

    ``value = raw * scale + offset`` for numeric types. ``unit`` is a UN/CEFACT
    common code (``VLT`` volt, ``AMP`` ampere, ``WTT`` watt, ``KWH`` kWh,
    ``CEL`` degree Celsius, ``P1`` percent, ``HTZ`` hertz), which NGSI-LD uses
    as ``unitCode``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Attr
    attribute: _Attr | None = None
    """NGSI-LD attribute name; defaults to ``name``."""
    table: RegisterTable
    address: Annotated[int, Field(ge=0, le=65535)]
    type: DataType = DataType.UINT16
    length: Annotated[int, Field(ge=1, le=125)] | None = None
    """Registers a ``string`` spans (two ASCII characters each); only for strings."""
    byte_order: ByteOrder | None = None
    word_order: WordOrder | None = None
    """``None``: the profile's ``[modbus]`` default."""
    scale: float = 1.0
    offset: float = 0.0
    unit: _Unit | None = None
    poll_interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    """Overrides the device's poll interval for this point (e.g. energy totals hourly)."""
    writable: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModbusPoint:
        if self.table.is_bit and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.table.value} point must have type 'bool'")
        if self.type is DataType.STRING:
            if self.length is None:
                raise ValueError("a 'string' point needs 'length' (registers)")
        elif self.length is not None:
            raise ValueError("'length' is only for 'string' points")
        if self.writable and self.table in (RegisterTable.INPUT, RegisterTable.DISCRETE):
            raise ValueError(f"{self.table.value} points are read-only in Modbus")
        if self.address + self.register_count > 65536:
            raise ValueError("point runs past the end of the address space (65535)")
        return self

    @property
    def register_count(self) -> int:
        """Registers (or bits, for bit tables) this point spans."""
        if self.table.is_bit:
            return 1
        if self.type is DataType.STRING:
            assert self.length is not None  # checked by the validator
            return self.length
        return REGISTER_WIDTH[self.type]

    @property
    def attribute_name(self) -> str:
        """The NGSI-LD attribute this point becomes."""
        return self.attribute or self.name


class ModbusProfileSettings(BaseModel):
    """The ``[modbus]`` table of a profile: defaults and how reads are coalesced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    byte_order: ByteOrder = ByteOrder.BIG
    word_order: WordOrder = WordOrder.BIG
    max_registers_per_read: Annotated[int, Field(ge=1, le=125)] = 125
    """Protocol maximum is 125 (FC 3/4); some devices accept fewer."""
    max_bits_per_read: Annotated[int, Field(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Field(ge=0, le=124)] = 8
    """Unused registers a block read may span to join two points (0: never)."""
    bool_numbers: bool = False
    """Commands may write ``0``/``1`` to this profile's booleans (default: ``true`` and
    ``false`` only, ``ldt.drivers.write_values``)."""


class ModbusTcpConnection(BaseModel):
    """How to reach one device instance over Modbus TCP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["modbus-tcp"] = "modbus-tcp"
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0


_RTU_FIXED_DELAY_ABOVE_BAUD = 19200
"""Above this baud rate the spec fixes the inter-frame delay at 1.75 ms."""


class ModbusRtuConnection(BaseModel):
    """How to reach one device instance on a Modbus RTU serial line (RS-485).

    Several devices on one bus share ``port`` and must agree on the line
    settings (the driver refuses to open a bus twice with different ones).
    ``unit_id`` is the device's slave address, 1..247 (0 is broadcast, which
    no device answers). The framing must match the devices' DIP switches or
    menu: Modbus over Serial Line v1.02 says 8E1 by default, but most meters
    ship as 8N1, hence ``parity="N"`` here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["modbus-rtu"] = "modbus-rtu"
    port: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """The serial device, e.g. ``/dev/ttyUSB0`` or a stable ``/dev/serial/by-id/...`` link."""
    baudrate: Annotated[int, Field(ge=1200, le=115200)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: Annotated[int, Field(ge=1, le=247)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How long one request may wait for its answer; a dead unit holds the bus this long."""
    inter_frame_delay_ms: Annotated[float, Field(ge=0, le=1000)] | None = None
    """Silence kept between two transactions; ``None``: 3.5 character times (see below)."""

    @model_validator(mode="after")
    def _rtu_framing(self) -> ModbusRtuConnection:
        if self.bytesize != 8:
            raise ValueError("Modbus RTU needs 8 data bits (7 is only for Modbus ASCII)")
        return self

    @property
    def character_bits(self) -> int:
        """Bits one character takes on the line: start, data, parity and stop bits."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def inter_frame_delay_s(self) -> float:
        """The silence between frames (t3.5), in seconds.

        Modbus over Serial Line v1.02, section 2.5.1.1: 3.5 character times,
        fixed at 1.75 ms above 19200 baud (where the character time gets too
        short for UART timers to honour).
        """
        if self.inter_frame_delay_ms is not None:
            return self.inter_frame_delay_ms / 1000
        if self.baudrate > _RTU_FIXED_DELAY_ABOVE_BAUD:
            return 0.00175
        return 3.5 * self.character_bits / self.baudrate
