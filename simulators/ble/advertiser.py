"""Simulated BLE sensors: an async iterator of advertisements, as a scanner would yield.

There is no radio: ``BleAdvertiser`` yields ``SimAdvertisement`` objects shaped
like bleak's advertisement data (manufacturer data keyed by company id without
its two bytes, service data keyed by 128-bit UUID strings), which the BLE
driver accepts as an advertisement source. Values follow a seeded random walk
and are encoded by this package's own encoders (``frames.py``).

Misbehaviour knobs: ``truncate_rate`` (payload cut short, always mid-field so
it can never decode), ``garbage_rate`` (a payload in the right place that no
correct decoder accepts: unknown format byte, unknown BTHome object id,
unknown Eddystone frame), ``repeat`` (each packet advertised several times,
as real sensors do), ``silence()`` (the device goes quiet: a dead battery) and
``fail_next()`` (the iteration raises: an unplugged adapter). Faults draw from
their own random stream, so they never change the values a seed produces.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from ldt.simulators.ble.frames import (
    BTHOME_SERVICE_UUID,
    EDDYSTONE_SERVICE_UUID,
    bthome_frame,
    eddystone_tlm,
    eddystone_uid,
    eddystone_url,
    ibeacon_frame,
    ruuvi_rawv2,
)

__all__ = ["FORMATS", "BleAdvertiser", "BleSimulatorError", "SimAdvertisement"]

Value = bool | int | float | str
Format = Literal["ruuvi", "bthome", "ibeacon", "eddystone"]
FORMATS: tuple[str, ...] = ("ruuvi", "bthome", "ibeacon", "eddystone")

_RUUVI_ID = 0x0499
_APPLE_ID = 0x004C


class BleSimulatorError(Exception):
    """The simulator was misconfigured, or ``fail_next`` made the radio 'fail'."""


@dataclass(frozen=True, slots=True)
class SimAdvertisement:
    """One simulated advertisement (the fields of the driver's ``Advertisement``)."""

    address: str
    rssi: int | None
    local_name: str | None
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    service_uuids: Sequence[str] = ()
    received_at_ms: int = 0


@dataclass(slots=True)
class _Frame:
    """One round's payload: where it goes, its bytes, what it means, where cuts break it."""

    kind: Literal["manufacturer", "service"]
    key: int | str
    payload: bytes
    values: dict[str, Value]
    cuts: list[int]  # payload lengths that never decode


def _dec(raw: int, step: str) -> float:
    return float(Decimal(raw) * Decimal(step))


class _Sensor:
    """One simulated device's state and what it advertised."""

    def __init__(self, address: str, fmt: str, seed: int, bindkey: bytes | None) -> None:
        if fmt not in FORMATS:
            raise BleSimulatorError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        try:
            self.mac = bytes.fromhex(address.replace(":", ""))
        except ValueError:
            self.mac = b""
        if len(self.mac) != 6:
            raise BleSimulatorError(f"{address!r} is not a MAC address (AA:BB:CC:DD:EE:FF)")
        if bindkey is not None and (fmt != "bthome" or len(bindkey) != 16):
            raise BleSimulatorError("a bindkey is 16 bytes and only for bthome devices")
        self.address = address.upper()
        self.fmt = fmt
        self.bindkey = bindkey
        self.rng = random.Random(seed)  # noqa: S311 - simulated values, not secrets
        self.silent = False
        self.rounds = 0
        self.sent = 0
        self.corrupted = 0
        self.history: dict[str, list[Value]] = {}
        self.latest: dict[str, Value] = {}
        r = self.rng
        # raw firmware values
        self.temp = r.randint(2000, 5000)  # ruuvi 0.005 steps / bthome 0.01 steps (see step())
        self.hum = r.randint(3000, 7000)
        self.pres = r.randint(48000, 52000)
        self.battery = r.randint(60, 100)
        self.seq = r.randint(0, 1000)
        self.movement = r.randint(0, 50)
        self.counter = r.randint(0, 1 << 20)
        self.proximity = bytes(r.getrandbits(8) for _ in range(16))
        self.major, self.minor = r.randint(0, 65535), r.randint(0, 65535)
        self.adv_count = 0
        self.deciseconds = 0

    def _walk(self, value: int, step: int, low: int, high: int) -> int:
        return min(high, max(low, value + self.rng.randint(-step, step)))

    def step(self, interval_s: float) -> _Frame:
        """Advance one measurement and encode it."""
        self.rounds += 1
        return getattr(self, f"_step_{self.fmt}")(interval_s)  # type: ignore[no-any-return]

    def _step_ruuvi(self, _interval: float) -> _Frame:
        r = self.rng
        self.temp = self._walk(self.temp, 40, -8000, 8000)
        self.hum = self._walk(self.hum, 20, 1000, 38000)
        self.pres = self._walk(self.pres, 30, 45000, 55000)
        acc = (r.randint(-60, 60), r.randint(-60, 60), r.randint(940, 1060))
        mv = r.randint(1300, 1400)
        self.movement = (self.movement + (r.random() < 0.2)) % 255
        self.seq = (self.seq + 1) % 65535
        payload = ruuvi_rawv2(
            temperature=self.temp,
            humidity=self.hum,
            pressure=self.pres,
            acceleration=acc,
            battery_mv_above_1600=mv,
            tx_power_code=21,
            movement=self.movement,
            sequence=self.seq,
            mac=self.mac,
        )
        values: dict[str, Value] = {
            "temperature": _dec(self.temp, "0.005"),
            "humidity": _dec(self.hum, "0.0025"),
            "pressure": self.pres + 50000,
            "acceleration_x": acc[0],
            "acceleration_y": acc[1],
            "acceleration_z": acc[2],
            "battery_voltage": _dec(mv + 1600, "0.001"),
            "tx_power": 21 * 2 - 40,
            "movement_counter": self.movement,
            "measurement_sequence": self.seq,
            "mac": self.address,
        }
        return _Frame("manufacturer", _RUUVI_ID, payload, values, list(range(1, 24)))

    def _step_bthome(self, _interval: float) -> _Frame:
        self.seq = (self.seq + 1) % 256
        self.battery = max(0, self.battery - (self.rng.random() < 0.05))
        self.temp = self._walk(self.temp, 15, -2000, 4500)
        self.hum = self._walk(self.hum, 25, 1000, 9900)
        objects = [
            (0x00, bytes([self.seq])),
            (0x01, bytes([self.battery])),
            (0x02, self.temp.to_bytes(2, "little", signed=True)),
            (0x03, self.hum.to_bytes(2, "little")),
        ]
        self.counter = (self.counter + 1) % (1 << 32)
        payload = bthome_frame(objects, bindkey=self.bindkey, mac=self.mac, counter=self.counter)
        if self.bindkey is None:
            boundaries, pos = {1}, 1
            for _oid, value in objects:
                pos += 1 + len(value)
                boundaries.add(pos)
            cuts = [n for n in range(1, len(payload)) if n not in boundaries]
        else:
            cuts = list(range(1, len(payload)))
        values: dict[str, Value] = {
            "packet_id": self.seq,
            "battery": self.battery,
            "temperature": _dec(self.temp, "0.01"),
            "humidity": _dec(self.hum, "0.01"),
        }
        return _Frame("service", BTHOME_SERVICE_UUID, payload, values, cuts)

    def _step_ibeacon(self, _interval: float) -> _Frame:
        payload = ibeacon_frame(
            proximity_uuid=self.proximity, major=self.major, minor=self.minor, tx_power=-59
        )
        h = self.proximity.hex()
        values: dict[str, Value] = {
            "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
            "major": self.major,
            "minor": self.minor,
            "tx_power": -59,
        }
        return _Frame("manufacturer", _APPLE_ID, payload, values, list(range(2, 23)))

    def _step_eddystone(self, interval: float) -> _Frame:
        self.adv_count += 1
        self.deciseconds += round(interval * 10)
        kind = ("uid", "url", "tlm")[(self.rounds - 1) % 3]
        values: dict[str, Value] = {"frame": kind}
        if kind == "uid":
            payload = eddystone_uid(tx_power=-20, namespace=self.proximity[:10], instance=self.mac)
            values |= {"tx_power": -20, "namespace": self.proximity[:10].hex()}
            values["instance"] = self.mac.hex()
            cuts = list(range(2, 18))
        elif kind == "url":
            url = f"https://example.org/s/{self.major % 1000}"
            payload = eddystone_url(tx_power=-18, url=url)
            values |= {"tx_power": -18, "url": url}
            cuts = [1, 2]
        else:
            mv = self.rng.randint(2900, 3100)
            self.temp = self._walk(self.temp, 30, -2000, 9000)
            t88 = self.temp
            payload = eddystone_tlm(
                battery_mv=mv,
                temperature_8_8=t88,
                adv_count=self.adv_count,
                deciseconds=self.deciseconds,
            )
            values |= {
                "battery_voltage": _dec(mv, "0.001"),
                "temperature": t88 / 256,
                "advertising_count": self.adv_count,
                "uptime": _dec(self.deciseconds, "0.1"),
            }
            cuts = list(range(2, 14))
        return _Frame("service", EDDYSTONE_SERVICE_UUID, payload, values, cuts)

    def garbage(self, rng: random.Random) -> bytes:
        """A payload no correct decoder of this format accepts."""
        tail = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12)))
        if self.fmt == "ruuvi":
            return bytes([rng.choice([0, 1, 2, 3, 4, 6, 7, 8, 0xC5, 0xE0, 0xFF])]) + tail
        if self.fmt == "bthome":
            if rng.random() < 0.5:
                return bytes([rng.choice([0x00, 0x20, 0x60, 0xE0])]) + tail  # BTHome version != 2
            return b"\x40" + bytes([rng.randint(0x65, 0xEF)]) + tail  # unknown object id
        if self.fmt == "ibeacon":
            return b"\x02" + bytes([rng.choice([0x00, 0x14, 0x16])]) + tail
        return bytes([rng.choice([0x30, 0x40, 0x50, 0x90, 0xF0])]) + tail

    def record(self, values: dict[str, Value]) -> None:
        self.latest = dict(values)
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)


