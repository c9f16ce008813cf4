"""Gateway configuration and device profiles: TOML files validated with pydantic.

Why TOML: it is in the standard library (``tomllib``), has real types (no
YAML "Norway problem" turning ``NO`` into ``false``), and comments, which a
register map copied from a datasheet needs. A profile describes a device model
once (``firmware_configs/*.toml``); the gateway config lists device instances
that name a profile and give a connection.

Loading never raises a pydantic or TOML exception to the user: ``ConfigError``
carries one line per problem naming the file, the key path and what is wrong.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ldt.agent.protocols import (
    PROTOCOLS,
    ProtocolFamily,
    connection_kind,
    connection_model,
)
from ldt.contract.rules import PointLimit
from ldt.error_location import error_location

__all__ = [
    "DEFAULT_PROFILE_DIR",
    "BufferSettings",
    "CloudSettings",
    "ConfigError",
    "DeviceConfig",
    "DeviceProfile",
    "GatewayConfig",
    "GatewaySettings",
    "load_gateway_config",
    "load_profile",
]

DEFAULT_PROFILE_DIR = Path(__file__).resolve().parents[1] / "firmware_configs"
"""The profiles shipped with ldt (``firmware_configs/`` beside the packages)."""

_Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
_EntityType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid.

    ``problems`` holds one line per problem, each ``FILE: key.path: what is wrong``.
    """

    def __init__(self, path: Path, problems: Iterable[str]) -> None:
        self.path = path
        self.problems = [f"{path}: {p}" for p in problems]
        super().__init__("\n".join(self.problems))


class ProfileInfo(BaseModel):
    """The ``[profile]`` table: what device model this is and where its map came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Id
    manufacturer: str
    model: str
    protocol: Literal["modbus", "opcua", "mqtt", "ble"]
    entity_type: _EntityType = "Device"
    """NGSI-LD entity type the device's readings land on (Smart Data Models name)."""
    poll_interval_s: Annotated[float, Field(gt=0, le=86400)] = 5.0
    source: str = Field(min_length=1)
    """The public datasheet or spec the register map was taken from."""
    description: str | None = None


class DeviceProfile(BaseModel):
    """A device model: what it is, its protocol's settings table and its points.

    ``settings`` and ``points`` are the protocol family's own models
    (``ModbusProfileSettings`` and ``ModbusPoint`` for ``protocol = "modbus"``,
    ...); ``load_profile`` validates the file against them.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    profile: ProfileInfo
    settings: Any
    points: tuple[Any, ...]

    @property
    def name(self) -> str:
        """The profile's name, as device instances refer to it."""
        return self.profile.name

    @property
    def family(self) -> ProtocolFamily:
        """The protocol family the profile's points belong to."""
        return PROTOCOLS[self.profile.protocol]


@functools.cache
def _profile_model(fam: ProtocolFamily) -> type[BaseModel]:
    """The schema of a whole profile file of one protocol family."""
    settings = fam.settings_model()
    point = fam.point_model()
    fields: dict[str, Any] = {
        "profile": (ProfileInfo, ...),
        fam.settings_key: (settings, settings()),
        "points": (Annotated[list[point], Field(min_length=1)], ...),  # type: ignore[valid-type]
    }
    model: type[BaseModel] = create_model(
        f"{fam.name.capitalize()}ProfileFile",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **fields,
    )
    return model