class BleAdvertiser:
    """Simulated sensors advertising every ``interval_s``; iterate to receive.

    ``devices``: ``(address, format, seed)`` with format one of ``FORMATS``.
    Iteration never ends on its own (a silent device is simply not heard); each
    ``async for`` continues the same devices' state.
    """

    def __init__(
        self,
        *,
        devices: Iterable[tuple[str, str, int]],
        interval_s: float = 1.0,
        truncate_rate: float = 0.0,
        garbage_rate: float = 0.0,
        repeat: int = 1,
        rounds: int | None = None,
        bindkeys: Mapping[str, bytes] | None = None,
        fault_seed: int = 0,
    ) -> None:
        if interval_s < 0:
            raise BleSimulatorError("interval_s must be >= 0")
        if not (0 <= truncate_rate <= 1 and 0 <= garbage_rate <= 1):
            raise BleSimulatorError("truncate_rate and garbage_rate are fractions in [0, 1]")
        if truncate_rate + garbage_rate > 1:
            raise BleSimulatorError("truncate_rate + garbage_rate must not exceed 1")
        if repeat < 1:
            raise BleSimulatorError("repeat must be at least 1")
        keys = {k.upper(): v for k, v in (bindkeys or {}).items()}
        self._sensors: dict[str, _Sensor] = {}
        for address, fmt, seed in devices:
            sensor = _Sensor(address, fmt, seed, keys.get(address.upper()))
            if sensor.address in self._sensors:
                raise BleSimulatorError(f"device {sensor.address} is listed twice")
            self._sensors[sensor.address] = sensor
        if not self._sensors:
            raise BleSimulatorError("no devices to simulate")
        self._interval = interval_s
        self._truncate = truncate_rate
        self._garbage = garbage_rate
        self._repeat = repeat
        self._rounds = rounds
        self._faults = random.Random(fault_seed)  # noqa: S311 - fault injection only
        self._fail: str | None = None

    # ----------------------------------------------------------- observation

    def _sensor(self, address: str) -> _Sensor:
        try:
            return self._sensors[address.upper()]
        except KeyError:
            raise BleSimulatorError(f"no simulated device {address}") from None

    def expected(self, address: str, field: str) -> Value:
        """What a correct decoder reports for ``field`` of the latest valid packet."""
        latest = self._sensor(address).latest
        if field not in latest:
            raise BleSimulatorError(f"{address} has not advertised {field!r} yet")
        return latest[field]

    def history(self, address: str, field: str) -> list[Value]:
        """``field`` of every packet advertised intact at least once, in order."""
        return list(self._sensor(address).history.get(field, []))

    def sent(self, address: str) -> int:
        """Advertisements sent by the device (repeats and corrupted ones included)."""
        return self._sensor(address).sent

    def corrupted(self, address: str) -> int:
        """Advertisements sent truncated or as garbage."""
        return self._sensor(address).corrupted

    # -------------------------------------------------------------- control

    def silence(self, address: str) -> None:
        """Stop advertising for this device (its battery died)."""
        self._sensor(address).silent = True

    def resume(self, address: str) -> None:
        """Advertise again."""
        self._sensor(address).silent = False

    def fail_next(self, reason: str = "simulated adapter failure") -> None:
        """Make the current iteration raise ``BleSimulatorError`` (the radio went away)."""
        self._fail = reason

    # ------------------------------------------------------------ iteration

    def __aiter__(self) -> AsyncIterator[SimAdvertisement]:
        return self._run()

    def advertisements(self, sensor_address: str) -> list[SimAdvertisement]:
        """One round of one device's advertisements, synchronously (for the CLI and tests)."""
        return self._round(self._sensor(sensor_address))

    def _round(self, sensor: _Sensor) -> list[SimAdvertisement]:
        frame = sensor.step(self._interval)
        out: list[SimAdvertisement] = []
        intact = False
        for _ in range(self._repeat):
            draw = self._faults.random()
            payload = frame.payload
            if draw < self._truncate:
                payload = payload[: self._faults.choice(frame.cuts)]
            elif draw < self._truncate + self._garbage:
                payload = sensor.garbage(self._faults)
            else:
                intact = True
            if payload is not frame.payload:
                sensor.corrupted += 1
            sensor.sent += 1
            out.append(self._advert(sensor, frame, payload))
        if intact:
            sensor.record(frame.values)
        return out

    def _advert(self, sensor: _Sensor, frame: _Frame, payload: bytes) -> SimAdvertisement:
        manufacturer: dict[int, bytes] = {}
        service: dict[str, bytes] = {}
        if frame.kind == "manufacturer":
            assert isinstance(frame.key, int)
            manufacturer[frame.key] = payload
        else:
            assert isinstance(frame.key, str)
            service[frame.key] = payload
        return SimAdvertisement(
            address=sensor.address,
            rssi=-self._faults.randint(45, 90),
            local_name=f"{sensor.fmt}-{sensor.address[-5:].replace(':', '')}",
            manufacturer_data=manufacturer,
            service_data=service,
            service_uuids=tuple(service),
            received_at_ms=time.time_ns() // 1_000_000,
        )

    async def _run(self) -> AsyncIterator[SimAdvertisement]:
        while True:
            for sensor in self._sensors.values():
                done = self._rounds is not None and sensor.rounds >= self._rounds
                if sensor.silent or done:
                    continue
                for adv in self._round(sensor):
                    self._check_failure()
                    yield adv
            self._check_failure()
            await asyncio.sleep(self._interval)

    def _check_failure(self) -> None:
        if self._fail is not None:
            reason, self._fail = self._fail, None
            raise BleSimulatorError(reason)