def _unique_points(points: Sequence[Any]) -> list[str]:
    problems = []
    names = [p.name for p in points]
    attrs = [p.attribute_name for p in points]
    for label, values in (("name", names), ("attribute", attrs)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            problems.append(f"points: point {label}s must be unique; repeated: {', '.join(dupes)}")
    return problems


class GatewaySettings(BaseModel):
    """The ``[gateway]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Id
    data_dir: Path = Path("/var/lib/ldt")
    """Where the buffer lives; relative paths resolve against the config file."""
    profile_dirs: list[Path] = []
    """Extra profile folders searched before the shipped ``firmware_configs/``."""


class DiscoverySettings(BaseModel):
    """The ``[discovery]`` table: mDNS advertisement for technicians on the LAN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | Literal["auto"] = "auto"
    """Advertise ``_ldt-gw._tcp`` with id, version and provisioning state (no secrets).

    ``"auto"``: only while the gateway waits for provisioning (an https cloud and no
    certificate yet), when the technician needs to find it. The mDNS library costs ~14 MiB
    of RSS, a quarter of the agent's budget; ``true`` keeps it on always."""


class LocalApiSettings(BaseModel):
    """The ``[local_api]`` table: the technician's HTTP API on the gateway itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    """Loopback by default; any other address exposes it on the LAN and needs a credential."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8780
    credential_file: Path | None = None
    """A file holding the secret clients send as ``Authorization: Bearer``."""

    @model_validator(mode="after")
    def _lan_needs_a_credential(self) -> LocalApiSettings:
        loopback = self.host in {"127.0.0.1", "::1", "localhost"}
        if self.enabled and not loopback and self.credential_file is None:
            raise ValueError(
                f"a local API on {self.host} is reachable from the LAN: set credential_file"
            )
        return self


class BufferSettings(BaseModel):
    """The ``[buffer]`` table: limits of the store-and-forward buffer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = "buffer.db"
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 1 << 30
    """Upper bound on the database size; past it the drop policy applies."""
    max_age_s: Annotated[float, Field(gt=0)] = 30 * 86400
    """Unsent readings older than this are dropped (and counted)."""
    drop_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    """``drop_oldest`` keeps the twin current; ``drop_newest`` keeps history intact."""
    synchronous: Literal["full", "normal"] = "full"
    """``full`` survives power loss (one fsync per commit); ``normal`` survives only crashes."""
    flush_interval_ms: Annotated[int, Field(ge=1, le=10_000)] = 200
    flush_max_readings: Annotated[int, Field(ge=1, le=100_000)] = 2000
    encryption_key_file: Path | None = None
    """Seal buffered values with this AES-256 key (``ldt agent buffer-key FILE``); see
    ``agent/value_cipher.py`` for what it protects and where the key should live."""


class CloudSettings(BaseModel):
    """The ``[cloud]`` table: where and how to sync."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    token: str | None = Field(default=None, min_length=16)
    token_file: Path | None = None
    batch_max_readings: Annotated[int, Field(ge=1, le=20_000)] = 5000
    live_max_readings: Annotated[int, Field(ge=1, le=20_000)] = 1000
    """Newest readings sent first each cycle, so an outage's backlog never starves the twin."""
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    compression: Literal["gzip", "none"] = "gzip"
    """Batches on the wire: gzip saves most bytes on metered links (README, bench/sync.py)."""

    @model_validator(mode="after")
    def _one_token_source(self) -> CloudSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give either 'token' or 'token_file', not both")
        return self


class DeviceConfig(BaseModel):
    """One device instance on this gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Id
    profile: _Id
    connection: Any
    """The protocol's connection model (``ModbusTcpConnection`` ...), chosen by its
    ``protocol`` key (default: the profile family's first kind, e.g. ``modbus-tcp``)."""
    poll_interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    """Overrides the profile's poll interval."""
    entity_id: Annotated[str, StringConstraints(pattern=r"^urn:ngsi-ld:\S+$")] | None = None
    """Defaults to ``urn:ngsi-ld:<entity_type>:<gateway id>:<device id>``."""
    enabled: bool = True


class GatewayConfig(BaseModel):
    """A whole gateway config file, with the profiles its devices name resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway: GatewaySettings
    cloud: CloudSettings
    buffer: BufferSettings = BufferSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    local_api: LocalApiSettings = LocalApiSettings()
    devices: list[DeviceConfig] = []
    safety: list[PointLimit] = []
    """``[[safety]]``: the gateway's own bounds per point (``device``, ``point``, ``min``,
    ``max``, ``max_changes_per_hour``). Set on site; a rule set from the cloud can only
    tighten them (``agent/control/safety.py``)."""
    profiles: dict[str, DeviceProfile] = {}
    """Filled by ``load_gateway_config`` from the profile folders; not written in the file."""

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        ids = [d.id for d in devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique; repeated: {', '.join(dupes)}")
        return devices

    def entity_id(self, device: DeviceConfig) -> str:
        """The NGSI-LD entity id a device's readings land on."""
        if device.entity_id:
            return device.entity_id
        etype = self.profiles[device.profile].profile.entity_type
        return f"urn:ngsi-ld:{etype}:{self.gateway.id}:{device.id}"

    @property
    def buffer_path(self) -> Path:
        """Absolute path of the buffer database."""
        return self.gateway.data_dir / self.buffer.file


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        # pydantic puts union branch / validator names in the loc; keep the user's keys.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{error_location(loc)}: {msg}")
    return lines


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None


def load_profile(path: Path) -> DeviceProfile:
    """Load and validate one profile file; raises ``ConfigError``."""
    data = _read_toml(path)
    if not isinstance(data.get("profile"), dict):
        raise ConfigError(path, ["profile: missing the [profile] table (name, protocol, ...)"])
    try:
        info = ProfileInfo.model_validate(data["profile"])
    except ValidationError as exc:
        raise ConfigError(path, [f"profile.{p}" for p in _problems(exc)]) from None
    fam = PROTOCOLS[info.protocol]
    try:
        parsed = _profile_model(fam).model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None
    points = tuple(parsed.points)  # type: ignore[attr-defined]
    problems = _unique_points(points)
    if problems:
        raise ConfigError(path, problems)
    return DeviceProfile(profile=info, settings=getattr(parsed, fam.settings_key), points=points)


def _resolve_paths(model: BaseModel, base: Path) -> BaseModel:
    """Relative file paths in a connection (certificates, password files) against ``base``."""
    update: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            update[name] = base / value
        elif isinstance(value, BaseModel):
            update[name] = _resolve_paths(value, base)
    return model.model_copy(update=update) if update else model


def _validate_connection(
    index: int, dev: DeviceConfig, profile: DeviceProfile, base: Path
) -> tuple[DeviceConfig | None, list[str]]:
    """The device with its connection validated against the profile's protocol family."""
    fam = profile.family
    raw = dev.connection
    where = f"devices[{index}].connection"
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a table (host, port, ...)"]
    kind_name = raw.get("protocol", fam.default_connection())
    kind = connection_kind(fam, str(kind_name))
    if kind is None:
        choices = ", ".join(k.name for k in fam.connections)
        return None, [
            f"{where}.protocol: '{kind_name}' cannot reach a {fam.name} device "
            f"(profile '{profile.name}'); use one of: {choices}"
        ]
    try:
        conn = connection_model(fam, kind).model_validate(raw)
    except ValidationError as exc:
        return None, [f"{where}.{p}" for p in _problems(exc)]
    return dev.model_copy(update={"connection": _resolve_paths(conn, base)}), []


def _find_profile(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        candidate = d / f"{name}.toml"
        if candidate.is_file():
            return candidate
    return None


def load_gateway_config(path: Path) -> GatewayConfig:
    """Load a gateway config and every profile its devices use; raises ``ConfigError``.

    Relative paths in the file (``data_dir``, ``profile_dirs``, ``token_file``,
    ``credential_file``, ``encryption_key_file``)
    resolve against the file's own folder, so a config works wherever it is run from.
    """
    path = path.resolve()
    data = _read_toml(path)
    if isinstance(data, dict) and "profiles" in data:
        raise ConfigError(path, ["profiles: not a setting; profiles are files in profile_dirs"])
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None

    base = path.parent
    gw = cfg.gateway
    gw = gw.model_copy(
        update={
            "data_dir": base / gw.data_dir,
            "profile_dirs": [base / d for d in gw.profile_dirs],
        }
    )
    cloud = cfg.cloud
    if cloud.token_file is not None:
        cloud = cloud.model_copy(update={"token_file": base / cloud.token_file})
    buffer = cfg.buffer
    if buffer.encryption_key_file is not None:
        buffer = buffer.model_copy(
            update={"encryption_key_file": base / buffer.encryption_key_file}
        )
    local_api = cfg.local_api
    if local_api.credential_file is not None:
        local_api = local_api.model_copy(
            update={"credential_file": base / local_api.credential_file}
        )
    dirs = [*gw.profile_dirs, DEFAULT_PROFILE_DIR]

    profiles: dict[str, DeviceProfile] = {}
    problems: list[str] = []
    for i, dev in enumerate(cfg.devices):
        if dev.profile in profiles:
            continue
        found = _find_profile(dev.profile, dirs)
        if found is None:
            searched = ", ".join(str(d) for d in dirs)
            problems.append(f"devices[{i}].profile: no profile '{dev.profile}' in {searched}")
            continue
        profiles[dev.profile] = load_profile(found)
    if problems:
        raise ConfigError(path, problems)
    devices = []
    for i, dev in enumerate(cfg.devices):
        checked, dev_problems = _validate_connection(i, dev, profiles[dev.profile], base)
        problems += dev_problems
        if checked is not None:
            devices.append(checked)
    if problems:
        raise ConfigError(path, problems)
    return cfg.model_copy(
        update={
            "gateway": gw,
            "cloud": cloud,
            "local_api": local_api,
            "buffer": buffer,
            "profiles": profiles,
            "devices": devices,
        }
    )
